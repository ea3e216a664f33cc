"""How large an inline upload can be: measured through the local API Gateway,
which applies AWS's limits (10 MB request; 6 MB Lambda event including the
base64 body)."""

from __future__ import annotations

import json

import audio_fixtures as fx
import pytest

from kyma.voices.clone import INLINE_MAX_BODY_BYTES
from kyma_local.gateway import MAX_INVOKE_PAYLOAD_BYTES, LocalApiGateway, build_event, json_size
from kyma_local.runtime import FunctionPool

# What a typical client sends along (curl -F): the event carries every header.
CURL_HEADERS = [("Host", "abc123def4.execute-api.us-east-1.amazonaws.com"), ("User-Agent", "curl/8.5.0"),
                ("Accept", "*/*"), ("Authorization", "Bearer sk-kyma-" + "x" * 43),
                ("Content-Type", "multipart/form-data; boundary=------------------------d74496d66958873e"),
                ("X-Amzn-Trace-Id", "Root=1-67a1b2c3-0123456789abcdef01234567"),
                ("X-Forwarded-For", "203.0.113.10"), ("X-Forwarded-Port", "443"), ("X-Forwarded-Proto", "https")]


def largest_inline_body() -> int:
    """Binary search: the largest body whose proxy event still fits Lambda's 6 MB."""
    def fits(size: int) -> bool:
        event = build_event("POST", "/v1/audio/voice-clone", "/v1/audio/voice-clone",
                            CURL_HEADERS + [("Content-Length", str(size))], "", b"\0" * size, binary=True,
                            authorizer={"account_id": "acct_0123456789abcdef", "principalId": "x"})
        return json_size(event) <= MAX_INVOKE_PAYLOAD_BYTES

    low, high = 0, MAX_INVOKE_PAYLOAD_BYTES
    while low < high:
        mid = (low + high + 1) // 2
        low, high = (mid, high) if fits(mid) else (low, mid - 1)
    return low


def test_the_inline_limit_sits_below_what_the_gateway_can_deliver():
    physical = largest_inline_body()
    print(f"\nlargest inline body reaching Lambda: {physical:,} bytes; documented limit: {INLINE_MAX_BODY_BYTES:,}")
    # 6 MB × 3/4 less the event's other fields: ~4.71 MB.  The documented 4.5 MB leaves ~200 KB
    # for larger headers; a body between the two gets the function's own 413.
    assert 4_700_000 < physical < 4_720_000
    assert physical - 150_000 > INLINE_MAX_BODY_BYTES


@pytest.fixture
def gateway(aws, local_sandbox, accounts):
    pools = {fid: FunctionPool(fn) for fid, fn in aws.functions.items()}
    return LocalApiGateway(aws, pools), accounts.create(50_000_000)


def post(gateway, key: str, body: bytes) -> tuple[int, dict]:
    response = gateway.handle("POST", "/v1/audio/voice-clone", "", [
        ("Authorization", f"Bearer {key}"), ("Content-Type", "multipart/form-data; boundary=b")], body)
    return response.status, json.loads(response.body)


def form_of_size(size: int) -> bytes:
    head = b'--b\r\nContent-Disposition: form-data; name="file"; filename="big.wav"\r\n\r\n'
    tail = b"\r\n--b--\r\n"
    wav = fx.wav(1.0)
    return head + wav[:44] + b"\0" * (size - len(head) - len(tail) - 44) + tail


@pytest.mark.parametrize("size, by", [
    (INLINE_MAX_BODY_BYTES + 1, "function"),          # reaches the function: its own check
    (4_800_000, "gateway"),                           # base64 event over 6 MB: API Gateway's 413
    (10 * 1024 * 1024 + 1, "gateway"),                # over API Gateway's 10 MB request limit
])
def test_oversized_inline_requests_are_413_naming_the_upload_flow(gateway, size, by, books):
    gw, account = gateway
    status, body = post(gw, account.api_key, form_of_size(size))
    assert status == 413 and body["error"]["code"] == "invalid_request"
    assert "/v1/audio/voice-clone/uploads" in body["error"]["message"]
    assert books.balance(account.account_id) == 50_000_000


def test_a_request_exactly_at_the_inline_limit_clones(gateway, books):
    gw, account = gateway
    wav = fx.wav(140.0, rate=16000)                    # a real 140 s clip, ~4.48 MB
    head = b'--b\r\nContent-Disposition: form-data; name="file"; filename="ref.wav"\r\n\r\n'
    pad = b'\r\n--b\r\nContent-Disposition: form-data; name="padding"\r\n\r\n'
    tail = b"\r\n--b--\r\n"
    filler = INLINE_MAX_BODY_BYTES - len(head) - len(wav) - len(pad) - len(tail)
    body = head + wav + pad + b"x" * filler + tail
    assert len(body) == INLINE_MAX_BODY_BYTES
    status, payload = post(gw, account.api_key, body)
    assert status == 200, payload
    assert books.balance(account.account_id) == 50_000_000 - 2_100_000
