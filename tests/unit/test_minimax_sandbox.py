"""MiniMax's rules as the sandbox models them, held against the real client over HTTP:
voice management, the 7-day rule, validation, and the failure controls (Python and HTTP)."""

from __future__ import annotations

import time

import pytest
import requests

from kyma.edge import errors
from kyma.providers import SynthesisRequest
from kyma.providers.minimax import NO_RETRY, MiniMaxClient
from kyma_local.sandbox import PATH_CLONE, PATH_DELETE_VOICE, PATH_GET_VOICE, PATH_T2A, MiniMaxSandbox
from kyma_local.sandbox.control import SandboxControl
from kyma_local.sandbox.validation import LANGUAGE_BOOSTS, invisible_ratio

KEY = "test-minimax-key-rules"
AUDIO = b"ID3" + bytes(range(256)) * 64
WINDOW = 0.6


@pytest.fixture
def sandbox():
    with MiniMaxSandbox(api_key=KEY, voice_window_seconds=WINDOW, first_chunk_ms=20, chunk_interval_ms=5) as s:
        yield s


@pytest.fixture
def client(sandbox):
    return MiniMaxClient(sandbox.base_url, lambda: KEY, retry=NO_RETRY)


def soon() -> float:
    return time.monotonic() + 10


def speech(voice_id: str = "English_expressive_narrator", **overrides) -> SynthesisRequest:
    fields = {"model": "speech-2.8-hd", "text": "Rules are rules.", "voice_id": voice_id, "audio_format": "mp3"}
    return SynthesisRequest(**{**fields, **overrides})


def raw(sandbox: MiniMaxSandbox, path: str, body: dict) -> dict:
    response = requests.post(sandbox.base_url + path, json=body, headers={"Authorization": f"Bearer {KEY}"},
                             timeout=10)
    return response.json()


def cloned_listed(sandbox: MiniMaxSandbox) -> list[str]:
    return [v["voice_id"] for v in raw(sandbox, PATH_GET_VOICE, {"voice_type": "voice_cloning"})["voice_cloning"]]


# --- system voices ------------------------------------------------------------

def test_system_voices_come_from_get_voice(sandbox, client):
    voices = client.system_voices(deadline=soon())
    ids = [v["voice_id"] for v in voices]
    assert len(voices) >= 20 and len(set(ids)) == len(ids)
    assert {"English_expressive_narrator", "Cantonese_ProfessionalHost（F)",
            "Chinese (Mandarin)_News_Anchor"} <= set(ids)
    assert all(set(v) == {"voice_id", "name", "description"} and v["name"] and v["description"] for v in voices)
    (call,) = sandbox.calls_to(PATH_GET_VOICE)
    assert call.json == {"voice_type": "system"}


def test_an_id_with_spaces_and_full_width_parentheses_speaks(sandbox, client):
    for voice in ("Cantonese_ProfessionalHost（F)", "Chinese (Mandarin)_News_Anchor"):
        assert client.synthesize(speech(voice), deadline=soon()).audio
        assert sandbox.calls_to(PATH_T2A)[-1].json["voice_setting"]["voice_id"] == voice


def test_get_voice_shapes(sandbox):
    everything = raw(sandbox, PATH_GET_VOICE, {"voice_type": "all"})
    assert set(everything) == {"system_voice", "voice_cloning", "voice_generation", "trace_id", "base_resp"}
    entry = everything["system_voice"][0]
    assert set(entry) == {"voice_id", "voice_name", "description", "created_time"}
    assert isinstance(entry["description"], list)
    assert raw(sandbox, PATH_GET_VOICE, {"voice_type": "robots"})["base_resp"]["status_code"] == 2013


def test_a_malformed_voice_list_is_a_provider_error(sandbox, client):
    sandbox.fail_next(PATH_GET_VOICE, "missing_field")
    with pytest.raises(errors.ProviderError, match="no system_voice"):
        client.system_voices(deadline=soon())
    sandbox.fail_next(PATH_GET_VOICE, "base_resp", code=2013)
    with pytest.raises(errors.ProviderError) as info:               # no customer value: our bug, not a 400
        client.system_voices(deadline=soon())
    assert type(info.value) is errors.ProviderError


# --- cloned voices: listing, deleting, the 7-day rule ------------------------------

def test_a_clone_is_listed_only_once_used(sandbox, client):
    client.clone_voice(AUDIO, "r.mp3", "kyma_1000000000000001", deadline=soon())
    assert cloned_listed(sandbox) == []
    client.synthesize(speech("kyma_1000000000000001"), deadline=soon())
    assert cloned_listed(sandbox) == ["kyma_1000000000000001"]
    (entry,) = raw(sandbox, PATH_GET_VOICE, {"voice_type": "voice_cloning"})["voice_cloning"]
    assert entry["description"] == [] and len(entry["created_time"]) == len("2026-01-01")


def test_delete_voice(sandbox, client):
    voice = "kyma_1000000000000002"
    client.clone_voice(AUDIO, "r.mp3", voice, deadline=soon())
    client.synthesize(speech(voice), deadline=soon())
    assert client.delete_voice(voice, deadline=soon()) is True
    assert sandbox.calls_to(PATH_DELETE_VOICE)[0].json == {"voice_type": "voice_cloning", "voice_id": voice}
    with pytest.raises(errors.UpstreamVoiceMissing):                 # gone for speech
        client.synthesize(speech(voice), deadline=soon())
    assert cloned_listed(sandbox) == []
    assert client.delete_voice(voice, deadline=soon()) is False      # unknown now (20132): already gone
    assert client.delete_voice("kyma_00000000000000aa", deadline=soon()) is False
    assert [c.status_code for c in sandbox.calls_to(PATH_DELETE_VOICE)] == [0, 20132, 20132]
    with pytest.raises(errors.ProviderError) as info:                 # a deleted id is never reused
        client.clone_voice(AUDIO, "r.mp3", voice, deadline=soon())
    assert info.value.provider_code == 2039


def test_delete_voice_answers(sandbox):
    sandbox.register_voice("kyma_1000000000000003")
    answer = raw(sandbox, PATH_DELETE_VOICE, {"voice_type": "voice_cloning", "voice_id": "kyma_1000000000000003"})
    assert answer["voice_id"] == "kyma_1000000000000003" and answer["base_resp"]["status_code"] == 0
    assert answer["created_time"].isdigit()
    for body in ({"voice_type": "system", "voice_id": "x"}, {"voice_type": "voice_cloning"},
                 {"voice_type": "voice_cloning", "voice_id": "English_expressive_narrator"}):
        assert raw(sandbox, PATH_DELETE_VOICE, body)["base_resp"]["status_code"] == 2013


def test_an_unused_clone_is_deleted_after_its_window(sandbox, client):
    voice = "kyma_2000000000000001"
    client.clone_voice(AUDIO, "r.mp3", voice, deadline=soon())
    time.sleep(WINDOW + 0.2)
    with pytest.raises(errors.UpstreamVoiceMissing) as info:
        client.synthesize(speech(voice), deadline=soon())
    assert info.value.provider_code == 20132
    assert sandbox.registry.get(voice).deleted_because == "unused"
    with pytest.raises(errors.ProviderError):                         # and its id is spent
        client.clone_voice(AUDIO, "r.mp3", voice, deadline=soon())


def test_a_clone_used_within_its_window_survives_past_it(sandbox, client):
    voice = "kyma_2000000000000002"
    client.clone_voice(AUDIO, "r.mp3", voice, deadline=soon())
    client.synthesize(speech(voice), deadline=soon())
    time.sleep(WINDOW + 0.2)
    assert client.synthesize(speech(voice, text="Still here."), deadline=soon()).audio
    assert cloned_listed(sandbox) == [voice]


def test_a_streamed_synthesis_counts_as_use(sandbox, client):
    voice = "kyma_2000000000000003"
    client.clone_voice(AUDIO, "r.mp3", voice, deadline=soon())
    assert b"".join(client.synthesize_stream(speech(voice), deadline=soon()))
    time.sleep(WINDOW + 0.2)
    assert client.synthesize(speech(voice), deadline=soon()).audio


def test_the_clone_preview_does_not_count_as_use(sandbox, client):
    voice = "kyma_2000000000000004"
    client.clone_voice(AUDIO, "r.mp3", "kyma_2000000000000005", deadline=soon())
    file_id = max(sandbox.files)
    answer = raw(sandbox, PATH_CLONE, {"file_id": file_id, "voice_id": voice, "text": "A preview.",
                                       "model": "speech-2.8-hd"})
    assert answer["base_resp"]["status_code"] == 0
    time.sleep(WINDOW + 0.2)
    with pytest.raises(errors.UpstreamVoiceMissing):
        client.synthesize(speech(voice), deadline=soon())


def test_the_default_window_is_seven_days_and_the_clock_can_move(client):
    with MiniMaxSandbox(api_key=KEY) as sandbox:
        week = MiniMaxClient(sandbox.base_url, lambda: KEY, retry=NO_RETRY)
        assert sandbox.registry.window_seconds == 7 * 24 * 3600
        week.clone_voice(AUDIO, "r.mp3", "kyma_3000000000000001", deadline=soon())
        week.clone_voice(AUDIO, "r.mp3", "kyma_3000000000000002", deadline=soon())
        sandbox.advance_clock(6 * 24 * 3600)
        week.synthesize(speech("kyma_3000000000000002"), deadline=soon())       # used on day 6
        sandbox.advance_clock(2 * 24 * 3600)                                     # day 8
        with pytest.raises(errors.UpstreamVoiceMissing):
            week.synthesize(speech("kyma_3000000000000001"), deadline=soon())
        assert week.synthesize(speech("kyma_3000000000000002"), deadline=soon()).audio


def test_the_sandbox_reads_its_settings_from_the_environment():
    sandbox = MiniMaxSandbox.from_env({"KYMA_SANDBOX_VOICE_WINDOW_SECONDS": "42", "KYMA_SANDBOX_FIRST_CHUNK_MS": "120",
                                       "KYMA_SANDBOX_CHUNK_MS": "100", "KYMA_SANDBOX_CHUNK_INTERVAL_MS": "15"},
                                      api_key="k")
    assert (sandbox.registry.window_seconds, sandbox.first_chunk_ms, sandbox.chunk_ms,
            sandbox.chunk_interval_ms) == (42, 120, 100, 15)
    defaults = MiniMaxSandbox.from_env({})
    assert (defaults.registry.window_seconds, defaults.first_chunk_ms) == (7 * 24 * 3600, 300)
    with pytest.raises(ValueError, match="loopback"):
        MiniMaxSandbox(host="0.0.0.0")     # noqa: S104 -- the point: refused


# --- validation -----------------------------------------------------------------

@pytest.mark.parametrize("model, emotion, ok", [
    ("speech-2.8-hd", "happy", True), ("speech-2.8-turbo", "calm", True), ("speech-01-hd", "disgusted", True),
    ("speech-2.6-hd", "whisper", True), ("speech-2.6-turbo", "fluent", True),
    ("speech-2.8-hd", "whisper", False), ("speech-2.8-turbo", "fluent", False), ("speech-02-hd", "whisper", False),
    ("speech-02-turbo", "fluent", False), ("speech-2.6-hd", "smug", False), ("speech-2.6-hd", "Happy", False),
])
def test_emotions_per_model(client, model, emotion, ok):
    request = speech(model=model, emotion=emotion)
    if ok:
        assert client.synthesize(request, deadline=soon()).audio
    else:
        with pytest.raises(errors.UpstreamInvalidRequest) as info:
            client.synthesize(request, deadline=soon())
        assert info.value.provider_code == 2013 and emotion in info.value.message


def test_every_language_boost_of_minimaxs_list_is_accepted(client):
    assert len(LANGUAGE_BOOSTS) == 41 and {"auto", "Chinese,Yue", "English", "Afrikaans"} <= LANGUAGE_BOOSTS
    for boost in sorted(LANGUAGE_BOOSTS):
        assert client.synthesize(speech(language_boost=boost, text="Ok."), deadline=soon()).audio


@pytest.mark.parametrize("boost", ["english", "Klingon", "Chinese, Yue", "Cantonese", "AUTO", "en"])
def test_other_language_boosts_are_2013(client, boost):
    with pytest.raises(errors.UpstreamInvalidRequest):
        client.synthesize(speech(language_boost=boost), deadline=soon())


def test_invisible_characters_over_ten_percent_are_1042(client):
    hidden = "\u200b"
    at_limit = "a" * 90 + hidden * 10                           # exactly 10 %: accepted
    over = "a" * 89 + hidden * 11
    assert invisible_ratio(at_limit) == pytest.approx(0.10) and invisible_ratio("line\nbreak\ttab") == 0
    assert client.synthesize(speech(text=at_limit), deadline=soon()).audio
    with pytest.raises(errors.ContentRejected) as info:
        client.synthesize(speech(text=over), deadline=soon())
    assert info.value.provider_code == 1042 and (info.value.status, info.value.code) == (400, "content_rejected")


def test_text_length_is_fewer_than_ten_thousand_characters(client):
    assert client.synthesize(speech(text="x" * 9_999), deadline=soon()).audio
    with pytest.raises(errors.UpstreamInvalidRequest):
        client.synthesize(speech(text="x" * 10_000), deadline=soon())


def test_unknown_voices_are_20132(client):
    for voice in ("kyma_ffffffffffffffff", "English_Nobody_Here"):
        with pytest.raises(errors.UpstreamVoiceMissing):
            client.synthesize(speech(voice), deadline=soon())


# --- failure controls -------------------------------------------------------------

def test_fail_when_matches_and_counts(sandbox, client):
    rule = sandbox.fail_when(PATH_T2A, 1026, match="forbidden words", times=2)
    for _ in range(2):
        with pytest.raises(errors.ContentRejected):
            client.synthesize(speech(text="Some forbidden words."), deadline=soon())
    assert client.synthesize(speech(text="Some forbidden words."), deadline=soon()).audio   # times used up
    assert client.synthesize(speech(text="Innocent."), deadline=soon()).audio
    assert rule.hits == 2
    sandbox.fail_when(PATH_T2A, "http_500", match=lambda call: call.json["model"] == "speech-02-hd")
    with pytest.raises(errors.ProviderError):
        client.synthesize(speech(model="speech-02-hd"), deadline=soon())
    assert client.synthesize(speech(model="speech-02-turbo"), deadline=soon()).audio
    sandbox.clear_failures()
    assert client.synthesize(speech(model="speech-02-hd"), deadline=soon()).audio


def test_any_code_can_be_injected(sandbox, client):
    sandbox.fail_next(PATH_T2A, "base_resp", code=31337, msg="new upstream trouble")
    with pytest.raises(errors.ProviderError) as info:
        client.synthesize(speech(), deadline=soon())
    assert info.value.provider_code == 31337 and "new upstream trouble" in info.value.message
    with pytest.raises(ValueError):
        sandbox.fail_next(PATH_CLONE, "stream_error")         # streams only exist on t2a_v2
    with pytest.raises(ValueError):
        sandbox.fail_when("/v1/nope", 1000)


def test_the_http_control_endpoint(sandbox, client):
    control = SandboxControl(sandbox.base_url)
    assert control.config()["voice_window_seconds"] == WINDOW
    control.fail_when(PATH_T2A, 1002, match="over http", times=1)
    with pytest.raises(errors.ProviderUnavailable):
        client.synthesize(speech(text="Driven over http."), deadline=soon())
    control.fail_next(PATH_T2A, "stream_drop", after_chunks=1)
    stream = client.synthesize_stream(speech(), deadline=soon())
    with pytest.raises(errors.ProviderError):
        list(stream)
    control.register_voice("kyma_4000000000000001")
    assert client.synthesize(speech("kyma_4000000000000001"), deadline=soon()).audio
    calls = control.calls()
    assert [c["status_code"] for c in calls] == [1002, None, 0]
    assert calls[1]["stream"] is True and calls[1]["chunks_sent"] == 1 and calls[1]["injected"] == "stream_drop"
    assert control.voices()["kyma_4000000000000001"]["uses"] == 1
    control.advance_clock(3600)
    control.set_delay(PATH_T2A, 0.3)
    control.audio_size(1234)
    started = time.monotonic()
    assert len(client.synthesize(speech(), deadline=soon()).audio) == 1234
    assert time.monotonic() - started >= 0.3
    control.reset(voices=True)
    assert control.calls() == [] and control.voices() == {}
    assert len(client.synthesize(speech(), deadline=soon()).audio) != 1234
    bad = requests.post(sandbox.base_url + "/__sandbox/explode", json={}, timeout=5)
    assert bad.status_code == 400 and "unknown control" in bad.json()["error"]
    assert requests.post(sandbox.base_url + "/__sandbox/fail_when", json={"path": PATH_T2A}, timeout=5
                         ).status_code == 400
