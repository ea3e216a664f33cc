"""Speech over HTTP against the local stack: the official OpenAI SDK unchanged, curl,
large audio through the redirect, byte integrity, and the MiniMax sandbox (the
stack's stand-in for MiniMax, over HTTP) driven from outside the `make run` process."""

from __future__ import annotations

import subprocess

import openai
import pytest
import requests
from helpers import SYSTEM_VOICE

from e2e.conftest import StackProcess
from kyma.audio import inspect_audio
from kyma_local.sandbox import MiniMaxSandbox


def sample_mp3() -> bytes:
    from kyma_local.sample import reference_mp3

    return reference_mp3()


def clone_voice(stack, key: str) -> str:
    response = requests.post(f"{stack.api_url}/v1/audio/voice-clone", headers={"Authorization": f"Bearer {key}"},
                             files={"file": ("reference.mp3", sample_mp3(), "audio/mpeg")},
                             data={"name": "e2e"}, timeout=60)
    assert response.status_code == 200, response.text
    return response.json()["voice_id"]


def sdk(stack, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{stack.api_url}/v1", api_key=key, max_retries=0)


def test_the_openai_sdk_speaks_with_a_cloned_and_a_system_voice(stack):
    account, key = stack.new_account("10")
    voice = clone_voice(stack, key)
    client = sdk(stack, key)
    # Exactly the README's call
    cloned = client.audio.speech.create(model="minimax-speech-hd", voice=voice, input="Hello from my own voice.")
    system = client.audio.speech.create(model="minimax-speech-hd", voice=SYSTEM_VOICE,
                                        input="Hello from a system voice.")
    for result in (cloned, system):
        audio = result.content
        assert inspect_audio(audio).format == "mp3"                  # real, playable MP3
        assert result.response.headers["x-kyma-model"] == "minimax-speech-2.8-hd"
        assert result.response.headers["x-kyma-provider"] == "sandbox"
    # $10 − $2.10 clone − 24 and 26 chars at $0.10/1k
    assert stack.balance(key) == pytest.approx(10 - 2.1 - 0.0024 - 0.0026, abs=1e-9)
    assert "consistent" in stack.admin("ledger", account).stdout


def test_the_sdk_sees_another_accounts_voice_as_403_voice_not_owned(stack):
    _, owner_key = stack.new_account("5")
    voice = clone_voice(stack, owner_key)
    _, other_key = stack.new_account("5")
    with pytest.raises(openai.PermissionDeniedError) as info:
        sdk(stack, other_key).audio.speech.create(model="minimax-speech-hd", voice=voice, input="Not mine.")
    assert info.value.status_code == 403 and info.value.body["code"] == "voice_not_owned"
    assert stack.balance(other_key) == 5.0
    with pytest.raises(openai.NotFoundError):
        sdk(stack, other_key).audio.speech.create(model="minimax-speech-hd", voice="kyma_0123456789abcdef",
                                                  input="Nobody's.")


def test_sandbox_audio_grows_with_the_input(stack):
    _, key = stack.new_account("5")
    client = sdk(stack, key)
    short = client.audio.speech.create(model="minimax-speech-turbo", voice=SYSTEM_VOICE, input="Hi.",
                                       response_format="wav").content
    long = client.audio.speech.create(model="minimax-speech-turbo", voice=SYSTEM_VOICE, input="Hi. " * 50,
                                      response_format="wav").content
    assert inspect_audio(long).duration_seconds > 5 * inspect_audio(short).duration_seconds


def test_curl_readme_example_writes_an_mp3(stack, curl, tmp_path):
    _, key = stack.new_account("1")
    out = tmp_path / "hello.mp3"
    result = subprocess.run([curl, "-sS", "-f", "-X", "POST", f"{stack.api_url}/v1/audio/speech",
                             "-H", f"Authorization: Bearer {key}", "-H", "Content-Type: application/json",
                             "-d", '{"model": "minimax-speech-hd", "input": "Hello, world.", '
                                   f'"voice_id": "{SYSTEM_VOICE}"}}', "--output", str(out)],
                            capture_output=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert inspect_audio(out.read_bytes()).format == "mp3"


def test_large_audio_follows_the_redirect_with_curl_and_the_sdk(stack, curl, tmp_path):
    _, key = stack.new_account("5")
    text = "This sentence is long enough to need a redirect. " * 50      # 2,450 chars: ~147 s of WAV
    body = f'{{"model": "minimax-speech-turbo", "input": "{text}", "voice": "{SYSTEM_VOICE}", ' \
           '"response_format": "wav"}'
    # curl -L: POST → 303 → GET the presigned URL (the Authorization header is not forwarded)
    out = tmp_path / "long.wav"
    result = subprocess.run([curl, "-sS", "-f", "-L", f"{stack.api_url}/v1/audio/speech",
                             "-H", f"Authorization: Bearer {key}", "-H", "Content-Type: application/json",
                             "-d", body, "--output", str(out), "-w", "%{num_redirects} %{http_code}"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "1 200"
    audio = out.read_bytes()
    # The sandbox renders 300 ms + 60 ms per character: 147.3 s, 9.4 MB of 32 kHz WAV
    assert len(audio) > 4_400_000
    assert inspect_audio(audio).duration_seconds == pytest.approx(0.3 + 0.06 * len(text), abs=0.01)
    # The OpenAI SDK follows the same redirect without extra code
    sdk_audio = sdk(stack, key).audio.speech.create(model="minimax-speech-turbo", voice=SYSTEM_VOICE, input=text,
                                                    response_format="wav").content
    assert sdk_audio == audio                                          # the sandbox is deterministic
    assert stack.balance(key) == pytest.approx(5 - 2 * len(text) * 0.00006, abs=1e-9)


# ── a developer's MINIMAX_API_KEY: the stack calls "MiniMax" (here a sandbox run by the test) ──
@pytest.fixture(scope="module")
def fake_upstream():
    with MiniMaxSandbox(api_key="e2e-minimax-key") as fake:
        yield fake


@pytest.fixture(scope="module")
def minimax_stack(tmp_path_factory, fake_upstream):
    stack = StackProcess(tmp_path_factory.mktemp("mm"), env={
        "MINIMAX_API_KEY": "e2e-minimax-key", "MINIMAX_BASE_URL": fake_upstream.base_url})
    yield stack
    stack.stop()


@pytest.mark.parametrize("fmt", ["mp3", "wav"])
def test_bytes_reach_the_client_exactly_as_minimax_produced_them(minimax_stack, fake_upstream, fmt):
    _, key = minimax_stack.new_account("5")
    result = sdk(minimax_stack, key).audio.speech.create(model="minimax-speech-hd", voice=SYSTEM_VOICE,
                                                         input=f"Byte integrity for {fmt}.", response_format=fmt)
    assert result.response.headers["x-kyma-provider"] == "minimax"
    assert result.content == fake_upstream.last_audio
    assert fake_upstream.calls_to("/v1/t2a_v2")[-1].headers["Authorization"] == "Bearer e2e-minimax-key"


def test_clone_then_speak_through_the_real_client(minimax_stack, fake_upstream):
    _, key = minimax_stack.new_account("5")
    voice = clone_voice(minimax_stack, key)
    assert voice in fake_upstream.voices
    audio = sdk(minimax_stack, key).audio.speech.create(model="minimax-speech-turbo", voice=voice,
                                                        input="Cloned, for real.").content
    assert audio == fake_upstream.last_audio
