"""HTTP framing on loopback: reading requests, writing responses, the local control plane."""

from __future__ import annotations

import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from kyma_local.gateway.api import LocalApiGateway
from kyma_local.gateway.limits import CONTROL_PREFIX, MAX_REQUEST_BYTES
from kyma_local.gateway.responses import HttpResponse


class _TooLarge(Exception):
    pass


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
            chunks: list[bytes] = []
            total = 0
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


def make_server(gateway: LocalApiGateway, host: str = "127.0.0.1", port: int = 3000,
                quiet: bool = False) -> ThreadingHTTPServer:
    handler: Any = type("Handler", (_Handler,), {"gateway": gateway})
    if quiet:
        handler.log_message = lambda self, fmt, *args: None
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    gateway.host = f"{host}:{server.server_address[1]}"
    return server
