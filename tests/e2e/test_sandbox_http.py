"""The MiniMax sandbox inside a `make run` process: the functions reach it over HTTP, and a
test drives it from outside through its loopback control endpoint."""

from __future__ import annotations

import pytest
import requests

from kyma_local.sandbox.control import SandboxControl

SYSTEM_VOICE = "English_expressive_narrator"


@pytest.fixture
def control(stack):
    assert stack.sandbox_url, stack.output          # the banner names the sandbox
    sandbox = SandboxControl(stack.sandbox_url)
    yield sandbox
    sandbox.clear_failures()


def speak(stack, key: str, text: str, voice: str = SYSTEM_VOICE) -> requests.Response:
    return requests.post(f"{stack.api_url}/v1/audio/speech", headers={"Authorization": f"Bearer {key}"},
                         json={"model": "minimax-speech-hd", "input": text, "voice": voice}, timeout=60)


def test_speech_goes_to_the_sandbox_over_http(stack, control):
    _, key = stack.new_account("5")
    response = speak(stack, key, "Over the wire, marker e2e-7c1.")
    assert response.status_code == 200 and response.headers["x-kyma-provider"] == "sandbox"
    (call,) = [c for c in control.calls() if c["path"] == "/v1/t2a_v2"
               and "marker e2e-7c1" in (c["json"] or {}).get("text", "")]
    assert call["status_code"] == 0 and call["http_status"] == 200 and call["trace_id"]
    assert call["json"]["model"] == "speech-2.8-hd" and call["json"]["output_format"] == "hex"


def test_a_rule_set_over_http_reaches_the_client_and_charges_nothing(stack, control):
    _, key = stack.new_account("5")
    control.fail_when("/v1/t2a_v2", 1002, match="marker e2e-rate")
    limited = speak(stack, key, "This one is rate limited, marker e2e-rate.")
    assert limited.status_code == 503 and limited.json()["error"]["code"] == "service_unavailable"
    assert limited.headers["retry-after"] == "5"
    attempts = [c for c in control.calls() if "marker e2e-rate" in str(c["json"])]
    assert len(attempts) == 3 and {c["status_code"] for c in attempts} == {1002}   # retried, then given up
    assert speak(stack, key, "Another text goes through.").status_code == 200   # the rule matches only its text
    assert stack.balance(key) == pytest.approx(5 - 26 * 0.0001, abs=1e-9)


def test_an_unused_clone_is_gone_after_minimaxs_window_and_refunded(stack, control):
    from kyma_local.sample import reference_mp3

    _, key = stack.new_account("10")
    control.fail_when("/v1/t2a_v2", 1000, match="Hello.")   # the stack's activation never gets through
    clone = requests.post(f"{stack.api_url}/v1/audio/voice-clone", headers={"Authorization": f"Bearer {key}"},
                          files={"file": ("reference.mp3", reference_mp3(), "audio/mpeg")}, timeout=60)
    assert clone.status_code == 200, clone.text
    voice = clone.json()["voice_id"]
    assert control.voices()[voice]["first_used_at"] is None
    control.advance_clock(7 * 24 * 3600 + 60)            # a week passes without a real synthesis
    gone = speak(stack, key, "Too late.", voice=voice)
    # MiniMax answered 20132: the voice is expired, the speech free, and the clone refunded
    assert gone.status_code == 410 and gone.json()["error"]["code"] == "voice_expired", gone.text
    assert stack.balance(key) == 10.0
