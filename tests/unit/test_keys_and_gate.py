"""Scopes per route (kyma.edge.scopes), a key's fields read and checked (kyma.accounts.customer_keys),
and the items the caller's gate adds to the reserve (kyma.accounts.gate): pure, no AWS."""

from __future__ import annotations

import dataclasses
import json
import time

import pytest

from kyma.accounts import gate
from kyma.accounts.customer_keys import holds_keys, read_fields, status_of
from kyma.edge import errors, scopes
from kyma.platform.config import Config
from kyma.platform.dynamo import Stale, Undo

CFG = dataclasses.replace(Config.from_env({}), api_keys_table="keys", rate_counters_table="counters")
NOW = 1_796_000_000.0          # 2026-11-30


@pytest.mark.parametrize("method, resource, needs", [
    ("POST", "/v1/audio/speech", "speech"), ("POST", "/v1/audio/voice-clone", "voices:write"),
    ("POST", "/v1/audio/voice-design", "voices:write"), ("DELETE", "/v1/audio/voices/{voice_id}", "voices:write"),
    ("GET", "/v1/audio/voices", "voices:read"), ("GET", "/v1/credits/balance", "account:read"),
    ("GET", "/v1/limits", "account:read"), ("POST", "/v1/keys", "keys"), ("DELETE", "/v1/keys/{key_id}", "keys")])
def test_each_route_needs_its_scope_and_only_it(method, resource, needs):
    scopes.require(method, resource, {"account_id": "a", "scopes": needs})
    others = ",".join(s for s in scopes.ALL_SCOPES if s != needs)
    with pytest.raises(errors.PermissionDenied) as refused:
        scopes.require(method, resource, {"account_id": "a", "scopes": others})
    assert refused.value.status == 403 and needs in refused.value.message


def test_a_key_without_stored_scopes_may_do_everything_and_routes_without_an_authorizer_need_none():
    for route in scopes.ROUTE_SCOPES:
        scopes.require(*route, {"account_id": "a"})
    scopes.require("GET", "/v1/openapi.json", {"account_id": "a", "scopes": "speech"})
    scopes.require("POST", "/v1/keys", {})


def test_every_route_behind_the_authorizer_needs_a_scope():
    from kyma_local.template import Template

    routes = {(e.method, e.path) for fn in Template().functions.values() for e in fn.api_events if e.authorized}
    assert routes and routes <= set(scopes.ROUTE_SCOPES), routes - set(scopes.ROUTE_SCOPES)


def test_key_fields_are_read_exactly():
    fields = read_fields({"name": " ci ", "scopes": ["voices:read", "speech"], "monthly_spend_limit_usd": 0.5,
                          "expires_at": "2027-01-01T00:00:00Z"}, creating=True, now=NOW)
    assert fields == {"name": "ci", "scopes": ("speech", "voices:read"), "spend_limit_micros": 500_000,
                      "expires_at": 1_798_761_600}
    assert read_fields({"name": "x"}, creating=True, now=NOW)["scopes"] == scopes.DEFAULT_SCOPES
    assert read_fields({"monthly_spend_limit_usd": None}, creating=False, now=NOW) == {"spend_limit_micros": None}
    assert read_fields({"monthly_spend_limit_usd": 25.1}, creating=False, now=NOW) == {"spend_limit_micros": 25_100_000}


@pytest.mark.parametrize("body", [{}, {"name": None}, {"name": "a\nb"}, {"name": "ci", "scopes": "speech"},
                                  {"name": "ci", "monthly_spend_limit_usd": True},
                                  {"name": "ci", "expires_at": 1798761600}])
def test_bad_fields_are_invalid_request(body):
    with pytest.raises(errors.InvalidRequest):
        read_fields(body, creating=True, now=NOW)
    with pytest.raises(errors.InvalidRequest):
        read_fields({}, creating=False, now=NOW)


def test_a_key_status_and_whether_it_can_manage_keys():
    assert status_of({"status": "active"}, NOW) == "active"
    assert status_of({"status": "active", "expires_at": NOW - 1}, NOW) == "expired"
    assert status_of({"status": "revoked"}, NOW) == "revoked"
    assert holds_keys({"status": "active"}, NOW) and holds_keys({"status": "active", "scopes": {"keys"}}, NOW)
    assert not holds_keys({"status": "active", "scopes": {"speech"}}, NOW)
    assert not holds_keys({"status": "revoked"}, NOW)


def _context(limit: int | None = None, concurrency: dict | None = None) -> dict:
    return {"account_id": "acct_1", "key_hash": "ab" * 32, "key_id": "key_" + "ab" * 12,
            **({"spend_limit_micros": str(limit)} if limit is not None else {}),
            **({"concurrency_limits": json.dumps(concurrency)} if concurrency else {})}


def test_the_gate_adds_the_key_check_the_month_and_the_request_in_flight_with_their_undo():
    checks = gate.Gate(CFG, "speech", "acct_1", _context(10_000, {"speech_stream": 2}), gate.SPEECH_STREAM,
                       now=NOW)(2_900)
    assert [c.name for c in checks] == ["key", "in_flight", "key_month"]
    key, in_flight, month = checks
    assert "spend_limit_micros = :limit" in key.item["ConditionCheck"]["ConditionExpression"]
    assert in_flight.item["Update"]["ExpressionAttributeValues"][":max"] == {"N": "2"}
    assert month.item["Update"]["ExpressionAttributeValues"][":room"] == {"N": str(10_000 - 2_900)}
    assert month.item["Update"]["Key"] == {"counter_id": {"S": "spend#key_" + "ab" * 12 + "#2026-11"}}
    assert month.undo == (Undo("counters", {"counter_id": "spend#key_" + "ab" * 12 + "#2026-11"}, "spent_micros",
                               on_settle=0, on_release=-2_900),)
    assert in_flight.undo[0].on_settle == in_flight.undo[0].on_release == -1


def test_a_price_over_the_whole_limit_fails_even_on_a_fresh_month():
    (_, month) = gate.Gate(CFG, "speech", "acct_1", _context(1_000), now=NOW)(2_900)
    assert month.item["Update"]["ConditionExpression"] == "spent_micros <= :room"    # no attribute_not_exists


def test_the_gates_refusals():
    g = gate.Gate(CFG, "voices:write", "acct_1", _context(10_000, {"speech_stream": 2}), gate.SPEECH_STREAM, now=NOW)
    key, in_flight, month = g(2_900)
    assert isinstance(key.refusal({"status": "revoked"}), errors.AuthError)
    assert isinstance(key.refusal({"status": "active", "expires_at": NOW - 1}), errors.AuthError)
    assert isinstance(key.refusal({"status": "active", "scopes": {"speech"}}), errors.PermissionDenied)
    assert isinstance(key.refusal({"status": "active", "spend_limit_micros": 5}), Stale) and g.limit == 5
    busy = in_flight.refusal({"n": 2})
    assert isinstance(busy, errors.TooManyConcurrent) and busy.headers["Retry-After"] == "5"
    over = month.refusal({"spent_micros": 8_000})
    assert isinstance(over, errors.KeySpendLimitExceeded) and over.status == 402
    assert "0.002 USD left" in over.message and "2026-12-01T00:00:00Z" in over.message


def test_no_key_in_the_context_adds_nothing_and_no_limit_counts_without_a_condition():
    assert gate.Gate(CFG, "speech", "acct_1", {"account_id": "acct_1"}, now=NOW)(2_900) == []
    (_, month) = gate.Gate(CFG, "speech", "acct_1", _context(), now=NOW)(2_900)
    assert "ConditionExpression" not in month.item["Update"]


def test_the_month_resets_at_the_next_utc_month():
    assert gate.month_resets_at(time.mktime((2026, 12, 31, 23, 0, 0, 0, 0, 0)) - time.timezone) == \
        "2027-01-01T00:00:00Z"
