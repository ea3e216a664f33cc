"""Timestamps, captions and pronunciation (shared/reference/timestamps.md) through the real speech
function (its app, as the Lambda Web Adapter runs it), moto and the MiniMax sandbox over HTTP:
POST /v1/audio/speech/with-timestamps, SSE with speech.timestamps events, pronunciation_dict, and
what happens to the money when MiniMax's timings are missing or broken."""

from __future__ import annotations

import base64
import io
import json

import pytest
import srt
import webvtt
from helpers import START, SYSTEM_VOICE, api_event, body_of, context, error_of, sse_events

from kyma.audio import inspect_audio
from kyma_local.sandbox import PATH_T2A

TEXT = "Hello there, world. Kyma reads the names right! Does it keep time?"
COST = 6_600                # 66 code points, hd: $0.10 per 1,000
ROUTE = "/v1/audio/speech/with-timestamps"


@pytest.fixture
def handler(minimax, load_handler):
    return load_handler("SpeechFunction")


def call(handler, account_id, body, *, path=ROUTE, headers=None):
    event = api_event("POST", path, body=json.dumps(body), account_id=account_id,
                      headers={"Content-Type": "application/json", **(headers or {})})
    return handler(event, context("SpeechFunction"))


def holds(books, acct) -> list[str]:
    return [e["status"] for e in books.entries(acct) if e["type"] == "hold"]


def assert_nothing_charged(books, acct, expected_holds):
    assert books.balance(acct) == START and holds(books, acct) == expected_holds
    assert books.audit(acct)["consistent"]


# ── with-timestamps ─────────────────────────────────────────────────────
def test_words_slice_the_input_in_order_and_end_with_the_audio(handler, accounts, books, minimax):
    acct = accounts.create(START).account_id
    response = call(handler, acct, {"input": TEXT, "voice": SYSTEM_VOICE})
    assert response["statusCode"] == 200, body_of(response)
    answer = body_of(response)
    assert [w["text"] for w in answer["words"]] == TEXT.split()
    assert all(TEXT[w["char_start"]:w["char_end"]] == w["text"] for w in answer["words"])
    starts = [w["start_ms"] for w in answer["words"]]
    assert starts == sorted(starts) and all(w["end_ms"] > w["start_ms"] for w in answer["words"])
    audio = base64.b64decode(answer["audio_base64"])
    assert audio == minimax.last_audio and answer["content_type"] == "audio/mpeg"
    measured = round(inspect_audio(audio).duration_seconds * 1000)
    assert answer["duration_ms"] == measured
    assert abs(answer["words"][-1]["end_ms"] - measured) <= 50
    assert [s["text"] for s in answer["sentences"]] == [
        "Hello there, world.", "Kyma reads the names right!", "Does it keep time?"]
    assert "captions" not in answer
    # Same price and billing as speech: charged once, headers and body agree
    assert (answer["characters_billed"], answer["cost_usd"], answer["balance_usd"]) == (66, 0.0066, 49.9934)
    assert response["headers"]["X-Kyma-Cost-USD"] == "0.0066" and response["headers"]["X-Kyma-Chars-Billed"] == "66"
    assert books.balance(acct) == START - COST and holds(books, acct) == ["charged"]
    sent = minimax.calls_to(PATH_T2A)[-1].json
    assert (sent["subtitle_enable"], sent["subtitle_type"], sent["stream"]) == (True, "word", False)


def test_code_points_not_utf16_index_the_input(handler, accounts, minimax):
    text = "Café 🎉 naïve. 日本語 です。"
    response = call(handler, accounts.create(START).account_id, {"input": text, "voice": SYSTEM_VOICE})
    answer = body_of(response)
    assert [text[w["char_start"]:w["char_end"]] for w in answer["words"]] == text.split()
    assert answer["characters_billed"] == len(text)


@pytest.mark.parametrize("fmt", ["srt", "vtt"])
def test_captions_parse_with_the_libraries_one_cue_per_sentence(handler, accounts, minimax, fmt):
    response = call(handler, accounts.create(START).account_id,
                    {"input": TEXT, "voice": SYSTEM_VOICE, "captions": fmt})
    answer = body_of(response)
    if fmt == "srt":
        cues = [(c.content, round(c.start.total_seconds() * 1000), round(c.end.total_seconds() * 1000))
                for c in srt.parse(answer["captions"])]
    else:
        cues = [(c.text, c.start_in_seconds * 1000 + c.start_time.milliseconds, c.end_in_seconds * 1000
                 + c.end_time.milliseconds) for c in webvtt.from_buffer(io.StringIO(answer["captions"]))]
    assert [text for text, _, _ in cues] == [s["text"] for s in answer["sentences"]]
    assert [(start, end) for _, start, end in cues] == [(s["start_ms"], s["end_ms"]) for s in answer["sentences"]]


def test_sentence_level_has_no_words_and_asks_minimax_for_sentences(handler, accounts, minimax):
    response = call(handler, accounts.create(START).account_id,
                    {"input": TEXT, "voice": SYSTEM_VOICE, "timestamps": "sentence"})
    answer = body_of(response)
    assert "words" not in answer and len(answer["sentences"]) == 3
    assert minimax.calls_to(PATH_T2A)[-1].json["subtitle_type"] == "sentence"


@pytest.mark.parametrize("mode", ["subtitle_broken", "subtitle_missing"])
def test_a_broken_or_missing_subtitle_file_is_502_and_nothing_is_charged(handler, accounts, books, minimax, caplog,
                                                                        mode):
    acct = accounts.create(START).account_id
    minimax.fail_next(PATH_T2A, mode)
    response = call(handler, acct, {"input": TEXT, "voice": SYSTEM_VOICE})
    assert error_of(response).status == 502 and error_of(response).code == "provider_error"
    assert_nothing_charged(books, acct, ["released"])
    logged = [r for r in caplog.records if getattr(r, "step", None) == "speech subtitles"]
    assert logged and logged[-1].trace_id == minimax.calls_to(PATH_T2A)[-1].trace_id


def test_an_idempotent_replay_returns_the_same_audio_and_timings_charged_once(handler, accounts, books, minimax):
    acct = accounts.create(START).account_id
    body, key = {"input": TEXT, "voice": SYSTEM_VOICE, "captions": "vtt"}, {"Idempotency-Key": "timed-once"}
    first = call(handler, acct, body, headers=key)
    again = call(handler, acct, body, headers=key)
    assert again["headers"].get("Idempotent-Replayed") == "true"
    a, b = body_of(first), body_of(again)
    assert {k: v for k, v in a.items() if k != "balance_usd"} == {k: v for k, v in b.items() if k != "balance_usd"}
    assert len(minimax.calls_to(PATH_T2A)) == 1
    assert books.balance(acct) == START - COST and holds(books, acct) == ["charged"]


@pytest.mark.parametrize("body, fragment", [
    ({"timestamps": "character"}, "timestamps"),
    ({"captions": "ass"}, "captions"),
    ({"stream_format": "sse"}, "stream"),
])
def test_bad_timing_options_are_400_before_anything_is_reserved(handler, accounts, books, minimax, body, fragment):
    acct = accounts.create(START).account_id
    response = call(handler, acct, {"input": TEXT, "voice": SYSTEM_VOICE, **body})
    assert error_of(response).status == 400 and fragment in error_of(response).message
    assert_nothing_charged(books, acct, [])
    assert not minimax.calls_to(PATH_T2A)


# ── pronunciation_dict ──────────────────────────────────────────────────
@pytest.mark.parametrize("path", ["/v1/audio/speech", ROUTE])
def test_pronunciation_dict_reaches_minimax_and_billing_counts_the_input(handler, accounts, books, minimax, path):
    acct = accounts.create(START).account_id
    tone = ["Kyma/KEE-ma", "处理/(chu3)(li3)"]
    response = call(handler, acct, {"input": TEXT, "voice": SYSTEM_VOICE, "pronunciation_dict": {"tone": tone}},
                    path=path)
    assert response["statusCode"] == 200
    assert minimax.calls_to(PATH_T2A)[-1].json["pronunciation_dict"] == {"tone": tone}
    assert books.balance(acct) == START - COST


@pytest.mark.parametrize("bad", [
    {"tone": "Kyma/KEE-ma"}, {"tone": []}, {"tone": ["Kyma"]}, {"tone": ["Kyma/"]}, {"tone": ["/KEE-ma"]},
    {"tone": ["a/b"] * 101}, {"tone": ["K" * 150 + "/" + "k" * 50]}, {"phonetic": ["Kyma/KEE-ma"]},
    {"tone": ["Ky\nma/KEE-ma"]}, {"tone": [7]}, ["Kyma/KEE-ma"],
])
@pytest.mark.parametrize("path", ["/v1/audio/speech", ROUTE])
def test_a_malformed_pronunciation_dict_is_400_and_never_charged(handler, accounts, books, minimax, bad, path):
    acct = accounts.create(START).account_id
    response = call(handler, acct, {"input": TEXT, "voice": SYSTEM_VOICE, "pronunciation_dict": bad}, path=path)
    assert error_of(response).status == 400 and "pronunciation_dict" in error_of(response).message
    assert_nothing_charged(books, acct, [])
    assert not minimax.calls_to(PATH_T2A)


# ── SSE with timestamps ──────────────────────────────────────────────────
def test_sse_timestamps_events_follow_each_segment_and_done_stays_last(handler, accounts, books, minimax):
    acct = accounts.create(START).account_id
    response = call(handler, acct, {"input": TEXT, "voice": SYSTEM_VOICE, "stream_format": "sse",
                                    "timestamps": "word"}, path="/v1/audio/speech")
    events = sse_events(response)
    kinds = [e["type"] for e in events]
    assert kinds[-1] == "speech.audio.done" and kinds.count("speech.timestamps") == 3
    assert kinds.index("speech.timestamps") < kinds.index("speech.audio.done")
    assert kinds[0] == "speech.audio.delta"                 # timings follow the audio they describe
    words = [w for e in events if e["type"] == "speech.timestamps" for w in e["words"]]
    assert [TEXT[w["char_start"]:w["char_end"]] for w in words] == TEXT.split()
    sent = minimax.calls_to(PATH_T2A)[-1].json
    assert (sent["stream"], sent["subtitle_enable"], sent["subtitle_type"]) == (True, True, "word")
    assert books.balance(acct) == START - COST


def test_a_broken_streamed_segment_ends_the_stream_with_an_error_and_no_charge(handler, accounts, books, minimax):
    acct = accounts.create(START).account_id
    minimax.fail_next(PATH_T2A, "subtitle_broken")
    response = call(handler, acct, {"input": TEXT, "voice": SYSTEM_VOICE, "stream_format": "sse",
                                    "timestamps": "word"}, path="/v1/audio/speech")
    events = sse_events(response)
    assert events[-1]["type"] == "error" and events[-1]["error"]["code"] == "provider_error"
    assert "speech.audio.done" not in [e["type"] for e in events]
    assert_nothing_charged(books, acct, ["released"])


def test_timestamps_on_raw_audio_or_whole_files_are_400(handler, accounts, books, minimax):
    acct = accounts.create(START).account_id
    for extra in ({}, {"stream_format": "audio"}):
        response = call(handler, acct, {"input": TEXT, "voice": SYSTEM_VOICE, "timestamps": "word", **extra},
                        path="/v1/audio/speech")
        assert error_of(response).status == 400
    assert_nothing_charged(books, acct, [])


@pytest.mark.parametrize("fmt", ["wav", "pcm", "flac", "mp3_44100_64"])
def test_every_format_has_timings_that_end_with_its_measured_audio(handler, accounts, minimax, fmt):
    response = call(handler, accounts.create(START).account_id,
                    {"input": TEXT, "voice": SYSTEM_VOICE, "response_format": fmt})
    answer = body_of(response)
    assert response["statusCode"] == 200, answer
    assert abs(answer["words"][-1]["end_ms"] - answer["duration_ms"]) <= 50
    assert answer["content_type"] == {"wav": "audio/wav", "pcm": "audio/pcm", "flac": "audio/flac"}.get(
        fmt, "audio/mpeg")


def test_an_sse_replay_with_timestamps_resends_the_audio_and_the_words_before_done(handler, accounts, books,
                                                                                  minimax):
    acct = accounts.create(START).account_id
    body = {"input": TEXT, "voice": SYSTEM_VOICE, "stream_format": "sse", "timestamps": "word"}
    key = {"Idempotency-Key": "sse-timed-once"}
    first = sse_events(call(handler, acct, body, path="/v1/audio/speech", headers=key))
    again = sse_events(call(handler, acct, body, path="/v1/audio/speech", headers=key))
    def words(events):
        return [w for e in events if e["type"] == "speech.timestamps" for w in e["words"]]

    def audio(events):
        return b"".join(base64.b64decode(e["audio"]) for e in events if e["type"] == "speech.audio.delta")

    assert words(again) == words(first) and audio(again) == audio(first)
    assert [e["type"] for e in again][-1] == "speech.audio.done"
    assert len(minimax.calls_to(PATH_T2A)) == 1 and books.balance(acct) == START - COST


def test_a_stream_that_carries_no_timings_fails_loudly_and_is_free(handler, accounts, books, minimax, monkeypatch):
    """A MiniMax that ignores subtitle_enable on a stream: never a speech without the timings asked for."""
    from kyma_local.sandbox import subtitles

    monkeypatch.setattr(subtitles, "segments_by_chunk", lambda found, rendered, pieces: [[] for _ in pieces])
    acct = accounts.create(START).account_id
    response = call(handler, acct, {"input": TEXT, "voice": SYSTEM_VOICE, "stream_format": "sse",
                                    "timestamps": "word"}, path="/v1/audio/speech")
    events = sse_events(response)
    assert events[-1]["type"] == "error" and events[-1]["error"]["code"] == "provider_error"
    assert_nothing_charged(books, acct, ["released"])


# ── never charged for an answer the client did not get ─────────────────
def test_without_a_key_the_answer_is_sent_after_the_settle_and_a_failed_settle_gives_nothing_away(
        handler, accounts, books, minimax, monkeypatch):
    from botocore.exceptions import ClientError

    from kyma.billing.ledger import Ledger

    acct = accounts.create(START).account_id
    charged = call(handler, acct, {"input": TEXT, "voice": SYSTEM_VOICE})
    assert charged["complete"] is True and books.balance(acct) == START - COST
    monkeypatch.setattr(Ledger, "settle", lambda *a, **k: (_ for _ in ()).throw(
        ClientError({"Error": {"Code": "InternalServerError", "Message": "x"}}, "TransactWriteItems")))
    cut = call(handler, acct, {"input": TEXT, "voice": SYSTEM_VOICE})
    assert cut["statusCode"] == 200 and cut["complete"] is False     # the body never ends: not a charged answer
    assert cut["body"] in ("", b"")                                  # and no audio, no timings went out
    assert books.balance(acct) == START - COST and holds(books, acct).count("released") == 1


def test_a_client_gone_before_the_answer_is_released_never_charged(handler, accounts, books, minimax, monkeypatch):
    from kyma.edge.web_app import Output
    from kyma_local.web_adapter import InvocationFailed

    monkeypatch.setattr(Output, "connected", lambda self: False)    # the client closed its connection
    acct = accounts.create(START).account_id
    with pytest.raises(InvocationFailed):                           # nothing answered: nobody was listening
        call(handler, acct, {"input": TEXT, "voice": SYSTEM_VOICE, "captions": "srt"})
    assert_nothing_charged(books, acct, ["released"])
