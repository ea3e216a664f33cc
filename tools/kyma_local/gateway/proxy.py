"""The buffered Lambda proxy integration: invoke, then map the function's result to HTTP."""

from __future__ import annotations

import binascii
from typing import Any

from kyma_local.gateway.events import find_header
from kyma_local.gateway.limits import MAX_INVOKE_PAYLOAD_BYTES, json_size
from kyma_local.gateway.media import accepts_binary
from kyma_local.gateway.responses import GatewayResponses, HttpResponse


def invoke_proxy(pool: Any, event: dict, *, timeout_ms: int, request_headers: dict, binary_types: list[str],
                 responses: GatewayResponses, request_id: str) -> HttpResponse:
    result = pool.invoke(event)
    if result.error == "TimedOut" or result.duration_ms > timeout_ms:
        return responses.render("INTEGRATION_TIMEOUT", request_id)
    if result.error:
        return responses.render("INTEGRATION_FAILURE", request_id, status=502)
    if json_size(result.payload) > MAX_INVOKE_PAYLOAD_BYTES:
        return responses.render("INTEGRATION_FAILURE", request_id, status=502)
    return proxy_response(result.payload, request_headers, binary_types, responses, request_id)


def proxy_response(payload: Any, request_headers: dict, binary_types: list[str], responses: GatewayResponses,
                   request_id: str) -> HttpResponse:
    """A proxy integration result (statusCode, headers, body, isBase64Encoded) as the client sees it."""
    if not isinstance(payload, dict) or not isinstance(payload.get("statusCode"), int):
        return responses.render("INTEGRATION_FAILURE", request_id, status=502)
    headers: list[tuple[str, str]] = []
    single = payload.get("headers") or {}
    multi = payload.get("multiValueHeaders") or {}
    for name, value in single.items():
        if name not in multi:
            headers.append((name, str(value)))
    for name, values in multi.items():
        headers.extend((name, str(v)) for v in values)
    body = payload.get("body") or ""
    accept = request_headers.get(find_header(request_headers, "accept") or "") or ""
    if payload.get("isBase64Encoded") and accepts_binary(accept, binary_types):
        try:
            data = binascii.a2b_base64(body)
        except (binascii.Error, ValueError):
            return responses.render("API_CONFIGURATION_ERROR", request_id, status=500)
    else:
        data = body.encode("utf-8")
    headers.append(("x-amzn-RequestId", request_id))
    return HttpResponse(payload["statusCode"], headers, data)
