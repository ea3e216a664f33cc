"""POST /v1/audio/voice-clone: the seed contract on the real handler, moto and the MiniMax sandbox."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor

import audio_fixtures as fx
import pytest
from helpers import START, assert_books_balance, body_of, clone_event, error_of, voices_of

MP3 = fx.mp3_cbr(12.0)


@pytest.fixture
def handler(minimax, load_handler):
    return load_handler("VoiceCloneFunction")


# ── success ──────────────────────────────────────────────────────────────
def test_success_matches_the_seed_page(handler, call, accounts, books, ddb, cfg, minimax):
    acct = accounts.create(START).account_id
    response = call(handler, clone_event(acct, MP3, name="brand-narrator"))
    assert response["statusCode"] == 200, response
    body = body_of(response)
    assert list(body) == ["voice_id", "name", "model", "cost_usd", "balance_usd"]
    assert re.fullmatch(r"kyma_[0-9a-f]{16}", body["voice_id"])
    assert body["name"] == "brand-narrator" and body["model"] == "minimax-voice-clone"
    assert body["cost_usd"] == 2.1 and body["balance_usd"] == 47.9
    assert '"cost_usd": 2.1, "balance_usd": 47.9' in response["body"]
    headers = response["headers"]
    assert headers["X-Kyma-Model"] == "minimax-voice-clone"
    assert headers["X-Kyma-Cost-USD"] == "2.10" and headers["X-Kyma-Balance-USD"] == "47.90"
    assert headers["X-Request-Id"] and headers["Content-Type"] == "application/json"
    # The voice belongs to the caller, and was registered upstream under the same id.
    assert voices_of(ddb, cfg, acct) == {body["voice_id"]}
    upload, clone = minimax.calls
    assert upload.path == "/v1/files/upload" and upload.multipart["purpose"] == "voice_clone"
    assert upload.file_bytes == MP3
    assert clone.path == "/v1/voice_clone" and clone.json["voice_id"] == body["voice_id"]
    assert clone.json["file_id"] == minimax.voices[body["voice_id"]]
    assert assert_books_balance(books, ddb, cfg, acct)["charged"] == 2_100_000


def test_name_is_optional_and_echoed_as_null(handler, call, accounts):
    acct = accounts.create(START).account_id
    body = body_of(call(handler, clone_event(acct, MP3)))
    assert body["name"] is None and body["model"] == "minimax-voice-clone"


@pytest.mark.parametrize("audio, filename, part_type", [
    (fx.mp3_cbr(12.0), "voice.wav", "audio/wav"),        # an MP3 named .wav is an MP3
    (fx.mp3_vbr(12.0, xing=False), "a.mp3", "audio/mpeg"),
    (fx.wav(12.0), "x.bin", "application/octet-stream"),
    (fx.m4a_aac(12.0), "memo.m4a", "audio/mp4"),
])
def test_formats_are_sniffed_from_the_bytes(handler, call, accounts, minimax, audio, filename, part_type):
    acct = accounts.create(START).account_id
    response = call(handler, clone_event(acct, audio, filename=filename, part_type=part_type))
    assert response["statusCode"] == 200, body_of(response)
    sent = minimax.calls_to("/v1/files/upload")[0]
    assert sent.file_bytes == audio
    expected = {b"ID3": "mp3", b"RIF": "wav"}.get(audio[:3], "m4a" if b"ftyp" in audio[:12] else "mp3")
    assert sent.multipart["filename"] == f"reference.{expected}"  # never the client's file name


# ── the seed page's error table, and the duration rows ───────────────────
def assert_not_charged_nor_sent(books, minimax, acct, before_calls=0):
    assert books.balance(acct) == START
    assert [e["type"] for e in books.entries(acct)] == ["topup"]   # no hold was ever opened
    assert len(minimax.calls) == before_calls


@pytest.mark.parametrize("event_kwargs, status, code", [
    ({"audio": MP3, "model": "minimax-speech-hd"}, 400, "not_a_voice_clone_model"),
    ({"audio": MP3, "model": ""}, 400, "not_a_voice_clone_model"),
    ({"name": "no file"}, 400, "invalid_request"),                              # missing file
    ({"audio": fx.png(), "filename": "voice.mp3"}, 415, "invalid_request"),     # PNG named .mp3
    ({"audio": b"just some text, not audio at all"}, 415, "invalid_request"),
    ({"audio": fx.mp3_cbr(9.0)}, 400, "reference_too_short"),
    ({"audio": fx.wav(301.0, sampwidth=1)}, 400, "reference_too_long"),
    ({"audio": fx.mp3_cbr(301.0, rate=8000, kbps=8)}, 400, "reference_too_long"),
    ({"audio": fx.m4a_aac(9.5)}, 400, "reference_too_short"),
    ({"audio": fx.mp3_cbr(12.0)[:-100]}, 400, "audio_unreadable"),              # truncated MP3
    ({"audio": fx.wav(12.0)[:30_000] + b"\x00"}, 400, "audio_unreadable"),      # truncated WAV
    ({"audio": fx.m4a_aac(12.0)[:-500]}, 400, "audio_unreadable"),              # truncated M4A
    ({"audio": b""}, 400, "invalid_request"),                                   # empty file
    ({"audio": MP3, "name": "n" * 65}, 400, "invalid_request"),
])
def test_refused_requests_are_neither_charged_nor_sent_upstream(handler, call, accounts, books, minimax,
                                                                event_kwargs, status, code):
    acct = accounts.create(START).account_id
    response = call(handler, clone_event(acct, **event_kwargs))
    error = error_of(response)
    assert (error.status, error.code) == (status, code), error.message
    assert response["headers"]["X-Request-Id"]
    assert_not_charged_nor_sent(books, minimax, acct)


def test_a_64_character_name_is_fine(handler, call, accounts):
    acct = accounts.create(START).account_id
    name = "é" * 64  # 64 code points, 128 bytes
    assert body_of(call(handler, clone_event(acct, MP3, name=name)))["name"] == name


def test_insufficient_credits_is_402_and_nothing_goes_upstream(handler, call, accounts, books, minimax):
    acct = accounts.create(2_099_999).account_id
    error = error_of(call(handler, clone_event(acct, MP3)))
    assert (error.status, error.code) == (402, "insufficient_credits")
    assert books.balance(acct) == 2_099_999 and minimax.calls == []


# ── bad input of every shape: 4xx in the envelope, never 5xx, never a charge ──
# A form with a repeated part is malformed (400); a "file" sent as a text field is read as the
# reference audio, and its bytes are no audio format (415).
BAD_STATUS = {"two file parts": 400, "two names": 400, "file as text field": 415}
BAD_BODIES = {
    "two file parts": [("file", ("a.mp3", MP3, "audio/mpeg")), ("file", ("b.mp3", MP3, "audio/mpeg"))],
    "two names": [("file", ("a.mp3", MP3, "audio/mpeg")), ("name", "a"), ("name", "b")],
    "file as text field": [("file", "not a file")],
}


@pytest.mark.parametrize("label", BAD_BODIES)
def test_malformed_forms_are_400(handler, call, accounts, books, minimax, label):
    acct = accounts.create(START).account_id
    error = error_of(call(handler, clone_event(acct, fields=BAD_BODIES[label])))
    assert (error.status, error.code) == (BAD_STATUS[label], "invalid_request")
    assert_not_charged_nor_sent(books, minimax, acct)


def raw_event(acct: str, body: bytes, content_type: str) -> dict:
    from helpers import api_event

    return api_event("POST", "/v1/audio/voice-clone", body=body, account_id=acct,
                     headers={"Content-Type": content_type})


@pytest.mark.parametrize("body, content_type", [
    (b"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.mp3\"\r\n\r\n" + MP3 + b"\r\n--b--",
     "multipart/form-data"),                                                    # missing boundary
    (b"--b\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\n\xff\xfe\xfa\r\n--b--\r\n",
     "multipart/form-data; boundary=b"),                                        # non-UTF-8 field value
    (b"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.mp3\"\r\n\r\n" + MP3[:5000],
     "multipart/form-data; boundary=b"),                                        # body cut off mid-file
    (b'{"name": "x"}', "application/json"),                                     # not a form at all
    (b"\x00" * 1000, "multipart/form-data; boundary=b"),
    (b"", "multipart/form-data; boundary=b"),
    (b"name=x", "application/x-www-form-urlencoded"),
])
def test_unparsable_requests_are_400(handler, call, accounts, books, minimax, body, content_type):
    acct = accounts.create(START).account_id
    error = error_of(call(handler, raw_event(acct, body, content_type)))
    assert (error.status, error.code) == (400, "invalid_request"), error.message
    assert_not_charged_nor_sent(books, minimax, acct)


def test_a_lying_filename_with_odd_encoding_does_not_matter(handler, call, accounts, minimax):
    acct = accounts.create(START).account_id
    body = (b'--b\r\nContent-Disposition: form-data; name="file"; filename="\xff\xfe../../etc/passwd.png"\r\n'
            b"Content-Type: image/png\r\n\r\n" + MP3 + b"\r\n--b--\r\n")
    response = call(handler, raw_event(acct, body, "multipart/form-data; boundary=b"))
    assert response["statusCode"] == 200
    assert minimax.calls_to("/v1/files/upload")[0].multipart["filename"] == "reference.mp3"


def test_base64_garbage_from_the_gateway_is_400(handler, call, accounts):
    acct = accounts.create(START).account_id
    event = raw_event(acct, b"", "multipart/form-data; boundary=b")
    event.update(body="%%%not base64%%%", isBase64Encoded=True)
    assert error_of(call(handler, event)).status == 400


# ── concurrency ──────────────────────────────────────────────────────────
def test_forty_parallel_clones_when_the_balance_affords_seven(minimax, aws, accounts, books, ddb, cfg, ledger):
    from kyma_local.runtime import FunctionPool

    # Given $50.00, of which another in-flight request holds $33.21, so that the
    # spendable $16.79 affords exactly 7 clones ($14.70) and not an 8th
    acct = accounts.create(START).account_id
    other = ledger.reserve(acct, START - 7 * 2_100_000 - 2_090_000, kind="speech", request_id="other")
    pool = FunctionPool(aws.functions["VoiceCloneFunction"], max_environments=40)

    # When 40 clones arrive at once, each in its own Lambda environment
    with ThreadPoolExecutor(40) as executor:
        responses = list(executor.map(lambda _: pool.invoke(clone_event(acct, MP3)).payload, range(40)))

    # Then exactly 7 succeed and 33 are refused for money, and nothing went upstream for the 33
    assert sorted(r["statusCode"] for r in responses) == [200] * 7 + [402] * 33
    assert {error_of(r).code for r in responses if r["statusCode"] == 402} == {"insufficient_credits"}
    assert len(minimax.calls_to("/v1/voice_clone")) == 7
    assert len(voices_of(ddb, cfg, acct)) == 7
    # And once the other request gives its hold back, exactly $50.00 − 7 × $2.10 remains
    assert ledger.release(other, reason="test")
    assert books.balance(acct) == 35_300_000
    assert_books_balance(books, ddb, cfg, acct)
