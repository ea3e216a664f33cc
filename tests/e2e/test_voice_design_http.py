"""Voice design against `make run`: curl designs a voice and downloads its preview, the OpenAI SDK
speaks with it, it is listed `designed` and private to its owner, an Idempotency-Key makes a
retry free; and, with the stack's activation failing and the sandbox's 7-day window shortened,
the designed voice expires, speech with it is 410 and free, and its $4.20 comes back once."""

from __future__ import annotations

import json
import subprocess
import time

import openai
import pytest
import requests

from e2e.conftest import StackProcess
from kyma.audio import inspect_audio
from kyma_local.sandbox.control import SandboxControl

# The seed page's style (voice-clone's curl), for voice-design.
SEED_STYLE_COMMAND = """curl -X POST {url}/v1/audio/voice-design \\
  -H "Authorization: Bearer $KYMA_API_KEY" \\
  -H "Content-Type: application/json" \\
  -d '{{"description": "warm female narrator, slight British accent, calm", "name": "calm-narrator"}}'"""


def auth(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


def design(stack, key: str, body: dict | None = None, headers: dict | None = None) -> requests.Response:
    return requests.post(f"{stack.api_url}/v1/audio/voice-design", headers={**auth(key), **(headers or {})},
                         json=body or {"description": "A gravelly old sea captain, slow and warm."}, timeout=60)


def sdk(stack, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{stack.api_url}/v1", api_key=key, max_retries=0)


def test_curl_designs_a_voice_its_preview_plays_and_the_sdk_speaks_with_it(stack, curl, tmp_path):
    account, key = stack.new_account("50")
    # When the README's command runs in a shell (only the URL and the key differ)
    result = subprocess.run(["bash", "-c", SEED_STYLE_COMMAND.format(url=stack.api_url) + " -i"], cwd=tmp_path,
                            capture_output=True, env={"KYMA_API_KEY": key, "PATH": "/usr/bin:/bin"}, timeout=60)
    head, _, body = result.stdout.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), result.stdout
    payload = json.loads(body)
    assert list(payload) == ["voice_id", "name", "model", "cost_usd", "balance_usd", "preview_url",
                             "preview_expires_at"]
    assert (payload["name"], payload["model"], payload["cost_usd"], payload["balance_usd"]) == (
        "calm-narrator", "minimax-voice-design", 4.2, 45.8)
    for line in ("x-kyma-model: minimax-voice-design", "x-kyma-cost-usd: 4.20", "x-kyma-balance-usd: 45.80"):
        assert line in head.decode().lower()
    # Then curl downloads the preview from its URL: playable audio
    subprocess.run([curl, "-sf", "-o", str(tmp_path / "preview.mp3"), payload["preview_url"]], check=True,
                   timeout=60)
    info = inspect_audio((tmp_path / "preview.mp3").read_bytes())
    assert info.format == "mp3" and info.duration_seconds > 1.0
    # And the OpenAI SDK speaks with the designed voice
    voice = payload["voice_id"]
    spoken = sdk(stack, key).audio.speech.create(model="minimax-speech-hd", voice=voice, input="Ahoy there.")
    assert inspect_audio(spoken.content).format == "mp3"
    assert stack.balance(key) == pytest.approx(50 - 4.2 - 11 * 0.0001, abs=1e-9)
    # It is listed as designed, and the filter finds it
    listed = requests.get(f"{stack.api_url}/v1/audio/voices", params={"type": "designed"}, headers=auth(key),
                          timeout=30).json()
    assert [(v["voice_id"], v["type"], v["name"]) for v in listed["voices"]] == [(voice, "designed", "calm-narrator")]
    ledger = stack.admin("ledger", account).stdout
    assert "consistent" in ledger and "INCONSISTENT" not in ledger


def test_another_account_gets_403_in_speech_and_404_in_voices(stack):
    _, owner = stack.new_account("10")
    _, other = stack.new_account("10")
    voice = design(stack, owner).json()["voice_id"]
    with pytest.raises(openai.PermissionDeniedError) as info:
        sdk(stack, other).audio.speech.create(model="minimax-speech-hd", voice=voice, input="Not mine.")
    assert info.value.status_code == 403 and info.value.body["code"] == "voice_not_owned"
    got = requests.get(f"{stack.api_url}/v1/audio/voices/{voice}", headers=auth(other), timeout=30)
    assert got.status_code == 404 and got.json()["error"]["code"] == "voice_not_found"
    deleted = requests.delete(f"{stack.api_url}/v1/audio/voices/{voice}", headers=auth(other), timeout=30)
    assert deleted.status_code == 404
    assert stack.balance(other) == 10.0


def test_a_second_design_with_the_same_idempotency_key_is_one_charge(stack):
    _, key = stack.new_account("10")
    keyed = {"Idempotency-Key": "design-e2e-1"}
    first = design(stack, key, headers=keyed)
    time.sleep(1.1)
    second = design(stack, key, headers=keyed)
    assert first.status_code == second.status_code == 200, (first.text, second.text)
    assert second.headers["idempotent-replayed"] == "true"
    assert first.json()["voice_id"] == second.json()["voice_id"]
    assert first.json()["preview_url"] != second.json()["preview_url"]          # a fresh URL...
    one = requests.get(first.json()["preview_url"], timeout=30)
    two = requests.get(second.json()["preview_url"], timeout=30)
    assert one.status_code == two.status_code == 200 and one.content == two.content   # ...to the same preview
    assert stack.balance(key) == pytest.approx(5.8)


def test_bad_designs_are_4xx_envelopes_and_free(stack):
    _, key = stack.new_account("10")
    for body, code in [({"description": "x" * 1001}, "description_too_long"),
                       ({"description": "fine", "model": "minimax-voice-clone"}, "not_a_voice_design_model"),
                       ({"description": "fine", "gender": "robot"}, "invalid_request"),
                       ({"name": "no description"}, "invalid_request")]:
        response = design(stack, key, body)
        assert response.status_code == 400 and response.json()["error"]["code"] == code, response.text
    assert stack.balance(key) == 10.0


@pytest.fixture(scope="module")
def short_window_stack(tmp_path_factory):
    """The local stack with the sandbox's 7-day window shortened to 20 seconds."""
    s = StackProcess(tmp_path_factory.mktemp("short-window"), env={"KYMA_SANDBOX_VOICE_WINDOW_SECONDS": "20"})
    yield s
    s.stop()


def test_an_unactivated_designed_voice_expires_speech_is_410_free_and_its_4_20_comes_back_once(
        short_window_stack):
    stack = short_window_stack
    control = SandboxControl(stack.sandbox_url)
    assert control.config()["voice_window_seconds"] == 20
    control.fail_when("/v1/t2a_v2", 1000, match="Hello.")          # the stack's activation never gets through
    try:
        account, key = stack.new_account("10")
        made = design(stack, key)
        assert made.status_code == 200, made.text
        voice = made.json()["voice_id"]
        assert stack.balance(key) == pytest.approx(5.8)
        while control.voices()[voice]["deleted_at"] is None:         # the window passes, the voice unused
            assert time.time() - control.voices()[voice]["created_at"] < 60
            time.sleep(1)
        assert control.voices()[voice]["deleted_because"] == "unused"
        gone = requests.post(f"{stack.api_url}/v1/audio/speech", headers=auth(key), timeout=60,
                             json={"model": "minimax-speech-hd", "input": "Too late.", "voice": voice})
        assert gone.status_code == 410 and gone.json()["error"]["code"] == "voice_expired", gone.text
        assert stack.balance(key) == 10.0                             # the speech free, the design refunded
        again = requests.post(f"{stack.api_url}/v1/audio/speech", headers=auth(key), timeout=60,
                              json={"input": "Still gone?", "voice": voice})
        assert again.status_code == 410 and stack.balance(key) == 10.0
        listed = requests.get(f"{stack.api_url}/v1/audio/voices/{voice}", headers=auth(key), timeout=30).json()
        assert (listed["type"], listed["status"]) == ("designed", "expired")
        entries = requests.get(f"{stack.api_url}/v1/credits/ledger", headers=auth(key), timeout=30).json()["entries"]
        refunds = [e for e in entries if e["type"] == "refund"]
        assert [(e["amount_usd"], e["reference"]) for e in refunds] == [(4.2, {"voice_id": voice})]
        ledger = stack.admin("ledger", account).stdout
        assert "refunds 4.20" in ledger and ": consistent" in ledger, ledger
        assert "consistent" in stack.admin("audit").stdout
    finally:
        control.clear_failures()
