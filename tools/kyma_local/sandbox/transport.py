"""The sandbox's HTTP plumbing: the threaded server, reading (and recording) requests, writing answers.

`Server` hands every request to its sandbox's ``handle(handler)`` and keeps the
open connections (so that `MiniMaxSandbox.stop` can end idle keep-alive ones).
Answers are written with `send_json` / `send_raw` (or Server-Sent Events with
`write_event`, chunked); `drop` closes the socket without answering, and so does
every send on a handler whose answer is to be lost (``lose_answer``).
"""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import ipaddress
import json
import re
import socket
import sys
import threading
import time
from typing import Any, Protocol

from requests.structures import CaseInsensitiveDict
from requests_toolbelt.multipart.decoder import MultipartDecoder

from kyma_local.sandbox.wire import PATH_T2A, PATH_UPLOAD, PATHS, RecordedCall


class Routes(Protocol):
    """What the server hands each request to (`MiniMaxSandbox`, which imports this module)."""

    def handle(self, h: Handler) -> None: ...

MAX_BODY = 64 * 1024 * 1024     # what the sandbox reads at all


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    sandbox: Routes

    def __init__(self, address: tuple[str, int], sandbox: Routes) -> None:
        super().__init__(address, Handler)
        self.sandbox = sandbox
        self._lock = threading.Lock()
        self._connections: set[socket.socket] = set()

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, OSError):    # resets and broken pipes are expected here
            return
        super().handle_error(request, client_address)

    def opened(self, conn: socket.socket) -> None:
        with self._lock:
            self._connections.add(conn)

    def closed(self, conn: socket.socket) -> None:
        with self._lock:
            self._connections.discard(conn)

    def shut_connections(self) -> None:
        """End every connection still open (idle keep-alive ones included)."""
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "MiniMaxSandbox/2.0"
    timeout = 30
    server: Server
    lose_answer = False

    def handle_one_request(self) -> None:
        self.lose_answer = False
        super().handle_one_request()

    def setup(self) -> None:
        super().setup()
        self.server.opened(self.connection)

    def finish(self) -> None:
        self.server.closed(self.connection)
        with contextlib.suppress(OSError):
            super().finish()

    def do_POST(self) -> None:
        self.server.sandbox.handle(self)

    do_GET = do_PUT = do_DELETE = do_POST  # answered 404 by handle (or the control endpoint)

    def log_message(self, format: str, *args: Any) -> None:
        pass


# --- answers -----------------------------------------------------------

def send_json(h: Handler, call: RecordedCall, body: dict) -> None:
    data = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
    base = body.get("base_resp")
    if isinstance(base, dict):
        call.status_code = base.get("status_code")
    send_raw(h, call, 200, data, "application/json; charset=utf-8", call.trace_id)


def send_raw(h: Handler, call: RecordedCall | None, status: int, data: bytes,
             content_type: str, trace_id: str) -> None:
    if h.lose_answer:
        drop(h)
        return
    if call is not None:
        call.http_status = status
    try:
        h.send_response(status)
        h.send_header("Content-Type", content_type)
        h.send_header("Content-Length", str(len(data)))
        if trace_id:
            h.send_header("Trace-Id", trace_id)
            h.send_header("Alb_receive_time", f"{time.time():.3f}")
        h.end_headers()
        h.wfile.write(data)
        h.wfile.flush()
    except OSError:         # the client gave up (timeout): nothing to do
        if call is not None:
            call.client_closed = True
        h.close_connection = True


def drop(h: Handler) -> None:
    h.close_connection = True
    with contextlib.suppress(OSError):
        h.connection.shutdown(socket.SHUT_RDWR)


def write_event(h: Handler, event: dict) -> None:
    """One Server-Sent Event, sent as one HTTP chunk."""
    data = b"data: " + json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode() + b"\n\n"
    h.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
    h.wfile.flush()


def end_chunked(h: Handler) -> None:
    h.wfile.write(b"0\r\n\r\n")
    h.wfile.flush()


# --- requests ----------------------------------------------------------

def read_body(h: Handler) -> bytes:
    if "chunked" in h.headers.get("Transfer-Encoding", "").lower():
        out = bytearray()
        while True:
            size = int(h.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                while h.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass
                return bytes(out)
            out += h.rfile.read(size)
            h.rfile.readline()
            if len(out) > MAX_BODY:
                raise ValueError("body too large")
    length = int(h.headers.get("Content-Length") or 0)
    if length > MAX_BODY:
        raise ValueError("body too large")
    return h.rfile.read(length) if length else b""


def record(h: Handler, path: str, body: bytes, trace_id: str) -> tuple[RecordedCall, Any, dict | None]:
    """The call as recorded before it is answered, its parsed JSON body and its multipart parts."""
    call = RecordedCall(
        method=h.command, path=path, headers=CaseInsensitiveDict(h.headers.items()),
        body_size=len(body), timestamp=time.time(), monotonic=time.monotonic(),
        client_port=h.client_address[1], trace_id=trace_id,
    )
    parsed_json: Any = None
    parts: dict | None = None
    if path == PATH_UPLOAD:
        parts = parse_multipart(body, h.headers.get("Content-Type", ""))
        if parts is not None:
            call.multipart = multipart_summary(parts)
            call.body_text = json.dumps({**parts["fields"], "filename": call.multipart["filename"]})
    elif path in PATHS:
        call.body_text = body.decode("utf-8", "replace")
        try:
            parsed_json = json.loads(body)
        except ValueError:
            parsed_json = None
        call.json = parsed_json
        call.stream = path == PATH_T2A and isinstance(parsed_json, dict) and parsed_json.get("stream") is True
    return call, parsed_json, parts


def parse_multipart(body: bytes, content_type: str) -> dict | None:
    if not content_type.lower().startswith("multipart/form-data"):
        return None
    try:
        decoder = MultipartDecoder(body, content_type)
    except Exception:
        return None
    fields: dict[str, str] = {}
    upload = None
    for part in decoder.parts:
        disposition = part.headers.get(b"Content-Disposition", b"").decode("utf-8", "replace")
        name = _disposition_param(disposition, "name")
        filename = _disposition_param(disposition, "filename")
        if name == "file":
            upload = {
                "filename": filename or "",
                "content_type": part.headers.get(b"Content-Type", b"").decode("latin-1"),
                "content": part.content,
            }
        elif name:
            fields[name] = part.content.decode("utf-8", "replace")
    return {"fields": fields, "file": upload}


def _disposition_param(disposition: str, param: str) -> str | None:
    match = re.search(rf'(?:^|;)\s*{param}="((?:[^"\\]|\\.)*)"', disposition)
    if match:
        return match.group(1)
    match = re.search(rf"(?:^|;)\s*{param}=([^;\s]+)", disposition)
    return match.group(1) if match else None


def multipart_summary(parts: dict) -> dict:
    upload = parts["file"] or {}
    content = upload.get("content", b"")
    return {
        "purpose": parts["fields"].get("purpose"),
        "fields": dict(parts["fields"]),
        "filename": upload.get("filename"),
        "content_type": upload.get("content_type"),
        "size": len(content),
        "sha256": hashlib.sha256(content).hexdigest(),
        "file": content,
    }


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"
