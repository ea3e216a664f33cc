"""The AWS Lambda Web Adapter stand-in: a function's web app in warm environments, each
invocation an HTTP request to it whose response is read as it streams.

Mirrored from awslabs/aws-lambda-web-adapter (commit 2194417, src/lib.rs and docs/guide):
- the function is a long-running HTTP app (run.sh behind AWS_LAMBDA_EXEC_WRAPPER=
  /opt/bootstrap, docs/guide getting-started/zip-packages.md) listening on AWS_LWA_PORT,
  default 8080 (lib.rs:382); locally app.py's make_server(host, port) on 127.0.0.1 port 0,
  so that environments can coexist;
- readiness: GET / (lib.rs:404) every 10 ms (lib.rs:743) until the status is healthy,
  100-499 by default (lib.rs:389, 769; configuration/readiness-check.md);
- the request (Adapter::fetch_response): the event's method and `path` (raw_http_path,
  lib.rs:898, 944), the query string of its query parameters (lib.rs:945), its headers,
  the body base64-decoded when isBase64Encoded (lambda_http; lib.rs:958), plus
  x-amzn-request-context = JSON of the event's requestContext, authorizer included, and
  x-amzn-lambda-context = JSON of lambda_runtime's Context (request_id, deadline in epoch
  ms, invoked_function_arn, env_config...), inserted over any a client sent (lib.rs:913-923;
  features/request-context.md);
- the response: transfer-encoding removed (lib.rs:986), then status, headers and body
  streamed as the app writes them (AWS_LWA_INVOKE_MODE=response_stream, lib.rs:211, 830).
Not mirrored: async init, REMOVE_BASE_PATH, pass-through (non-HTTP) events, the
authorization-source header, error status codes, compression, buffered invoke mode.
"""

from __future__ import annotations

import base64
import http.client
import importlib.util
import itertools
import json
import queue
import socket
import threading
import time
from collections.abc import Callable
from http.server import HTTPServer
from typing import Any
from urllib.parse import quote, urlencode

from kyma_local.aws_calls import invoking
from kyma_local.runtime import EnvironmentPool, InvokeResult, LambdaContext
from kyma_local.template import Function

INIT_TIMEOUT_S = 10.0          # Lambda's INIT phase limit
READINESS_INTERVAL_S = 0.01
_REQUEST_HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-connection", "te", "upgrade", "trailer",
                                 "transfer-encoding", "content-length",
                                 "x-amzn-request-context", "x-amzn-lambda-context"})
_app_counter = itertools.count()


class InvocationFailed(Exception):
    """The environment could not start, or the app broke the connection before answering."""


class InvocationTimedOut(Exception):
    """No response status from the app before the caller's wait or the function timeout."""


class AppEnvironment:
    """One execution environment: app.py imported anew (its own module state), its server
    serving on a daemon thread, ready when GET / answers below 500."""

    def __init__(self, function: Function, *, init_timeout: float = INIT_TIMEOUT_S) -> None:
        name = f"kyma_app_{function.logical_id}_{next(_app_counter)}"
        spec = importlib.util.spec_from_file_location(name, function.app_path)
        if spec is None or spec.loader is None:
            raise InvocationFailed(f"cannot load {function.app_path}")
        module = importlib.util.module_from_spec(spec)
        with invoking(function.logical_id):   # its AWS calls are this function's (aws_calls)
            spec.loader.exec_module(module)
            self.server: HTTPServer = module.make_server("127.0.0.1", 0)
        handle = self.server.finish_request    # each request, in the thread serving it

        def finish_request(request: Any, client_address: Any) -> None:
            with invoking(function.logical_id):
                handle(request, client_address)

        self.server.finish_request = finish_request
        self.port: int = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True,
                         name=f"lwa-app-{function.logical_id}").start()
        self._wait_ready(init_timeout)

    def _wait_ready(self, limit: float) -> None:
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=1)
            try:
                conn.request("GET", "/")
                if conn.getresponse().status < 500:
                    return
            except (OSError, http.client.HTTPException):
                pass
            finally:
                conn.close()
            time.sleep(READINESS_INTERVAL_S)
        self.close()
        raise InvocationFailed(f"app not ready after {limit:.1f} s")

    def close(self) -> None:
        """Stop serving once any request in progress ends (in the background: it may be long)."""
        def stop() -> None:
            self.server.shutdown()
            self.server.server_close()
        threading.Thread(target=stop, daemon=True).start()


def lambda_context_json(context: LambdaContext, deadline_ms: int) -> str:
    """The Lambda context as the adapter serialises it (lambda_runtime::Context)."""
    return json.dumps({
        "request_id": context.aws_request_id, "deadline": deadline_ms,
        "invoked_function_arn": context.invoked_function_arn, "xray_trace_id": None,
        "client_context": None, "identity": None,
        "env_config": {"function_name": context.function_name, "memory": context.memory_limit_in_mb,
                       "version": context.function_version, "log_stream": context.log_stream_name,
                       "log_group": context.log_group_name},
    })


def adapter_request(event: dict, context: LambdaContext,
                    deadline_ms: int) -> tuple[str, str, list[tuple[str, str]], bytes]:
    """(method, target, headers, body) of the HTTP request the adapter makes for a REST event."""
    method = event.get("httpMethod") or "GET"
    target = quote(event.get("path") or "/", safe="/!$%&'()*+,;=:@[]^|~")
    pairs = [(k, v) for k, values in (event.get("multiValueQueryStringParameters") or {}).items() for v in values]
    if pairs:
        target += "?" + urlencode(pairs)
    multi = event.get("multiValueHeaders") or {k: [v] for k, v in (event.get("headers") or {}).items()}
    headers = [(k, v) for k, values in multi.items() for v in values if k.lower() not in _REQUEST_HOP_BY_HOP]
    raw = event.get("body") or ""
    body = base64.b64decode(raw) if event.get("isBase64Encoded") else raw.encode("utf-8")
    if body or method in ("POST", "PUT", "PATCH"):
        headers.append(("Content-Length", str(len(body))))
    headers.append(("x-amzn-request-context", json.dumps(event.get("requestContext") or {})))
    headers.append(("x-amzn-lambda-context", lambda_context_json(context, deadline_ms)))
    return method, target, headers, body


class AppResponse:
    """The app's answer to one invocation: status and headers, then the body as it comes."""

    def __init__(self, pool: WebAdapterPool, env: AppEnvironment, conn: http.client.HTTPConnection,
                 response: http.client.HTTPResponse, deadline: float) -> None:
        self.status = response.status
        self.headers = [(n, v) for n, v in response.getheaders() if n.lower() != "transfer-encoding"]
        self.deadline = deadline            # monotonic: the function's timeout
        self._pool, self._env, self._conn, self._response = pool, env, conn, response
        self._closed = False

    def read(self, timeout: float) -> bytes:
        """The next bytes the app wrote (b"" at the end); TimeoutError after `timeout` seconds."""
        if self._conn.sock is not None:
            self._conn.sock.settimeout(timeout)
        return self._response.read1(65536)

    def close(self, *, reusable: bool) -> None:
        """End the invocation.  Unless it ran to its end, the connection to the app is closed
        under it (its next write fails) and the environment is not reused."""
        if self._closed:
            return
        self._closed = True
        self._conn.close()
        self._pool.release(self._env, reusable=reusable)


class WebAdapterPool(EnvironmentPool[AppEnvironment]):
    """Warm environments of one Lambda Web Adapter function, each running its web app."""

    def environment(self) -> AppEnvironment:
        """A freshly initialised, ready execution environment (not part of the pool)."""
        return AppEnvironment(self.function)

    def invoke(self, event: Any) -> InvokeResult:
        return InvokeResult(None, "Unhandled", "buffered invocation of a Lambda Web Adapter function "
                                               "is not supported locally (use ResponseTransferMode: RESPONSE_STREAM)")

    def invoke_stream(self, event: dict, *, wait: float,
                      on_connect: Callable[[Callable[[], None]], None] | None = None) -> AppResponse:
        """Send the event to a warm (or new) environment's app; return once its status and
        headers arrive.  InvocationTimedOut if they take longer than `wait` seconds or the
        function's timeout; InvocationFailed if the environment or the app fails first.
        `on_connect(abort)`: given, once the connection to the app is open, the action that
        closes it under the app (the gateway calls it when its client goes away)."""
        self._slots.acquire()
        try:
            env, _ = self._warm_or_new()
        except Exception as exc:
            self._slots.release()
            raise InvocationFailed(f"{type(exc).__name__}: {exc}") from exc
        started = time.monotonic()
        deadline = started + self.timeout
        context = LambdaContext(self.function.logical_id, self.function.memory_mb, int(self.timeout))
        method, target, headers, body = adapter_request(event, context, int((time.time() + self.timeout) * 1000))
        conn = http.client.HTTPConnection("127.0.0.1", env.port, timeout=max(0.001, min(wait, self.timeout)))
        try:
            conn.connect()
            if on_connect is not None:
                sock = conn.sock
                on_connect(lambda: sock.shutdown(socket.SHUT_RDWR))
            conn.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
            for name, value in headers:
                conn.putheader(name, value)
            conn.endheaders(body)
            response = conn.getresponse()
        except TimeoutError as exc:
            conn.close()
            self.release(env, reusable=False)
            raise InvocationTimedOut(str(exc)) from exc
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            self.release(env, reusable=False)
            raise InvocationFailed(f"{type(exc).__name__}: {exc}") from exc
        return AppResponse(self, env, conn, response, deadline)

    def release(self, env: AppEnvironment, *, reusable: bool) -> None:
        if reusable:
            self._idle.put(env)
        else:
            env.close()
        self._slots.release()

    def close(self) -> None:
        """Stop every idle environment's app."""
        while True:
            try:
                self._idle.get_nowait().close()
            except queue.Empty:
                return
