"""HTTP framing on loopback: reading requests, writing responses, the local control plane."""

from __future__ import annotations

import contextlib
import json
import string
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from kyma_local.gateway.api import LocalApiGateway
from kyma_local.gateway.limits import CONTROL_PREFIX, MAX_HEADER_BYTES, MAX_REQUEST_BYTES
from kyma_local.gateway.responses import HttpResponse
from kyma_local.gateway.streaming import ClientWatch, StreamCut, StreamingResponse

_HEX = frozenset(string.hexdigits.encode())
_MAX_LINE = 65536


class _TooLarge(Exception):
    """A body far beyond the payload limit: answered 413 without buffering it."""


class _BadFraming(Exception):
    """The body's length cannot be determined: answered 400, then the connection is closed."""


class _Incomplete(Exception):
    """The body ended before its framing said (client gone): never handed to a function."""


class _Stalled(Exception):
    """The client stopped sending its request part-way for REQUEST_IDLE_TIMEOUT_S."""


# A request (line, headers or body) that sends nothing for this long is dropped, never forwarded:
# API Gateway's front end closes stalled client connections rather than wait for them (it
# documents no figure; 30 s here, like CloudFront's default idle timeout).  The response phase
# has no such limit here (the integration's own timeouts apply).
REQUEST_IDLE_TIMEOUT_S = 30.0


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version, sys_version = "kyma-local", ""
    gateway: LocalApiGateway
    timeout = REQUEST_IDLE_TIMEOUT_S     # StreamRequestHandler sets it on the connection

    def handle_one_request(self) -> None:
        # Every request on a kept-alive connection gets the idle limit again while it is read.
        self.connection.settimeout(self.timeout)
        super().handle_one_request()

    def _serve(self) -> None:
        path, _, query = self.path.partition("?")
        try:
            try:
                body = self._read_body()
            except TimeoutError:
                raise _Stalled from None
            self.connection.settimeout(None)      # the request is in: the response has its own clocks
        except _Stalled:
            self.log_message('"%s" body stalled for %.0f s; dropped, not forwarded', self.requestline, self.timeout)
            with contextlib.suppress(OSError):
                self._send(self.gateway.responses.render("DEFAULT_4XX", str(uuid.uuid4()), status=408), close=True)
            self.close_connection = True
            return
        except _TooLarge:
            self._send(self.gateway.gateway_response("REQUEST_TOO_LARGE", str(uuid.uuid4())), close=True)
            return
        except _BadFraming as exc:
            self.send_error(400, f"malformed request framing: {exc}")
            return
        except _Incomplete:
            # API Gateway invokes nothing for a request it never received whole.
            self.log_message('"%s" body incomplete (client gone); not forwarded', self.requestline)
            self.close_connection = True
            return
        if path.startswith(CONTROL_PREFIX):
            self._control(path[len(CONTROL_PREFIX):])
            return
        watch = ClientWatch(self.connection).start()      # a client that leaves: the app is told
        try:
            response = self.gateway.handle(self.command, path, query, list(self.headers.items()), body,
                                           self.client_address[0], watch=watch)
            if isinstance(response, StreamingResponse):
                self._stream(response)
            else:
                self._send(response)
        except OSError:
            if not watch.gone:
                raise
            self.close_connection = True                 # nobody is left to answer
        finally:
            watch.stop()

    def parse_request(self) -> bool:
        words = str(self.raw_requestline, "iso-8859-1").split()
        if len(words) == 2:
            # HTTP/0.9 (no version): answered at once.  http.server would wait for headers such a
            # client never sends, then answer without a status line.
            self.command, self.path, self.requestline = words[0], words[1], " ".join(words)
            self.send_error(400, "HTTP/0.9 is not supported")
            return False
        if not super().parse_request():
            return False
        size = len(self.requestline) + sum(len(v) for v in self.headers.values())
        if size > MAX_HEADER_BYTES:
            # API Gateway documents the limit, not its answer: 431 (Request Header Fields Too
            # Large, RFC 6585) in DEFAULT_4XX's envelope is this stand-in's choice.
            self.send_error(431, "request line and headers over 10240 bytes")
            return False
        return True

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Every rejection of the request itself, http.server's own included (request line
        too long, header line too long, too many headers): the gateway's envelope, then close."""
        self.log_error("code %d, message %s", code, message)
        # A request line http.server could not read leaves the version at HTTP/0.9, which would send
        # the body without a status line or headers: answer in HTTP/1.1 whatever the client said.
        self.request_version = self.protocol_version
        # Each of these is the client's fault, 505 (an HTTP version over 1.x) included: a 400.
        status = code if code < 500 else 400
        self._send(self.gateway.responses.render("DEFAULT_4XX", str(uuid.uuid4()), status=status), close=True)

    def _read_body(self) -> bytes:
        codings = [c.strip().lower() for v in self.headers.get_all("Transfer-Encoding") or [] for c in v.split(",")]
        lengths = [v.strip() for h in self.headers.get_all("Content-Length") or [] for v in h.split(",")]
        if codings:
            if codings != ["chunked"] or lengths:
                raise _BadFraming("Transfer-Encoding other than chunked, or with Content-Length")
            return self._read_chunked()
        if not lengths:
            return b""
        if len(set(lengths)) != 1 or not lengths[0].isascii() or not lengths[0].isdigit():
            raise _BadFraming("Content-Length")
        length = int(lengths[0])
        if length > MAX_REQUEST_BYTES * 4:  # do not even buffer absurd bodies
            raise _TooLarge
        body = self.rfile.read(length) if length else b""
        if len(body) < length:
            raise _Incomplete
        return body

    def _read_chunked(self) -> bytes:
        chunks: list[bytes] = []
        total = 0
        while True:
            size_text = self._line().split(b";")[0].strip()
            if not size_text or not _HEX.issuperset(size_text):
                raise _BadFraming("chunk size")
            size = int(size_text, 16)
            if size == 0:
                while self._line().strip():  # trailer fields, up to the empty line
                    pass
                return b"".join(chunks)
            total += size
            if total > MAX_REQUEST_BYTES * 4:
                raise _TooLarge
            data = self.rfile.read(size)
            end = self.rfile.read(2)
            if len(data) < size or len(end) < 2:
                raise _Incomplete
            if end != b"\r\n":
                raise _BadFraming("chunk data not followed by CRLF")
            chunks.append(data)

    def _line(self) -> bytes:
        line = self.rfile.readline(_MAX_LINE + 1)
        if len(line) > _MAX_LINE:
            raise _BadFraming("line too long")
        if not line.endswith(b"\n"):
            raise _Incomplete
        return line

    def _control(self, action: str) -> None:
        name, _, argument = action.partition("/")
        if action == "authorizer-cache" and self.command == "DELETE":
            self.gateway.flush_authorizer_cache()
            self._send(HttpResponse(204, [], b""))
        elif name in self.gateway.controls and self.command == "POST":
            result = self.gateway.controls[name](argument)      # e.g. schedules/<FunctionId>: run it now
            self._send(HttpResponse(200, [("Content-Type", "application/json")],
                                    json.dumps(result, default=str).encode()))
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

    def _stream(self, response: StreamingResponse) -> None:
        """Status and headers at once, then each chunk as soon as it is read (chunked transfer
        coding).  A timeout mid-stream closes the connection without the last chunk; a client
        that goes away has the connection to the app closed too."""
        self.send_response(response.status)
        for name, value in response.headers:
            self.send_header(name, value)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        chunks = response.chunks()
        try:
            if self.command != "HEAD":
                for chunk in chunks:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            self.wfile.write(b"0\r\n\r\n")
        except StreamCut as cut:
            self.log_message('"%s" stream cut: %s', self.requestline, cut)
            self.close_connection = True
        except OSError:          # the client went away
            self.close_connection = True
        finally:
            chunks.close()
            response.abort()     # no-op after a complete stream

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_HEAD = _serve

    def __getattr__(self, name: str) -> Any:
        # Any other method token (TRACE, PROPFIND...) goes through the gateway too: it matches only
        # ANY routes, so a known resource answers 405 from the fallback, never http.server's 501.
        if name.startswith("do_"):
            return self._serve
        raise AttributeError(name)

    def log_message(self, fmt: str, *args: Any) -> None:  # one access-log line, never headers
        print(f"{self.address_string()} {fmt % args}", flush=True)


class _Server(ThreadingHTTPServer):
    # A burst of clients waits in the kernel's accept queue while the server accepts
    # (http.server's default backlog of 5 drops or resets the rest).
    request_queue_size = 1024
    daemon_threads = True


def make_server(gateway: LocalApiGateway, host: str = "127.0.0.1", port: int = 3000,
                quiet: bool = False) -> ThreadingHTTPServer:
    handler: Any = type("Handler", (_Handler,), {"gateway": gateway})
    if quiet:
        handler.log_message = lambda self, fmt, *args: None
    server = _Server((host, port), handler)
    gateway.host = f"{host}:{server.server_address[1]}"
    return server
