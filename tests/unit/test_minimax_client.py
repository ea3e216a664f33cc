"""The MiniMax client against the MiniMax sandbox, over real HTTP on 127.0.0.1.

These tests drive the client one attempt at a time (``retry=NO_RETRY``): what each
answer means.  Retries, streaming, voice management and the sandbox's MiniMax
rules are in test_minimax_retries.py, test_minimax_stream.py and
test_minimax_sandbox.py.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import subprocess
import sys
import time
import traceback
import types
import wave

import av
import pytest
import requests
from mutagen.mp3 import MP3
from requests_toolbelt.multipart.encoder import MultipartEncoder, MultipartEncoderMonitor

from kyma.edge.errors import (
    ProviderAccountProblem,
    ProviderError,
    ProviderUnavailable,
    UpstreamError,
    UpstreamInvalidRequest,
    UpstreamVoiceMissing,
)
from kyma.providers import SynthesisRequest, minimax
from kyma.providers.minimax import NO_RETRY, MiniMaxClient
from kyma_local.sandbox import PATH_CLONE, PATH_T2A, PATH_UPLOAD, MiniMaxSandbox

KEY = "test-minimax-key-Zq81xK"
VOICE = "kyma_3f8e2a1b4c9d7e60"
AUDIO = bytes(range(256)) * 300 + b"tail"          # 76,804 bytes, every byte value
STEP = {PATH_UPLOAD: "file upload", PATH_CLONE: "voice clone", PATH_T2A: "speech synthesis"}


class SpySession(requests.Session):
    """A real session that remembers what it was asked to send."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[dict] = []
        self.before_send = None

    def request(self, method, url, **kwargs):  # type: ignore[override]
        self.sent.append({"method": method, "url": url, **kwargs})
        if self.before_send:
            self.before_send()
        return super().request(method, url, **kwargs)


@pytest.fixture
def fake():
    with MiniMaxSandbox(api_key=KEY) as server:
        yield server


@pytest.fixture
def session():
    s = SpySession()
    yield s
    s.close()


@pytest.fixture
def client(fake, session):
    return MiniMaxClient(fake.base_url, lambda: KEY, session=session, retry=NO_RETRY)


def soon(seconds: float = 10.0) -> float:
    return time.monotonic() + seconds


def speech(**overrides) -> SynthesisRequest:
    fields = {"model": "speech-2.8-hd", "text": "Hello from Kyma.", "voice_id": VOICE,
              "audio_format": "mp3"}
    fields.update(overrides)
    return SynthesisRequest(**fields)


def call_step(client: MiniMaxClient, fake: MiniMaxSandbox, path: str, deadline: float):
    """Drive the client through the endpoint `path` (clone for upload/clone)."""
    if path == PATH_T2A:
        fake.register_voice(VOICE)
        return client.synthesize(speech(), deadline=deadline)
    return client.clone_voice(AUDIO, "reference.wav", VOICE, deadline=deadline)


# --------------------------------------------------------------------------
# Happy paths
# --------------------------------------------------------------------------

def test_client_is_a_voice_provider(client):
    assert isinstance(client, MiniMaxClient) and client.name == "minimax"
    provider: MiniMaxClient = client
    assert callable(provider.clone_voice) and callable(provider.synthesize)


def test_clone_uploads_the_exact_bytes_then_registers_the_voice(fake, client):
    client.clone_voice(AUDIO, "reference.wav", VOICE, deadline=soon())

    assert [c.path for c in fake.calls] == [PATH_UPLOAD, PATH_CLONE]
    upload, clone = fake.calls
    assert upload.multipart["purpose"] == "voice_clone"
    assert upload.multipart["filename"] == "reference.wav"
    assert upload.multipart["content_type"] == "audio/wav"
    assert upload.multipart["file"] == AUDIO
    assert upload.multipart["size"] == len(AUDIO)
    assert upload.multipart["sha256"] == hashlib.sha256(AUDIO).hexdigest()
    assert upload.headers["Content-Type"].startswith("multipart/form-data; boundary=")

    file_id = fake.voices[VOICE]
    assert isinstance(file_id, int)
    assert clone.json == {"file_id": file_id, "voice_id": VOICE,
                          "need_noise_reduction": False, "need_volume_normalization": False}
    assert clone.headers["Content-Type"] == "application/json"
    for call in fake.calls:
        assert call.headers["Authorization"] == f"Bearer {KEY}"
        assert call.status_code == 0


@pytest.mark.parametrize("filename, mime", [
    ("a.mp3", "audio/mpeg"), ("b.M4A", "audio/mp4"), ("noext", "application/octet-stream"),
    ("c.xyz", "application/octet-stream"),
])
def test_upload_mime_type_follows_the_extension(fake, client, filename, mime):
    client.clone_voice(AUDIO, filename, VOICE, deadline=soon())
    assert fake.calls_to(PATH_UPLOAD)[0].multipart["content_type"] == mime


def test_upload_body_is_streamed_not_built_in_memory(fake, client, session):
    client.clone_voice(AUDIO, "reference.mp3", VOICE, deadline=soon())
    upload = session.sent[0]
    body = upload["data"]
    assert not isinstance(body, (bytes, bytearray))
    assert isinstance(body, (MultipartEncoder, MultipartEncoderMonitor))
    assert hasattr(body, "read")
    assert upload["headers"]["Content-Type"] == body.content_type
    assert upload["stream"] is True


@pytest.mark.parametrize("fmt", ["mp3", "wav"])
def test_synthesis_returns_the_exact_audio(fake, client, fmt):
    fake.register_voice(VOICE)
    result = client.synthesize(speech(audio_format=fmt, sample_rate=24000), deadline=soon())

    assert result.audio == fake.last_audio and len(result.audio) > 1000
    assert result.audio_format == fmt
    (call,) = fake.calls_to(PATH_T2A)
    assert result.trace_id == call.trace_id
    assert result.extra_info["usage_characters"] == len("Hello from Kyma.")
    assert result.extra_info["audio_size"] == len(result.audio)
    assert result.extra_info["audio_format"] == fmt
    if fmt == "wav":
        with wave.open(io.BytesIO(result.audio)) as w:
            assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (24000, 1, 2)
            assert w.getnframes() > 0
    else:       # every frame parses: a whole MP3 of the asked rate, not just its first byte
        mp3 = MP3(io.BytesIO(result.audio))
        assert (mp3.info.sample_rate, mp3.info.channels) == (24000, 1) and mp3.info.length > 0.1
        with av.open(io.BytesIO(result.audio)) as container:
            decoded = sum(frame.samples for frame in container.decode(audio=0))
        assert decoded == pytest.approx(mp3.info.length * 24000, rel=0.05)


def test_synthesis_payload_follows_the_wire_format(fake, client):
    fake.register_voice(VOICE)
    client.synthesize(speech(text="Hi there", speed=1.2, vol=2.0, pitch=-3, bitrate=64000,
                             sample_rate=44100, channel=2), deadline=soon())
    client.synthesize(speech(audio_format="wav", emotion="happy", language_boost="English"),
                      deadline=soon())
    mp3, wav = (c.json for c in fake.calls_to(PATH_T2A))
    assert mp3 == {
        "model": "speech-2.8-hd", "text": "Hi there", "stream": False, "output_format": "hex",
        "voice_setting": {"voice_id": VOICE, "speed": 1.2, "vol": 2.0, "pitch": -3},
        "audio_setting": {"sample_rate": 44100, "format": "mp3", "channel": 2, "bitrate": 64000},
    }
    assert "bitrate" not in wav["audio_setting"]
    assert wav["voice_setting"]["emotion"] == "happy"
    assert wav["language_boost"] == "English"
    assert fake.calls_to(PATH_T2A)[0].headers["Authorization"] == f"Bearer {KEY}"


def test_system_voices_need_no_clone(fake, client):
    result = client.synthesize(speech(voice_id="English_Graceful_Lady", audio_format="pcm"),
                               deadline=soon())
    assert result.audio == fake.last_audio and len(result.audio) % 2 == 0


def test_large_audio_survives_byte_for_byte(fake, client):
    fake.register_voice(VOICE)
    fake.audio_size(3_000_001)
    result = client.synthesize(speech(), deadline=soon())
    assert len(result.audio) == 3_000_001
    assert result.audio == fake.last_audio


def test_one_session_and_one_connection_for_many_calls(fake, client):
    client.clone_voice(AUDIO, "r.mp3", VOICE, deadline=soon())
    client.synthesize(speech(), deadline=soon())
    client.synthesize(speech(text="again"), deadline=soon())
    ports = {c.client_port for c in fake.calls}
    assert len(fake.calls) == 4 and len(ports) == 1


def test_the_key_is_fetched_for_every_request(fake):
    keys = []

    def key():
        keys.append(1)
        return KEY

    client = MiniMaxClient(fake.base_url, key)
    client.clone_voice(AUDIO, "r.mp3", VOICE, deadline=soon())
    client.synthesize(speech(), deadline=soon())
    assert len(keys) == 3


def test_timeouts_are_capped_by_the_deadline(fake, session):
    client = MiniMaxClient(fake.base_url, lambda: KEY, connect_timeout=3.05, read_timeout=25,
                           session=session)
    fake.register_voice(VOICE)
    client.synthesize(speech(), deadline=soon(2.0))
    connect, read = session.sent[0]["timeout"]
    assert 1.5 < connect <= 2.0 and 1.5 < read <= 2.0

    client.synthesize(speech(), deadline=soon(60))
    assert session.sent[1]["timeout"] == (3.05, 25.0)


# --------------------------------------------------------------------------
# Failures
# --------------------------------------------------------------------------

INJECTED = [
    # mode, options, provider_code, retryable, trace from the failing call
    ("http_500", {}, None, True, True),
    ("http_500", {"status": 503}, None, True, True),
    ("http_500", {"status": 429}, None, True, True),
    ("http_500", {"status": 400}, None, False, True),
    ("base_resp", {"code": 1002, "msg": "rate limit exceeded"}, 1002, True, True),
    ("base_resp", {"code": 2013, "msg": "invalid params"}, 2013, False, True),
    ("malformed_json", {}, None, True, True),
    ("missing_field", {}, None, True, True),
    ("connection_drop", {}, None, True, False),
]


@pytest.mark.parametrize("path", [PATH_UPLOAD, PATH_CLONE, PATH_T2A])
@pytest.mark.parametrize("mode, options, code, retryable, traced", INJECTED,
                         ids=[f"{m}-{o.get('status', o.get('code', ''))}" for m, o, *_ in INJECTED])
def test_each_failure_on_each_endpoint(fake, client, path, mode, options, code, retryable, traced):
    fake.fail_next(path, mode, **options)
    with pytest.raises(UpstreamError) as info:
        call_step(client, fake, path, soon())
    err = info.value
    failing = fake.calls_to(path)[-1]
    assert failing.injected == mode
    assert err.provider_code == code
    assert err.retryable is retryable
    assert err.trace_id == (failing.trace_id if traced else None)
    assert STEP[path] in err.message
    # MiniMax's error table: 1002 is a capacity limit (503 + Retry-After); 2013 is the
    # customer's value on upload and speech, our own bug on voice_clone (only our ids).
    if code == 1002:
        assert type(err) is ProviderUnavailable and (err.status, err.code) == (503, "service_unavailable")
        assert err.headers == {"Retry-After": "5"}
    elif code == 2013 and path != PATH_CLONE:
        assert type(err) is UpstreamInvalidRequest and (err.status, err.code) == (400, "invalid_request")
    else:
        assert type(err) is ProviderError and err.status == 502 and err.code == "provider_error"
    if mode == "connection_drop":
        assert err.message == f"could not reach MiniMax during {STEP[path]}"
    if mode == "base_resp":
        assert err.message == f"MiniMax {STEP[path]} failed: {options['msg']} ({code})"
    if path == PATH_UPLOAD:
        assert fake.calls_to(PATH_CLONE) == []       # no clone after a failed upload
        assert fake.voices == {}


def test_malformed_hex(fake, client):
    fake.fail_next(PATH_T2A, "malformed_hex")
    with pytest.raises(ProviderError) as info:
        call_step(client, fake, PATH_T2A, soon())
    assert info.value.message == "MiniMax speech synthesis failed: audio is not valid hex"
    assert info.value.trace_id == fake.calls_to(PATH_T2A)[-1].trace_id
    assert info.value.retryable is True


def test_duplicate_voice_id_example_message(fake, client):
    fake.fail_next(PATH_CLONE, "base_resp", code=2039, msg="duplicate voice id")
    with pytest.raises(ProviderError) as info:
        client.clone_voice(AUDIO, "r.mp3", VOICE, deadline=soon())
    assert str(info.value) == "MiniMax voice clone failed: duplicate voice id (2039)"
    assert (info.value.provider_code, info.value.retryable) == (2039, False)


@pytest.mark.parametrize("code, retryable", [
    (1000, True), (1001, True), (1002, True), (1024, True), (1039, True),
    (1026, False), (2013, False), (2038, False), (2039, False), (9999, False),
])
def test_base_resp_codes_and_retryability(fake, client, code, retryable):
    fake.fail_next(PATH_T2A, "base_resp", code=code, msg="upstream said no")
    with pytest.raises(UpstreamError) as info:
        call_step(client, fake, PATH_T2A, soon())
    assert (info.value.provider_code, info.value.retryable) == (code, retryable)
    if code in minimax.OPERATOR_CODES:          # 2038: our account's problem, not explained
        message = info.value.message
        assert message.startswith("MiniMax speech synthesis failed:") and "problem on our side" in message
    else:
        assert info.value.message == f"MiniMax speech synthesis failed: upstream said no ({code})"


@pytest.mark.parametrize("code, detail", [(1004, "invalid api key"), (1008, "insufficient balance")])
@pytest.mark.parametrize("path", [PATH_UPLOAD, PATH_T2A])
def test_operator_problems_are_hidden_from_clients_but_logged(fake, client, caplog, path, code,
                                                              detail):
    fake.fail_next(path, "base_resp", code=code, msg=detail)
    with caplog.at_level(logging.WARNING, logger="kyma.providers.minimax"), \
            pytest.raises(ProviderAccountProblem) as info:
        call_step(client, fake, path, soon())
    err = info.value
    assert err.message.startswith(f"MiniMax {STEP[path]} failed:") and "problem on our side" in err.message
    assert detail not in str(err) and str(code) not in str(err)
    assert (err.provider_code, err.retryable) == (code, False)
    (record,) = [r for r in caplog.records if r.name == "kyma.providers.minimax"]
    assert record.levelno == logging.WARNING
    assert detail in record.getMessage()
    assert (record.step, record.provider_code, record.http_status) == (STEP[path], code, 200)
    assert record.trace_id == err.trace_id == fake.calls_to(path)[-1].trace_id
    assert record.operator_problem is True


def test_a_wrong_key_is_an_operator_problem(fake):
    client = MiniMaxClient(fake.base_url, lambda: "not-the-key")
    fake.register_voice(VOICE)
    with pytest.raises(ProviderAccountProblem) as info:
        client.synthesize(speech(), deadline=soon())
    assert (info.value.provider_code, info.value.retryable) == (1004, False)
    assert "problem on our side" in info.value.message
    assert fake.calls_to(PATH_T2A)[0].status_code == 1004


def test_a_failing_key_lookup_is_a_provider_error(fake):
    def broken():
        raise RuntimeError("ssm down")

    client = MiniMaxClient(fake.base_url, broken)
    with pytest.raises(ProviderError) as info:
        client.synthesize(speech(), deadline=soon())
    assert "ssm" not in str(info.value) and "problem on our side" in str(info.value)
    assert fake.calls == []


@pytest.mark.parametrize("voice_id", ["kyma_1", "1kyma_abcdef", "kyma_abcdef_", "kyma_abc!defg"])
def test_voice_id_rules_are_enforced_by_the_fake(fake, client, voice_id):
    with pytest.raises(ProviderError) as info:
        client.clone_voice(AUDIO, "r.mp3", voice_id, deadline=soon())
    assert (info.value.provider_code, info.value.retryable) == (2013, False)
    assert "voice clone" in info.value.message


def test_a_real_duplicate_clone(fake, client):
    client.clone_voice(AUDIO, "r.mp3", VOICE, deadline=soon())
    with pytest.raises(ProviderError) as info:
        client.clone_voice(AUDIO, "r.mp3", VOICE, deadline=soon())
    assert info.value.provider_code == 2039
    assert info.value.message == "MiniMax voice clone failed: voice id already exists (2039)"


@pytest.mark.parametrize("overrides", [
    {"model": "speech-3.0-ultra"}, {"text": "x" * 10_000}, {"audio_format": "ogg"}, {"sample_rate": 12345},
])
def test_invalid_synthesis_requests_are_2013(fake, client, overrides):
    fake.register_voice(VOICE)
    with pytest.raises(UpstreamInvalidRequest) as info:
        client.synthesize(speech(**overrides), deadline=soon())
    assert (info.value.provider_code, info.value.retryable) == (2013, False)


def test_a_kyma_voice_minimax_does_not_have_is_20132(fake, client):
    # MiniMax's table: 20132 on T2A = the voice does not exist upstream (was 2013 in the old fake)
    with pytest.raises(UpstreamVoiceMissing) as info:
        client.synthesize(speech(voice_id="kyma_never_cloned_here"), deadline=soon())
    assert (info.value.provider_code, info.value.retryable) == (20132, False)
    assert (info.value.status, info.value.code) == (404, "voice_not_found")


# --------------------------------------------------------------------------
# Deadlines
# --------------------------------------------------------------------------

@pytest.mark.parametrize("path", [PATH_UPLOAD, PATH_CLONE, PATH_T2A])
def test_a_slow_minimax_gives_up_at_the_deadline(fake, client, path):
    if path == PATH_T2A:
        fake.set_delay(path, 5.0)           # slow but (eventually) successful
    else:
        fake.fail_next(path, "timeout", seconds=5.0)
    started = time.monotonic()
    with pytest.raises(ProviderError) as info:
        call_step(client, fake, path, started + 0.8)
    elapsed = time.monotonic() - started
    assert 0.6 < elapsed < 1.6
    assert info.value.message == f"MiniMax did not answer in time during {STEP[path]}"
    assert info.value.retryable is True


def test_the_read_timeout_applies_before_a_far_deadline(fake):
    client = MiniMaxClient(fake.base_url, lambda: KEY, read_timeout=0.3, retry=NO_RETRY)
    fake.register_voice(VOICE)
    fake.set_delay(PATH_T2A, 3.0)
    started = time.monotonic()
    with pytest.raises(ProviderError, match="did not answer in time during speech synthesis"):
        client.synthesize(speech(), deadline=soon(30))
    assert time.monotonic() - started < 1.0


def test_no_call_when_too_little_time_is_left(fake, client):
    with pytest.raises(ProviderError) as info:
        client.synthesize(speech(), deadline=soon(0.3))
    assert "speech synthesis" in info.value.message and info.value.retryable
    with pytest.raises(ProviderError):
        client.clone_voice(AUDIO, "r.mp3", VOICE, deadline=time.monotonic() - 1)
    assert fake.calls == []


def test_the_deadline_spans_both_clone_steps(fake, client):
    fake.set_delay(PATH_UPLOAD, 0.7)
    with pytest.raises(ProviderError) as info:
        client.clone_voice(AUDIO, "r.mp3", VOICE, deadline=soon(1.1))
    assert "voice clone" in info.value.message
    assert len(fake.calls_to(PATH_UPLOAD)) == 1 and fake.calls_to(PATH_CLONE) == []


def test_the_upload_stops_when_the_deadline_passes_while_sending(fake, client, session,
                                                                 monkeypatch, caplog):
    clock = types.SimpleNamespace(offset=0.0)
    monkeypatch.setattr("kyma.providers.minimax.upload.time", types.SimpleNamespace(
        monotonic=lambda: time.monotonic() + clock.offset))

    def jump() -> None:                     # time "passes" once the request is on its way
        clock.offset = 1000.0

    session.before_send = jump
    with caplog.at_level(logging.WARNING, logger="kyma.providers.minimax"), pytest.raises(ProviderError) as info:
        client.clone_voice(AUDIO * 20, "r.mp3", VOICE, deadline=soon())
    assert info.value.message == "MiniMax did not answer in time during file upload"
    assert "deadline passed while sending" in caplog.records[0].getMessage()
    assert fake.voices == {} and fake.files == {}


# --------------------------------------------------------------------------
# The key never leaks
# --------------------------------------------------------------------------

def test_the_key_never_appears_in_errors_or_logs(fake, client, caplog):
    errors: list[UpstreamError] = []
    scenarios = [
        (PATH_UPLOAD, "http_500", {}), (PATH_UPLOAD, "connection_drop", {}),
        (PATH_CLONE, "base_resp", {"code": 2013, "msg": f"bad header Bearer {KEY}"}),
        (PATH_CLONE, "malformed_json", {}), (PATH_T2A, "base_resp", {"code": 1004}),
        (PATH_T2A, "base_resp", {"code": 1000, "msg": f"key {KEY} rejected"}),
        (PATH_T2A, "missing_field", {}), (PATH_T2A, "malformed_hex", {}),
    ]
    with caplog.at_level(logging.DEBUG):
        for path, mode, options in scenarios:
            fake.fail_next(path, mode, **options)
            with pytest.raises(UpstreamError) as info:
                call_step(client, fake, path, soon())
            errors.append(info.value)
        fake.set_delay(PATH_T2A, 3)
        with pytest.raises(UpstreamError) as info:
            call_step(client, fake, PATH_T2A, soon(0.6))
        errors.append(info.value)
        fake.set_delay(PATH_T2A, 0)
        client.synthesize(speech(), deadline=soon())   # a success, logged at DEBUG

    assert len(caplog.records) >= len(errors)
    texts = [caplog.text, repr(client)]
    for err in errors:
        # the requests exception (its .request holds the headers) is not chained
        assert err.__cause__ is None
        assert err.__context__ is None or err.__suppress_context__
        texts += [str(err), repr(err), repr(err.args), repr(vars(err)),
                  "".join(traceback.format_exception(err))]
    for record in caplog.records:
        texts += [record.getMessage(), repr(vars(record))]
    for text in texts:
        assert KEY not in text
    assert any("[redacted]" in r.getMessage() for r in caplog.records)


def test_every_provider_error_is_logged_with_structure(fake, client, caplog):
    fake.fail_next(PATH_T2A, "http_500", status=502)
    with caplog.at_level(logging.WARNING, logger="kyma.providers.minimax"), pytest.raises(ProviderError) as info:
        call_step(client, fake, PATH_T2A, soon())
    (record,) = caplog.records
    assert record.name == "kyma.providers.minimax" and record.levelno == logging.WARNING
    assert record.step == "speech synthesis"
    assert record.http_status == 502 and record.provider_code is None
    assert record.trace_id == info.value.trace_id == fake.calls_to(PATH_T2A)[0].trace_id


# --------------------------------------------------------------------------
# Module hygiene and the fake itself
# --------------------------------------------------------------------------

def test_import_is_light():
    code = ("import sys, kyma.providers.minimax as m; "
            "heavy = {'boto3', 'botocore', 'lameenc', 'av', 'aws_lambda_powertools'}; "
            "print(sorted(heavy & {n.split('.')[0] for n in sys.modules}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_fake_audio_is_deterministic_and_grows_with_the_text(fake, client):
    fake.register_voice(VOICE)
    a = client.synthesize(speech(text="short text"), deadline=soon()).audio
    b = client.synthesize(speech(text="short text"), deadline=soon()).audio
    c = client.synthesize(speech(text="a considerably longer text " * 4), deadline=soon()).audio
    assert a == b and len(c) > len(a)
    flac = client.synthesize(speech(audio_format="flac"), deadline=soon())
    assert flac.audio[:4] == b"fLaC" and flac.extra_info["audio_format"] == "flac"


def test_fake_speaks_minimax_on_the_wire(fake):
    # no bearer: HTTP 200 with base_resp 1004, trace id in the body and the header
    r = requests.post(fake.base_url + PATH_T2A, json={"model": "speech-2.8-hd"}, timeout=5)
    assert r.status_code == 200
    assert r.json()["base_resp"]["status_code"] == 1004
    assert r.json()["trace_id"] == r.headers["Trace-Id"]
    # upload answer: the file object and base_resp
    r = requests.post(fake.base_url + PATH_UPLOAD, headers={"Authorization": f"Bearer {KEY}"},
                      files={"file": ("x.mp3", b"abc")}, data={"purpose": "voice_clone"},
                      timeout=5)
    body = r.json()
    assert body["base_resp"] == {"status_code": 0, "status_msg": "success"}
    assert set(body["file"]) == {"file_id", "bytes", "created_at", "filename", "purpose"}
    assert body["file"]["bytes"] == 3 and isinstance(body["file"]["file_id"], int)
    # wrong purpose and an empty file are invalid params
    for data, content in (({"purpose": "prompt_audio"}, b"abc"), ({"purpose": "voice_clone"}, b"")):
        r = requests.post(fake.base_url + PATH_UPLOAD, files={"file": ("x.mp3", content)},
                          data=data, headers={"Authorization": f"Bearer {KEY}"}, timeout=5)
        assert r.json()["base_resp"]["status_code"] == 2013
    # unknown file id on clone
    r = requests.post(fake.base_url + PATH_CLONE, headers={"Authorization": f"Bearer {KEY}"},
                      json={"file_id": 1, "voice_id": VOICE}, timeout=5)
    assert r.json()["base_resp"]["status_code"] == 2013


# ── subtitles (subtitle_enable) and pronunciation_dict ──────────────────
def test_the_subtitle_file_is_fetched_without_our_key_and_read(client, fake, session):
    fake.register_voice(VOICE)
    result = client.synthesize(speech(text="One two. Three!", subtitles="word", pronunciation=("One/Won",)),
                               deadline=soon())
    assert [s.text for s in result.segments] == ["One two.", "Three!"]
    assert [w.word for s in result.segments for w in s.words] == ["One", "two.", "Three!"]
    sent = fake.calls_to(PATH_T2A)[-1].json
    assert (sent["subtitle_enable"], sent["subtitle_type"]) == (True, "word")
    assert sent["pronunciation_dict"] == {"tone": ["One/Won"]}
    (fetch,) = [s for s in session.sent if s["method"] == "GET"]
    assert "/files/subtitles/" in fetch["url"] and "Authorization" not in (fetch.get("headers") or {})
    assert KEY not in repr(fetch)


def test_without_subtitles_nothing_about_them_is_sent(client, fake):
    fake.register_voice(VOICE)
    assert client.synthesize(speech(), deadline=soon()).segments == ()
    sent = fake.calls_to(PATH_T2A)[-1].json
    assert "subtitle_enable" not in sent and "pronunciation_dict" not in sent


def test_a_subtitle_file_over_plain_http_is_refused_when_minimax_is_reached_over_https():
    payload = {"data": {"audio": "4944", "status": 2, "subtitle_file": "http://files.example/s.json"},
               "base_resp": {"status_code": 0, "status_msg": "success"}}

    class Fixed(requests.Session):
        def post(self, url, **kwargs):  # type: ignore[override]
            response = requests.Response()
            response.status_code, response.raw = 200, io.BytesIO(json.dumps(payload).encode())
            response.headers["Content-Type"] = "application/json"
            return response

        def get(self, url, **kwargs):  # type: ignore[override]
            raise AssertionError("fetched a plain-http subtitle file")

    https_client = MiniMaxClient("https://api.minimax.io", lambda: KEY, session=Fixed(), retry=NO_RETRY)
    with pytest.raises(ProviderError):
        https_client.synthesize(speech(subtitles="sentence"), deadline=soon())


@pytest.mark.parametrize("mode", ["subtitle_missing", "subtitle_broken"])
def test_a_missing_or_broken_subtitle_file_is_a_logged_provider_error(client, fake, caplog, mode):
    fake.register_voice(VOICE)
    fake.fail_next(PATH_T2A, mode)
    with caplog.at_level(logging.WARNING, logger="kyma.providers.minimax"), pytest.raises(ProviderError):
        client.synthesize(speech(subtitles="word"), deadline=soon())
    (record,) = [r for r in caplog.records if getattr(r, "step", None) == "speech subtitles"]
    assert record.trace_id == fake.calls_to(PATH_T2A)[-1].trace_id and record.error_class == "ProviderError"


def test_streamed_segments_come_with_the_chunk_that_ends_them(client, fake):
    fake.register_voice(VOICE)
    stream = client.synthesize_stream(speech(text="First one. Second one.", subtitles="word"), deadline=soon())
    seen = []
    with stream:
        for index, _chunk in enumerate(stream):
            seen.extend((index, s.text) for s in stream.take_segments())
    assert [text for _, text in seen] == ["First one.", "Second one."]
    assert seen[0][0] < seen[1][0]            # the first sentence's timings arrive before the stream ends
