"""kyma.edge.web_app: the HTTP app behind the Lambda Web Adapter, driven over loopback as the adapter drives
it (x-amzn-request-context, x-amzn-lambda-context): the request it builds, whole and streamed responses,
the error envelope before a stream starts, a stream's last word or cut after, a client that leaves."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time

import pytest

from kyma.edge import errors
from kyma.edge.http import json_response
from kyma.edge.web_app import ClientGone, WebApp

seen: dict = {}


def inspect(request, out):
    seen.update(request=request)
    return json_response(200, {"account_id": request.account_id, "body": request.body.decode()})


def chunks(request, out):
    out.start(200, {"Content-Type": "audio/mpeg"})
    for i in range(int(request.query.get("n", "3"))):
        out.write(f"chunk-{i};".encode())
        time.sleep(float(request.query.get("gap", "0.2")))


def fails_mid_stream(request, out):
    last_word = (lambda e: b"data: " + json.dumps(e.envelope()).encode() + b"\n\n") if request.query.get("sse") \
        else None
    out.start(200, {"Content-Type": "text/event-stream" if last_word else "audio/mpeg"}, last_word=last_word)
    out.write(b"first;")
    raise errors.ProviderError("MiniMax stopped.")


def refuses(request, out):
    raise errors.ProviderUnavailable("busy", headers={"Retry-After": "5"})


def crashes(request, out):
    raise RuntimeError("secret internals")


def forever(request, out):
    out.start(200, {"Content-Type": "audio/mpeg"})
    try:
        while True:
            out.write(b"x" * 1024)
            time.sleep(0.02)
    except ClientGone:
        seen["gone"] = True
        raise


def watches(request, out):
    """A whole response made slowly (a whole file): checks the connection while it works."""
    seen["checks"] = []
    try:
        for _ in range(200):
            seen["checks"].append(out.connected())
            out.ensure_connected()
            time.sleep(0.02)
    except ClientGone:
        seen["gone"] = True
        raise
    return json_response(200, {"done": True})


ROUTES = {("POST", "/watches"): watches,
          ("POST", "/inspect"): inspect, ("GET", "/chunks"): chunks, ("GET", "/fails"): fails_mid_stream,
          ("POST", "/refuses"): refuses, ("GET", "/crashes"): crashes, ("GET", "/forever"): forever}


@pytest.fixture
def app():
    server = WebApp(ROUTES, api_timeout=900).make_server("127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    seen.clear()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def adapter_headers(resource: str, *, deadline_in: float = 60, started_ago: float = 0, account="acct_1") -> dict:
    return {
        "x-amzn-request-context": json.dumps({
            "requestId": "req-1", "resourcePath": resource, "requestTimeEpoch": int((time.time() - started_ago) * 1000),
            "authorizer": {"account_id": account, "principalId": account}}),
        "x-amzn-lambda-context": json.dumps({
            "request_id": "lambda-1", "deadline": int((time.time() + deadline_in) * 1000),
            "invoked_function_arn": "arn:aws:lambda:us-east-1:1:function:SpeechFunction",
            "env_config": {"function_name": "SpeechFunction", "memory": 1024}}),
    }


def call(port, method, path, body=b"", headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    resource = path.split("?")[0]
    conn.request(method, path, body=body, headers={**adapter_headers(resource), **(headers or {})})
    return conn, conn.getresponse()


def test_readiness(app):
    conn = http.client.HTTPConnection("127.0.0.1", app, timeout=5)
    conn.request("GET", "/")
    assert conn.getresponse().status == 200


def test_the_request_comes_from_the_adapters_request_and_contexts(app):
    _, response = call(app, "POST", "/inspect", b'{"input": "hi"}')
    assert response.status == 200 and response.getheader("X-Request-Id") == "req-1"
    assert response.getheader("Content-Length") and not response.getheader("Transfer-Encoding")
    assert json.loads(response.read()) == {"account_id": "acct_1", "body": '{"input": "hi"}'}
    request = seen["request"]
    assert (request.method, request.resource, request.request_id) == ("POST", "/inspect", "req-1")
    remaining = request.deadline - time.monotonic()
    assert 56 < remaining < 58.1                     # the Lambda deadline (60 s) less the 2 s margin
    assert 55_000 < request.lambda_context.get_remaining_time_in_millis() <= 60_000
    assert request.lambda_context.function_name == "SpeechFunction"


def test_the_deadline_is_the_integration_timeout_when_that_comes_first(app):
    conn = http.client.HTTPConnection("127.0.0.1", app, timeout=10)
    conn.request("POST", "/inspect", body=b"{}", headers=adapter_headers("/inspect", deadline_in=900,
                                                                          started_ago=890))
    assert conn.getresponse().status == 200
    assert 7 < seen["request"].deadline - time.monotonic() < 8.1      # 900 − 890 − 2 s


def test_an_error_before_anything_was_sent_is_the_envelope(app):
    _, response = call(app, "POST", "/refuses", b"{}")
    assert response.status == 503 and response.getheader("Retry-After") == "5"
    assert response.getheader("X-Request-Id") == "req-1"
    assert json.loads(response.read()) == {"error": {"code": "service_unavailable", "message": "busy"}}
    _, crashed = call(app, "GET", "/crashes")
    body = crashed.read().decode()
    assert crashed.status == 500 and json.loads(body)["error"]["code"] == "internal_error"
    assert "secret" not in body


def test_a_stream_arrives_chunk_by_chunk_and_ends_with_its_last_chunk(app):
    _, response = call(app, "GET", "/chunks?n=3&gap=0.3")
    assert response.status == 200 and response.getheader("Transfer-Encoding") == "chunked"
    assert response.getheader("X-Request-Id") == "req-1"
    arrivals = []
    while data := response.read1(65536):
        arrivals.append((time.monotonic(), data))
    assert [d for _, d in arrivals] == [b"chunk-0;", b"chunk-1;", b"chunk-2;"]
    assert arrivals[-1][0] - arrivals[0][0] > 0.5                   # as written, not at the end


def test_a_failure_mid_stream_cuts_the_body_without_its_last_chunk(app):
    _, response = call(app, "GET", "/fails")
    assert response.status == 200
    with pytest.raises(http.client.IncompleteRead) as cut:
        response.read()
    assert cut.value.partial == b"first;"


def test_a_stream_with_a_last_word_ends_with_it_cleanly(app):
    _, response = call(app, "GET", "/fails?sse=1")
    assert response.read() == (b'first;data: {"error": {"code": "provider_error", '
                               b'"message": "MiniMax stopped."}}\n\n')


def test_a_client_that_leaves_is_seen_by_the_route(app):
    conn, response = call(app, "GET", "/forever")
    assert response.read1(1024)
    conn.sock.shutdown(socket.SHUT_RDWR)
    conn.close()
    deadline = time.monotonic() + 5
    while "gone" not in seen and time.monotonic() < deadline:
        time.sleep(0.02)
    assert seen.get("gone")


def test_an_idle_keep_alive_connection_does_not_block_the_next_one(app):
    first, response = call(app, "POST", "/inspect", b"{}")
    response.read()                                               # first stays open (keep-alive)
    _, second = call(app, "POST", "/inspect", b"{}")
    assert second.status == 200
    first.close()


def test_a_route_the_app_does_not_have_is_an_internal_error(app):
    _, response = call(app, "GET", "/nowhere")
    assert response.status == 500 and json.loads(response.read())["error"]["code"] == "internal_error"



def test_a_whole_response_in_the_making_sees_a_connection_closed_before_its_first_byte(app):
    conn = socket.create_connection(("127.0.0.1", app), timeout=5)
    head = "".join(f"{k}: {v}\r\n" for k, v in adapter_headers("/watches").items())
    conn.sendall(f"POST /watches HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n{head}\r\n{{}}".encode())
    time.sleep(0.3)
    assert seen["checks"] and all(seen["checks"])       # open: the body was read whole, nothing more came
    conn.close()                                        # gone before any byte of the answer
    deadline = time.monotonic() + 5
    while "gone" not in seen and time.monotonic() < deadline:
        time.sleep(0.02)
    assert seen.get("gone") and seen["checks"][-1] is False


def test_a_client_that_stays_gets_the_whole_response_after_the_checks(app):
    _conn, response = call(app, "POST", "/watches", body=b"{}")
    assert response.status == 200 and json.loads(response.read()) == {"done": True}
    assert len(seen["checks"]) == 200 and all(seen["checks"]) and "gone" not in seen
