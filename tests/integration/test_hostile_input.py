"""Classes of input that once produced a 500, or a charge for something unusable (issue 10):
each is a 400 in the envelope now, before any reserve, with nothing sent upstream."""

from __future__ import annotations

import json

import audio_fixtures as fx
import boto3
import pytest
from helpers import START, SYSTEM_VOICE, api_event, context, error_of

DEEP = "[" * 5000 + "]" * 5000


@pytest.fixture
def speech(minimax, load_handler):
    return load_handler("SpeechFunction")


@pytest.fixture
def clone(minimax, load_handler):
    return load_handler("VoiceCloneFunction")


def post(handler, path, account_id, raw: str | bytes, headers=None):
    event = api_event("POST", path, body=raw, account_id=account_id,
                      headers={"Content-Type": "application/json", **(headers or {})})
    return handler(event, context())


def assert_refused_and_free(response, books, minimax, acct, status=400, code="invalid_request"):
    error = error_of(response)
    assert (error.status, error.code) == (status, code), error.message
    assert books.balance(acct) == START and minimax.calls == []
    assert [e["type"] for e in books.entries(acct)] == ["topup"]          # no hold was ever opened


@pytest.mark.parametrize("raw", [
    DEEP,
    '{"input": "\\ud800", "voice": "VOICE"}'.replace("VOICE", SYSTEM_VOICE),            # lone surrogate
    '{"input": "hi", "voice": "VOICE", "speed": NaN}'.replace("VOICE", SYSTEM_VOICE),    # NaN passes min/max
    '{"input": "hi", "voice": "VOICE", "voice_settings": {"vol": NaN}}'.replace("VOICE", SYSTEM_VOICE),
    '{"input": "hi", "voice": "VOICE", "speed": Infinity}'.replace("VOICE", SYSTEM_VOICE),
    '{"input": "hi", "voice": "VOICE", "voice_settings": {"vol": 1e400}}'.replace("VOICE", SYSTEM_VOICE),
])
def test_speech_refuses_hostile_json_before_charging(speech, accounts, books, minimax, raw):
    acct = accounts.create(START).account_id
    assert_refused_and_free(post(speech, "/v1/audio/speech", acct, raw), books, minimax, acct)


@pytest.mark.parametrize("raw", [DEEP, '{"filename": "\\udcff.wav"}', '{"filename": "x", "content_type": NaN}',
                                 "\x0c", "   "])       # whitespace is not JSON (only an empty body means "no options")
def test_the_uploads_endpoint_refuses_hostile_json(clone, accounts, books, minimax, raw):
    acct = accounts.create(START).account_id
    assert_refused_and_free(post(clone, "/v1/audio/voice-clone/uploads", acct, raw), books, minimax, acct)


def test_a_clone_name_with_a_lone_surrogate_is_refused_before_minimax(clone, accounts, books, minimax, cfg):
    # Given a valid upload, a clone by reference whose name cannot be stored anywhere
    acct = accounts.create(START).account_id
    upload = json.loads(post(clone, "/v1/audio/voice-clone/uploads", acct, "{}")["body"])
    boto3.client("s3").put_object(Bucket=cfg.uploads_bucket, Key=upload["fields"]["key"], Body=fx.wav(12.0))
    raw = '{"upload_id": "UPLOAD", "name": "narrator \\ud83d"}'.replace("UPLOAD", upload["upload_id"])
    # Then it is a 400 and MiniMax never sees a clone it could not be charged for
    assert_refused_and_free(post(clone, "/v1/audio/voice-clone", acct, raw), books, minimax, acct)


def test_a_clip_just_under_ten_seconds_is_told_its_length_without_rounding_up(clone, accounts, books, minimax):
    from helpers import clone_event

    acct = accounts.create(START).account_id
    error = error_of(clone(clone_event(acct, fx.wav(9.996), filename="short.wav", part_type="audio/wav"),
                           context()))
    assert (error.status, error.code) == (400, "reference_too_short")
    assert "9.99 s" in error.message and "10.0" not in error.message
