"""The local API Gateway's HTTP transport, driven over real sockets: connection bursts,
bodies that end early, malformed framing and oversized headers.

The functions behind it are recording stand-ins, so each test sees whether a
request reached a function (and would have been charged) and what the client got.
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time

import pytest
from helpers import Recorder, allow

from kyma_local.gateway import LocalApiGateway, make_server
from kyma_local.template import Template

AUTH = b"Authorization: Bearer k1\r\n"


class Served:
    """The local gateway on an ephemeral loopback port, started when the test says."""

    def __init__(self) -> None:
        template = Template()
        self.pools = {fid: Recorder({"statusCode": 200, "headers": {}, "body": "{}"}) for fid in template.functions}
        self.pools["AuthorizerFunction"] = allow()
        self.server = make_server(LocalApiGateway(template, self.pools), "127.0.0.1", 0, quiet=True)
        self.address = self.server.server_address[:2]
        self._thread: threading.Thread | None = None

    def start(self) -> Served:
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread:
            self.server.shutdown()
        self.server.server_close()

    def connect(self, timeout: float = 5.0) -> socket.socket:
        return socket.create_connection(self.address, timeout=timeout)

    def exchange(self, raw: bytes) -> http.client.HTTPResponse:
        """Send raw bytes on a fresh connection; the response, its body read."""
        sock = self.connect()
        sock.sendall(raw)
        return read_response(sock)


def read_response(sock: socket.socket) -> http.client.HTTPResponse:
    response = http.client.HTTPResponse(sock)
    response.begin()
    response.body = response.read()  # type: ignore[attr-defined]
    sock.close()
    return response


@pytest.fixture
def served():
    s = Served()
    yield s
    s.stop()


def speech_post(body: bytes, *headers: bytes) -> bytes:
    return (b"POST /v1/audio/speech HTTP/1.1\r\nHost: localhost\r\n" + AUTH + b"".join(headers)
            + b"\r\n" + body)


def envelope(response: http.client.HTTPResponse) -> dict:
    assert response.getheader("Content-Type") == "application/json"
    payload = json.loads(response.body)  # type: ignore[attr-defined]
    assert set(payload) == {"error"} and set(payload["error"]) == {"code", "message"}, payload
    return payload["error"]


def test_a_burst_of_40_connections_is_queued_and_every_one_answered(served):
    # The clients connect while the server is busy (not accepting yet), as under a
    # burst: the kernel must queue them all in the listen backlog.
    clients = [served.connect(timeout=0.5) for _ in range(40)]
    served.start()
    for sock in clients:
        sock.settimeout(10)
        sock.sendall(b"GET /v1/credits/balance HTTP/1.1\r\nHost: localhost\r\n" + AUTH
                     + b"Connection: close\r\n\r\n")
    statuses = [read_response(sock).status for sock in clients]
    assert statuses == [200] * 40
    assert len(served.pools["AccountFunction"].events) == 40


@pytest.mark.parametrize("framing", [
    b"Content-Length: 1000\r\n\r\n" + b"0123456789",                            # 10 of 1000 bytes
    b"Transfer-Encoding: chunked\r\n\r\n" + b"3e8\r\n" + b"0123456789",         # a 1000-byte chunk cut short
    b"Transfer-Encoding: chunked\r\n\r\n" + b"a\r\n0123456789\r\n",              # no last chunk
], ids=["content-length", "chunk-cut-short", "no-last-chunk"])
def test_a_request_whose_body_ends_early_never_reaches_the_function(served, framing):
    served.start()
    sock = served.connect()
    head, _, body = framing.partition(b"\r\n\r\n")
    sock.sendall(b"POST /v1/audio/speech HTTP/1.1\r\nHost: localhost\r\n" + AUTH + head + b"\r\n\r\n" + body)
    sock.shutdown(socket.SHUT_WR)                       # the client sends nothing more
    # The sentinel: the server closing this connection says it is done with the request (no
    # fixed wait).  Whatever it answered, it was not the function's 200.
    answer = b""
    while chunk := sock.recv(65536):
        answer += chunk
    sock.close()
    assert not answer.startswith(b"HTTP/1.1 200")
    complete = served.exchange(speech_post(b"{}", b"Content-Type: application/json\r\n", b"Content-Length: 2\r\n"))
    assert complete.status == 200                       # answered only after the function has run
    # Only the complete request was handed to the (paid) speech function.
    assert [e["body"] for e in served.pools["SpeechFunction"].events] == ["e30="]


@pytest.mark.parametrize("framing", [
    b"Content-Length: abc\r\n\r\n{}",
    b"Content-Length: -5\r\n\r\n{}",
    b"Content-Length: 2\r\nContent-Length: 3\r\n\r\n{}",
    b"Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n",
    b"Transfer-Encoding: chunked\r\n\r\n2\r\n{}XX0\r\n\r\n",                    # no CRLF after the data
    b"Transfer-Encoding: gzip\r\n\r\n{}",
], ids=["non-numeric-length", "negative-length", "conflicting-lengths", "bad-chunk-size",
        "bad-chunk-end", "unknown-coding"])
def test_malformed_framing_is_a_400_envelope_then_close(served, framing):
    served.start()
    response = served.exchange(speech_post(framing.partition(b"\r\n\r\n")[2],
                                           framing.partition(b"\r\n\r\n")[0] + b"\r\n"))
    assert response.status == 400
    assert envelope(response)["code"] == "invalid_request"
    assert response.getheader("X-Request-Id")
    assert response.getheader("Connection") == "close"
    assert served.pools["SpeechFunction"].events == []


@pytest.mark.parametrize("raw", [
    b"GET /v1/credits/balance\r\n",                                 # HTTP/0.9: a line, nothing after it
    b"GET /v1/credits/balance HTTP/9.9\r\nHost: x\r\n\r\n",           # a version http.server answers 505
    b"GET /v1/credits/balance HTTP/one\r\nHost: x\r\n\r\n",
    b"GET  HTTP/1.1 x\r\nHost: x\r\n\r\n",
], ids=["http-0.9", "http-9.9", "garbled-version", "garbled-line"])
def test_a_request_line_the_gateway_cannot_serve_is_a_400_envelope_with_a_status_line(served, raw):
    served.start()
    sock = served.connect(timeout=2.0)       # answered at once, not after a wait for headers
    sock.sendall(raw)
    response = read_response(sock)            # http.client reads the status line
    assert response.status == 400 and response.version == 11
    assert envelope(response)["code"] == "invalid_request"
    assert response.getheader("X-Request-Id")
    assert served.pools["AccountFunction"].events == []


@pytest.mark.parametrize("size", [12_000, 100_000])
def test_oversized_headers_are_431_in_the_envelope(served, size):
    served.start()
    response = served.exchange(b"GET /v1/credits/balance HTTP/1.1\r\nHost: localhost\r\n"
                               + b"Authorization: Bearer " + b"k" * size + b"\r\n\r\n")
    assert response.status == 431
    assert envelope(response)["code"] == "invalid_request"
    assert response.getheader("X-Request-Id")
    assert served.pools["AccountFunction"].events == []


def test_headers_just_under_the_limit_pass(served):
    served.start()
    response = served.exchange(b"GET /v1/credits/balance HTTP/1.1\r\nHost: localhost\r\n"
                               + b"Authorization: Bearer " + b"k" * 9_000 + b"\r\n\r\n")
    assert response.status == 200


def test_an_unusual_method_reaches_the_gateway_not_http_servers_501():
    # TRACE on a known resource matches only its ANY route (the fallback, which answers 405
    # in the envelope); http.server alone would answer 501 text/html.
    served = Served().start()
    try:
        response = served.exchange(b"TRACE /v1/credits/balance HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
    finally:
        served.stop()
    assert response.status == 200 and response.getheader("x-amzn-RequestId")   # the stand-in fallback answered
    assert served.pools["FallbackFunction"].events[-1]["httpMethod"] == "TRACE"


def test_a_stalled_request_body_is_timed_out_and_never_reaches_the_function(served, monkeypatch):
    """API Gateway does not wait forever for a body the client stopped sending: the stand-in drops
    a request that sends nothing for its idle limit (30 s; 0.5 s here) with a 408, and forwards nothing."""
    monkeypatch.setattr(served.server.RequestHandlerClass, "timeout", 0.5)
    served.start()
    sock = served.connect()
    sock.sendall(speech_post(b'{"inp', b"Content-Type: application/json\r\n", b"Content-Length: 100\r\n"))
    started = time.monotonic()
    response = read_response(sock)                      # no more bytes: the client stalls
    assert response.status == 408 and time.monotonic() - started < 5
    assert envelope(response)["code"] == "invalid_request"
    assert served.pools["SpeechFunction"].events == []
    # A request that keeps sending, however slowly, is not cut (each pause is under the limit).
    sock = served.connect()
    sock.sendall(speech_post(b"", b"Content-Type: application/json\r\n", b"Content-Length: 2\r\n"))
    time.sleep(0.3)
    sock.sendall(b"{")
    time.sleep(0.3)
    sock.sendall(b"}")
    assert read_response(sock).status == 200
    assert [e["body"] for e in served.pools["SpeechFunction"].events] == ["e30="]


def test_a_client_that_leaves_while_a_streamed_integration_runs_has_the_app_connection_closed():
    """The client closes before any byte of a response: the stand-in closes its connection to the
    app (the function's next check or write sees it), like a proxy whose client went away."""
    from kyma_local.gateway.streaming import ClientWatch

    client, gateway_side = socket.socketpair()
    app_side, app = socket.socketpair()
    watch = ClientWatch(gateway_side).start()
    watch.on_gone(lambda: app_side.shutdown(socket.SHUT_RDWR))
    time.sleep(0.2)
    app.setblocking(False)
    with pytest.raises(BlockingIOError):
        app.recv(1)                                     # the client is still there: nothing happened
    client.close()
    app.settimeout(2)
    assert app.recv(1) == b""                           # closed under the app
    assert watch.gone
    late = []
    watch.on_gone(lambda: late.append(True))            # registered after: runs at once
    assert late == [True]
    watch.stop()
