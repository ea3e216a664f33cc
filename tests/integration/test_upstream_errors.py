"""MiniMax as it really answers (its official error table), through the real client against the
sandbox, as the customer sees it: status and code, nothing charged, and the operator's metric
where the problem is ours (issue 11)."""

from __future__ import annotations

import json

import audio_fixtures as fx
import pytest
from helpers import START, SYSTEM_VOICE, api_event, clone_event, context, error_of

SPEECH_CODES = [
    # code, status, error.code, operator metric, attempts the client makes
    (1026, 400, "content_rejected", False, 1),        # sensitive input
    (1027, 400, "content_rejected", False, 1),        # sensitive output
    (1042, 400, "content_rejected", False, 1),        # invisible characters
    (2013, 400, "invalid_request", False, 1),         # a parameter value of the customer's
    (1004, 503, "service_unavailable", True, 1),      # our key is wrong
    (1008, 503, "service_unavailable", True, 1),      # our MiniMax balance is empty
    (2038, 503, "service_unavailable", True, 1),      # no clone permission on our account
    (2042, 503, "service_unavailable", True, 1),      # no access to this voice id
    (2049, 503, "service_unavailable", True, 1),      # invalid API key
    (2056, 503, "service_unavailable", True, 1),      # usage limit exceeded
    (1000, 502, "provider_error", False, 3),          # retryable, retried within the deadline, then 502
    (1001, 502, "provider_error", False, 3),
    (1013, 502, "provider_error", False, 3),
    (1024, 502, "provider_error", False, 3),
    (1033, 502, "provider_error", False, 3),
    (1002, 503, "service_unavailable", False, 3),     # rate and capacity limits: 503 with Retry-After
    (1039, 503, "service_unavailable", False, 3),
    (1041, 503, "service_unavailable", False, 3),
    (2045, 503, "service_unavailable", False, 3),
    (20132, 404, "voice_not_found", False, 1),        # a system voice MiniMax does not know
]


@pytest.fixture
def speech(minimax, load_handler):
    return load_handler("SpeechFunction")


def speak(handler, acct, text="Hello there."):
    return handler(api_event("POST", "/v1/audio/speech", account_id=acct,
                             body=json.dumps({"input": text, "voice": SYSTEM_VOICE}),
                             headers={"Content-Type": "application/json"}), context())


@pytest.mark.parametrize("code, status, error_code, operator, attempts", SPEECH_CODES)
def test_each_minimax_code_on_speech(speech, accounts, books, minimax, metrics_seen, code, status, error_code,
                                     operator, attempts):
    acct = accounts.create(START).account_id
    minimax.fail_when("/v1/t2a_v2", code, times=None)
    response = speak(speech, acct)
    error = error_of(response)
    assert (error.status, error.code) == (status, error_code), error.message
    assert len(minimax.calls_to("/v1/t2a_v2")) == attempts
    if error_code == "service_unavailable" and not operator:
        assert response["headers"]["Retry-After"] == "5"
    if operator:
        assert "problem on our side" in error.message          # it says it is ours, not the request's
    assert books.balance(acct) == START and books.audit(acct)["consistent"]
    assert [e["status"] for e in books.entries(acct) if e["type"] == "hold"] == ["released"]
    assert metrics_seen.get("ProviderOperatorErrors", 0) == (1 if operator else 0)
    assert metrics_seen.get("ProviderErrors", 0) == (0 if code == 20132 else 1)   # an unknown voice is the request's


@pytest.mark.parametrize("code", [1000, 1002, 1024])
def test_a_passing_upstream_failure_is_retried_and_charged_once(speech, accounts, books, minimax, code):
    acct = accounts.create(START).account_id
    minimax.fail_when("/v1/t2a_v2", code, times=1)
    assert speak(speech, acct)["statusCode"] == 200
    assert len(minimax.calls_to("/v1/t2a_v2")) == 2
    charged = [e for e in books.entries(acct) if e.get("status") == "charged"]
    assert len(charged) == 1 and books.audit(acct)["consistent"]


@pytest.mark.parametrize("code", [2037, 1043, 1044, 2048])
def test_a_reference_minimax_refuses_is_400_and_free(minimax, load_handler, accounts, books, code):
    acct = accounts.create(START).account_id
    minimax.fail_when("/v1/voice_clone", code, times=None)
    error = error_of(load_handler("VoiceCloneFunction")(clone_event(acct, fx.mp3_cbr(12.0)), context()))
    assert (error.status, error.code) == (400, "reference_rejected")
    assert books.balance(acct) == START and books.audit(acct)["consistent"]


def test_an_operator_problem_on_clone_pages_and_charges_nothing(minimax, load_handler, accounts, books,
                                                                metrics_seen):
    acct = accounts.create(START).account_id
    minimax.fail_when("/v1/files/upload", 1008, times=None)
    error = error_of(load_handler("VoiceCloneFunction")(clone_event(acct, fx.mp3_cbr(12.0)), context()))
    assert (error.status, error.code) == (503, "service_unavailable")
    assert metrics_seen.get("ProviderOperatorErrors") == 1 and books.balance(acct) == START


@pytest.mark.parametrize("body, says", [
    ({"voice_settings": {"emotion": "whisper"}, "model": "minimax-speech-2.8-hd"}, "2.6"),
    ({"voice_settings": {"emotion": "fluent"}, "model": "minimax-speech-02-turbo"}, "2.6"),
    ({"language_boost": "Klingon"}, "language_boost"),
    ({"language_boost": "english"}, "language_boost"),
])
def test_minimax_parameter_rules_are_checked_before_any_charge(speech, accounts, books, minimax, body, says):
    acct = accounts.create(START).account_id
    payload = {"input": "Hello.", "voice": SYSTEM_VOICE, **body}
    error = error_of(speech(api_event("POST", "/v1/audio/speech", account_id=acct, body=json.dumps(payload),
                                      headers={"Content-Type": "application/json"}), context()))
    assert (error.status, error.code) == (400, "invalid_request") and says in error.message
    assert minimax.calls == [] and books.balance(acct) == START


@pytest.mark.parametrize("body", [
    {"voice_settings": {"emotion": "whisper"}, "model": "minimax-speech-2.6-hd"},
    {"voice_settings": {"emotion": "fluent"}, "model": "minimax-speech-2.6-turbo"},
    {"language_boost": "Chinese,Yue"},
    {"voice": "Cantonese_ProfessionalHost（F)"},
    {"voice": "Chinese (Mandarin)_Warm_Girl"},
])
def test_what_minimax_accepts_is_accepted(speech, accounts, minimax, body):
    acct = accounts.create(START).account_id
    payload = {"input": "Hello.", "voice": SYSTEM_VOICE, **body}
    response = speech(api_event("POST", "/v1/audio/speech", account_id=acct, body=json.dumps(payload),
                                headers={"Content-Type": "application/json"}), context())
    assert response["statusCode"] == 200, response["body"]
