"""Response streaming through the local API Gateway to a web app run like the AWS Lambda
Web Adapter runs one (tests/lwa_app), observed by a raw socket client: chunk by chunk,
byte-exact, with the request and Lambda contexts, cut by timeouts, and a client that
leaves is seen by the app."""

from __future__ import annotations

import base64
import itertools
import json
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import pytest
from helpers import allow

from kyma_local.gateway import LocalApiGateway, make_server
from kyma_local.gateway.streaming import Pacer
from kyma_local.template import Template
from kyma_local.web_adapter import WebAdapterPool

APP = Path(__file__).resolve().parents[1] / "lwa_app"
ENVELOPE_4XX = '{"error": {"code": "invalid_request", "message": "rejected"}}'
ENVELOPE_5XX = '{"error": {"code": "internal_error", "message": "failed"}}'

TEMPLATE = f"""
AWSTemplateFormatVersion: "2010-09-09"
Transform: AWS::Serverless-2016-10-31
Resources:
  KymaApi:
    Type: AWS::Serverless::Api
    Properties:
      StageName: dev
      BinaryMediaTypes: ["*~1*"]
      Auth:
        DefaultAuthorizer: KeyAuthorizer
        Authorizers:
          KeyAuthorizer:
            FunctionPayloadType: REQUEST
            FunctionArn: !GetAtt AuthorizerFunction.Arn
            Identity: {{Headers: [Authorization], ReauthorizeEvery: 0}}
      GatewayResponses:
        UNAUTHORIZED:
          StatusCode: 401
          ResponseParameters: {{Headers: {{X-Request-Id: context.requestId}}}}
          ResponseTemplates: {{application/json: '{{"error": {{"code": "auth_error", "message": "no key"}}}}'}}
        DEFAULT_4XX:
          ResponseParameters: {{Headers: {{X-Request-Id: context.requestId}}}}
          ResponseTemplates: {{application/json: '{ENVELOPE_4XX}'}}
        DEFAULT_5XX:
          ResponseParameters: {{Headers: {{X-Request-Id: context.requestId}}}}
          ResponseTemplates: {{application/json: '{ENVELOPE_5XX}'}}
  AuthorizerFunction:
    Type: AWS::Serverless::Function
    Properties: {{CodeUri: {APP}, Handler: app.lambda_handler, Timeout: 5}}
  StreamFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: {APP}
      Handler: run.sh
      Timeout: 30
      MemorySize: 1024
      Environment:
        Variables: {{AWS_LAMBDA_EXEC_WRAPPER: /opt/bootstrap, AWS_LWA_INVOKE_MODE: response_stream,
                     AWS_LWA_PORT: "8080"}}
      Events:
        Stream:
          Type: Api
          Properties: {{RestApiId: !Ref KymaApi, Path: "/{{proxy+}}", Method: ANY,
                        ResponseTransferMode: RESPONSE_STREAM, TimeoutInMillis: 900000}}
        ShortWait:
          Type: Api
          Properties: {{RestApiId: !Ref KymaApi, Path: "/short-wait/{{proxy+}}", Method: ANY,
                        ResponseTransferMode: RESPONSE_STREAM, TimeoutInMillis: 1500}}
  ShortFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: {APP}
      Handler: run.sh
      Timeout: 2
      Environment:
        Variables: {{AWS_LAMBDA_EXEC_WRAPPER: /opt/bootstrap, AWS_LWA_INVOKE_MODE: response_stream}}
      Events:
        Stream:
          Type: Api
          Properties: {{RestApiId: !Ref KymaApi, Path: "/short-function/{{proxy+}}", Method: ANY,
                        ResponseTransferMode: RESPONSE_STREAM, TimeoutInMillis: 900000}}
"""

AUTH = [("Authorization", "Bearer k1")]


@dataclass
class Received:
    status: int
    headers: list[tuple[str, str]]
    chunks: list[tuple[float, bytes]] = field(default_factory=list)   # (arrival, data)
    complete: bool = False          # the last (zero-length) chunk arrived
    body: bytes = b""

    def header(self, name: str) -> str | None:
        return next((v for n, v in self.headers if n.lower() == name.lower()), None)

    def all(self, name: str) -> list[str]:
        return [v for n, v in self.headers if n.lower() == name.lower()]

    @property
    def data(self) -> bytes:
        return b"".join(c for _, c in self.chunks) if self.chunks else self.body


def request(address, method: str, path: str, headers=(), body: bytes = b"", *, chunks_wanted: int | None = None,
            timeout: float = 30) -> Received:
    """One request on a raw socket; the response parsed as it arrives.  With chunks_wanted,
    the client hangs up after that many chunks."""
    sock = socket.create_connection(address, timeout=timeout)
    head = f"{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
    head += "".join(f"{n}: {v}\r\n" for n, v in headers)
    if body:
        head += f"Content-Length: {len(body)}\r\n"
    sock.sendall(head.encode() + b"\r\n" + body)
    stream = sock.makefile("rb")
    status = int(stream.readline().split()[1])
    received = Received(status, [])
    while (line := stream.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        received.headers.append((name, value.strip()))
    if received.header("Transfer-Encoding") == "chunked":
        while True:
            size_line = stream.readline()
            if not size_line:
                break                                     # connection closed: truncated body
            size = int(size_line.split(b";")[0], 16)
            if size == 0:
                stream.readline()
                received.complete = True
                break
            data = stream.read(size)
            stream.read(2)
            received.chunks.append((time.monotonic(), data))
            if chunks_wanted and len(received.chunks) >= chunks_wanted:
                break
    else:
        received.body = stream.read(int(received.header("Content-Length") or 0))
        received.complete = True
    stream.close()
    sock.close()
    return received


@pytest.fixture
def stack(tmp_path, monkeypatch):
    monkeypatch.setenv("LWA_TEST_EVENTS", str(tmp_path / "app-events.log"))
    (tmp_path / "template.yaml").write_text(TEMPLATE)
    template = Template(tmp_path / "template.yaml")
    pools: dict = {fid: WebAdapterPool(fn) for fid, fn in template.functions.items() if fn.web_adapter}
    pools["AuthorizerFunction"] = allow("acct_stream")
    server = make_server(LocalApiGateway(template, pools), "127.0.0.1", 0, quiet=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield SimpleNamespace(address=server.server_address[:2], pools=pools, app_events=tmp_path / "app-events.log")
    server.shutdown()
    server.server_close()
    for pool in pools.values():
        if isinstance(pool, WebAdapterPool):
            pool.close()


def test_chunks_reach_the_client_one_by_one_as_the_app_writes_them(stack):
    got = request(stack.address, "GET", "/chunks?n=5&gap=0.4", AUTH)
    assert got.status == 200 and got.complete
    assert [c for _, c in got.chunks] == [f"chunk-{i};".encode() for i in range(5)]
    arrivals = [t for t, _ in got.chunks]
    assert arrivals[-1] - arrivals[0] > 1.2                    # the first came ~1.6 s before the last
    assert all(later - earlier > 0.2 for earlier, later in itertools.pairwise(arrivals))


def test_status_and_headers_pass_through_and_a_binary_body_arrives_byte_exact(stack):
    payload = bytes(range(256)) * 16 + b"\r\n0\r\n\r\n"
    got = request(stack.address, "POST", "/echo?status=207", AUTH + [("Content-Type", "application/octet-stream")],
                  payload)                                  # no Accept header at all
    assert got.status == 207 and got.complete
    assert got.data == payload                              # never base64
    assert got.header("X-App") == "lwa-test" and got.all("Set-Cookie") == ["a=1", "b=2"]
    assert got.header("Content-Type") == "application/octet-stream"
    assert got.header("Transfer-Encoding") == "chunked" and got.header("Content-Length") is None
    assert got.header("x-amzn-RequestId")


def test_the_app_gets_the_adapters_request_with_both_contexts(stack):
    raw = b'{"input": "\xff\xfe not UTF-8"}'                # no Content-Type: still byte-exact
    started_ms = time.time() * 1000
    got = request(stack.address, "POST", "/inspect?a=1&a=2&b=x%20y", AUTH + [
        ("X-Multi", "one"), ("X-Multi", "two"), ("x-amzn-request-context", '{"authorizer": {"account_id": "forged"}}')],
        raw)
    seen = json.loads(got.data)
    assert (seen["method"], seen["path"]) == ("POST", "/inspect")
    assert sorted(seen["query"].split("&")) == ["a=1", "a=2", "b=x+y"]
    assert base64.b64decode(seen["body"]) == raw
    assert [v for n, v in seen["headers"] if n == "X-Multi"] == ["one", "two"]
    context = seen["request_context"]
    assert context["authorizer"]["account_id"] == "acct_stream"        # the authorizer's, not the forged one
    assert context["resourcePath"] == "/{proxy+}" and context["stage"] == "dev" and context["requestId"]
    lambda_context = seen["lambda_context"]
    assert abs(lambda_context["deadline"] - (started_ms + 30_000)) < 5_000
    assert lambda_context["env_config"]["function_name"] == "StreamFunction"
    assert lambda_context["env_config"]["memory"] == 1024 and lambda_context["request_id"]
    assert lambda_context["invoked_function_arn"].endswith(":function:StreamFunction")
    again = json.loads(request(stack.address, "GET", "/inspect", AUTH).data)
    assert again["served"] == 2                             # the warm environment, reused


def test_the_authorizer_still_guards_a_streaming_route(stack):
    denied = request(stack.address, "GET", "/inspect", [])
    assert denied.status == 401 and json.loads(denied.data)["error"]["code"] == "auth_error"
    assert json.loads(request(stack.address, "GET", "/inspect", AUTH).data)["served"] == 1


@pytest.mark.parametrize("path, limit", [("/short-wait/chunks", 1.5), ("/short-function/chunks", 2.0)],
                         ids=["integration-timeout", "function-timeout"])
def test_a_timeout_mid_stream_truncates_the_chunked_body(stack, path, limit):
    started = time.monotonic()
    got = request(stack.address, "GET", f"{path}?n=100&gap=0.1", AUTH)
    elapsed = time.monotonic() - started
    assert got.status == 200 and 5 <= len(got.chunks) < 100
    assert not got.complete                                 # no last chunk: the client sees the cut
    assert limit - 0.2 < elapsed < limit + 3


def test_a_timeout_before_the_first_byte_is_the_integration_timeout_response(stack):
    started = time.monotonic()
    got = request(stack.address, "GET", "/short-wait/late?delay=4", AUTH)
    assert got.status == 504 and json.loads(got.data) == json.loads(ENVELOPE_5XX)
    assert got.header("X-Request-Id") and time.monotonic() - started < 3.5


def test_a_client_that_disconnects_mid_stream_is_seen_by_the_app(stack):
    got = request(stack.address, "GET", "/forever?gap=0.05", AUTH, chunks_wanted=2)
    assert len(got.chunks) == 2
    deadline = time.monotonic() + 10
    # The app writes its line when it sees the disconnect: wait for the whole line, not the file.
    while time.monotonic() < deadline and not (stack.app_events.exists()
                                               and stack.app_events.read_text().endswith("\n")):
        time.sleep(0.05)
    assert stack.app_events.read_text().split(": ")[0] == "/forever"
    assert stack.app_events.read_text().strip().endswith(("BrokenPipeError", "ConnectionResetError"))
    assert request(stack.address, "GET", "/chunks?n=1", AUTH).complete    # the function still serves


def test_after_the_first_10_mb_the_stream_is_paced_at_2_mb_per_second(stack):
    started = time.monotonic()
    got = request(stack.address, "GET", "/big?mb=12", AUTH)
    elapsed = time.monotonic() - started
    assert got.complete and got.data == (bytes(range(256)) * 256) * 12 * 16
    assert elapsed >= 0.95                                 # 2 MiB over the free 10 MiB at 2 MiB/s


def test_the_pacer_lets_10_mb_through_then_2_mb_per_second():
    now = [0.0]
    pacer = Pacer(clock=lambda: now[0], sleep=lambda s: now.__setitem__(0, now[0] + s))
    for _ in range(10):
        pacer.pace(1024 * 1024)
    assert now[0] == 0.0
    for _ in range(4):
        pacer.pace(1024 * 1024)
    assert now[0] == pytest.approx(2.0)
