"""Every function has a realistic event in events/, and each event runs on its handler
(what `make invoke FUNCTION=... EVENT=...` does), against the MiniMax sandbox wired in
as the local stack does it."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from helpers import body_of, context

from kyma.accounts.keys import hash_key, key_id_of

EVENTS = Path(__file__).resolve().parents[2] / "events"
CASES = {
    "account-balance.json": ("AccountFunction", 200),
    "account-ledger.json": ("AccountFunction", 200),
    "account-usage.json": ("AccountFunction", 200),
    "audit-scheduled.json": ("AuditFunction", "audit"),
    "authorizer-request.json": ("AuthorizerFunction", "Allow"),
    "fallback-unknown-route.json": ("FallbackFunction", 404),
    "keys-create.json": ("KeysFunction", 201),
    "keys-list.json": ("KeysFunction", 200),
    "limits.json": ("KeysFunction", 200),
    "openapi-document.json": ("OpenApiFunction", 200),
    "reconciler-scheduled.json": ("ReconcilerFunction", None),
    "speech.json": ("SpeechFunction", 200),
    "speech-with-timestamps.json": ("SpeechFunction", 200),
    "voices-list.json": ("VoicesFunction", 200),
    "voices-delete.json": ("VoicesFunction", 404),
    "voice-activation-stream.json": ("VoiceActivationFunction", {"batchItemFailures": []}),
    "voice-activation-scheduled.json": ("VoiceActivationFunction", "sweep"),
    "voice-clone-inline.json": ("VoiceCloneFunction", 200),
    "voice-clone-create-upload.json": ("VoiceCloneFunction", 201),
    "voice-design.json": ("VoiceDesignFunction", 200),
    "speech-jobs-create.json": ("SpeechJobsFunction", 202),
    "speech-jobs-list.json": ("SpeechJobsFunction", 200),
    "speech-jobs-worker-sqs.json": ("SpeechJobsWorkerFunction", {"batchItemFailures": []}),
    "speech-jobs-sweep-scheduled.json": ("SpeechJobsSweepFunction", "sweep"),
    "webhooks-create.json": ("WebhooksFunction", 201),
    "webhook-dispatch-stream.json": ("WebhookDispatchFunction", {"batchItemFailures": []}),
    "webhook-delivery-queue.json": ("WebhookDeliveryFunction", {"batchItemFailures": []}),
}


def test_every_function_has_an_event_and_every_event_is_listed(aws):
    assert {p.name for p in EVENTS.glob("*.json")} == set(CASES)
    assert {fn for fn, _ in CASES.values()} == set(aws.functions)


@pytest.mark.parametrize("name", sorted(CASES))
def test_each_event_runs_on_its_function(name, aws, local_sandbox, accounts, load_handler):
    function, expected = CASES[name]
    demo = accounts.create(50_000_000, account_id="acct_demo")
    event = json.loads((EVENTS / name).read_text().replace("{{KYMA_API_KEY}}", demo.api_key))
    result = load_handler(function)(event, context(function))
    if function == "AuthorizerFunction":
        assert result["policyDocument"]["Statement"][0]["Effect"] == expected
        assert result["context"] == {"account_id": "acct_demo", "key_id": key_id_of(hash_key(demo.api_key)),
                                     "key_hash": hash_key(demo.api_key)}
    elif function == "AuditFunction":
        assert result["mismatched"] == [] and result["accounts"] >= 1
    elif function == "ReconcilerFunction":
        assert result == {"released": 0, "already_closed": 0, "failed": 0, "stuck": 0}
    elif function == "VoiceActivationFunction" and expected == "sweep":
        assert result == {"activated": 0, "expired": 0, "failed": 0, "skipped": 0, "deleted": 0, "stuck": 0,
                          "deletes_pending": 0}
    elif function in ("VoiceActivationFunction", "SpeechJobsWorkerFunction", "WebhookDispatchFunction",
                      "WebhookDeliveryFunction"):
        assert result == expected
    elif function == "SpeechJobsSweepFunction":
        assert result == {"timed_out": 0, "resumed": 0, "slots_freed": 0, "unfinished": 0}
    else:
        assert result["statusCode"] == expected, body_of(result)
        assert result["headers"]["X-Request-Id"] == event["requestContext"]["requestId"]
    if name == "speech-with-timestamps.json":
        answer = body_of(result)
        assert [w["text"] for w in answer["words"]] == ["Kyma", "says", "its", "name.", "Then", "it", "stops!"]
        assert answer["captions"].startswith("WEBVTT") and len(answer["sentences"]) == 2
        assert local_sandbox.calls[-1].json["pronunciation_dict"] == {"tone": ["Kyma/KEE-ma"]}
    if function in ("SpeechFunction", "VoiceCloneFunction", "VoiceDesignFunction") and expected == 200:
        assert result["headers"]["X-Kyma-Provider"] == "sandbox"
        assert local_sandbox.calls and all(
            c.headers["Authorization"] == "Bearer sandbox-local-key" for c in local_sandbox.calls)


def test_an_event_an_hour_old_still_runs_when_the_lambda_context_has_time(aws, local_sandbox, accounts, load_handler):
    # Given events/voices-list.json stamped an hour ago, as `sam local start-api` stamps every event
    # of a run that started an hour ago (SAM CLI computes requestTimeEpoch once)
    accounts.create(50_000_000, account_id="acct_demo")
    event = json.loads((EVENTS / "voices-list.json").read_text())
    event["requestContext"]["requestTimeEpoch"] = int((time.time() - 3600) * 1000)
    # When VoicesFunction runs it with a fresh Lambda context (29 s left)
    result = load_handler("VoicesFunction")(event, context("VoicesFunction"))
    # Then it asks MiniMax for the system voices within the context's time, and lists them
    assert result["statusCode"] == 200, body_of(result)
    voices = json.loads(result["body"])["voices"]
    assert any(v["type"] == "system" for v in voices)
    assert any(c.path.startswith("/v1/get_voice") for c in local_sandbox.calls)
