"""A local API Gateway (REST API, Lambda proxy integration) on loopback.

It builds the proxy event AWS would send, runs the REQUEST authorizer (with
its cache), then the function, and maps the result back to HTTP byte for
byte.  Routes, binary media types, the authorizer, throttling and the gateway
responses all come from template.yaml.

AWS behaviour reproduced here (see README "Local stack" for sources):
- a route that matches no resource → MISSING_AUTHENTICATION_TOKEN;
  a specific method wins over ANY on the same resource;
- identity header missing → 401 without calling the authorizer; the
  authorizer raising "Unauthorized" → UNAUTHORIZED; an explicit or implicit
  deny → ACCESS_DENIED; any other authorizer failure → AUTHORIZER_CONFIGURATION_ERROR;
  answers cached per identity-header value for ReauthorizeEvery seconds;
- request bodies whose Content-Type matches BinaryMediaTypes arrive base64;
  a base64 Lambda response is decoded only if the request's first Accept type
  matches BinaryMediaTypes;
- payload limits: 10 MB request (REQUEST_TOO_LARGE), 6 MB invocation event
  including the base64 body (answered like the 10 MB case), 6 MB response and
  function errors / timeouts (502 / 504, DEFAULT_5XX);
- per-method throttling from MethodSettings (THROTTLED, 429).
"""

from __future__ import annotations

import base64
import binascii
import fnmatch
import json
import os
import re
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote

from kyma_local.runtime import FunctionPool
from kyma_local.template import Template

MAX_REQUEST_BYTES = 10 * 1024 * 1024          # API Gateway REST payload limit
MAX_INVOKE_PAYLOAD_BYTES = 6 * 1024 * 1024     # Lambda synchronous invocation (event or response)
API_ID = "localapi00"
ACCOUNT = "123456789012"
CONTROL_PREFIX = "/__kyma_local/"              # local-only control plane (loopback)

# Default status of each gateway response type (AWS documentation).
DEFAULT_STATUS = {
    "ACCESS_DENIED": 403, "API_CONFIGURATION_ERROR": 500, "AUTHORIZER_CONFIGURATION_ERROR": 500,
    "AUTHORIZER_FAILURE": 500, "BAD_REQUEST_BODY": 400, "BAD_REQUEST_PARAMETERS": 400,
    "INTEGRATION_FAILURE": 504, "INTEGRATION_TIMEOUT": 504, "MISSING_AUTHENTICATION_TOKEN": 403,
    "QUOTA_EXCEEDED": 429, "REQUEST_TOO_LARGE": 413, "RESOURCE_NOT_FOUND": 404, "THROTTLED": 429,
    "UNAUTHORIZED": 401, "UNSUPPORTED_MEDIA_TYPE": 415,
}
DEFAULT_MESSAGE = {
    "ACCESS_DENIED": "User is not authorized to access this resource",
    "MISSING_AUTHENTICATION_TOKEN": "Missing Authentication Token",
    "REQUEST_TOO_LARGE": "Request Too Long", "THROTTLED": "Too Many Requests",
    "UNAUTHORIZED": "Unauthorized", "INTEGRATION_TIMEOUT": "Endpoint request timed out",
}


@dataclass(frozen=True)
class HttpResponse:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


@dataclass(frozen=True)
class Route:
    resource: str
    method: str
    pool: FunctionPool
    authorized: bool
    pattern: re.Pattern
    specificity: tuple


def _compile(resource: str) -> tuple[re.Pattern, tuple]:
    parts, literal, greedy = [], 0, 0
    for segment in resource.strip("/").split("/") if resource != "/" else []:
        if segment.startswith("{") and segment.endswith("+}"):
            parts.append(f"(?P<{segment[1:-2]}>.+)")
            greedy += 1
        elif segment.startswith("{"):
            parts.append(f"(?P<{segment[1:-1]}>[^/]+)")
        else:
            parts.append(re.escape(segment))
            literal += 1
    regex = "^/" + "/".join(parts) + "/?$" if parts else "^/$"
    # Prefer: no greedy segment, then more literal segments.
    return re.compile(regex), (-greedy, literal)


class TokenBucket:
    def __init__(self, rate: float, burst: int) -> None:
        self.rate, self.burst = rate, burst
        self.tokens, self.updated = float(burst), time.monotonic()
        self.lock = threading.Lock()

    def take(self) -> bool:
        with self.lock:
            now = time.monotonic()
            self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
            self.updated = now
            if self.tokens >= 1:
                self.tokens -= 1
                return True
            return False


class LocalApiGateway:
    def __init__(self, template: Template, pools: dict[str, FunctionPool], *,
                 authorizer_ttl: float | None = None, host: str = "127.0.0.1:3000") -> None:
        self.template = template
        self.stage = template.stage
        self.host = host
        self.binary_types = template.binary_media_types
        self.responses = template.gateway_responses
        authorizer_id, spec = template.authorizer
        self.authorizer_pool = pools[authorizer_id]
        self.identity_headers = [h.lower() for h in spec.get("Identity", {}).get("Headers", ["Authorization"])]
        self.auth_ttl = spec.get("Identity", {}).get("ReauthorizeEvery", 300) if authorizer_ttl is None \
            else authorizer_ttl
        self._auth_cache: dict[tuple, tuple[float, dict]] = {}
        self._auth_lock = threading.Lock()
        self.routes: list[Route] = []
        for logical_id, fn in template.functions.items():
            for event in fn.api_events:
                pattern, specificity = _compile(event.path)
                self.routes.append(Route(event.path, event.method, pools[logical_id], event.authorized,
                                         pattern, specificity))
        # KYMA_LOCAL_THROTTLING=off: test stacks that make many paid calls in a burst.
        self.buckets = {} if os.environ.get("KYMA_LOCAL_THROTTLING") == "off" else \
            self._throttles(template.api.get("MethodSettings", []))

    # ── throttling ──
    def _throttles(self, settings: list[dict]) -> dict[tuple[str, str], TokenBucket]:
        out = {}
        for s in settings:
            if "ThrottlingRateLimit" in s:
                key = (s["ResourcePath"].replace("~1", "/"), s["HttpMethod"])
                out[key] = TokenBucket(float(s["ThrottlingRateLimit"]), int(s.get("ThrottlingBurstLimit", 1)))
        return out

    def _bucket(self, resource: str, method: str) -> TokenBucket | None:
        return (self.buckets.get((resource, method)) or self.buckets.get((resource, "*"))
                or self.buckets.get(("/*", "*")))

    # ── the request path ──
    def handle(self, method: str, raw_path: str, query: str, headers: list[tuple[str, str]],
               body: bytes, source_ip: str = "127.0.0.1") -> HttpResponse:
        request_id = str(uuid.uuid4())
        started = time.time()
        if len(body) > MAX_REQUEST_BYTES:
            return self.gateway_response("REQUEST_TOO_LARGE", request_id)
        path = unquote(raw_path) or "/"
        route, params = self._match(method, path)
        if route is None:
            return self.gateway_response("MISSING_AUTHENTICATION_TOKEN", request_id)
        bucket = self._bucket(route.resource, method)
        if bucket and not bucket.take():
            return self.gateway_response("THROTTLED", request_id)

        single, multi = _headers(headers)
        qs_single, qs_multi = _query(query)
        event = build_event(method, path, route.resource, headers, query, body, params=params,
                            binary=self._is_binary(single.get(_find(single, "content-type"), "")),
                            request_id=request_id, started=started, stage=self.stage, host=self.host,
                            source_ip=source_ip)
        if route.authorized:
            denied, authorizer_context = self._authorize(method, path, route, single, multi, qs_single,
                                                         qs_multi, params, event["requestContext"])
            if denied:
                return self.gateway_response(denied, request_id)
            event["requestContext"]["authorizer"] = authorizer_context
        if _json_size(event) > MAX_INVOKE_PAYLOAD_BYTES:
            return self.gateway_response("REQUEST_TOO_LARGE", request_id)
        result = route.pool.invoke(event)
        if result.error == "TimedOut" or result.duration_ms > 29_000:
            return self.gateway_response("INTEGRATION_TIMEOUT", request_id)
        if result.error:
            return self.gateway_response("INTEGRATION_FAILURE", request_id, status=502)
        if _json_size(result.payload) > MAX_INVOKE_PAYLOAD_BYTES:
            return self.gateway_response("INTEGRATION_FAILURE", request_id, status=502)
        return self._proxy_response(result.payload, single, request_id)

    def _match(self, method: str, path: str) -> tuple[Route | None, dict]:
        candidates = []
        for route in self.routes:
            m = route.pattern.match(path)
            if m:
                candidates.append((route, m.groupdict()))
        if not candidates:
            return None, {}
        best = max(c[0].specificity for c in candidates)
        on_resource = [c for c in candidates if c[0].specificity == best]
        for wanted in (method, "ANY"):
            for route, params in on_resource:
                if route.method == wanted:
                    return route, params
        return None, {}

    def _is_binary(self, content_type: str) -> bool:
        media = content_type.split(";")[0].strip().lower()
        return bool(media) and any(fnmatch.fnmatch(media, t.lower()) for t in self.binary_types)

    # ── authorizer ──
    def _authorize(self, method, path, route, single, multi, qs_single, qs_multi, params,
                   request_context) -> tuple[str | None, dict]:
        identity = tuple(single.get(_find(single, h)) for h in self.identity_headers)
        if any(not v for v in identity):
            return "UNAUTHORIZED", {}
        method_arn = f"arn:aws:execute-api:us-east-1:{ACCOUNT}:{API_ID}/{self.stage}/{method}{path}"
        now = time.monotonic()
        with self._auth_lock:
            cached = self._auth_cache.get(identity)
        if cached and cached[0] > now:
            answer = cached[1]
        else:
            result = self.authorizer_pool.invoke({
                "type": "REQUEST", "methodArn": method_arn, "resource": route.resource, "path": path,
                "httpMethod": method, "headers": single, "multiValueHeaders": multi,
                "queryStringParameters": qs_single, "multiValueQueryStringParameters": qs_multi,
                "pathParameters": params, "stageVariables": {}, "requestContext": request_context})
            if result.error:
                if result.error == "Unhandled" and result.error_message.endswith(": Unauthorized"):
                    return "UNAUTHORIZED", {}  # not cached by API Gateway either
                return "AUTHORIZER_CONFIGURATION_ERROR", {}
            answer = result.payload
            if not isinstance(answer, dict) or "policyDocument" not in answer or "principalId" not in answer:
                return "AUTHORIZER_CONFIGURATION_ERROR", {}
            if self.auth_ttl:
                with self._auth_lock:
                    self._auth_cache[identity] = (now + self.auth_ttl, answer)
        if not _policy_allows(answer["policyDocument"], method_arn):
            return "ACCESS_DENIED", {}
        context = {k: v for k, v in (answer.get("context") or {}).items()}
        return None, {**context, "principalId": answer["principalId"], "integrationLatency": 0}

    def flush_authorizer_cache(self) -> None:
        with self._auth_lock:
            self._auth_cache.clear()

    # ── responses ──
    def _proxy_response(self, payload: Any, request_headers: dict, request_id: str) -> HttpResponse:
        if not isinstance(payload, dict) or not isinstance(payload.get("statusCode"), int):
            return self.gateway_response("INTEGRATION_FAILURE", request_id, status=502)
        headers: list[tuple[str, str]] = []
        single = payload.get("headers") or {}
        multi = payload.get("multiValueHeaders") or {}
        for name, value in single.items():
            if name not in multi:
                headers.append((name, str(value)))
        for name, values in multi.items():
            headers.extend((name, str(v)) for v in values)
        body = payload.get("body") or ""
        if payload.get("isBase64Encoded") and self._accepts_binary(request_headers):
            try:
                data = binascii.a2b_base64(body)
            except (binascii.Error, ValueError):
                return self.gateway_response("API_CONFIGURATION_ERROR", request_id, status=500)
        else:
            data = body.encode("utf-8")
        headers.append(("x-amzn-RequestId", request_id))
        return HttpResponse(payload["statusCode"], headers, data)

    def _accepts_binary(self, request_headers: dict) -> bool:
        accept = request_headers.get(_find(request_headers, "accept")) or ""
        first = accept.split(",")[0].split(";")[0].strip().lower()
        return bool(first) and any(fnmatch.fnmatch(first, t.lower()) if "*" in t else first == t.lower()
                                   for t in self.binary_types)

    def gateway_response(self, kind: str, request_id: str, *, status: int | None = None) -> HttpResponse:
        spec = self.responses.get(kind)
        default_status = status or DEFAULT_STATUS.get(kind, 500)
        if spec is None:
            spec = self.responses.get("DEFAULT_4XX" if default_status < 500 else "DEFAULT_5XX") or {}
        code = int(spec.get("StatusCode", default_status))
        template = (spec.get("ResponseTemplates") or {}).get("application/json")
        body = template if template is not None else json.dumps(
            {"message": DEFAULT_MESSAGE.get(kind, "Internal server error")})
        body = body.replace("$context.requestId", request_id)
        headers = [("Content-Type", "application/json")]
        for name, value in ((spec.get("ResponseParameters") or {}).get("Headers") or {}).items():
            if value == "context.requestId":
                headers.append((name, request_id))
            elif value.startswith("'") and value.endswith("'"):
                headers.append((name, value[1:-1]))
        headers.append(("x-amzn-RequestId", request_id))
        headers.append(("x-amzn-ErrorType", kind))
        return HttpResponse(code, headers, body.encode("utf-8"))


def build_event(method: str, path: str, resource: str, headers: list[tuple[str, str]], query: str,
                body: bytes, *, binary: bool, params: dict | None = None, request_id: str | None = None,
                started: float | None = None, stage: str = "dev", host: str = "127.0.0.1:3000",
                source_ip: str = "127.0.0.1", authorizer: dict | None = None) -> dict:
    """The API Gateway REST proxy event (payload format 1.0) for one HTTP request."""
    request_id = request_id or str(uuid.uuid4())
    started = started or time.time()
    single, multi = _headers(headers)
    qs_single, qs_multi = _query(query)
    request_context = {
        "resourceId": "local", "resourcePath": resource, "httpMethod": method,
        "extendedRequestId": request_id, "requestId": request_id,
        "requestTime": datetime.fromtimestamp(started, UTC).strftime("%d/%b/%Y:%H:%M:%S +0000"),
        "requestTimeEpoch": int(started * 1000), "path": f"/{stage}{path}",
        "accountId": ACCOUNT, "protocol": "HTTP/1.1", "stage": stage, "apiId": API_ID,
        "domainName": host, "domainPrefix": host.split(".")[0],
        "identity": {"sourceIp": source_ip, "userAgent": single.get(_find(single, "user-agent")),
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


def _policy_allows(policy: dict, method_arn: str) -> bool:
    allowed = False
    statements = policy.get("Statement", [])
    for st in statements if isinstance(statements, list) else [statements]:
        resources = st.get("Resource", [])
        resources = resources if isinstance(resources, list) else [resources]
        actions = st.get("Action", [])
        actions = actions if isinstance(actions, list) else [actions]
        if not any(a in ("execute-api:Invoke", "execute-api:*", "*") for a in actions):
            continue
        if any(fnmatch.fnmatchcase(method_arn, r) for r in resources):
            if st.get("Effect") == "Deny":
                return False
            if st.get("Effect") == "Allow":
                allowed = True
    return allowed


def _headers(raw: list[tuple[str, str]]) -> tuple[dict, dict]:
    single: dict[str, str] = {}
    multi: dict[str, list[str]] = {}
    for name, value in raw:
        single[name] = value
        multi.setdefault(name, []).append(value)
    return single, multi


def _query(query: str) -> tuple[dict, dict]:
    single: dict[str, str] = {}
    multi: dict[str, list[str]] = {}
    for name, value in parse_qsl(query, keep_blank_values=True):
        single[name] = value
        multi.setdefault(name, []).append(value)
    return single, multi


def _find(headers: dict, name: str) -> str | None:
    return next((k for k in headers if k.lower() == name), None)


def _json_size(value: Any) -> int:
    return len(json.dumps(value, separators=(",", ":")).encode("utf-8"))


# ── the HTTP server ──
class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "kyma-local"
    gateway: LocalApiGateway

    def _serve(self) -> None:
        path, _, query = self.path.partition("?")
        try:
            body = self._read_body()
        except _TooLarge:
            self._send(self.gateway.gateway_response("REQUEST_TOO_LARGE", str(uuid.uuid4())), close=True)
            return
        if path.startswith(CONTROL_PREFIX):
            self._control(path[len(CONTROL_PREFIX):])
            return
        response = self.gateway.handle(self.command, path, query, list(self.headers.items()), body,
                                       self.client_address[0])
        self._send(response)

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks, total = [], 0
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return b"".join(chunks)
                total += size
                if total > MAX_REQUEST_BYTES * 4:
                    raise _TooLarge
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_REQUEST_BYTES * 4:  # do not even buffer absurd bodies
            raise _TooLarge
        return self.rfile.read(length) if length else b""

    def _control(self, action: str) -> None:
        if action == "authorizer-cache" and self.command == "DELETE":
            self.gateway.flush_authorizer_cache()
            self._send(HttpResponse(204, [], b""))
        else:
            self._send(HttpResponse(404, [("Content-Type", "application/json")], b'{"error": "unknown control"}'))

    def _send(self, response: HttpResponse, close: bool = False) -> None:
        self.send_response(response.status)
        names = {n.lower() for n, _ in response.headers}
        for name, value in response.headers:
            self.send_header(name, value)
        if "content-length" not in names:
            self.send_header("Content-Length", str(len(response.body)))
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_HEAD = _serve

    def log_message(self, fmt: str, *args: Any) -> None:  # one access-log line, never headers
        print(f"{self.address_string()} {fmt % args}", flush=True)


class _TooLarge(Exception):
    pass


def make_server(gateway: LocalApiGateway, host: str = "127.0.0.1", port: int = 3000,
                quiet: bool = False) -> ThreadingHTTPServer:
    handler = type("Handler", (_Handler,), {"gateway": gateway})
    if quiet:
        handler.log_message = lambda self, fmt, *args: None
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    gateway.host = f"{host}:{server.server_address[1]}"
    return server
