"""LocalApiGateway: one request's path through limits, routing, throttling, the authorizer and the integration."""

from __future__ import annotations

import os
import time
import uuid
from typing import Any
from urllib.parse import unquote

from kyma_local.gateway.authorizer import RequestAuthorizer
from kyma_local.gateway.events import build_event, find_header, split_headers, split_query
from kyma_local.gateway.limits import MAX_INVOKE_PAYLOAD_BYTES, MAX_REQUEST_BYTES, json_size
from kyma_local.gateway.media import is_binary
from kyma_local.gateway.proxy import invoke_proxy
from kyma_local.gateway.responses import GatewayResponses, HttpResponse
from kyma_local.gateway.routes import Route, compile_resource, match
from kyma_local.gateway.streaming import ClientWatch, StreamingResponse, open_stream
from kyma_local.gateway.throttle import TokenBucket, bucket_for, buckets_from
from kyma_local.template import ApiEvent, Function, Template


class LocalApiGateway:
    def __init__(self, template: Template, pools: dict[str, Any], *,
                 authorizer_ttl: float | None = None, host: str = "127.0.0.1:3000") -> None:
        self.template = template
        self.stage = template.stage
        self.host = host
        self.binary_types = template.binary_media_types
        self.responses = GatewayResponses(template.gateway_responses)
        authorizer_id, spec = template.authorizer
        self.authorizer = RequestAuthorizer(pools[authorizer_id], spec, stage=self.stage, ttl=authorizer_ttl)
        self.routes: list[Route] = []
        # Local-only control plane actions beyond the authorizer cache: name → callable(argument).
        self.controls: dict[str, Any] = {}
        for logical_id, fn in template.functions.items():
            for event in fn.api_events:
                _check_integration(logical_id, fn, event)
                pattern, specificity = compile_resource(event.path)
                self.routes.append(Route(event.path, event.method, pools[logical_id], event.authorized,
                                         pattern, specificity, event.streams, event.timeout_ms))
        # KYMA_LOCAL_THROTTLING=off: test stacks that make many paid calls in a burst.
        self.buckets: dict[tuple[str, str], TokenBucket] = {} \
            if os.environ.get("KYMA_LOCAL_THROTTLING") == "off" \
            else buckets_from(template.api.get("MethodSettings", []))

    def flush_authorizer_cache(self) -> None:
        self.authorizer.flush()

    def gateway_response(self, kind: str, request_id: str, *, status: int | None = None) -> HttpResponse:
        return self.responses.render(kind, request_id, status=status)

    def handle(self, method: str, raw_path: str, query: str, headers: list[tuple[str, str]],
               body: bytes, source_ip: str = "127.0.0.1",
               watch: ClientWatch | None = None) -> HttpResponse | StreamingResponse:
        request_id = str(uuid.uuid4())
        started = time.time()
        if len(body) > MAX_REQUEST_BYTES:
            return self.gateway_response("REQUEST_TOO_LARGE", request_id)
        path = unquote(raw_path) or "/"
        route, params = match(self.routes, method, path)
        if route is None:
            return self.gateway_response("MISSING_AUTHENTICATION_TOKEN", request_id)
        bucket = bucket_for(self.buckets, route.resource, method)
        if bucket and not bucket.take():
            return self.gateway_response("THROTTLED", request_id)

        single, multi = split_headers(headers)
        qs_single, qs_multi = split_query(query)
        # No Content-Type: API Gateway assumes application/json (integration passthrough docs).
        content_type = single.get(find_header(single, "content-type") or "") or "application/json"
        event = build_event(method, path, route.resource, headers, query, body, params=params,
                            binary=is_binary(content_type, self.binary_types),
                            request_id=request_id, started=started, stage=self.stage, host=self.host,
                            source_ip=source_ip)
        if route.authorized:
            denied, authorizer_context = self.authorizer.authorize(
                method, path, route.resource, single, multi, qs_single, qs_multi, params, event["requestContext"])
            if denied:
                return self.gateway_response(denied, request_id)
            event["requestContext"]["authorizer"] = authorizer_context
        if json_size(event) > MAX_INVOKE_PAYLOAD_BYTES:
            return self.gateway_response("REQUEST_TOO_LARGE", request_id)
        if route.streams:
            return open_stream(route.pool, event, timeout_ms=route.timeout_ms, responses=self.responses,
                               request_id=request_id, watch=watch)
        return invoke_proxy(route.pool, event, timeout_ms=route.timeout_ms, request_headers=single,
                            binary_types=self.binary_types, responses=self.responses, request_id=request_id)


def _check_integration(logical_id: str, fn: Function, event: ApiEvent) -> None:
    """What this stand-in can run: Python handlers buffered, web-adapter apps streamed."""
    if event.streams and not (fn.web_adapter and fn.invoke_mode == "response_stream"):
        raise ValueError(f"{logical_id}: a RESPONSE_STREAM route needs a Lambda Web Adapter function with "
                         "AWS_LWA_INVOKE_MODE=response_stream (Python's managed runtime does not stream)")
    if fn.web_adapter and not event.streams:
        raise ValueError(f"{logical_id}: buffered routes to a Lambda Web Adapter function are not supported "
                         f"locally; set ResponseTransferMode: RESPONSE_STREAM on {event.method} {event.path}")
