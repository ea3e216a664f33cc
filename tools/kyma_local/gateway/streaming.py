"""The response-streaming integration (ResponseTransferMode: RESPONSE_STREAM): the app's
status and headers, then its body chunk by chunk as it comes, paced and cut like API Gateway.

Platform facts (shared/reference/speech-streaming.md): no base64 and no binary media types
for a streamed body; the integration timeout is TimeoutInMillis (up to 15 minutes); the
idle timeout is 5 minutes; the first 10 MB go unthrottled, then 2 MB/s.
"""

from __future__ import annotations

import contextlib
import http.client
import select
import socket
import threading
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any

from kyma_local.gateway.responses import GatewayResponses, HttpResponse
from kyma_local.web_adapter import AppResponse, InvocationFailed, InvocationTimedOut

UNTHROTTLED_BYTES = 10 * 1024 * 1024
THROTTLED_BYTES_PER_S = 2 * 1024 * 1024
IDLE_TIMEOUT_S = 300.0
_RESPONSE_HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-connection", "te", "trailer", "upgrade",
                                  "transfer-encoding", "content-length"})


class ClientWatch:
    """Watches the client's connection while its request runs, and runs the registered actions
    once the client is seen gone (its end of the connection closed).  The request was read whole,
    so a readable socket with nothing to read is the client's close.  Locally this closes the
    connection to the app (`invoke_stream`), so a whole file still being made learns of it; in
    AWS, Lambda's response stream gives the function no such signal (README, Billing)."""

    POLL_S = 0.05

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._actions: list[Callable[[], None]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.gone = False

    def start(self) -> ClientWatch:
        threading.Thread(target=self._watch, daemon=True, name="gateway-client-watch").start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def on_gone(self, action: Callable[[], None]) -> None:
        with self._lock:
            if not self.gone:
                self._actions.append(action)
                return
        action()

    def _watch(self) -> None:
        while not self._stop.is_set():
            try:
                readable, _, _ = select.select([self._sock], [], [], self.POLL_S)
                if not readable:
                    continue
                if self._sock.recv(1, socket.MSG_PEEK):
                    return          # the client sent more (a pipelined request): it is there
            except (OSError, ValueError):
                pass                # reset or closed: gone too
            with self._lock:
                self.gone = True
                actions, self._actions = self._actions, []
            for action in actions:
                with contextlib.suppress(Exception):
                    action()
            return


class StreamCut(Exception):
    """A timeout passed mid-stream: the client's chunked body must end without its last chunk."""


@dataclass
class Pacer:
    """API Gateway's streaming bandwidth: `free` bytes at once, then `rate` bytes per second."""

    free: int = UNTHROTTLED_BYTES
    rate: float = THROTTLED_BYTES_PER_S
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    sent: int = 0
    _throttled_since: float | None = field(default=None, repr=False)

    def pace(self, size: int) -> None:
        """Wait until `size` more bytes may go out."""
        self.sent += size
        over = self.sent - self.free
        if over <= 0:
            return
        if self._throttled_since is None:
            self._throttled_since = self.clock()
        delay = self._throttled_since + over / self.rate - self.clock()
        if delay > 0:
            self.sleep(delay)


@dataclass
class StreamingResponse:
    status: int
    headers: list[tuple[str, str]]
    app: AppResponse
    cut_at: float                      # monotonic: the integration or the function timeout
    pacer: Pacer = field(default_factory=Pacer)

    def chunks(self) -> Generator[bytes, None, None]:
        """The body as the app writes it.  Raises StreamCut when a timeout passes first.
        Closing the iterator early (the client went away) closes the connection to the app."""
        try:
            while True:
                wait = min(self.cut_at - time.monotonic(), IDLE_TIMEOUT_S)
                if wait <= 0:
                    raise StreamCut("integration or function timeout")
                try:
                    data = self.app.read(wait)
                except (OSError, http.client.HTTPException) as exc:  # timed out, or the app broke off
                    raise StreamCut(f"{type(exc).__name__}: {exc}") from exc
                if not data:
                    self.app.close(reusable=True)
                    return
                self.pacer.pace(len(data))
                yield data
        finally:
            self.app.close(reusable=False)     # no-op after a clean end

    def abort(self) -> None:
        self.app.close(reusable=False)


def open_stream(pool: Any, event: dict, *, timeout_ms: int, responses: GatewayResponses,
                request_id: str, watch: ClientWatch | None = None) -> HttpResponse | StreamingResponse:
    """Invoke with response streaming; a gateway response if nothing came back in time.
    `watch`: the client's connection; if the client goes, the connection to the app is closed."""
    integration_deadline = time.monotonic() + timeout_ms / 1000
    try:
        app = pool.invoke_stream(event, wait=integration_deadline - time.monotonic(),
                                 on_connect=watch.on_gone if watch is not None else None)
    except InvocationTimedOut:
        return responses.render("INTEGRATION_TIMEOUT", request_id)
    except InvocationFailed:
        return responses.render("INTEGRATION_FAILURE", request_id, status=502)
    headers = [(n, v) for n, v in app.headers if n.lower() not in _RESPONSE_HOP_BY_HOP]
    headers.append(("x-amzn-RequestId", request_id))
    return StreamingResponse(app.status, headers, app, min(integration_deadline, app.deadline))
