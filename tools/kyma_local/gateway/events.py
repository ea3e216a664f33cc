"""The API Gateway REST proxy event (payload format 1.0) built from one HTTP request."""

from __future__ import annotations

import base64
import time
import uuid
from datetime import UTC, datetime
from urllib.parse import parse_qsl

from kyma_local.gateway.limits import ACCOUNT, API_ID


def build_event(method: str, path: str, resource: str, headers: list[tuple[str, str]], query: str,
                body: bytes, *, binary: bool, params: dict | None = None, request_id: str | None = None,
                started: float | None = None, stage: str = "dev", host: str = "127.0.0.1:3000",
                source_ip: str = "127.0.0.1", authorizer: dict | None = None) -> dict:
    """The API Gateway REST proxy event (payload format 1.0) for one HTTP request."""
    request_id = request_id or str(uuid.uuid4())
    started = started or time.time()
    single, multi = split_headers(headers)
    qs_single, qs_multi = split_query(query)
    request_context = {
        "resourceId": "local", "resourcePath": resource, "httpMethod": method,
        "extendedRequestId": request_id, "requestId": request_id,
        "requestTime": datetime.fromtimestamp(started, UTC).strftime("%d/%b/%Y:%H:%M:%S +0000"),
        "requestTimeEpoch": int(started * 1000), "path": f"/{stage}{path}",
        "accountId": ACCOUNT, "protocol": "HTTP/1.1", "stage": stage, "apiId": API_ID,
        "domainName": host, "domainPrefix": host.split(".")[0],
        "identity": {"sourceIp": source_ip, "userAgent": single.get(find_header(single, "user-agent") or ""),
                     "accountId": None, "apiKey": None, "caller": None, "user": None, "userArn": None,
                     "cognitoIdentityId": None, "cognitoIdentityPoolId": None,
                     "cognitoAuthenticationType": None, "cognitoAuthenticationProvider": None},
    }
    if authorizer is not None:
        request_context["authorizer"] = authorizer
    return {
        "resource": resource, "path": path, "httpMethod": method,
        "headers": single or None, "multiValueHeaders": multi or None,
        "queryStringParameters": qs_single or None, "multiValueQueryStringParameters": qs_multi or None,
        "pathParameters": params or None, "stageVariables": None,
        "requestContext": request_context,
        "body": (base64.b64encode(body).decode("ascii") if binary else body.decode("utf-8", "replace"))
        if body else None,
        "isBase64Encoded": bool(body) and binary,
    }


def split_headers(raw: list[tuple[str, str]]) -> tuple[dict, dict]:
    """(headers, multiValueHeaders): the single form keeps the last value, like API Gateway."""
    single: dict[str, str] = {}
    multi: dict[str, list[str]] = {}
    for name, value in raw:
        single[name] = value
        multi.setdefault(name, []).append(value)
    return single, multi


def split_query(query: str) -> tuple[dict, dict]:
    single: dict[str, str] = {}
    multi: dict[str, list[str]] = {}
    for name, value in parse_qsl(query, keep_blank_values=True):
        single[name] = value
        multi.setdefault(name, []).append(value)
    return single, multi


def find_header(headers: dict, name: str) -> str | None:
    """The key under which `headers` holds `name` (lower-case), whatever its case."""
    return next((k for k in headers if k.lower() == name), None)
