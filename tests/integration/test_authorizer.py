"""The REQUEST authorizer on real events against moto."""

import json
from pathlib import Path

import pytest
from helpers import context

from kyma.accounts.keys import hash_key, key_id_of

EVENT = json.loads((Path(__file__).resolve().parents[2] / "events" / "authorizer-request.json").read_text())


def event_with(authorization: str | None) -> dict:
    event = json.loads(json.dumps(EVENT))
    for key in ("headers", "multiValueHeaders"):
        event[key].pop("Authorization")
    if authorization is not None:
        event["headers"]["authorization"] = authorization  # header names arrive in any case
    return event


@pytest.fixture
def authorizer(load_handler):
    return load_handler("AuthorizerFunction")


def test_a_valid_key_is_allowed_on_every_route_of_the_stage_with_the_account_in_context(authorizer, accounts):
    new = accounts.create(5_000_000)
    answer = authorizer(event_with(f"Bearer {new.api_key}"), context())
    assert answer["principalId"] == new.account_id
    # The key's public id and hash (what the reserve's key check names); no scopes: every scope.
    assert answer["context"] == {"account_id": new.account_id, "key_id": key_id_of(hash_key(new.api_key)),
                                 "key_hash": hash_key(new.api_key)}
    (statement,) = answer["policyDocument"]["Statement"]
    assert statement["Effect"] == "Allow"
    # Cached per key by API Gateway, so it must cover all routes, not only the first one called.
    assert statement["Resource"] == "arn:aws:execute-api:us-east-1:123456789012:abc123def4/dev/*/*"


@pytest.mark.parametrize("header", [None, "", "Bearer", "Bearer ", "Basic dXNlcjpwYXNz",
                                    "Bearer sk-kyma-not-a-real-key", "sk-kyma-no-scheme"])
def test_missing_malformed_or_unknown_keys_are_unauthorized(authorizer, accounts, header):
    accounts.create(5_000_000)
    with pytest.raises(Exception, match=r"^Unauthorized$"):
        authorizer(event_with(header), context())


def test_a_revoked_key_is_unauthorized_and_other_keys_of_the_account_still_work(authorizer, accounts):
    new = accounts.create(5_000_000)
    second = accounts.issue_key(new.account_id)
    assert accounts.revoke_key(new.api_key) is True
    with pytest.raises(Exception, match=r"^Unauthorized$"):
        authorizer(event_with(f"Bearer {new.api_key}"), context())
    assert authorizer(event_with(f"Bearer {second}"), context())["principalId"] == new.account_id


def test_keys_are_stored_only_as_sha256_hashes(accounts, ddb, cfg):
    new = accounts.create(1)
    items = ddb.scan(TableName=cfg.api_keys_table)["Items"]
    dump = json.dumps(items)
    assert new.api_key not in dump
    import hashlib
    assert hashlib.sha256(new.api_key.encode()).hexdigest() in dump
    # The hint shows only the prefix and the last 4 characters of the secret part.
    assert items[0]["key_hint"]["S"] == "sk-kyma-…" + new.api_key[-4:]


def test_the_authorizer_never_logs_the_key(authorizer, accounts, caplog):
    new = accounts.create(1)
    caplog.set_level("DEBUG")
    authorizer(event_with(f"Bearer {new.api_key}"), context())
    with pytest.raises(Exception, match=r"^Unauthorized$"):
        authorizer(event_with("Bearer sk-kyma-secret-guess"), context())
    assert new.api_key not in caplog.text and "secret-guess" not in caplog.text
    assert "allowed" in caplog.text and "denied" in caplog.text


def test_the_key_lookup_is_a_consistent_read(accounts, ddb, cfg):
    """A key revoked a moment ago must not be read as active from a lagging replica, and cached
    by API Gateway for 300 s: the authorizer's one GetItem is strongly consistent."""
    from kyma.accounts.keys import ApiKeys

    new = accounts.create(1)
    seen: list[dict] = []

    def record(params: dict, **_: object) -> None:
        seen.append(dict(params))

    ddb.meta.events.register("before-parameter-build.dynamodb.GetItem", record)
    try:
        assert ApiKeys(ddb, cfg).owner_of(new.api_key) == (new.account_id, None)
    finally:
        ddb.meta.events.unregister("before-parameter-build.dynamodb.GetItem", record)
    assert [(p["TableName"], p.get("ConsistentRead")) for p in seen] == [(cfg.api_keys_table, True)]
