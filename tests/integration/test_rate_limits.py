"""Per-account rate limits (shared/reference/account.md): an account over its limit gets 429
rate_limited with Retry-After, nothing is charged, and another account is unaffected."""

from __future__ import annotations

import json

import pytest
from helpers import START, SYSTEM_VOICE, api_event, context, error_of


@pytest.fixture
def authorize(aws, load_handler):
    """Run the real authorizer for a key and return its context, as API Gateway passes it on."""
    authorizer = load_handler("AuthorizerFunction")

    def context_for(api_key: str) -> dict:
        event = {"type": "REQUEST", "headers": {"Authorization": f"Bearer {api_key}"},
                 "methodArn": "arn:aws:execute-api:us-east-1:123456789012:api/dev/GET/v1/credits/balance",
                 "requestContext": {"requestId": "r"}}
        return authorizer(event, context())["context"]

    return context_for


def request(handler, method, path, authorizer: dict, body=None):
    event = api_event(method, path, account_id=authorizer["account_id"],
                      body=json.dumps(body) if body is not None else b"",
                      headers={"Content-Type": "application/json"} if body is not None else {})
    event["requestContext"]["authorizer"].update(authorizer)
    return handler(event, context())


def test_the_authorizer_passes_an_accounts_own_limits_to_every_key(aws, accounts, authorize):
    new = accounts.create(START)
    assert "rate_limits" not in authorize(new.api_key)                  # defaults: nothing to pass
    accounts.set_limits(new.account_id, "speech", per_minute=30, burst=4)
    second_key = accounts.issue_key(new.account_id)                    # keys issued later carry them too
    for key in (new.api_key, second_key):
        assert json.loads(authorize(key)["rate_limits"]) == {"speech": {"rpm": 30, "burst": 4}}


def test_a_burst_over_the_limit_is_429_with_retry_after_and_the_others_pass(aws, accounts, authorize,
                                                                           load_handler, monkeypatch):
    import time as clock

    handler = load_handler("AccountFunction")
    a, b = accounts.create(START), accounts.create(START)
    accounts.set_limits(a.account_id, "account", per_minute=100, burst=2)
    ctx_a, ctx_b = authorize(a.api_key), authorize(b.api_key)
    base = (int(clock.time()) // 60) * 60 + 60 + 20.5          # the clock stands still, mid-second
    monkeypatch.setattr(clock, "time", lambda: base)
    responses = [request(handler, "GET", "/v1/credits/balance", ctx_a) for _ in range(5)]
    assert [r["statusCode"] for r in responses] == [200, 200, 429, 429, 429]   # a burst of 2 per second
    for refused in responses[2:]:
        assert error_of(refused).code == "rate_limited" and refused["headers"]["Retry-After"] == "1"
    assert all(request(handler, "GET", "/v1/credits/balance", ctx_b)["statusCode"] == 200 for _ in range(2))
    monkeypatch.setattr(clock, "time", lambda: base + 1)       # the next second: a new burst
    assert request(handler, "GET", "/v1/credits/balance", ctx_a)["statusCode"] == 200


def test_the_per_minute_limit_says_when_the_minute_ends(aws, accounts, authorize, load_handler, monkeypatch):
    import time as clock

    handler = load_handler("AccountFunction")
    new = accounts.create(START)
    accounts.set_limits(new.account_id, "account", per_minute=2, burst=2)
    ctx = authorize(new.api_key)
    base = (int(clock.time()) // 60) * 60 + 60 + 20           # 20 s into a fresh minute
    for offset, expected in ((0, 200), (1, 200), (2, 429)):
        monkeypatch.setattr(clock, "time", lambda offset=offset: base + offset)
        response = request(handler, "GET", "/v1/credits/ledger", ctx)
        assert response["statusCode"] == expected
    assert response["headers"]["Retry-After"] == "38"           # the minute ends 38 s later


def test_paid_requests_count_in_the_reserve_and_refused_ones_are_free(minimax, accounts, books, authorize,
                                                                     load_handler, monkeypatch):
    import time as clock

    handler = load_handler("SpeechFunction")
    poor, rich = accounts.create(1), accounts.create(START)
    for account in (poor, rich):
        accounts.set_limits(account.account_id, "speech", per_minute=100, burst=2)
    ctx_poor, ctx_rich = authorize(poor.api_key), authorize(rich.api_key)
    body = {"input": "Hello there.", "voice": SYSTEM_VOICE}
    # 402s do not use up the limit: the counter rides in the reserve transaction, undone with it
    for _ in range(3):
        assert error_of(request(handler, "POST", "/v1/audio/speech", ctx_poor, body)).code == "insufficient_credits"
    now = clock.time()
    monkeypatch.setattr(clock, "time", lambda: now)              # all four within one second, however slow
    statuses = [request(handler, "POST", "/v1/audio/speech", ctx_rich, body)["statusCode"] for _ in range(4)]
    monkeypatch.undo()
    assert statuses == [200, 200, 429, 429]
    charged = [e for e in books.entries(rich.account_id) if e.get("status") == "charged"]
    assert len(charged) == statuses.count(200) and len(minimax.calls_to("/v1/t2a_v2")) == statuses.count(200)
    assert books.audit(rich.account_id)["consistent"]


@pytest.mark.parametrize("endpoint, minute, burst", [("telepathy", 10, 2), ("speech", 0, 0), ("speech", 5, 6)])
def test_absurd_limits_are_refused(aws, accounts, endpoint, minute, burst):
    from kyma.edge import errors
    new = accounts.create(START)
    with pytest.raises(errors.InvalidRequest):
        accounts.set_limits(new.account_id, endpoint, per_minute=minute, burst=burst)
