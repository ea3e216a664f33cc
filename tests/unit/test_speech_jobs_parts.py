"""Speech jobs without AWS: the split into parts (properties), the exact joins of MP3/WAV/PCM payloads,
MiniMax's async T2A through the real client against the sandbox (its codes, timing, expiry, and
answers the client does not know), and the job request's validation."""

from __future__ import annotations

import io
import itertools
import tarfile
import time
import wave

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kyma.audio import mp3
from kyma.audio.join import payload, wav_header
from kyma.edge import errors
from kyma.jobs import submit
from kyma.jobs.split import spans
from kyma.providers import SynthesisRequest
from kyma.providers.minimax import NO_RETRY, MiniMaxClient, RetryPolicy
from kyma.providers.minimax.async_t2a import ResultExpired, read_archive
from kyma_local.sandbox import MiniMaxSandbox
from kyma_local.sandbox.async_tasks import subtitles

KEY = "test-minimax-key-async"


# ── split ────────────────────────────────────────────────────────────────
@settings(max_examples=300, deadline=None)
@given(text=st.text(alphabet=st.sampled_from("ab. !?\n\t。"), min_size=1, max_size=2_000),
       limit=st.integers(min_value=1, max_value=400))
def test_parts_cover_the_text_exactly_in_order_and_never_exceed_the_limit(text, limit):
    cut = spans(text, limit)
    assert "".join(text[a:b] for a, b in cut) == text
    assert all(0 < b - a <= limit for a, b in cut)
    assert all(cut[i][1] == cut[i + 1][0] for i in range(len(cut) - 1))
    assert spans(text, limit) == cut                        # deterministic: a redelivery splits alike


def test_paragraphs_come_before_sentences_and_sentences_before_words():
    para = "One sentence here. Another sentence there.\n\n"
    text = para * 3
    assert [text[a:b] for a, b in spans(text, len(para) + 5)] == [para] * 3
    sentences = "First sentence is here. Second one follows. Third ends it."
    parts = [sentences[a:b] for a, b in spans(sentences, 30)]
    assert parts[0] == "First sentence is here. " and all(len(p) <= 30 for p in parts)
    words = "alpha beta gamma delta epsilon"
    assert [words[a:b] for a, b in spans(words, 12)] == ["alpha beta ", "gamma delta ", "epsilon"]
    assert spans("x" * 25, 10) == [(0, 10), (10, 20), (20, 25)]      # no boundary at all: cut


def test_a_book_of_120000_characters_is_three_parts_of_at_most_50000():
    paragraph = "The quick brown fox jumps over the lazy dog near the river bank. " * 12 + "\n\n"
    text = (paragraph * 200)[:120_000]
    cut = spans(text, 50_000)
    assert len(cut) == 3 and all(b - a <= 50_000 for a, b in cut)
    assert all(text[b - 2:b] == "\n\n" for _, b in cut[:-1])            # each ends with its paragraph


# ── joins ────────────────────────────────────────────────────────────────
def test_mp3_payloads_skip_the_tag_and_join_to_the_sum_of_their_durations(mp3_part):
    a, b = mp3_part(1), mp3_part(2)
    pa, pb = payload(a, "mp3"), payload(b, "mp3")
    assert a[:3] == b"ID3" and pa.start > 0 and a[pa.start] == 0xFF
    joined = a[pa.start:pa.end] + b[pb.start:pb.end]
    assert mp3.duration(joined) == pytest.approx(pa.seconds + pb.seconds, abs=1e-9)
    with_tag = a + b"TAG" + bytes(125)
    assert payload(with_tag, "mp3").end == len(a)                        # a trailing ID3v1 tag is left out


def test_a_wav_payload_is_its_data_chunk_and_the_joined_header_counts_every_sample():
    def wav_of(frames: int) -> bytes:
        out = io.BytesIO()
        with wave.open(out, "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(24_000)
            w.writeframes(bytes(range(256)) * (frames * 2 // 256) + bytes(frames * 2 % 256))
        return out.getvalue()

    parts = [wav_of(24_000), wav_of(12_000)]
    found = [payload(p, "wav") for p in parts]
    assert [f.seconds for f in found] == [1.0, 0.5]
    data = b"".join(p[f.start:f.end] for p, f in zip(parts, found, strict=True))
    joined = wav_header(len(data), sample_rate=24_000, channels=1, block_align=2) + data
    with wave.open(io.BytesIO(joined)) as w:
        assert (w.getnframes(), w.getframerate()) == (36_000, 24_000)


def test_pcm_is_all_payload_in_whole_samples():
    found = payload(bytes(48_001), "pcm", sample_rate=24_000)
    assert (found.start, found.end, found.seconds) == (0, 48_000, 1.0)


def test_audio_that_is_not_the_format_is_refused():
    with pytest.raises(errors.AudioUnreadable):
        payload(b"not audio at all" * 10, "mp3")
    with pytest.raises(errors.AudioUnreadable):
        payload(b"RIFF\x00\x00\x00\x00WAVE", "wav")


# ── MiniMax async T2A: the client against the sandbox ───────────────────
@pytest.fixture
def sandbox():
    with MiniMaxSandbox(api_key=KEY, async_seconds=0.3, async_ms_per_char=5) as running:
        yield running


@pytest.fixture
def client(sandbox):
    return MiniMaxClient(sandbox.base_url, lambda: KEY, retry=NO_RETRY)


@pytest.fixture
def mp3_part(sandbox, client):
    def render(seed: int) -> bytes:
        task = client.async_t2a.create(request(text=f"Part {seed}. " * 50), deadline=soon())
        time.sleep(0.35)
        status = client.async_t2a.query(task.task_id, deadline=soon())
        return client.async_t2a.fetch(client.async_t2a.download_url(status.file_id, deadline=soon()), "mp3",
                                      deadline=soon()).audio

    return render


def soon() -> float:
    return time.monotonic() + 10


def request(**overrides) -> SynthesisRequest:
    return SynthesisRequest(**{"model": "speech-2.8-hd", "text": "Hello there. " * 100,
                               "voice_id": "English_expressive_narrator", "audio_format": "mp3", **overrides})


def test_a_task_is_processing_then_succeeds_and_its_result_holds_audio_subtitles_and_extra(sandbox, client):
    task = client.async_t2a.create(request(), deadline=soon())
    assert task.task_id and task.usage_characters == 1_300
    sent = sandbox.calls_to("/v1/t2a_async_v2")[0].json
    assert sent["audio_setting"]["audio_sample_rate"] == 32_000 and "sample_rate" not in sent["audio_setting"]
    assert client.async_t2a.query(task.task_id, deadline=soon()).status == "processing"
    time.sleep(0.35)
    status = client.async_t2a.query(task.task_id, deadline=soon())
    assert status.status == "success" and status.file_id
    result = client.async_t2a.fetch(client.async_t2a.download_url(status.file_id, deadline=soon()), "mp3",
                                    deadline=soon())
    seconds = mp3.duration(result.audio)
    assert seconds and result.extra["usage_characters"] == 1_300
    assert result.subtitles[-1]["time_end"] == pytest.approx(seconds * 1000, abs=50)   # cues span the audio


def test_after_nine_hours_the_task_is_expired_and_its_url_gone(sandbox, client):
    task = client.async_t2a.create(request(), deadline=soon())
    time.sleep(0.35)
    url = client.async_t2a.download_url(client.async_t2a.query(task.task_id, deadline=soon()).file_id,
                                        deadline=soon())
    sandbox.advance_clock(9 * 3600 + 1)
    assert client.async_t2a.query(task.task_id, deadline=soon()).status == "expired"
    with pytest.raises(ResultExpired):
        client.async_t2a.fetch(url, "mp3", deadline=soon())


def test_a_pronunciation_dict_is_sent_with_the_task_and_the_sandbox_checks_it_as_minimax_does(sandbox, client):
    client.async_t2a.create(request(pronunciation=("Kyma/KEE-ma", "SQL/sequel")), deadline=soon())
    assert sandbox.calls_to("/v1/t2a_async_v2")[-1].json["pronunciation_dict"] == {"tone": ["Kyma/KEE-ma",
                                                                                             "SQL/sequel"]}
    client.async_t2a.create(request(), deadline=soon())
    assert "pronunciation_dict" not in sandbox.calls_to("/v1/t2a_async_v2")[-1].json
    with pytest.raises(errors.UpstreamInvalidRequest):          # the sandbox refuses what MiniMax would (2013)
        client.async_t2a.create(request(pronunciation=("no separator",)), deadline=soon())


def test_a_task_can_be_made_to_fail_upstream(sandbox, client):
    sandbox.async_tasks.fail_task_when("doomed")
    task = client.async_t2a.create(request(text="A doomed part."), deadline=soon())
    time.sleep(0.35)
    assert client.async_t2a.query(task.task_id, deadline=soon()).status == "failed"


@pytest.mark.parametrize("code, kind", [(1026, errors.ContentRejected), (1008, errors.ProviderAccountProblem),
                                        (20132, errors.UpstreamVoiceMissing), (2013, errors.UpstreamInvalidRequest),
                                        (1002, errors.ProviderUnavailable)])
def test_creation_refusals_are_classified_by_minimax_codes(sandbox, client, code, kind):
    sandbox.fail_when("/v1/t2a_async_v2", code)
    with pytest.raises(kind) as raised:
        client.async_t2a.create(request(), deadline=soon())
    assert raised.value.provider_code == code


def test_a_creation_whose_answer_was_lost_is_never_sent_again(sandbox):
    client = MiniMaxClient(sandbox.base_url, lambda: KEY, retry=RetryPolicy(attempts=3, base_delay=0.01))
    sandbox.fail_next("/v1/t2a_async_v2", "lost_answer")
    with pytest.raises(errors.ProviderError) as raised:
        client.async_t2a.create(request(), deadline=soon())
    assert raised.value.provider_code is None
    assert len(sandbox.calls_to("/v1/t2a_async_v2")) == 1 and sandbox.async_tasks.stats()["tasks"] == 1
    # A refusal (MiniMax's own code) is retried: it created nothing
    sandbox.fail_next("/v1/t2a_async_v2", "base_resp", code=1002)
    assert client.async_t2a.create(request(), deadline=soon()).task_id


def test_an_unknown_task_status_or_a_task_without_id_fails_loudly(sandbox, client, monkeypatch):
    from kyma_local.sandbox import async_tasks

    monkeypatch.setattr(async_tasks.AsyncTasks, "status", lambda self, task: "queueing")
    task = client.async_t2a.create(request(), deadline=soon())
    with pytest.raises(errors.ProviderError, match="unknown task status"):
        client.async_t2a.query(task.task_id, deadline=soon())
    sandbox.fail_next("/v1/t2a_async_v2", "missing_field")
    with pytest.raises(errors.ProviderError):
        client.async_t2a.create(request(), deadline=soon())


def test_an_archive_without_audio_of_the_format_is_refused():
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        info = tarfile.TarInfo("1.json")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"[]"))
    with pytest.raises(tarfile.TarError):
        read_archive(io.BytesIO(out.getvalue()), "mp3")


def test_the_sandbox_counts_tasks_rendering_at_once(sandbox, client):
    for _ in range(3):
        client.async_t2a.create(request(), deadline=soon())
    assert sandbox.async_tasks.stats()["max_concurrent"] == 3
    time.sleep(0.35)
    client.async_t2a.create(request(), deadline=soon())
    assert sandbox.async_tasks.stats()["running"] == 1


def test_subtitle_cues_are_in_order_and_end_at_the_audio_end():
    cues = subtitles("One. Two three. Four five six.", 3_000)
    assert [c["text"] for c in cues] == ["One.", "Two three.", "Four five six."]
    assert cues[0]["time_begin"] == 0 and cues[-1]["time_end"] == 3_000
    assert all(a["time_end"] == b["time_begin"] for a, b in itertools.pairwise(cues))


# ── the job request ──────────────────────────────────────────────────────
@pytest.mark.parametrize("body, error", [
    ({"input": "x" * 200_001, "voice_id": "English_expressive_narrator"}, errors.InputTooLong),
    ({"input": "hi", "voice_id": "English_expressive_narrator", "response_format": "flac_44100"},
     errors.UnsupportedFormat),
    ({"input": "hi", "voice_id": "English_expressive_narrator", "stream_format": "sse"}, errors.InvalidRequest),
    ({"input": "hi", "voice_id": "English_expressive_narrator", "metadata": {str(n): "v" for n in range(17)}},
     errors.InvalidRequest),
    ({"input": "hi", "voice_id": "English_expressive_narrator", "metadata": {"k": "v" * 257}},
     errors.InvalidRequest),
    (["not", "an", "object"], errors.InvalidRequest),
])
def test_bad_job_requests_are_refused_before_anything_is_priced(body, error):
    with pytest.raises(error):
        submit.parse(body)


def test_a_job_request_takes_200000_characters_and_the_speech_fields():
    job = submit.parse({"text": "é" * 200_000, "voice": "English_expressive_narrator",
                        "response_format": "pcm_24000", "speed": 1.5, "metadata": {"book": "42"}})
    assert (job.speech.chars, job.speech.audio_format, job.speech.sample_rate, job.speech.speed) == (
        200_000, "pcm", 24_000, 1.5)
    assert job.metadata == {"book": "42"}
    assert submit.fingerprint(job) != submit.fingerprint(submit.parse({"text": "é" * 200_000,
                                                                       "voice": "English_expressive_narrator",
                                                                       "response_format": "pcm_24000",
                                                                       "speed": 1.5}))
