"""AWS and upstream calls per request, counted exactly: every HTTP request botocore sends (a
`before-send` hook, retries included) and the MiniMax sandbox's request log, for each path of each
endpoint, with moto in-process.  "repeated" flags an identical request sent twice in one request."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MINIMAX_KEY_PARAMETER = "/kyma/bench/minimax-api-key"
VOICE = "English_expressive_narrator"


class CallLog:
    """Every HTTP request botocore sends (retries included), by service and operation."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str]] = []

    def hook(self, event_name: str = "", request=None, **_):
        _, service, operation = event_name.split(".")[:3]
        body = getattr(request, "body", b"") or b""
        body = body if isinstance(body, bytes) else str(body).encode()
        target = f"{getattr(request, 'url', '')}|".encode() + body
        self.calls.append((service, operation, hashlib.sha256(target).hexdigest()[:12]))

    def count(self, service: str) -> int:
        return sum(1 for s, _, _ in self.calls if s == service)

    def repeated(self) -> list[str]:
        seen, dupes = set(), []
        for call in self.calls:
            if call in seen:
                dupes.append(f"{call[0]}.{call[1]}")
            seen.add(call)
        return dupes


def call_counts() -> list[dict]:
    import audio_fixtures as fx
    import boto3
    from helpers import api_event, clone_event, context, design_event, lwa_call
    from moto import mock_aws

    from kyma.accounts.keys import hash_key
    from kyma.accounts.store import Accounts
    from kyma.platform.aws import dynamodb
    from kyma.platform.config import config
    from kyma.providers.select import provider
    from kyma_local.aws import create_resources, serialize_dynamodb
    from kyma_local.runtime import FunctionPool
    from kyma_local.sandbox import MiniMaxSandbox
    from kyma_local.template import Template
    from kyma_local.web_adapter import WebAdapterPool

    template = Template()
    os.environ.update(template.environment())
    os.environ.update({"AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x", "AWS_DEFAULT_REGION": "us-east-1",
                       "POWERTOOLS_METRICS_DISABLED": "true", "POWERTOOLS_LOG_LEVEL": "ERROR"})
    os.environ.pop("AWS_ENDPOINT_URL", None)
    serialize_dynamodb()
    rows: list[dict] = []
    log = CallLog()
    # Counting, not timing: the sandbox streams without MiniMax's pace.
    with mock_aws(), MiniMaxSandbox(api_key="bench-key", first_chunk_ms=0, chunk_interval_ms=0) as fake:
        os.environ.update({"MINIMAX_API_KEY_PARAMETER": MINIMAX_KEY_PARAMETER, "MINIMAX_BASE_URL": fake.base_url})
        config.cache_clear()
        provider.cache_clear()
        create_resources(template)
        boto3.client("ssm").put_parameter(Name=MINIMAX_KEY_PARAMETER, Value="bench-key", Type="SecureString")
        boto3.DEFAULT_SESSION.events.register("before-send", log.hook)
        accounts = Accounts(dynamodb(), config())
        handlers = {fid: FunctionPool(fn).environment() for fid, fn in template.functions.items()
                    if not fn.web_adapter}
        speech_pool = WebAdapterPool(template.functions["SpeechFunction"])
        provider().check_key()        # the key's per-process cache, warm as in a warm Lambda

        mp3 = fx.mp3_cbr(12.0)

        def measure(label: str, endpoint: str, invoke, *, expect: int, complete: bool = True) -> None:
            log.calls.clear()
            before = len(fake.calls)
            response = invoke()
            status = response["statusCode"] if isinstance(response, dict) and "statusCode" in response else 200
            assert status == expect, (label, status, response.get("body") if isinstance(response, dict) else "")
            assert response.get("complete", True) == complete, label
            rows.append({"endpoint": endpoint, "path": label, "status": status, "dynamodb": log.count("dynamodb"),
                         "s3": log.count("s3"), "ssm": log.count("ssm"), "upstream": len(fake.calls) - before,
                         "repeated": log.repeated()})

        def fresh_account(balance=50_000_000):
            return accounts.create(balance)

        auth_template = (ROOT / "events" / "authorizer-request.json").read_text()

        def with_key(event, account):
            """The event as API Gateway passes it on after the authorizer: the key's id, hash and scopes,
            which the reserve's key check and the key's month use (built before the measure starts)."""
            answer = handlers["AuthorizerFunction"](
                json.loads(auth_template.replace("{{KYMA_API_KEY}}", account.api_key)), context())
            event["requestContext"]["authorizer"].update(answer["context"])
            return event

        acct = fresh_account()
        auth_event = json.loads((ROOT / "events" / "authorizer-request.json").read_text().replace(
            "{{KYMA_API_KEY}}", acct.api_key))
        measure("cache miss: key → account", "authorizer",
                lambda: {"statusCode": 200, **handlers["AuthorizerFunction"](auth_event, context())}, expect=200)
        measure("balance", "account", lambda: handlers["AccountFunction"](
            api_event("GET", "/v1/credits/balance", account_id=acct.account_id), context()), expect=200)

        clone = handlers["VoiceCloneFunction"]
        key_n = iter(range(10_000))

        def clone_call(account, *, idem=False, **kwargs):
            headers = {"Idempotency-Key": f"bench-{next(key_n)}"} if idem else None
            event = with_key(clone_event(account.account_id, mp3, headers=headers, **kwargs), account)
            return lambda: clone(event, context())

        measure("happy path", "voice-clone", clone_call(fresh_account()), expect=200)
        measure("happy path + Idempotency-Key", "voice-clone", clone_call(fresh_account(), idem=True), expect=200)
        idem_acct = fresh_account()
        replay_event = with_key(clone_event(idem_acct.account_id, mp3, headers={"Idempotency-Key": "bench-replay"}),
                                idem_acct)
        clone(replay_event, context())
        measure("replay (same Idempotency-Key)", "voice-clone", lambda: clone(replay_event, context()), expect=200)
        png_event = clone_event(fresh_account().account_id, fx.png())
        measure("refused by a check (415)", "voice-clone", lambda: clone(png_event, context()), expect=415)
        measure("402 insufficient credits", "voice-clone", clone_call(fresh_account(1)), expect=402)
        fake.fail_when("/v1/files/upload", "http_500")          # every attempt (the client retries)
        measure("upload fails upstream (502)", "voice-clone", clone_call(fresh_account()), expect=502)
        fake.clear_failures()
        fake.fail_when("/v1/voice_clone", 1002)
        measure("clone rate-limited upstream (503)", "voice-clone", clone_call(fresh_account()), expect=503)
        fake.clear_failures()

        design = handlers["VoiceDesignFunction"]

        def design_call(account, *, key=None, body=None):
            headers = {"Idempotency-Key": key} if key else None
            event = with_key(design_event(account.account_id, body, headers=headers), account)
            return lambda: design(event, context())

        measure("happy path", "voice-design", design_call(fresh_account()), expect=200)
        measure("happy path + Idempotency-Key", "voice-design", design_call(fresh_account(), key="bench-d1"),
                expect=200)
        design_replayed = fresh_account()
        design_call(design_replayed, key="bench-d-replay")()
        measure("replay (same Idempotency-Key: a fresh preview URL)", "voice-design",
                design_call(design_replayed, key="bench-d-replay"), expect=200)
        measure("refused by validation (400)", "voice-design", design_call(
            fresh_account(), body={"description": "x" * 1001}), expect=400)
        measure("402 insufficient credits", "voice-design", design_call(fresh_account(1)), expect=402)
        fake.fail_when("/v1/voice_design", 1026)
        measure("sensitive description (400 content_rejected)", "voice-design", design_call(fresh_account()),
                expect=400)
        fake.clear_failures()
        fake.fail_when("/v1/voice_design", 1002)
        measure("design rate-limited upstream (503)", "voice-design", design_call(fresh_account()), expect=503)
        fake.clear_failures()

        voice_owner = fresh_account()
        voice_id = json.loads(clone(clone_event(voice_owner.account_id, mp3), context())["body"])["voice_id"]

        def speech_call(account, body=None, headers=None):
            payload = body or {"input": "Hello from the benchmark.", "voice": VOICE}
            event = with_key(api_event("POST", "/v1/audio/speech", body=json.dumps(payload),
                                       account_id=account.account_id,
                                       headers={"Content-Type": "application/json", **(headers or {})}), account)
            return lambda: lwa_call(speech_pool, event)

        measure("happy path (system voice)", "speech", speech_call(fresh_account()), expect=200)
        measure("own voice still activating (this synthesis activates it)", "speech", speech_call(
            voice_owner, {"input": "Mine.", "voice": voice_id}), expect=200)
        measure("happy path (own cloned voice, active)", "speech", speech_call(
            voice_owner, {"input": "Mine again.", "voice": voice_id}), expect=200)
        measure("happy path, streamed audio", "speech", speech_call(
            fresh_account(), {"input": "Streamed.", "voice": VOICE, "stream_format": "audio"}), expect=200)
        capped = fresh_account()
        accounts.ddb.update_item(TableName=config().api_keys_table,
                                 Key={"key_hash": {"S": hash_key(capped.api_key)}},
                                 UpdateExpression="SET spend_limit_micros = :l", ExpressionAttributeValues={
                                     ":l": {"N": "1000000"}})
        measure("happy path, streamed, a key with a monthly limit (key, month, in flight: in the reserve)",
                "speech", speech_call(capped, {"input": "Capped.", "voice": VOICE, "stream_format": "audio"}),
                expect=200)
        measure("happy path, streamed SSE", "speech", speech_call(
            fresh_account(), {"input": "Events.", "voice": VOICE, "stream_format": "sse"}), expect=200)
        replayed = fresh_account()
        measure("happy path + Idempotency-Key (SSE)", "speech", speech_call(
            replayed, {"input": "Kept.", "voice": VOICE, "stream_format": "sse"},
            {"Idempotency-Key": "bench-speech"}), expect=200)
        measure("replay (same Idempotency-Key)", "speech", speech_call(
            replayed, {"input": "Kept.", "voice": VOICE, "stream_format": "sse"},
            {"Idempotency-Key": "bench-speech"}), expect=200)
        measure("403 voice not owned", "speech", speech_call(
            fresh_account(), {"input": "Not mine.", "voice": voice_id}), expect=403)
        measure("402 insufficient credits", "speech", speech_call(fresh_account(1)), expect=402)
        measure("refused by validation (400)", "speech", speech_call(
            fresh_account(), {"input": "x", "voice": "v", "speed": 9}), expect=400)
        fake.fail_when("/v1/t2a_v2", 1002)
        measure("t2a rate-limited upstream (503)", "speech", speech_call(fresh_account()), expect=503)
        fake.clear_failures()
        fake.fail_next("/v1/t2a_v2", "stream_drop", after_chunks=2)
        measure("MiniMax drops mid-stream (cut, released)", "speech", speech_call(
            fresh_account(), {"input": "Cut.", "voice": VOICE, "stream": True}), expect=200, complete=False)
        fake.audio_size(7_000_000)
        measure("7 MB of audio, streamed (no S3)", "speech", speech_call(
            fresh_account(), {"input": "Large.", "voice": VOICE, "stream": True, "response_format": "pcm"}),
            expect=200)
        fake.audio_size(None)
        speech_pool.close()
    return rows
