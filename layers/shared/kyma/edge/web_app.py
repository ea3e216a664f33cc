"""The HTTP app a response-streaming function runs behind the AWS Lambda Web Adapter.

The adapter (a Lambda extension) turns each invocation into an HTTP request to this
app on 127.0.0.1:AWS_LWA_PORT and streams the app's response back through API Gateway
as it is written (template.yaml: AWS_LWA_INVOKE_MODE=response_stream, ResponseTransferMode
RESPONSE_STREAM).  This module owns everything between that HTTP request and a route:

- the server: the standard library's `http.server` (HTTP/1.1, a thread per connection, so
  a keep-alive connection the adapter leaves open never blocks the next one).  It adds
  about 0.01x of a boto3 client to a cold start; a web framework costs 0.1x (Werkzeug) to
  0.3x (Flask) for routing this function does not need (bench/results.md);
- readiness: GET / answers 200 once the module is imported (the adapter's readiness check);
- the request, as `kyma.edge.http.Request`: method, path, headers and body as sent; the route,
  the request id and the authorizer's `account_id` from the adapter's
  `x-amzn-request-context`; the deadline from `x-amzn-lambda-context`'s `deadline` (epoch
  ms) and the request's start plus the integration timeout, less a margin
  (`kyma.edge.http.request_deadline`);
- the response: whole (`Output.send`, with Content-Length) or streamed (`Output.start`,
  then `Output.write` per chunk, each a chunk of the chunked transfer coding, flushed at
  once; the terminating chunk when the route returns);
- failures: before anything was sent, an `ApiError` is answered in the error envelope of
  `kyma.edge.errors` (anything else as internal_error), always with X-Request-Id.  Once a
  stream has started its status cannot change: the stream's own last word is written if it
  has one (e.g. a Server-Sent Events error event) and the body ends normally; otherwise
  the connection is closed without the terminating chunk, which the client sees as a
  truncated body.  A client that went away makes `write` raise `ClientGone`;
- per request: the log correlation id and Lambda context keys, and EMF metrics flushed.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import socket
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, NoReturn
from urllib.parse import parse_qsl, urlsplit

from kyma.edge import scopes
from kyma.edge.errors import ApiError, InternalError, InvalidRequest
from kyma.edge.http import Headers, Request, Response, error_response, json_response, request_deadline
from kyma.platform.observability import logger, metrics

READINESS_PATH = "/"
DEFAULT_PORT = 8080            # the adapter's default AWS_LWA_PORT
MAX_BODY_BYTES = 10 * 1024 * 1024   # API Gateway's payload limit: nothing larger can arrive


class ClientGone(Exception):
    """The client went away mid-response: nothing more can be delivered.  Paid work that
    unwinds because of it releases its hold (`kyma.billing.paid_call` reads `release_reason`)."""

    release_reason = "client_gone"


@dataclass
class AdapterContext:
    """The Lambda context the adapter forwards (x-amzn-lambda-context), with the one method
    Powertools and the deadline need."""

    aws_request_id: str
    deadline_ms: int
    function_name: str = ""
    memory_limit_in_mb: int = 0
    invoked_function_arn: str = ""

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int(self.deadline_ms - time.time() * 1000))


class Output:
    """The response to one request: sent whole, or started and then written chunk by chunk."""

    def __init__(self, handler: BaseHTTPRequestHandler, request_id: str) -> None:
        self._handler = handler
        self.request_id = request_id
        self.started = False          # status and headers sent
        self.done = False             # nothing more may be written
        self._last_word: Callable[[ApiError], bytes] | None = None

    def send(self, response: Response) -> None:
        """A whole response, with Content-Length."""
        if self.started:
            raise RuntimeError("the response has already started")
        body = response.body.encode("utf-8") if isinstance(response.body, str) else response.body
        self._head(response.status, {**response.headers, "Content-Length": str(len(body))})
        self._send(body)
        self.done = True

    def start(self, status: int, headers: Mapping[str, str], *,
              last_word: Callable[[ApiError], bytes] | None = None) -> None:
        """Status and headers now; the body follows with `write`.  `last_word(error)`: what to
        write if the stream fails after this (without it the body is cut short)."""
        if self.started:
            raise RuntimeError("the response has already started")
        self._last_word = last_word
        self._head(status, {**headers, "Transfer-Encoding": "chunked"})

    def write(self, data: bytes) -> None:
        """One chunk, on its way at once.  Raises ClientGone if the client left."""
        if not self.started or self.done:
            raise RuntimeError("write() needs a started, unfinished response")
        if data:                      # a zero-length chunk would end the body
            self._send(b"%x\r\n%s\r\n" % (len(data), data))

    def connected(self) -> bool:
        """False once the connection is known to be closed by the other end (the adapter, or the
        local gateway behind it, closed it because the client left).  The request has been read
        whole, so a readable socket with nothing to read is the peer's end of the connection.
        True says only that no close has been seen (in AWS, Lambda's response stream never
        closes it early: see README, Billing)."""
        if self.done:
            return False
        sock = self._handler.connection
        try:
            readable, _, _ = select.select([sock], [], [], 0)
            return not readable or bool(sock.recv(1, socket.MSG_PEEK))
        except (OSError, ValueError):     # reset, or already closed
            return False

    def ensure_connected(self) -> None:
        """Raise ClientGone if the connection is known to be closed (see `connected`)."""
        if not self.connected():
            self.done = True
            self._handler.close_connection = True
            raise ClientGone("the connection was closed before the response")

    def finish(self) -> None:
        """The terminating chunk: the client knows the body is complete."""
        if self.started and not self.done:
            self.done = True
            self._send(b"0\r\n\r\n")

    def fail(self, error: ApiError) -> None:
        """End the response for an error: the envelope if nothing was sent yet; else the
        stream's last word, or a cut (no terminating chunk) when it has none."""
        if self.done:
            return
        if not self.started:
            self.send(error_response(error))
            return
        last_word, self._last_word = self._last_word, None
        if last_word is not None:
            with contextlib.suppress(ClientGone):
                self.write(last_word(error))
                self.finish()
                return
        self.done = True
        self._handler.close_connection = True       # closed without the last chunk: a truncated body

    def _head(self, status: int, headers: Mapping[str, str]) -> None:
        h = self._handler
        h.send_response_only(status)   # no Server or Date: the gateway in front sets its own
        for name, value in {**headers, "X-Request-Id": self.request_id}.items():
            h.send_header(name, value)
        self.started = True
        try:
            h.end_headers()            # writes the buffered status line and headers
        except OSError as exc:         # the adapter closed the connection: as for any other write
            self._gone(exc)

    def _send(self, data: bytes) -> None:
        try:
            self._handler.wfile.write(data)
            self._handler.wfile.flush()
        except OSError as exc:         # broken pipe, reset: the adapter closed the connection
            self._gone(exc)

    def _gone(self, exc: OSError) -> NoReturn:
        self.done = True
        self._handler.close_connection = True
        raise ClientGone(str(exc)) from exc


Route = Callable[[Request, Output], Response | None]


class WebApp:
    """Routes by (method, resource) to functions that answer with a `Response` or write to
    the `Output` themselves (and return None)."""

    def __init__(self, routes: Mapping[tuple[str, str], Route], *, api_timeout: float) -> None:
        self.routes = dict(routes)     # (method, resource) → route, for the contract test
        self.api_timeout = api_timeout
        self._cold = True

    def make_server(self, host: str, port: int) -> ThreadingHTTPServer:
        """The server the adapter talks to (the local stack calls this too)."""
        handler: Any = type("Handler", (_Handler,), {"app": self})
        return _Server((host, port), handler)

    def serve_forever(self) -> None:
        """run.sh: serve on AWS_LWA_PORT until the environment is shut down."""
        port = int(os.environ.get("AWS_LWA_PORT") or os.environ.get("PORT") or DEFAULT_PORT)
        self.make_server("127.0.0.1", port).serve_forever()

    def handle(self, h: _Handler) -> None:
        method, path = h.command, urlsplit(h.path).path
        if method == "GET" and path == READINESS_PATH:
            Output(h, "").send(json_response(200, {"status": "ready"}))
            return
        request_context = _json_header(h, "x-amzn-request-context")
        lambda_context = _context(_json_header(h, "x-amzn-lambda-context"))
        request_id = str(request_context.get("requestId") or getattr(lambda_context, "aws_request_id", "") or "")
        out = Output(h, request_id)
        self._log_context(request_id, lambda_context)
        try:
            request = self._request(h, method, path, request_context, lambda_context, request_id)
            route = self.routes.get((request.method, request.resource))
            if route is None:          # API Gateway routed it here, so the template and routes disagree
                raise InternalError(f"No route for {request.method} {request.resource}.")
            scopes.require(request.method, request.resource, request.authorizer)
            response = route(request, out)
            if response is not None:
                out.send(response)
            elif not out.started:
                raise InternalError("The route answered nothing.")
            out.finish()
        except ClientGone:
            logger.info("the client went away mid-response")
        except ApiError as error:
            (logger.warning if error.status < 500 else logger.error)(
                "request failed", extra={"status": error.status, "error_code": error.code, "streamed": out.started})
            self._fail(out, error)
        except Exception:              # the last line of defence: never a stack trace to the client
            logger.exception("unhandled error", extra={"streamed": out.started})
            self._fail(out, InternalError("Internal error. Quote the X-Request-Id header to support."))
        finally:
            metrics.flush_metrics()

    def _request(self, h: _Handler, method: str, path: str, request_context: dict, lambda_context: Any,
                 request_id: str) -> Request:
        length = h.headers.get("Content-Length") or "0"
        if not (length.isascii() and length.isdigit()) or int(length) > MAX_BODY_BYTES:
            raise InvalidRequest("The request body has no valid Content-Length.")
        body = h.rfile.read(int(length)) if int(length) else b""
        authorizer = request_context.get("authorizer")
        authorizer = authorizer if isinstance(authorizer, dict) else {}
        return Request(
            method=method, resource=str(request_context.get("resourcePath") or path), path=path,
            headers=Headers(dict(h.headers.items())), query=dict(parse_qsl(urlsplit(h.path).query)),
            path_params={}, body=body, request_id=request_id,
            account_id=str(authorizer.get("account_id") or ""), authorizer=dict(authorizer),
            deadline=request_deadline(request_context, lambda_context, self.api_timeout),
            lambda_context=lambda_context)

    def _log_context(self, request_id: str, context: AdapterContext | None) -> None:
        logger.clear_state()
        logger.set_correlation_id(request_id)
        if context is not None:
            logger.append_keys(cold_start=self._cold, function_name=context.function_name,
                               function_memory_size=context.memory_limit_in_mb,
                               function_arn=context.invoked_function_arn,
                               function_request_id=context.aws_request_id)
        self._cold = False

    @staticmethod
    def _fail(out: Output, error: ApiError) -> None:
        try:
            out.fail(error)
        except ClientGone:
            logger.info("the client went away before the error could be sent")


def _json_header(h: BaseHTTPRequestHandler, name: str) -> dict:
    try:
        value = json.loads(h.headers.get(name) or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _context(raw: dict) -> AdapterContext | None:
    deadline = raw.get("deadline")
    if not isinstance(deadline, int) or isinstance(deadline, bool) or deadline <= 0:
        return None
    env = raw.get("env_config")
    if not isinstance(env, dict):
        env = {}
    return AdapterContext(aws_request_id=str(raw.get("request_id") or ""), deadline_ms=deadline,
                          function_name=str(env.get("function_name") or ""),
                          memory_limit_in_mb=int(env.get("memory") or 0),
                          invoked_function_arn=str(raw.get("invoked_function_arn") or ""))


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"      # keep-alive and chunked responses
    server_version, sys_version = "kyma", ""      # no Python version in a Server header
    app: WebApp

    def _serve(self) -> None:
        self.app.handle(self)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _serve

    def log_message(self, format: str, *args: Any) -> None:
        pass            # no access log: the function logs each request itself (structured)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError):
            return          # the adapter closed an idle keep-alive connection: nothing to report
        logger.exception("error outside a request")
