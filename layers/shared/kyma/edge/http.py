"""The HTTP edge: API Gateway REST proxy events in, proxy responses out.

Each function is a thin `app.py` whose routes take a `Request` and return a
`Response`; `api_handler` does the rest for all of them: decoding the body
once, the error envelope, `X-Request-Id`, the time budget, and making sure no
unexpected exception ever reaches the client as a stack trace.

API Gateway does the routing (one function serves one or two routes), so
this module replaces a full resolver with the few lines the functions need;
see bench/results.md for what that saves at cold start.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kyma.edge import json_body, scopes
from kyma.edge.errors import ApiError, InternalError, InvalidRequest
from kyma.platform.config import config
from kyma.platform.observability import logger

# Time kept in reserve after the deadline to release a hold and answer.
SAFETY_MARGIN_SECONDS = 2.0


class Headers(Mapping[str, str]):
    """Case-insensitive view of the event's (single-value) headers."""

    def __init__(self, raw: Mapping[str, str] | None) -> None:
        self._items = {k.lower(): v for k, v in (raw or {}).items()}

    def __getitem__(self, key: str) -> str:
        return self._items[key.lower()]

    def __iter__(self):
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)


@dataclass
class Request:
    method: str
    resource: str
    path: str
    headers: Headers
    query: dict[str, str]
    path_params: dict[str, str]
    body: bytes
    request_id: str
    account_id: str          # from the authorizer's context ("" on routes without one)
    authorizer: dict         # the authorizer's whole context (account_id, rate_limits, ...)
    deadline: float          # time.monotonic() instant by which work must stop
    lambda_context: Any = None

    @classmethod
    def from_event(cls, event: Mapping[str, Any], context: Any, api_timeout: float) -> Request:
        ctx = event.get("requestContext") or {}
        raw = event.get("body") or ""
        if event.get("isBase64Encoded"):
            try:
                # a2b_base64 reads the str directly: no ASCII copy of a large upload.
                body = binascii.a2b_base64(raw)
            except (binascii.Error, ValueError) as exc:
                raise InvalidRequest("The request body is not valid base64.") from exc
        else:
            body = raw.encode("utf-8") if isinstance(raw, str) else bytes(raw)
        return cls(
            method=event.get("httpMethod", ""),
            resource=event.get("resource", ""),
            path=event.get("path", ""),
            headers=Headers(event.get("headers")),
            query=dict(event.get("queryStringParameters") or {}),
            path_params=dict(event.get("pathParameters") or {}),
            body=body,
            request_id=ctx.get("requestId") or getattr(context, "aws_request_id", "") or "",
            account_id=str((ctx.get("authorizer") or {}).get("account_id") or ""),
            authorizer=dict(ctx.get("authorizer") or {}),
            deadline=request_deadline(ctx, context, api_timeout),
            lambda_context=context,
        )

    def json(self) -> dict:
        """The body as a JSON object, or 400 invalid_request (kyma.edge.json_body)."""
        return json_body.parse_object(self.body)


# A requestTimeEpoch up to this far ahead of the function's clock is clock skew (API Gateway's and
# Lambda's hosts keep NTP time); further ahead, it is not API Gateway's.
CLOCK_SKEW_SECONDS = 1.0
_untrusted_epoch_warned = False


def request_deadline(request_context: Mapping[str, Any], context: Any, api_timeout: float) -> float:
    """When this request must stop working: the earlier of Lambda's own timeout (`context`'s
    remaining time) and API Gateway's integration timeout (measured from `requestTimeEpoch`,
    when the gateway got the request), less a margin to release any hold and answer.

    A `requestTimeEpoch` older than the integration timeout (API Gateway would have answered 504
    and never invoked) or in the future is not API Gateway's: an emulator's (SAM CLI stamps every
    event of one `sam local start-api` run with its start time) or a replayed event's.  Then the
    Lambda context alone sets the deadline, and a warning is logged once per process."""
    now_mono, now_wall = time.monotonic(), time.time()
    budget = api_timeout
    started_ms = request_context.get("requestTimeEpoch")
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    lambda_budget = remaining() / 1000 if callable(remaining) else None
    if isinstance(started_ms, (int, float)) and not isinstance(started_ms, bool) and started_ms > 0:
        age = now_wall - started_ms / 1000
        if -CLOCK_SKEW_SECONDS <= age <= api_timeout:
            budget = api_timeout - max(0.0, age)
        else:
            _warn_untrusted_epoch(age, api_timeout)
            if lambda_budget is not None:
                budget = lambda_budget
    if lambda_budget is not None:
        budget = min(budget, lambda_budget)
    return now_mono + budget - SAFETY_MARGIN_SECONDS


def _warn_untrusted_epoch(age: float, api_timeout: float) -> None:
    global _untrusted_epoch_warned
    if _untrusted_epoch_warned:
        return
    _untrusted_epoch_warned = True
    logger.warning("requestTimeEpoch not trusted: the deadline comes from the Lambda context alone",
                   extra={"request_age_seconds": round(age, 3), "api_timeout_seconds": api_timeout})


@dataclass
class Response:
    status: int
    body: bytes | str = b""
    headers: dict[str, str] = field(default_factory=dict)
    binary: bool = False

    def to_proxy(self, request_id: str) -> dict:
        headers = {**self.headers, "X-Request-Id": request_id}
        if self.binary:
            raw = self.body.encode("utf-8") if isinstance(self.body, str) else self.body
            return {"statusCode": self.status, "headers": headers, "isBase64Encoded": True,
                    "body": base64.b64encode(raw).decode("ascii")}
        body = self.body.decode("utf-8") if isinstance(self.body, bytes) else self.body
        return {"statusCode": self.status, "headers": headers, "isBase64Encoded": False, "body": body}


def replay_marked(response: Response, replayed: bool) -> Response:
    """A response served from an Idempotency-Key record says so."""
    if replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return response


def query_limit(query: Mapping[str, str], *, default: int, maximum: int) -> int:
    """A page size from the query string (`limit`), 1..maximum, or 400.  ASCII digits only:
    str.isdigit() alone also admits "²" and other digits int() refuses."""
    raw = query.get("limit", str(default))
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 6) or not 1 <= int(raw) <= maximum:
        raise InvalidRequest(f"limit must be an integer from 1 to {maximum}.")
    return int(raw)


def json_response(status: int, payload: Any, headers: Mapping[str, str] | None = None) -> Response:
    return Response(status, json.dumps(payload),
                    {"Content-Type": "application/json", **(headers or {})})


def error_response(error: ApiError) -> Response:
    return json_response(error.status, error.envelope(), error.headers)


Route = Callable[[Request], Response]


def api_handler(routes: Mapping[tuple[str, str], Route]):
    """Build a Lambda handler that dispatches on (method, resource) to `routes`."""

    def handler(event: Mapping[str, Any], context: Any) -> dict:
        ctx = event.get("requestContext") or {}
        request_id = ctx.get("requestId") or getattr(context, "aws_request_id", "") or ""
        logger.set_correlation_id(request_id)
        try:
            request = Request.from_event(event, context, config().api_timeout_seconds)
            route = routes.get((request.method, request.resource))
            if route is None:  # API Gateway routed it here, so the template and routes disagree
                raise InternalError(f"No route for {request.method} {request.resource}.")
            scopes.require(request.method, request.resource, request.authorizer)
            response = route(request)
        except ApiError as error:
            log = logger.warning if error.status < 500 else logger.error
            log("request failed", extra={"status": error.status, "error_code": error.code})
            response = error_response(error)
        except Exception:  # the last line of defence: never a stack trace to the client
            logger.exception("unhandled error")
            response = error_response(InternalError("Internal error. Quote the X-Request-Id header to support."))
        return response.to_proxy(request_id)

    handler.routes = dict(routes)  # type: ignore[attr-defined]  # (method, resource) → route, for the contract test
    return handler
