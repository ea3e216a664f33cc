"""Webhooks against `make run` (issue 22): a receiver on loopback registers, gets events signed so
that the standardwebhooks library verifies them, retries carry one webhook-id, deliveries shows
each attempt, and a voice the sandbox's clock expired arrives as voice.expired with its refund.
Everything runs as the template defines it: the outbox's stream, the dispatcher, the delivery
queue and its function."""

from __future__ import annotations

import time

import pytest
import requests
from standardwebhooks.webhooks import Webhook
from webhook_receiver import Receiver

from e2e.conftest import StackProcess
from kyma_local.sample import reference_mp3
from kyma_local.sandbox.control import SandboxControl


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """A stack whose retries come a second apart (the schedule itself: tests/integration)."""
    s = StackProcess(tmp_path_factory.mktemp("webhooks"), env={"KYMA_LOCAL_WEBHOOK_RETRY_DELAYS": "1,1,1,1,1,1,1"})
    yield s
    s.stop()


def auth(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


def register(stack, key, url, **extra) -> dict:
    response = requests.post(f"{stack.api_url}/v1/webhooks", headers=auth(key), json={"url": url, **extra}, timeout=30)
    assert response.status_code == 201, response.text
    return response.json()


def deliveries(stack, key, webhook_id) -> list[dict]:
    response = requests.get(f"{stack.api_url}/v1/webhooks/{webhook_id}/deliveries", headers=auth(key), timeout=30)
    assert response.status_code == 200, response.text
    return response.json()["deliveries"]


def test_a_loopback_receiver_gets_a_test_event_once_and_verifies_it_with_standardwebhooks(stack):
    _, key = stack.new_account("5")
    with Receiver() as receiver:
        hook = register(stack, key, receiver.url, description="e2e")
        assert "secret" not in requests.get(f"{stack.api_url}/v1/webhooks/{hook['webhook_id']}",
                                            headers=auth(key), timeout=30).json()
        sent = requests.post(f"{stack.api_url}/v1/webhooks/{hook['webhook_id']}/test", headers=auth(key), timeout=30)
        assert sent.status_code == 202, sent.text
        (got,) = receiver.wait_for(1, timeout=30)
        time.sleep(2)
        assert len(receiver.received) == 1                       # once
    payload = Webhook(hook["secret"]).verify(got.body, got.headers)
    assert payload["type"] == "webhook.test" and got.headers["webhook-id"] == sent.json()["event_id"]
    (attempt,) = deliveries(stack, key, hook["webhook_id"])
    assert (attempt["status_code"], attempt["succeeded"], attempt["attempt"]) == (200, True, 1)


def test_a_receiver_answering_500_twice_then_200_gets_one_webhook_id_three_times(stack):
    _, key = stack.new_account("5")
    with Receiver([500, 500, 200]) as receiver:
        hook = register(stack, key, receiver.url)
        requests.post(f"{stack.api_url}/v1/webhooks/{hook['webhook_id']}/test", headers=auth(key), timeout=30)
        got = receiver.wait_for(3, timeout=60)
    assert len(got) == 3, [r.headers for r in got]
    assert len({r.headers["webhook-id"] for r in got}) == 1
    for r in got:
        Webhook(hook["secret"]).verify(r.body, r.headers)
    deadline = time.monotonic() + 10
    while len(attempts := deliveries(stack, key, hook["webhook_id"])) < 3 and time.monotonic() < deadline:
        time.sleep(0.3)
    assert [(a["attempt"], a["status_code"], a["succeeded"]) for a in attempts] == [
        (3, 200, True), (2, 500, False), (1, 500, False)]
    assert all(a["event_id"] == got[0].headers["webhook-id"] for a in attempts)


def test_a_voice_the_sandboxs_clock_expired_arrives_as_voice_expired_with_its_refund(stack):
    control = SandboxControl(stack.sandbox_url)
    _, key = stack.new_account("10")
    with Receiver() as receiver:
        hook = register(stack, key, receiver.url, events=["voice.expired", "voice.active"])
        control.fail_when("/v1/t2a_v2", 1000, match="Hello.")   # the stack's activation never gets through
        try:
            clone = requests.post(f"{stack.api_url}/v1/audio/voice-clone", headers=auth(key), timeout=60,
                                  files={"file": ("reference.mp3", reference_mp3(), "audio/mpeg")},
                                  data={"name": "webhook-narrator"})
            assert clone.status_code == 200, clone.text
            voice = clone.json()["voice_id"]
            control.advance_clock(7 * 24 * 3600 + 60)            # a week passes: MiniMax deleted the unused clone
            gone = requests.post(f"{stack.api_url}/v1/audio/speech", headers=auth(key), timeout=60,
                                 json={"input": "Too late.", "voice": voice})
            assert gone.status_code == 410, gone.text
        finally:
            control.clear_failures()
        (got,) = receiver.wait_for(1, timeout=30)
    payload = Webhook(hook["secret"]).verify(got.body, got.headers)
    assert payload["type"] == "voice.expired"
    assert (payload["data"]["voice_id"], payload["data"]["status"], payload["data"]["refund_usd"]) == (
        voice, "expired", 2.1)
    assert stack.balance(key) == 10.0


@pytest.mark.parametrize("url", ["http://169.254.169.254/latest/meta-data/", "http://2852039166/",
                                 "https://10.0.0.1/", "http://[::ffff:169.254.169.254]/", "http://100.64.0.1/",
                                 "ftp://127.0.0.1/"])
def test_even_the_local_stack_refuses_non_loopback_private_addresses(stack, url):
    _, key = stack.new_account("1")
    response = requests.post(f"{stack.api_url}/v1/webhooks", headers=auth(key), json={"url": url}, timeout=30)
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_request", response.text
