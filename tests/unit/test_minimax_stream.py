"""Streamed speech: `MiniMaxClient.synthesize_stream` against the sandbox's Server-Sent Events."""

from __future__ import annotations

import io
import json
import logging
import random
import threading
import time

import pytest
import requests

from kyma.edge import errors
from kyma.providers import SynthesisRequest
from kyma.providers.minimax import MiniMaxClient, RetryPolicy, SpeechStream
from kyma.providers.minimax.stream import sse_line
from kyma_local.sandbox import PATH_T2A, MiniMaxSandbox

KEY = "test-minimax-key-stream"
VOICE = "English_expressive_narrator"
TEXT = "A stream of speech, long enough for many chunks."       # 300 ms + 49 × 60 ms ≈ 3.2 s of audio
FIRST_CHUNK_MS = 300
INTERVAL_MS = 30
FAST = RetryPolicy(attempts=3, base_delay=0.02, max_delay=0.08)


@pytest.fixture
def sandbox():
    with MiniMaxSandbox(api_key=KEY, first_chunk_ms=FIRST_CHUNK_MS, chunk_ms=160,
                        chunk_interval_ms=INTERVAL_MS) as running:
        yield running


@pytest.fixture
def client(sandbox):
    c = MiniMaxClient(sandbox.base_url, lambda: KEY, retry=FAST, rng=random.Random(3))
    yield c
    c.close()


def speech(**overrides) -> SynthesisRequest:
    fields = {"model": "speech-2.8-turbo", "text": TEXT, "voice_id": VOICE, "audio_format": "mp3"}
    return SynthesisRequest(**{**fields, **overrides})


def soon(seconds: float = 20.0) -> float:
    return time.monotonic() + seconds


def test_chunks_arrive_progressively_after_the_first_chunk_delay(sandbox, client):
    started = time.monotonic()
    stream = client.synthesize_stream(speech(), deadline=soon())
    received = [(time.monotonic(), chunk) for chunk in stream]
    (call,) = sandbox.calls_to(PATH_T2A)
    first_at, last_at = received[0][0], received[-1][0]
    assert len(received) >= 10 and len(received) == call.chunks_sent == stream.chunks_received
    assert first_at - started >= FIRST_CHUNK_MS / 1000                # the sandbox's time to first audio
    assert first_at - started < FIRST_CHUNK_MS / 1000 + 0.5
    assert last_at - first_at >= (len(received) - 1) * INTERVAL_MS / 1000 * 0.8
    # not buffered: the first chunk was in our hands before the sandbox had even sent the last
    assert first_at < call.chunk_times[-1]
    assert all(0 < len(chunk) < len(sandbox.last_audio) / 4 for _, chunk in received)


def test_the_first_chunk_delay_is_configurable(sandbox):
    with MiniMaxSandbox(api_key=KEY, first_chunk_ms=900, chunk_interval_ms=10) as slow:
        client = MiniMaxClient(slow.base_url, lambda: KEY)
        started = time.monotonic()
        stream = client.synthesize_stream(speech(text="Slow start."), deadline=soon())
        assert time.monotonic() - started >= 0.9
        assert b"".join(stream)


@pytest.mark.parametrize("fmt, rate, channels", [("mp3", 32000, 1), ("mp3", 24000, 2), ("pcm", 16000, 1),
                                                 ("pcm", 44100, 2), ("flac", 22050, 1), ("flac", 32000, 2)])
def test_concatenated_chunks_equal_the_non_stream_audio(sandbox, client, fmt, rate, channels):
    request = speech(audio_format=fmt, sample_rate=rate, channel=channels)
    streamed = client.synthesize_stream(request, deadline=soon())
    chunks = list(streamed)
    whole = client.synthesize(request, deadline=soon())
    assert len(chunks) > 5 and b"".join(chunks) == whole.audio          # byte for byte
    assert streamed.extra_info["audio_size"] == len(whole.audio) == streamed.bytes_received
    if fmt == "pcm":
        assert all(len(c) % (2 * channels) == 0 for c in chunks)       # whole sample frames
    if fmt == "flac":
        assert chunks[0][:4] == b"fLaC" and all(c[:2] == b"\xff\xf8" for c in chunks[1:])   # whole frames


def test_the_request_excludes_the_aggregated_audio_and_reports_usage(sandbox, client):
    stream = client.synthesize_stream(speech(), deadline=soon())
    audio = b"".join(stream)
    (call,) = sandbox.calls_to(PATH_T2A)
    assert call.json["stream"] is True and call.json["stream_options"] == {"exclude_aggregated_audio": True}
    assert stream.complete and call.finished
    assert stream.trace_id == call.trace_id
    assert stream.usage_characters == len(TEXT) and stream.extra_info["audio_format"] == "mp3"
    assert audio == sandbox.last_audio


def test_a_finished_stream_gives_its_connection_back(sandbox, client):
    for text in ("One.", "Two.", "Three."):
        assert b"".join(client.synthesize_stream(speech(text=text), deadline=soon()))
    assert client.synthesize(speech(text="Four."), deadline=soon()).audio
    assert len({c.client_port for c in sandbox.calls_to(PATH_T2A)}) == 1       # one keep-alive connection


def test_an_aggregated_final_chunk_is_never_played_twice(sandbox, client):
    sandbox.always_aggregate = True                  # a MiniMax that ignores exclude_aggregated_audio
    stream = client.synthesize_stream(speech(), deadline=soon())
    audio = b"".join(stream)
    assert audio == sandbox.last_audio and stream.complete
    assert stream.chunks_received == sandbox.calls_to(PATH_T2A)[0].chunks_sent


def test_the_sandbox_sends_the_aggregate_unless_excluded(sandbox):
    # the wire format itself: without stream_options the last event repeats the whole audio
    body = {"model": "speech-02-hd", "text": "Aggregate me.", "stream": True,
            "voice_setting": {"voice_id": VOICE}, "audio_setting": {"format": "pcm", "sample_rate": 16000}}
    response = requests.post(sandbox.base_url + PATH_T2A, json=body, headers={"Authorization": f"Bearer {KEY}"},
                             timeout=10)
    assert response.headers["Content-Type"] == "text/event-stream"
    events = [json.loads(line[len("data: "):]) for line in response.text.split("\n\n") if line]
    *chunks, final = events
    assert all(e["data"]["status"] == 1 and e["base_resp"]["status_code"] == 0 for e in chunks)
    assert final["data"]["status"] == 2 and final["base_resp"] == {"status_code": 0, "status_msg": "success"}
    assert "extra_info" in final and all("extra_info" not in e for e in chunks)
    assert final["data"]["audio"] == "".join(e["data"]["audio"] for e in chunks)
    assert {e["trace_id"] for e in events} == {response.headers["Trace-Id"]}


def test_wav_cannot_stream(sandbox, client):
    with pytest.raises(errors.UpstreamInvalidRequest) as info:
        client.synthesize_stream(speech(audio_format="wav"), deadline=soon())
    assert info.value.provider_code == 2013 and len(sandbox.calls_to(PATH_T2A)) == 1


def test_a_refusal_raises_before_any_audio(sandbox, client):
    with pytest.raises(errors.UpstreamVoiceMissing):
        client.synthesize_stream(speech(voice_id="kyma_00000000000000ff"), deadline=soon())
    with pytest.raises(errors.UpstreamInvalidRequest):
        client.synthesize_stream(speech(emotion="whisper"), deadline=soon())        # not on speech-2.8


@pytest.mark.parametrize("code, kind", [(1000, errors.ProviderError), (1027, errors.ContentRejected),
                                        (1002, errors.ProviderUnavailable)])
def test_an_error_event_mid_stream_raises_and_is_not_retried(sandbox, client, caplog, code, kind):
    sandbox.fail_next(PATH_T2A, "stream_error", code=code, after_chunks=3)
    stream = client.synthesize_stream(speech(), deadline=soon())
    got: list[bytes] = []
    with caplog.at_level(logging.WARNING, logger="kyma.providers.minimax"), pytest.raises(kind) as info:
        got.extend(stream)
    (call,) = sandbox.calls_to(PATH_T2A)
    assert len(got) == 3 and info.value.provider_code == code
    assert info.value.trace_id == call.trace_id == stream.trace_id
    assert not stream.complete
    (record,) = caplog.records
    assert record.trace_id == call.trace_id and record.will_retry is False


def test_a_dropped_connection_mid_stream_raises(sandbox, client):
    sandbox.fail_next(PATH_T2A, "stream_drop", after_chunks=2)
    stream = client.synthesize_stream(speech(), deadline=soon())
    got = []
    with pytest.raises(errors.ProviderError) as info:
        got.extend(stream)
    assert len(got) == 2 and info.value.retryable is True
    assert info.value.message == "could not reach MiniMax during streamed speech synthesis"
    assert len(sandbox.calls_to(PATH_T2A)) == 1


def test_failures_before_the_first_chunk_are_retried(sandbox, client):
    sandbox.fail_next(PATH_T2A, "stream_error", code=1002, after_chunks=0)   # an error event, no audio yet
    sandbox.fail_next(PATH_T2A, "stream_drop", after_chunks=0)
    audio = b"".join(client.synthesize_stream(speech(), deadline=soon()))
    calls = sandbox.calls_to(PATH_T2A)
    assert [c.injected for c in calls] == ["stream_error", "stream_drop", None]
    assert audio == sandbox.last_audio


def test_persistent_failures_before_the_first_chunk_give_up(sandbox, client):
    sandbox.fail_when(PATH_T2A, "stream_drop", after_chunks=0)
    with pytest.raises(errors.ProviderError):
        client.synthesize_stream(speech(), deadline=soon())
    assert len(sandbox.calls_to(PATH_T2A)) == FAST.attempts


def test_stopping_early_releases_the_connection(sandbox, client):
    stream = client.synthesize_stream(speech(text=TEXT * 4), deadline=soon())
    for n, _ in enumerate(stream, 1):
        if n == 2:
            break
    (call,) = sandbox.calls_to(PATH_T2A)
    waited = time.monotonic() + 3
    while not call.client_closed and time.monotonic() < waited:
        time.sleep(0.02)
    assert call.client_closed and not call.finished                  # the sandbox saw us hang up
    assert call.chunks_sent < 40
    assert not stream.complete and stream.chunks_received == 2
    # and the client works on
    assert client.synthesize(speech(text="Next."), deadline=soon()).audio


def test_closing_without_iterating_releases_the_connection(sandbox, client):
    with client.synthesize_stream(speech(text=TEXT * 4), deadline=soon()) as stream:
        assert isinstance(stream, SpeechStream)
    (call,) = sandbox.calls_to(PATH_T2A)
    waited = time.monotonic() + 3
    while not call.client_closed and time.monotonic() < waited:
        time.sleep(0.02)
    assert call.client_closed and call.chunks_sent < 20
    assert list(stream) == []                       # closed: nothing more, not even the buffered chunk
    with pytest.raises(RuntimeError):
        iter(stream)                                # and one iteration only


def test_the_deadline_bounds_the_whole_stream(sandbox):
    with MiniMaxSandbox(api_key=KEY, first_chunk_ms=50, chunk_interval_ms=300) as slow:
        client = MiniMaxClient(slow.base_url, lambda: KEY)
        started = time.monotonic()
        stream = client.synthesize_stream(speech(), deadline=started + 1.2)
        with pytest.raises(errors.ProviderError, match="did not answer in time"):
            list(stream)
        assert time.monotonic() - started < 2.0


def test_start_by_bounds_the_wait_for_the_first_chunk_and_not_the_stream():
    with MiniMaxSandbox(api_key=KEY, first_chunk_ms=1500, chunk_interval_ms=60) as slow:
        client = MiniMaxClient(slow.base_url, lambda: KEY, retry=FAST)
        started = time.monotonic()
        with pytest.raises(errors.ProviderError):              # silent past start_by: given up, retries included
            client.synthesize_stream(speech(), deadline=soon(), start_by=time.monotonic() + 0.8)
        assert time.monotonic() - started < 1.3
        slow.first_chunk_ms = 100
        started = time.monotonic()
        stream = client.synthesize_stream(speech(), deadline=soon(), start_by=time.monotonic() + 0.8)
        assert b"".join(stream) == slow.last_audio and time.monotonic() - started > 1.0   # the stream ran on


def test_one_consumer_per_stream_in_parallel(sandbox, client):
    results: dict[int, bytes] = {}

    def run(i: int) -> None:
        results[i] = b"".join(client.synthesize_stream(speech(text=f"Parallel {i} " * 3), deadline=soon()))

    threads = [threading.Thread(target=run, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(results) == 3 and len(set(results.values())) == 3


# --- the event-stream parser, on framings MiniMax could use -----------------

def events_of(raw: bytes) -> list[dict]:
    response = requests.Response()
    response.raw = io.BytesIO(raw)
    response.status_code = 200
    stream = SpeechStream.__new__(SpeechStream)
    SpeechStream.__init__(stream, None, response, "mp3", soon(), "k")  # type: ignore[arg-type]
    return list(stream._read_events())


@pytest.mark.parametrize("raw", [
    b'data: {"a": 1}\n\ndata: {"a": 2}\n\n',                    # SSE: blank line after each event
    b'data:{"a": 1}\ndata:{"a": 2}\n',                          # one JSON per line, no blank lines
    b'data: {"a": 1}\r\n\r\ndata: {"a": 2}\r\n\r\n',            # CRLF
    b': keep-alive\n\nevent: message\ndata: {"a":\ndata:  1}\n\nid: 7\ndata: {"a": 2}',  # split data, no final newline
])
def test_the_event_parser_accepts_every_framing(raw):
    assert events_of(raw) == [{"a": 1}, {"a": 2}]


def test_a_broken_event_is_a_provider_error():
    with pytest.raises(Exception, match="malformed event"):
        events_of(b'data: {"a": \n\n')
    assert sse_line(b"retry: 100", []) is None


# ── the deadline, however MiniMax frames its events ─────────────────────
def _event(payload: dict) -> bytes:
    return b"data: " + json.dumps(payload).encode() + b"\n\n"


class _Exchange:
    def give_up(self, failure, attempt):
        return errors.ProviderError(f"MiniMax did not answer in time: {failure}")


class _Framed:
    """A streamed t2a_v2 answer cut into the given blocks (what iter_content yields)."""

    def __init__(self, blocks):
        self.blocks = blocks
        self.headers: dict = {}

    def iter_content(self, size):
        yield from self.blocks

    def close(self):
        pass


AUDIO_EVENTS = [bytes([i]) * 1000 for i in range(1, 6)]
EVENTS = [_event({"data": {"audio": a.hex(), "status": 1}}) for a in AUDIO_EVENTS]
FINAL = _event({"data": {"audio": "", "status": 2}, "extra_info": {"usage_characters": 10}})
# MiniMax may also carry the last audio in the final event itself (status 2 with new audio).
LAST_IN_FINAL = _event({"data": {"audio": AUDIO_EVENTS[-1].hex(), "status": 2},
                        "extra_info": {"usage_characters": 10}})
FRAMINGS = {"event per block": [*EVENTS, FINAL], "tail in one block": [*EVENTS[:4], EVENTS[4] + FINAL],
            "all in one block": [b"".join(EVENTS) + FINAL],
            "last audio in the final event": [*EVENTS[:4], LAST_IN_FINAL],
            "last audio in the final event, one block": [b"".join(EVENTS[:4]) + LAST_IN_FINAL]}


def _consume(blocks, *, last_write_seconds: float):
    """Read a stream whose deadline is 0.3 s away; the consumer takes `last_write_seconds` over
    the last audio chunk (a slow client)."""
    deadline = time.monotonic() + 0.3
    stream = SpeechStream(_Exchange(), _Framed(blocks), "mp3", deadline, "trace")
    stream.start()
    got = []
    for chunk in stream:
        got.append(chunk)
        if len(got) == len(AUDIO_EVENTS):
            time.sleep(max(0.0, deadline + last_write_seconds - time.monotonic()))
    return stream, got


@pytest.mark.parametrize("framing", FRAMINGS)
def test_a_consumer_slow_past_the_grace_fails_the_stream_however_it_is_framed(framing):
    """Past the deadline plus the grace, API Gateway may have cut the client: never a complete stream."""
    from kyma.providers.minimax.stream import END_GRACE_SECONDS

    with pytest.raises(errors.ProviderError, match="did not answer in time"):
        _consume(FRAMINGS[framing], last_write_seconds=END_GRACE_SECONDS + 0.5)


@pytest.mark.parametrize("framing", FRAMINGS)
def test_a_consumer_slow_within_the_grace_still_reads_the_end(framing):
    stream, got = _consume(FRAMINGS[framing], last_write_seconds=0.5)
    assert stream.complete and got == AUDIO_EVENTS


def _read_all(blocks):
    stream = SpeechStream(_Exchange(), _Framed(blocks), "mp3", time.monotonic() + 30, "trace")
    stream.start()
    return stream, b"".join(stream)


def test_new_audio_in_the_final_event_is_kept_even_when_it_outweighs_the_rest():
    first, last = b"\x01" * 1000, b"\x02" * 1500           # a short stream whose final event brings the most
    stream, audio = _read_all([_event({"data": {"audio": first.hex(), "status": 1}}),
                               _event({"data": {"audio": last.hex(), "status": 2}, "extra_info": {}})])
    assert audio == first + last and stream.complete


@pytest.mark.parametrize("aggregate", [b"".join(AUDIO_EVENTS),                     # the same bytes
                                       b"".join(AUDIO_EVENTS) + b"\x00" * 417],    # re-muxed, a padded tail
                         ids=["identical", "same-beginning"])
def test_an_aggregate_in_the_final_event_is_dropped(aggregate):
    stream, audio = _read_all([*EVENTS, _event({"data": {"audio": aggregate.hex(), "status": 2}, "extra_info": {}})])
    assert audio == b"".join(AUDIO_EVENTS) and stream.complete
