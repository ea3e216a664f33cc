"""Many customers, over HTTP against `make run`: per-account rate limits, the ledger and usage
a customer can read, and the operator's audit over every account."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import boto3
import requests
from helpers import SYSTEM_VOICE

from kyma_local.sample import reference_mp3


def auth(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


def test_one_account_over_its_limit_is_429_while_another_is_served(stack):
    account_a, key_a = stack.new_account("20")
    _, key_b = stack.new_account("20")
    stack.admin("set-limits", account_a, "speech", "--per-minute", "100", "--burst", "3")
    body = {"input": "Fast and often.", "voice": SYSTEM_VOICE}
    results: dict[str, list] = {"a": [], "b": []}
    lock = threading.Lock()

    def send(who: str, key: str) -> None:
        response = requests.post(f"{stack.api_url}/v1/audio/speech", headers=auth(key), json=body, timeout=60)
        with lock:
            results[who].append(response)

    # Account A sends 30 requests as fast as it can; B sends a few in the same seconds
    with ThreadPoolExecutor(8) as pool:
        for n in range(30):
            pool.submit(send, "a", key_a)
            if n % 10 == 0:
                pool.submit(send, "b", key_b)
    limited = [r for r in results["a"] if r.status_code == 429]
    assert limited and all(r.json()["error"]["code"] == "rate_limited" and int(r.headers["Retry-After"]) >= 1
                           for r in limited)
    assert {r.status_code for r in results["a"]} <= {200, 429}
    assert [r.status_code for r in results["b"]] == [200, 200, 200]
    served = sum(r.status_code == 200 for r in results["a"])
    assert round(20 - stack.balance(key_a), 6) == round(served * 0.0015, 6)   # only the served ones are charged


def test_the_ledger_and_usage_show_a_clone_and_the_top_up(stack):
    account, key = stack.new_account("10")
    stack.admin("top-up", account, "5", "--note", "invoice 9")
    clone = requests.post(f"{stack.api_url}/v1/audio/voice-clone", headers=auth(key), timeout=60,
                          files={"file": ("reference.mp3", reference_mp3(), "audio/mpeg")})
    assert clone.status_code == 200
    entries = requests.get(f"{stack.api_url}/v1/credits/ledger", headers=auth(key), timeout=30).json()["entries"]
    assert (entries[0]["type"], entries[0]["status"], entries[0]["amount_usd"]) == ("charge", "charged", 2.1)
    assert entries[0]["reference"] == {"voice_id": clone.json()["voice_id"]}
    assert [(e["type"], e["amount_usd"]) for e in entries[1:]] == [("topup", 5.0), ("topup", 10.0)]
    usage = requests.get(f"{stack.api_url}/v1/usage", headers=auth(key), timeout=30).json()["usage"]
    assert usage == [{"date": datetime.now(UTC).strftime("%Y-%m-%d"), "endpoint": "voice-clone",
                      "model": "minimax-voice-clone", "requests": 1, "characters": 0, "cost_usd": 2.1}]


def test_kyma_admin_audit_passes_then_names_a_hand_corrupted_account(stack):
    account, _ = stack.new_account("3")
    ok = stack.admin("audit")
    assert "consistent" in ok.stdout and "account(s)" in ok.stdout and "balances" in ok.stdout
    state = json.loads(stack.state_file.read_text())
    ddb = boto3.client("dynamodb", endpoint_url=state["aws_endpoint"], region_name=state["region"],
                       aws_access_key_id="local", aws_secret_access_key="local")
    table = state["tables"]["AccountsTable"]
    ddb.update_item(TableName=table, Key={"account_id": {"S": account}},
                    UpdateExpression="SET balance_micros = balance_micros + :one",
                    ExpressionAttributeValues={":one": {"N": "1"}})
    try:
        bad = stack.admin("audit", check=False)
        assert bad.returncode == 1
        assert f"MISMATCH {account}" in bad.stdout and "INCONSISTENT" in bad.stdout
    finally:
        ddb.update_item(TableName=table, Key={"account_id": {"S": account}},
                        UpdateExpression="SET balance_micros = balance_micros - :one",
                        ExpressionAttributeValues={":one": {"N": "1"}})
    assert stack.admin("audit").returncode == 0


def test_kyma_admin_failures_shows_a_failed_reconciler_run_and_redrives_it_until_the_queue_is_empty(stack):
    # Given a reconciler run Lambda gave up on, in the local stack's failure queue
    state = json.loads(stack.state_file.read_text())
    sqs = boto3.client("sqs", endpoint_url=state["aws_endpoint"], region_name=state["region"],
                       aws_access_key_id="local", aws_secret_access_key="local")
    url = sqs.get_queue_url(QueueName=state["queues"]["ReconcilerFailureQueue"])["QueueUrl"]
    record = {"version": "1.0", "timestamp": "2026-12-01T10:05:02.123Z",
              "requestContext": {"requestId": "r-1", "condition": "RetriesExhausted", "approximateInvokeCount": 3},
              "requestPayload": {"detail-type": "Scheduled Event", "source": "aws.events", "detail": {}},
              "responseContext": {"statusCode": 200, "functionError": "Unhandled"},
              "responsePayload": {"errorType": "Sandbox.Timedout", "errorMessage": "Task timed out after 120 s"}}
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps(record))
    # When the operator looks, then redrives
    shown = stack.admin("failures").stdout
    assert "reconciler failures: 1 message(s)" in shown and "activation failures: 0 message(s)" in shown
    assert "RetriesExhausted  3 attempt(s)  Sandbox.Timedout: Task timed out after 120 s" in shown
    redriven = stack.admin("failures", "--redrive").stdout
    # Then the reconciler ran again (for real, in the local stack) and the queue is empty: its alarm clears
    assert "reconciler failures: ReconcilerFunction ran again ({\"released\": 0" in redriven
    assert "1 message(s) deleted" in redriven and "0 message(s) left" in redriven
    assert "0 message(s) in all" in stack.admin("failures").stdout
