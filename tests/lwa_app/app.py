"""A tiny web app run the way the AWS Lambda Web Adapter runs one (test only).

make_server(host, port) builds its server; the runtime stand-in serves it and
checks GET / for readiness.  Routes (by the last path segment):
  /inspect   what reached the app: method, path, query, headers, body (base64),
             both x-amzn-* contexts, and how many requests this environment served
  /echo      the request body back, binary, with the status and headers the query asks for
  /chunks    ?n=&gap=&size= : n chunks written `gap` seconds apart
  /big       ?mb= : that many MiB, written 64 KiB at a time
  /forever   ?gap= : chunks until a write fails; then "<path>: <error>" is appended to
             the file named by LWA_TEST_EVENTS
  /late      ?delay= : sleeps before answering at all
"""

from __future__ import annotations

import base64
import json
import os
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from urllib.parse import parse_qs, urlsplit

served = 0          # module state: one count per execution environment


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def _query(self) -> dict:
        return {k: v[-1] for k, v in parse_qs(urlsplit(self.path).query).items()}

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _start_chunked(self, status: int = 200, content_type: str = "application/octet-stream") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def do_GET(self):
        global served
        route = urlsplit(self.path).path.rsplit("/", 1)[-1]
        if route == "":
            self._reply(200, b"ready")
            return
        served += 1
        query = self._query()
        body = self._body()
        if route == "inspect":
            self._reply(200, json.dumps({
                "method": self.command, "path": urlsplit(self.path).path, "query": urlsplit(self.path).query,
                "headers": [[k, v] for k, v in self.headers.items()], "body": base64.b64encode(body).decode(),
                "request_context": json.loads(self.headers["x-amzn-request-context"]),
                "lambda_context": json.loads(self.headers["x-amzn-lambda-context"]),
                "served": served}).encode(), "application/json")
        elif route == "echo":
            self.send_response(int(query.get("status", 200)))
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("X-App", "lwa-test")
            self.send_header("Set-Cookie", "a=1")
            self.send_header("Set-Cookie", "b=2")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        elif route == "chunks":
            self._start_chunked(content_type="text/plain")
            for i in range(int(query.get("n", 5))):
                if i:
                    time.sleep(float(query.get("gap", 0.3)))
                self._chunk(f"chunk-{i};".encode().ljust(int(query.get("size", 8)), b"."))
            self.wfile.write(b"0\r\n\r\n")
        elif route == "big":
            size = int(float(query.get("mb", 1)) * 1024 * 1024)
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(size))
            self.end_headers()
            block = bytes(range(256)) * 256
            for start in range(0, size, len(block)):
                self.wfile.write(block[:size - start])
        elif route == "forever":
            self._start_chunked()
            try:
                while True:
                    self._chunk(b"x" * 1024)
                    time.sleep(float(query.get("gap", 0.05)))
            except OSError as exc:
                if os.environ.get("LWA_TEST_EVENTS"):
                    with open(os.environ["LWA_TEST_EVENTS"], "a") as log:
                        log.write(f"{urlsplit(self.path).path}: {type(exc).__name__}\n")
                self.close_connection = True
        elif route == "late":
            time.sleep(float(query.get("delay", 3)))
            self._reply(200, b"too late")
        else:
            self._reply(404, b"no such route")

    do_POST = do_PUT = do_DELETE = do_GET

    def _reply(self, status: int, body: bytes, content_type: str = "text/plain") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def make_server(host: str, port: int) -> HTTPServer:
    return HTTPServer((host, port), Handler)
