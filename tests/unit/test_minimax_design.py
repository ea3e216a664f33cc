"""MiniMax voice design (`/v1/voice_design`) as the sandbox models it, held against the real client
over HTTP: the preview, the 7-day rule for designed voices, their voice_type, and the failures."""

from __future__ import annotations

import time

import pytest

from kyma.audio import inspect_audio
from kyma.edge import errors
from kyma.providers import SynthesisRequest
from kyma.providers.minimax import NO_RETRY, MiniMaxClient, RetryPolicy
from kyma_local.sandbox import PATH_DELETE_VOICE, PATH_DESIGN, PATH_GET_VOICE, MiniMaxSandbox

KEY = "test-minimax-key-design"
WINDOW = 0.6
PROMPT = "A warm female narrator, slight British accent, calm."


@pytest.fixture
def sandbox():
    with MiniMaxSandbox(api_key=KEY, voice_window_seconds=WINDOW) as s:
        yield s


@pytest.fixture
def client(sandbox):
    return MiniMaxClient(sandbox.base_url, lambda: KEY, retry=NO_RETRY)


def soon() -> float:
    return time.monotonic() + 10


def speak(client: MiniMaxClient, voice_id: str) -> None:
    client.synthesize(SynthesisRequest(model="speech-2.8-turbo", text="Hello.", voice_id=voice_id,
                                       audio_format="mp3"), deadline=soon())


def listed(client_sandbox: MiniMaxSandbox, voice_type: str) -> list[str]:
    import requests

    answer = requests.post(client_sandbox.base_url + PATH_GET_VOICE, json={"voice_type": voice_type},
                           headers={"Authorization": f"Bearer {KEY}"}, timeout=10).json()
    return [v["voice_id"] for v in answer[voice_type]]


def test_a_design_answers_a_playable_deterministic_preview_of_the_preview_text(sandbox, client):
    preview = client.design_voice(PROMPT, "Good evening, and welcome.", "kyma_d000000000000001", deadline=soon())
    info = inspect_audio(preview)
    assert info.format == "mp3" and 1.0 < info.duration_seconds < 3.0     # 0.3 s + 60 ms a character
    (call,) = sandbox.calls_to(PATH_DESIGN)
    assert call.json == {"prompt": PROMPT, "preview_text": "Good evening, and welcome.",
                         "voice_id": "kyma_d000000000000001"}
    again = client.design_voice(PROMPT, "Good evening, and welcome.", "kyma_d000000000000002", deadline=soon())
    other = client.design_voice(PROMPT, "Something else entirely, and longer.", "kyma_d000000000000003",
                                deadline=soon())
    assert again == preview and other != preview
    assert inspect_audio(other).duration_seconds > info.duration_seconds


def test_a_designed_voice_the_preview_alone_never_keeps_expires_after_the_window(sandbox, client):
    client.design_voice(PROMPT, "Kept.", "kyma_d000000000000011", deadline=soon())
    client.design_voice(PROMPT, "Lost.", "kyma_d000000000000012", deadline=soon())
    speak(client, "kyma_d000000000000011")                 # a real synthesis: kept
    time.sleep(WINDOW + 0.2)
    speak(client, "kyma_d000000000000011")
    with pytest.raises(errors.UpstreamVoiceMissing):
        speak(client, "kyma_d000000000000012")
    assert listed(sandbox, "voice_generation") == ["kyma_d000000000000011"]
    assert listed(sandbox, "voice_cloning") == []


def test_a_designed_voice_is_deleted_as_voice_generation_only(sandbox, client):
    voice = "kyma_d000000000000021"
    client.design_voice(PROMPT, "Delete me.", voice, deadline=soon())
    assert client.delete_voice(voice, deadline=soon()) is False          # not a clone: 20132
    speak(client, voice)                                                 # still there
    assert client.delete_voice(voice, voice_type="voice_generation", deadline=soon()) is True
    assert sandbox.calls_to(PATH_DELETE_VOICE)[-1].json == {"voice_type": "voice_generation", "voice_id": voice}
    with pytest.raises(errors.UpstreamVoiceMissing):
        speak(client, voice)
    with pytest.raises(errors.ProviderError) as info:                     # ids are never reused
        client.design_voice(PROMPT, "Again.", voice, deadline=soon())
    assert info.value.provider_code == 2039


@pytest.mark.parametrize("code, kind, status", [
    (1026, errors.ContentRejected, 400),           # sensitive description
    (1027, errors.ContentRejected, 400),
    (2013, errors.UpstreamInvalidRequest, 400),    # the customer's values
    (1002, errors.ProviderUnavailable, 503),       # MiniMax's 20 RPM
    (1008, errors.ProviderAccountProblem, 503),
    (1000, errors.ProviderError, 502),
])
def test_design_refusals_are_classified(sandbox, client, code, kind, status):
    sandbox.fail_next(PATH_DESIGN, "base_resp", code=code)
    with pytest.raises(kind) as info:
        client.design_voice(PROMPT, "Refused.", "kyma_d000000000000031", deadline=soon())
    assert info.value.status == status and info.value.provider_code == code


def test_the_sandbox_checks_a_design_like_minimax(sandbox, client):
    with pytest.raises(errors.UpstreamInvalidRequest):
        client.design_voice(PROMPT, "x" * 501, "kyma_d000000000000041", deadline=soon())
    with pytest.raises(errors.UpstreamInvalidRequest):
        client.design_voice("   ", "Fine.", "kyma_d000000000000042", deadline=soon())
    assert sandbox.voices == {}


def test_a_lost_answer_retried_is_the_designed_voice_without_a_preview(sandbox):
    client = MiniMaxClient(sandbox.base_url, lambda: KEY, retry=RetryPolicy(attempts=3, base_delay=0.01))
    sandbox.fail_next(PATH_DESIGN, "lost_answer")
    assert client.design_voice(PROMPT, "Lost answer.", "kyma_d000000000000051", deadline=soon()) is None
    assert [(c.injected, c.status_code) for c in sandbox.calls_to(PATH_DESIGN)] == [("lost_answer", 0), (None, 2039)]
    assert "kyma_d000000000000051" in sandbox.voices


def test_an_answer_without_the_voice_is_a_provider_error(sandbox, client):
    sandbox.fail_next(PATH_DESIGN, "missing_field")
    with pytest.raises(errors.ProviderError):
        client.design_voice(PROMPT, "Missing.", "kyma_d000000000000061", deadline=soon())
