"""kyma.edge.http.request_deadline: the earlier of API Gateway's budget (from requestTimeEpoch) and the
Lambda context's remaining time, less the margin, and a requestTimeEpoch that cannot be API
Gateway's (older than the integration timeout, or in the future) is not trusted: SAM CLI stamps
every event of one `sam local start-api` run with its start time, and replayed events carry old ones."""

from __future__ import annotations

import time

import pytest

from kyma.edge import http
from kyma.edge.http import SAFETY_MARGIN_SECONDS, request_deadline

API_TIMEOUT = 29.0


class Context:
    """A Lambda context with this many seconds left."""

    def __init__(self, remaining_s: float) -> None:
        self._until = time.monotonic() + remaining_s

    def get_remaining_time_in_millis(self) -> int:
        return int((self._until - time.monotonic()) * 1000)


def epoch(seconds_ago: float) -> dict:
    return {"requestTimeEpoch": int((time.time() - seconds_ago) * 1000)}


def budget(request_context: dict, remaining_s: float = 29.0) -> float:
    """Seconds from now until the deadline, margin added back: the time the request was given."""
    return request_deadline(request_context, Context(remaining_s), API_TIMEOUT) - time.monotonic() \
        + SAFETY_MARGIN_SECONDS


@pytest.fixture(autouse=True)
def _fresh_warning(monkeypatch):
    monkeypatch.setattr(http, "_untrusted_epoch_warned", False, raising=False)


def test_an_epoch_20_s_old_gets_the_9_s_api_gateway_has_left():
    assert budget(epoch(20)) == pytest.approx(9.0, abs=0.1)


def test_an_epoch_an_hour_old_gets_the_lambda_contexts_time_not_none():
    # Given the event of a `sam local start-api` run started an hour ago (or a replayed event)
    # When the handler computes its deadline with 25 s left in the Lambda context
    # Then it has those 25 s (before: 29 s - 3,600 s, and every provider call was refused)
    assert budget(epoch(3600), remaining_s=25) == pytest.approx(25.0, abs=0.1)


def test_an_epoch_in_the_future_gets_the_lambda_contexts_time():
    assert budget(epoch(-3600), remaining_s=20) == pytest.approx(20.0, abs=0.1)


def test_clock_skew_under_a_second_is_a_request_that_just_started():
    assert budget(epoch(-0.5), remaining_s=40) == pytest.approx(API_TIMEOUT, abs=0.1)


def test_a_just_expired_budget_is_still_trusted_when_within_the_integration_timeout():
    assert budget(epoch(28.5)) == pytest.approx(0.5, abs=0.1)


def test_the_lambda_context_still_caps_a_trusted_epoch():
    assert budget(epoch(1), remaining_s=5) == pytest.approx(5.0, abs=0.1)


def test_no_epoch_is_the_integration_timeout_capped_by_the_context():
    assert budget({"requestTimeEpoch": 0}, remaining_s=40) == pytest.approx(API_TIMEOUT, abs=0.1)
    assert budget({}, remaining_s=10) == pytest.approx(10.0, abs=0.1)


def test_an_untrusted_epoch_is_warned_about_once_per_process(caplog):
    caplog.set_level("WARNING")
    for _ in range(3):
        budget(epoch(3600))
    budget(epoch(-3600))
    warnings = [r for r in caplog.records if "requestTimeEpoch not trusted" in r.getMessage()]
    assert len(warnings) == 1
    assert warnings[0].levelname == "WARNING"
    assert warnings[0].request_age_seconds == pytest.approx(3600, abs=2)
    assert warnings[0].api_timeout_seconds == API_TIMEOUT


def test_a_trusted_epoch_warns_about_nothing(caplog):
    caplog.set_level("DEBUG")
    budget(epoch(3))
    assert "requestTimeEpoch" not in caplog.text
