"""Speech over HTTP against the local stack (the speech function streamed through the local API
Gateway and Lambda Web Adapter stand-ins, the sandbox at MiniMax's pace): the official OpenAI SDK
unchanged, streamed (SSE and raw audio) and whole; curl --no-buffer; no Accept header; large audio
without any redirect; a stream cut mid-way or abandoned; byte integrity, and the MiniMax sandbox (the
stack's stand-in for MiniMax, over HTTP) driven from outside the `make run` process."""

from __future__ import annotations

import base64
import json
import subprocess
import time

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


def test_large_audio_comes_whole_without_a_redirect_with_curl_and_the_sdk(stack, curl, tmp_path):
    _, key = stack.new_account("5")
    text = "This sentence is long enough for a large file. " * 50           # 2,400 chars: ~144 s of WAV
    body = json.dumps({"model": "minimax-speech-turbo", "input": text, "voice": SYSTEM_VOICE,
                       "response_format": "wav"})
    out = tmp_path / "long.wav"
    result = subprocess.run([curl, "-sS", "-f", "-L", f"{stack.api_url}/v1/audio/speech",
                             "-H", f"Authorization: Bearer {key}", "-H", "Content-Type: application/json",
                             "-d", body, "--output", str(out), "-w", "%{num_redirects} %{http_code}"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "0 200"                                    # no 303, no S3 detour
    audio = out.read_bytes()
    # The sandbox renders 300 ms + 60 ms per character: 144.3 s, 9.2 MB of 32 kHz WAV (over 6 MB)
    assert len(audio) > 6 * 1024 * 1024
    assert inspect_audio(audio).duration_seconds == pytest.approx(0.3 + 0.06 * len(text), abs=0.01)
    sdk_audio = sdk(stack, key).audio.speech.create(model="minimax-speech-turbo", voice=SYSTEM_VOICE, input=text,
                                                    response_format="wav").content
    assert sdk_audio == audio                                          # the sandbox is deterministic
    assert stack.balance(key) == pytest.approx(5 - 2 * len(text) * 0.00006, abs=1e-9)


# ── streamed: the OpenAI SDK unchanged, curl, plain HTTP ─────────────────
STORY = "A voice agent needs its first audio in a few hundred milliseconds, not just seconds."   # 84 chars


def test_the_openai_sdk_streams_sse_deltas_then_done_with_the_billing_facts(stack):
    _, key = stack.new_account("5")
    with sdk(stack, key).audio.speech.with_streaming_response.create(
            model="minimax-speech-hd", voice=SYSTEM_VOICE, input=STORY, stream_format="sse") as response:
        assert response.headers["content-type"] == "text/event-stream"
        assert response.headers["x-kyma-chars-billed"] == "84" and response.headers["x-kyma-cost-usd"] == "0.0084"
        events = [json.loads(line[len("data: "):]) for line in response.iter_lines() if line.startswith("data: ")]
    deltas, done = events[:-1], events[-1]
    assert len(deltas) >= 10 and {e["type"] for e in deltas} == {"speech.audio.delta"}
    audio = b"".join(base64.b64decode(e["audio"]) for e in deltas)
    assert inspect_audio(audio).format == "mp3"                          # the deltas make one valid MP3,
    whole = sdk(stack, key).audio.speech.create(model="minimax-speech-hd", voice=SYSTEM_VOICE, input=STORY)
    assert audio == whole.content                                        # the very file (the sandbox is deterministic)
    assert done["type"] == "speech.audio.done"
    assert done["usage"] == {"input_tokens": 84, "output_tokens": 0, "total_tokens": 84,
                             "characters_billed": 84, "cost_usd": 0.0084, "balance_usd": 4.9916}
    assert whole.response.headers["x-kyma-balance-usd"] == "4.9832" and stack.balance(key) == 4.9832


def test_the_openai_sdk_streams_raw_audio_in_chunks_the_first_well_before_the_last(stack):
    _, key = stack.new_account("5")
    started = time.monotonic()
    with sdk(stack, key).audio.speech.with_streaming_response.create(
            model="minimax-speech-hd", voice=SYSTEM_VOICE, input=STORY, stream_format="audio") as response:
        assert response.headers["content-type"] == "audio/mpeg"
        chunks = [(time.monotonic(), chunk) for chunk in response.iter_bytes()]
    first_at, last_at = chunks[0][0], chunks[-1][0]
    # The sandbox's pace: 300 ms to the first chunk, then 33 more 40 ms apart
    assert len(chunks) >= 10 and first_at - started < 1.0 and last_at - first_at > 0.8
    assert inspect_audio(b"".join(c for _, c in chunks)).format == "mp3"
    assert stack.balance(key) == 4.9916


def test_curl_no_buffer_shows_the_same_events_as_they_come(stack, curl):
    _, key = stack.new_account("5")
    body = json.dumps({"model": "minimax-speech-hd", "input": STORY, "voice": SYSTEM_VOICE, "stream_format": "sse"})
    proc = subprocess.Popen([curl, "-sS", "--no-buffer", "-X", "POST", f"{stack.api_url}/v1/audio/speech",
                             "-H", f"Authorization: Bearer {key}", "-H", "Content-Type: application/json",
                             "-d", body], stdout=subprocess.PIPE)
    arrivals = [(time.monotonic(), line) for line in proc.stdout if line.startswith(b"data: ")]
    assert proc.wait(30) == 0
    events = [json.loads(line[len(b"data: "):]) for _, line in arrivals]
    assert events[-1]["type"] == "speech.audio.done" and events[-1]["usage"]["characters_billed"] == 84
    assert len(events) >= 10 and arrivals[-1][0] - arrivals[0][0] > 0.8     # as they came, not at the end


@pytest.mark.parametrize("flag", [{}, {"stream": True}], ids=["whole", "streamed"])
def test_a_request_without_accept_gets_raw_audio_bytes(stack, flag):
    _, key = stack.new_account("5")
    response = requests.post(f"{stack.api_url}/v1/audio/speech", timeout=60,
                             headers={"Authorization": f"Bearer {key}", "Accept": None},   # no Accept at all
                             json={"input": "No Accept header.", "voice": SYSTEM_VOICE, **flag})
    assert "accept" not in {k.lower() for k in response.request.headers}
    assert response.status_code == 200 and response.headers["content-type"] == "audio/mpeg"
    assert inspect_audio(response.content).format == "mp3"           # bytes, not base64 text
    assert [len(response.raw.headers.getlist(h)) for h in ("Date", "Server")] == [1, 1]   # the gateway's only


@pytest.fixture
def control(stack):
    from kyma_local.sandbox.control import SandboxControl

    sandbox = SandboxControl(stack.sandbox_url)
    yield sandbox
    sandbox.clear_failures()


def test_a_stream_minimax_breaks_off_is_a_cut_body_for_curl_and_an_error_event_for_sse(stack, curl, control):
    _, key = stack.new_account("5")
    control.fail_when("/v1/t2a_v2", "stream_drop", match="marker e2e-cut", after_chunks=5)
    text = "Cut short mid-way, marker e2e-cut."
    raw = subprocess.run([curl, "-sS", "--no-buffer", "-o", "/dev/null", "-X", "POST",
                          f"{stack.api_url}/v1/audio/speech", "-H", f"Authorization: Bearer {key}",
                          "-d", json.dumps({"input": text, "voice": SYSTEM_VOICE, "stream": True})],
                         capture_output=True, text=True, timeout=60)
    assert raw.returncode == 18, raw.stderr                            # curl: "transfer closed ... partial file"
    with requests.post(f"{stack.api_url}/v1/audio/speech", headers={"Authorization": f"Bearer {key}"}, stream=True,
                       json={"input": text, "voice": SYSTEM_VOICE, "stream_format": "sse"}, timeout=60) as sse:
        events = [json.loads(line[6:]) for line in sse.iter_lines(decode_unicode=True) if line.startswith("data: ")]
    assert [e["type"] for e in events] == ["speech.audio.delta"] * 5 + ["error"]
    assert events[-1]["error"]["code"] == "provider_error"
    assert stack.balance(key) == 5.0                                   # partial audio is free


def test_a_client_that_hangs_up_mid_stream_pays_nothing(stack):
    _, key = stack.new_account("5")
    response = requests.post(f"{stack.api_url}/v1/audio/speech", headers={"Authorization": f"Bearer {key}"},
                             json={"input": STORY * 3, "voice": SYSTEM_VOICE, "stream": True}, stream=True, timeout=60)
    assert next(response.iter_content(4096))
    response.close()                                                    # gone after the first audio
    deadline = time.monotonic() + 15
    while stack.balance(key) != 5.0 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert stack.balance(key) == 5.0


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
    # (the voice's activation also calls t2a, at any moment: last_audio may be its audio)
    assert inspect_audio(audio).format == "mp3"
    assert any(c.json["voice_setting"]["voice_id"] == voice and c.json["text"] == "Cloned, for real."
               for c in fake_upstream.calls_to("/v1/t2a_v2"))
