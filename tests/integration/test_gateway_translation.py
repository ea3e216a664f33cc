"""The local API Gateway: HTTP ⇄ REST proxy events, authorizer semantics, limits.

The functions behind it are recording stand-ins, so these tests see exactly
what a Lambda would receive and what a client would get back.
"""

from __future__ import annotations

import base64
import json
import os
import time

import pytest
from helpers import Recorder, allow

from kyma_local.gateway import MAX_INVOKE_PAYLOAD_BYTES, LocalApiGateway
from kyma_local.template import Template


def echo_binary(event):
    return {"statusCode": 200, "headers": {"Content-Type": "application/octet-stream"},
            "isBase64Encoded": True, "body": event["body"] or ""}


@pytest.fixture
def gw():
    template = Template()
    pools = {fid: Recorder({"statusCode": 200, "headers": {}, "body": "{}"}) for fid in template.functions}
    pools["AuthorizerFunction"] = allow()
    return LocalApiGateway(template, pools), pools


AUTH = [("Authorization", "Bearer k1")]


def test_binary_body_round_trips_byte_exact(gw):
    gateway, pools = gw
    pools["AccountFunction"].answer = echo_binary
    payload = bytes(range(256)) * 64 + b"\x00\xff\r\n--boundary\r\n"
    response = gateway.handle("GET", "/v1/credits/balance", "", AUTH + [
        ("Content-Type", "audio/wav"), ("Accept", "application/octet-stream")], payload)
    event = pools["AccountFunction"].events[0]
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == payload
    assert response.status == 200 and response.body == payload


def test_base64_response_is_decoded_only_when_the_first_accept_type_is_binary(gw):
    gateway, pools = gw
    template = Template()
    assert "*/*" in template.binary_media_types  # why curl (Accept: */*) gets bytes
    data = b"\x89PNG\x00\x01"
    pools["AccountFunction"].answer = lambda e: {"statusCode": 200, "isBase64Encoded": True,
                                                 "body": base64.b64encode(data).decode()}
    as_bytes = gateway.handle("GET", "/v1/credits/balance", "", AUTH + [("Accept", "*/*")], b"")
    assert as_bytes.body == data
    gateway.binary_types = ["audio/*"]  # without */*: curl's Accept would not match...
    as_text = gateway.handle("GET", "/v1/credits/balance", "", AUTH + [("Accept", "*/*")], b"")
    assert as_text.body == base64.b64encode(data)  # ...and the client would get base64 text
    as_audio = gateway.handle("GET", "/v1/credits/balance", "", AUTH + [("Accept", "audio/mpeg, */*")], b"")
    assert as_audio.body == data


def test_multi_value_headers_and_query_strings_survive(gw):
    gateway, pools = gw
    gateway.handle("GET", "/v1/credits/balance", "a=1&a=2&b=x%20y&empty=", AUTH + [
        ("X-Multi", "one"), ("X-Multi", "two"), ("X-Case", "Kept")], b"")
    event = pools["AccountFunction"].events[0]
    assert event["multiValueHeaders"]["X-Multi"] == ["one", "two"]
    assert event["headers"]["X-Multi"] == "two"          # API Gateway keeps the last value
    assert event["headers"]["X-Case"] == "Kept"
    assert event["multiValueQueryStringParameters"] == {"a": ["1", "2"], "b": ["x y"], "empty": [""]}
    assert event["queryStringParameters"] == {"a": "2", "b": "x y", "empty": ""}
    ctx = event["requestContext"]
    assert ctx["authorizer"]["account_id"] == "acct_1" and ctx["requestId"]
    assert ctx["resourcePath"] == "/v1/credits/balance" and ctx["stage"] == "dev"
    assert abs(ctx["requestTimeEpoch"] / 1000 - time.time()) < 5


def test_response_headers_and_status_map_back(gw):
    gateway, pools = gw
    pools["AccountFunction"].answer = {"statusCode": 303, "headers": {"Location": "http://x/y"},
                                       "multiValueHeaders": {"Set-Cookie": ["a=1", "b=2"]}, "body": ""}
    response = gateway.handle("GET", "/v1/credits/balance", "", AUTH, b"")
    assert response.status == 303
    assert ("Location", "http://x/y") in response.headers
    assert [v for n, v in response.headers if n == "Set-Cookie"] == ["a=1", "b=2"]


def error(response):
    body = json.loads(response.body)
    return response.status, body["error"]["code"], dict(response.headers)


def test_missing_identity_header_is_401_without_calling_the_authorizer(gw):
    gateway, pools = gw
    status, code, headers = error(gateway.handle("GET", "/v1/credits/balance", "", [], b""))
    assert (status, code) == (401, "auth_error") and headers["X-Request-Id"]
    assert pools["AuthorizerFunction"].events == []


def test_authorizer_outcomes_map_to_gateway_responses(gw):
    gateway, pools = gw
    pools["AuthorizerFunction"] = Recorder(error="Unhandled", error_message="Exception: Unauthorized")
    gateway.authorizer.pool = pools["AuthorizerFunction"]
    assert error(gateway.handle("GET", "/v1/credits/balance", "", AUTH, b""))[:2] == (401, "auth_error")
    deny = allow()
    deny.answer = lambda e: {"principalId": "x", "policyDocument": {"Statement": [
        {"Action": "execute-api:Invoke", "Effect": "Deny", "Resource": "*"}]}}
    gateway.authorizer.pool = deny
    gateway.flush_authorizer_cache()
    assert error(gateway.handle("GET", "/v1/credits/balance", "", AUTH, b""))[0] == 403
    gateway.authorizer.pool = Recorder(error="Unhandled", error_message="KeyError: boom")
    gateway.flush_authorizer_cache()
    assert error(gateway.handle("GET", "/v1/credits/balance", "", AUTH, b""))[:2] == (503, "service_unavailable")
    assert pools["AccountFunction"].events == []


def test_authorizer_answers_are_cached_per_key_for_the_ttl(gw):
    gateway, pools = gw
    gateway.authorizer.ttl = 0.3
    for _ in range(3):
        gateway.handle("GET", "/v1/credits/balance", "", AUTH, b"")
    assert len(pools["AuthorizerFunction"].events) == 1            # cached
    gateway.handle("GET", "/v1/credits/balance", "", [("Authorization", "Bearer k2")], b"")
    assert len(pools["AuthorizerFunction"].events) == 2            # another key: another call
    time.sleep(0.35)
    gateway.handle("GET", "/v1/credits/balance", "", AUTH, b"")
    assert len(pools["AuthorizerFunction"].events) == 3            # expired: asked again


def test_a_401_is_not_cached(gw):
    gateway, _pools = gw
    gateway.authorizer.pool = Recorder(error="Unhandled", error_message="Exception: Unauthorized")
    for _ in range(2):
        gateway.handle("GET", "/v1/credits/balance", "", AUTH, b"")
    assert len(gateway.authorizer.pool.events) == 2


def test_payload_limits_answer_with_the_templates_gateway_responses(gw):
    gateway, pools = gw
    # 10 MB + 1 byte: API Gateway's own limit.
    status, code, _ = error(gateway.handle("POST", "/v1/credits/balance", "", AUTH, b"x" * (10 * 2**20 + 1)))
    assert (status, code) == (413, "invalid_request")
    # 5 MB binary body: under 10 MB, but base64 in the event exceeds Lambda's 6 MB.
    status, code, _ = error(gateway.handle("GET", "/v1/credits/balance", "", AUTH + [
        ("Content-Type", "audio/wav")], os.urandom(5 * 2**20)))
    assert (status, code) == (413, "invalid_request")
    assert pools["AccountFunction"].events == []
    # A response over 6 MB: Lambda refuses to return it; API Gateway answers 502.
    pools["AccountFunction"].answer = {"statusCode": 200, "body": "x" * (MAX_INVOKE_PAYLOAD_BYTES + 1)}
    status, code, _ = error(gateway.handle("GET", "/v1/credits/balance", "", AUTH, b""))
    assert (status, code) == (502, "internal_error")


def test_function_errors_and_timeouts_become_5xx_envelopes(gw):
    gateway, pools = gw
    pools["AccountFunction"].error = "Unhandled"
    assert error(gateway.handle("GET", "/v1/credits/balance", "", AUTH, b""))[:2] == (502, "internal_error")
    pools["AccountFunction"].error = "TimedOut"
    assert error(gateway.handle("GET", "/v1/credits/balance", "", AUTH, b""))[:2] == (504, "internal_error")


def test_routing_specific_method_beats_any_and_unknown_paths_fall_back(gw):
    gateway, pools = gw
    gateway.handle("GET", "/v1/credits/balance", "", AUTH, b"")
    gateway.handle("DELETE", "/v1/credits/balance", "", [], b"")
    gateway.handle("GET", "/v2/anything/else", "", [], b"")
    assert len(pools["AccountFunction"].events) == 1
    fallback = pools["FallbackFunction"].events
    assert [(e["httpMethod"], e["resource"]) for e in fallback] == [
        ("DELETE", "/v1/credits/balance"), ("GET", "/{proxy+}")]
    assert fallback[1]["pathParameters"] == {"proxy": "v2/anything/else"}


def test_throttling_answers_429_with_retry_after(gw):
    gateway, _ = gw
    for bucket in gateway.buckets.values():
        bucket.rate, bucket.burst, bucket.tokens = 0.001, 1, 1
    gateway.handle("GET", "/v1/credits/balance", "", AUTH, b"")
    status, code, headers = error(gateway.handle("GET", "/v1/credits/balance", "", AUTH, b""))
    assert (status, code, headers["Retry-After"]) == (429, "rate_limited", "1")


def test_the_speech_posts_own_throttle_applies(gw):
    # template.yaml: POST /v1/audio/speech at UpstreamSpeechRpm / 3 a second, bursts of 5 x
    # UpstreamSpeechRpm (Mappings UpstreamQuota; 20/s and 300 for MiniMax's 60): far above the
    # shared upstream budget (60 a minute, kyma/accounts/upstream.py), the last guard against floods.
    gateway, pools = gw
    started = time.monotonic()
    statuses = [gateway.handle("POST", "/v1/audio/speech", "", AUTH, b"{}").status for _ in range(330)]
    refilled = int((time.monotonic() - started) * 20) + 20
    assert statuses[:300] == [200] * 300
    assert statuses.count(200) <= 300 + refilled and statuses[-1] == 429
    assert len(pools["SpeechFunction"].events) == statuses.count(200)


def test_the_voice_design_posts_own_throttle_is_minimaxs_20_a_minute(gw):
    # template.yaml: POST /v1/audio/voice-design, a bucket of 20 refilled at 0.33/s (MiniMax's 20
    # designs a minute for the platform account), far below the stage-wide 50/s.
    gateway, pools = gw
    started = time.monotonic()
    statuses = [gateway.handle("POST", "/v1/audio/voice-design", "", AUTH, b"{}").status for _ in range(25)]
    refilled = int(0.33 * (time.monotonic() - started)) + 1
    assert statuses[:20] == [200] * 20
    assert statuses.count(200) <= 20 + refilled and statuses[-1] == 429
    assert len(pools["VoiceDesignFunction"].events) == statuses.count(200)


def test_a_body_without_content_type_is_binary_like_application_json(gw):
    # API Gateway takes a missing Content-Type as application/json, which */* makes binary.
    gateway, pools = gw
    payload = b'{"input": "\xff\xfe not UTF-8 \xc3\x28"}'
    gateway.handle("POST", "/v1/audio/speech", "", AUTH, payload)
    gateway.handle("POST", "/v1/audio/speech", "", AUTH + [("Content-Type", "application/json")], payload)
    without, with_json = pools["SpeechFunction"].events
    assert without["isBase64Encoded"] is True and base64.b64decode(without["body"]) == payload
    assert (without["body"], without["isBase64Encoded"]) == (with_json["body"], with_json["isBase64Encoded"])


@pytest.mark.parametrize("path", ["/v1/audio/speech", "/v1/audio/voice-clone/uploads", "/v1/audio/voice-clone"])
def test_the_413_names_each_routes_remedy(gw, path):
    # Gateway-response templates are not VTL (no branching on the route), so one message
    # serves every route and names each one's remedy.
    gateway, _pools = gw
    response = gateway.handle("POST", path, "", AUTH, b"x" * (10 * 2**20 + 1))
    status, code, headers = error(response)
    assert (status, code) == (413, "invalid_request") and headers["X-Request-Id"]
    message = json.loads(response.body)["error"]["message"]
    assert "/v1/audio/speech" in message and "10,000 characters" in message
    assert "presigned URL" in message and "JSON" in message
    assert "POST /v1/audio/voice-clone/uploads, then POST /v1/audio/voice-clone with upload_id" in message
