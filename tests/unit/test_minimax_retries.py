"""The client against MiniMax's whole error table, with retries, over real HTTP to the sandbox.

For every official ``base_resp`` code: the class raised, whether it was retried (the
calls the sandbox saw), the ``Retry-After`` of the capacity codes, and one log
record per failed attempt carrying that attempt's ``trace_id``.  Then: recovery,
backoff growth and the deadline, and the lost-answer case of voice_clone (2039).
"""

from __future__ import annotations

import itertools
import logging
import random
import time

import pytest

from kyma.edge import errors
from kyma.providers import SynthesisRequest
from kyma.providers.minimax import MIN_TIME_LEFT, MiniMaxClient, RetryPolicy
from kyma_local.sandbox import PATH_CLONE, PATH_T2A, PATH_UPLOAD, MiniMaxSandbox
from kyma_local.sandbox.wire import OFFICIAL_CODES

KEY = "test-minimax-key-retries"
VOICE = "kyma_0a1b2c3d4e5f6a7b"
AUDIO = b"RIFF" + bytes(range(256)) * 40
FAST = RetryPolicy(attempts=3, base_delay=0.02, max_delay=0.08)
LOGGER = "kyma.providers.minimax"

# code -> (class, retried, status, error.code, Retry-After)
TABLE = {
    1000: (errors.ProviderError, True, 502, "provider_error", None),
    1001: (errors.ProviderError, True, 502, "provider_error", None),
    1002: (errors.ProviderUnavailable, True, 503, "service_unavailable", "5"),
    1004: (errors.ProviderAccountProblem, False, 503, "service_unavailable", None),
    1008: (errors.ProviderAccountProblem, False, 503, "service_unavailable", None),
    1013: (errors.ProviderError, True, 502, "provider_error", None),
    1024: (errors.ProviderError, True, 502, "provider_error", None),
    1026: (errors.ContentRejected, False, 400, "content_rejected", None),
    1027: (errors.ContentRejected, False, 400, "content_rejected", None),
    1033: (errors.ProviderError, True, 502, "provider_error", None),
    1039: (errors.ProviderUnavailable, True, 503, "service_unavailable", "5"),
    1041: (errors.ProviderUnavailable, True, 503, "service_unavailable", "5"),
    1042: (errors.ContentRejected, False, 400, "content_rejected", None),
    1043: (errors.ReferenceRejected, False, 400, "reference_rejected", None),
    1044: (errors.ReferenceRejected, False, 400, "reference_rejected", None),
    2013: (errors.UpstreamInvalidRequest, False, 400, "invalid_request", None),
    20132: (errors.UpstreamVoiceMissing, False, 404, "voice_not_found", None),
    2037: (errors.ReferenceRejected, False, 400, "reference_rejected", None),
    2038: (errors.ProviderAccountProblem, False, 503, "service_unavailable", None),
    2039: (errors.ProviderError, False, 502, "provider_error", None),
    2042: (errors.ProviderAccountProblem, False, 503, "service_unavailable", None),
    2045: (errors.ProviderUnavailable, True, 503, "service_unavailable", "5"),
    2048: (errors.ReferenceRejected, False, 400, "reference_rejected", None),
    2049: (errors.ProviderAccountProblem, False, 503, "service_unavailable", None),
    2056: (errors.ProviderAccountProblem, False, 503, "service_unavailable", None),
    4711: (errors.ProviderError, False, 502, "provider_error", None),         # not in the table
}
OPERATOR = {1004, 1008, 2038, 2042, 2049, 2056}


@pytest.fixture
def sandbox():
    with MiniMaxSandbox(api_key=KEY) as running:
        running.register_voice(VOICE)
        yield running


def client_for(sandbox: MiniMaxSandbox, retry: RetryPolicy = FAST, **kwargs) -> MiniMaxClient:
    return MiniMaxClient(sandbox.base_url, lambda: KEY, retry=retry, rng=random.Random(7), **kwargs)


def speech(**overrides) -> SynthesisRequest:
    fields = {"model": "speech-2.8-hd", "text": "Retries, retries.", "voice_id": VOICE, "audio_format": "mp3"}
    return SynthesisRequest(**{**fields, **overrides})


def soon(seconds: float = 10.0) -> float:
    return time.monotonic() + seconds


def records(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == LOGGER and r.levelno >= logging.WARNING]


def test_the_table_covers_every_official_code():
    assert set(TABLE) >= OFFICIAL_CODES


@pytest.mark.parametrize("code", sorted(TABLE))
def test_every_code_is_classified_retried_or_not_and_logged(sandbox, caplog, code):
    kind, retried, status, error_code, retry_after = TABLE[code]
    sandbox.fail_when(PATH_T2A, code, msg=f"said {code}")
    client = client_for(sandbox)
    with caplog.at_level(logging.WARNING, logger=LOGGER), pytest.raises(errors.UpstreamError) as info:
        client.synthesize(speech(), deadline=soon())
    err = info.value
    calls = sandbox.calls_to(PATH_T2A)
    assert type(err) is kind and (err.status, err.code) == (status, error_code)
    assert len(calls) == (FAST.attempts if retried else 1)
    assert err.provider_code == code and err.trace_id == calls[-1].trace_id
    assert err.retryable is retried
    assert err.headers.get("Retry-After") == retry_after
    assert type(err).operator is (code in OPERATOR)
    if code in OPERATOR:
        assert str(code) not in err.message and f"said {code}" not in err.message
    else:
        assert err.message == f"MiniMax speech synthesis failed: said {code} ({code})"
    # one log record per attempt, each with the trace_id MiniMax gave that attempt
    logged = records(caplog)
    assert [r.trace_id for r in logged] == [c.trace_id for c in calls]
    assert [r.will_retry for r in logged] == [True] * (len(calls) - 1) + [False]
    assert all(r.provider_code == code and r.attempt == n for n, r in enumerate(logged, 1))


@pytest.mark.parametrize("code, kind", [(1043, errors.ReferenceRejected), (2037, errors.ReferenceRejected),
                                        (2038, errors.ProviderAccountProblem), (2013, errors.ProviderError),
                                        (1002, errors.ProviderUnavailable)])
def test_clone_codes(sandbox, code, kind):
    sandbox.fail_when(PATH_CLONE, code)
    with pytest.raises(errors.UpstreamError) as info:
        client_for(sandbox).clone_voice(AUDIO, "reference.wav", "kyma_1111222233334444", deadline=soon())
    assert type(info.value) is kind and info.value.provider_code == code
    # only the clone step is retried: the upload succeeded once
    assert len(sandbox.calls_to(PATH_UPLOAD)) == 1
    assert len(sandbox.calls_to(PATH_CLONE)) == (3 if code == 1002 else 1)


def test_2013_on_an_upload_is_the_customers_file(sandbox):
    sandbox.fail_when(PATH_UPLOAD, 2013, msg="invalid params, file format")
    with pytest.raises(errors.UpstreamInvalidRequest):
        client_for(sandbox).clone_voice(AUDIO, "reference.wav", "kyma_1111222233334444", deadline=soon())


@pytest.mark.parametrize("failure, options", [
    (1002, {}), (1000, {}), ("http_500", {}), ("http_500", {"status": 503}), ("connection_drop", {}),
])
def test_a_transient_failure_then_success(sandbox, caplog, failure, options):
    mode, code = (failure, 1000) if isinstance(failure, str) else ("base_resp", failure)
    sandbox.fail_next(PATH_T2A, mode, code=code, times=2, **options)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        result = client_for(sandbox).synthesize(speech(), deadline=soon())
    calls = sandbox.calls_to(PATH_T2A)
    assert len(calls) == 3 and result.audio == sandbox.last_audio
    assert result.trace_id == calls[-1].trace_id
    assert [r.will_retry for r in records(caplog)] == [True, True]


def test_a_timeout_is_retried(sandbox):
    sandbox.fail_next(PATH_T2A, "timeout", seconds=3)
    client = client_for(sandbox, read_timeout=0.4)
    started = time.monotonic()
    result = client.synthesize(speech(), deadline=soon())
    assert result.audio == sandbox.last_audio and len(sandbox.calls_to(PATH_T2A)) == 2
    assert 0.4 <= time.monotonic() - started < 2.5


def test_malformed_answers_are_not_retried(sandbox):
    sandbox.fail_when(PATH_T2A, "malformed_json")
    with pytest.raises(errors.ProviderError):
        client_for(sandbox).synthesize(speech(), deadline=soon())
    assert len(sandbox.calls_to(PATH_T2A)) == 1


def test_backoff_grows_with_jitter(sandbox):
    policy = RetryPolicy(attempts=4, base_delay=0.1, max_delay=0.3)
    sandbox.fail_when(PATH_T2A, 1013)
    with pytest.raises(errors.ProviderError):
        client_for(sandbox, retry=policy).synthesize(speech(), deadline=soon())
    starts = [c.monotonic for c in sandbox.calls_to(PATH_T2A)]
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert len(gaps) == 3
    for n, gap in enumerate(gaps, 1):
        ceiling = min(policy.max_delay, policy.base_delay * 2 ** (n - 1))
        assert ceiling / 2 <= gap < ceiling + 0.15, (n, gap)
    # jitter: two clients with different seeds do not wait the same
    a, b = (RetryPolicy().delay(1, random.Random(seed)) for seed in (1, 2))
    assert a != b and all(0.125 <= d <= 0.25 for d in (a, b))


def test_retries_never_outlive_the_deadline(sandbox, caplog):
    policy = RetryPolicy(attempts=50, base_delay=0.2, max_delay=0.4)
    sandbox.fail_when(PATH_T2A, 1002)
    started = time.monotonic()
    deadline = started + 2.0
    with caplog.at_level(logging.WARNING, logger=LOGGER), pytest.raises(errors.ProviderUnavailable):
        client_for(sandbox, retry=policy).synthesize(speech(), deadline=deadline)
    calls = sandbox.calls_to(PATH_T2A)
    assert 3 <= len(calls) < 50
    assert time.monotonic() < deadline                              # gave up in time
    assert all(c.monotonic <= deadline - MIN_TIME_LEFT + 0.05 for c in calls)   # no attempt started late
    assert records(caplog)[-1].will_retry is False


def test_a_slow_attempt_uses_up_the_deadline_and_is_not_retried(sandbox):
    sandbox.set_delay(PATH_T2A, 3)
    started = time.monotonic()
    with pytest.raises(errors.ProviderError, match="did not answer in time"):
        client_for(sandbox).synthesize(speech(), deadline=started + 1.2)
    assert len(sandbox.calls_to(PATH_T2A)) == 1 and time.monotonic() - started < 1.6


def test_a_lost_clone_answer_then_2039_is_success(sandbox, caplog):
    voice = "kyma_5555666677778888"
    sandbox.fail_next(PATH_CLONE, "lost_answer")              # registered upstream, answer lost
    with caplog.at_level(logging.INFO, logger=LOGGER):
        client_for(sandbox).clone_voice(AUDIO, "reference.wav", voice, deadline=soon())
    first, second = sandbox.calls_to(PATH_CLONE)
    # the sandbox cloned it (0) but never answered (no HTTP status)
    assert (first.injected, first.status_code, first.http_status) == ("lost_answer", 0, None)
    assert second.status_code == 2039
    assert voice in sandbox.voices
    assert any("earlier attempt succeeded" in r.getMessage() for r in caplog.records)


def test_2039_on_the_first_attempt_is_still_an_error(sandbox):
    sandbox.register_voice("kyma_9999888877776666")
    with pytest.raises(errors.ProviderError) as info:
        client_for(sandbox).clone_voice(AUDIO, "reference.wav", "kyma_9999888877776666", deadline=soon())
    assert info.value.provider_code == 2039 and len(sandbox.calls_to(PATH_CLONE)) == 1


def test_a_lost_upload_answer_is_simply_uploaded_again(sandbox):
    sandbox.fail_next(PATH_UPLOAD, "lost_answer")
    client_for(sandbox).clone_voice(AUDIO, "reference.wav", "kyma_aaaabbbbccccdddd", deadline=soon())
    assert len(sandbox.calls_to(PATH_UPLOAD)) == 2 and len(sandbox.files) == 2
    assert sandbox.voices["kyma_aaaabbbbccccdddd"] == max(sandbox.files)   # the second file


def test_the_key_is_neither_logged_nor_sent_anywhere_else(sandbox, caplog):
    sandbox.fail_when(PATH_T2A, 1000, msg=f"echo Bearer {KEY}")
    with caplog.at_level(logging.DEBUG), pytest.raises(errors.ProviderError) as info:
        client_for(sandbox).synthesize(speech(), deadline=soon())
    assert KEY not in caplog.text and KEY not in str(info.value)
    assert all(KEY not in repr(vars(r)) for r in caplog.records)
    assert "[redacted]" in caplog.text
