"""Keys a customer manages, their scopes, the monthly spend limit per key and the requests in flight
per account (shared/reference/keys-and-limits.md), through the real authorizer and functions (moto,
the MiniMax sandbox).  The money rules: a refused call is never charged, a key's month equals its
charges plus its open holds, and the audit holds every counter to the holds that moved it."""

from __future__ import annotations

import json
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import audio_fixtures as fx
import pytest
from helpers import START, SYSTEM_VOICE, api_event, body_of, clone_event, context, error_of

from kyma.accounts.gate import SPEECH_STREAM, inflight_counter_id, month_of, spend_counter_id
from kyma.platform.dynamo import from_item, to_item
from kyma_local.sandbox import PATH_T2A

TEXT = "Hello from the Kyma voice API"      # 29 characters: $0.0029 on the HD model
COST = 2_900
WAV = fx.wav(12.0)


@pytest.fixture
def authorize(aws, load_handler):
    """The real authorizer: a key → the context API Gateway passes on to the functions."""
    authorizer = load_handler("AuthorizerFunction")

    def context_for(api_key: str) -> dict:
        event = {"type": "REQUEST", "headers": {"Authorization": f"Bearer {api_key}"},
                 "methodArn": "arn:aws:execute-api:us-east-1:123456789012:api/dev/GET/v1/keys",
                 "requestContext": {"requestId": "r"}}
        return authorizer(event, context())["context"]

    return context_for


def call(handler, method, path, ctx: dict, body=None, *, resource=None, path_params=None, raw=None):
    event = api_event(method, path, resource=resource, account_id=ctx["account_id"],
                      body=raw if raw is not None else (json.dumps(body) if body is not None else b""),
                      headers={"Content-Type": "application/json"} if body is not None else {})
    event["requestContext"]["authorizer"].update(ctx)
    event["pathParameters"] = path_params
    return handler(event, context())


def key_call(keys, method, key_id, ctx, body=None):
    return call(keys, method, f"/v1/keys/{key_id}", ctx, body, resource="/v1/keys/{key_id}",
                path_params={"key_id": key_id})


def clone_with(handler, ctx):
    event = clone_event(ctx["account_id"], WAV)
    event["requestContext"]["authorizer"].update(ctx)
    return handler(event, context("VoiceCloneFunction"))


def counter(ddb, cfg, counter_id: str, attribute: str) -> int:
    item = from_item(ddb.get_item(TableName=cfg.rate_counters_table, Key=to_item({"counter_id": counter_id}),
                                  ConsistentRead=True).get("Item")) or {}
    return int(item.get(attribute, 0))


def month_of_key(ddb, cfg, key_id: str) -> int:
    return counter(ddb, cfg, spend_counter_id(key_id, month_of(time.time())), "spent_micros")


def holds(books, acct) -> list[dict]:
    return [e for e in books.entries(acct) if e["type"] == "hold"]


@pytest.fixture
def fns(minimax, load_handler):
    return {"keys": load_handler("KeysFunction"), "speech": load_handler("SpeechFunction"),
            "clone": load_handler("VoiceCloneFunction"), "account": load_handler("AccountFunction")}


def make_key(fns, ctx, authorize, **fields) -> tuple[dict, dict]:
    made = call(fns["keys"], "POST", "/v1/keys", ctx, {"name": "ci", **fields})
    assert made["statusCode"] == 201, body_of(made)
    shown = body_of(made)
    return shown, authorize(shown["key"])


# ── keys ─────────────────────────────────────────────────────────────────
def test_a_key_made_by_the_first_key_is_shown_once_stored_hashed_listed_without_it_and_works(
        fns, accounts, authorize, ddb, cfg):
    first = accounts.create(START)
    ctx = authorize(first.api_key)
    shown, new_ctx = make_key(fns, ctx, authorize, scopes=["speech", "voices:read"], monthly_spend_limit_usd=25.0,
                              expires_at="2099-01-01T00:00:00Z")
    assert shown["key"].startswith("sk-kyma-") and shown["key_id"].startswith("key_")
    assert shown["scopes"] == ["speech", "voices:read"] and shown["monthly_spend_limit_usd"] == 25.0
    assert shown["expires_at"] == "2099-01-01T00:00:00Z"
    assert new_ctx["account_id"] == first.account_id and new_ctx["scopes"] == "speech,voices:read"
    stored = json.dumps(ddb.scan(TableName=cfg.api_keys_table)["Items"])
    assert shown["key"] not in stored and first.api_key not in stored              # hashes only
    listing = call(fns["keys"], "GET", "/v1/keys", ctx)
    assert listing["statusCode"] == 200 and shown["key"] not in listing["body"]
    assert first.api_key not in listing["body"]
    listed = {k["key_id"]: k for k in body_of(listing)["keys"]}
    mine = listed[shown["key_id"]]
    assert mine["status"] == "active" and mine["spent_this_month_usd"] == 0 and mine["name"] == "ci"
    assert mine["hint"].startswith("sk-kyma-") and mine["hint"].endswith(shown["key"][-4:])
    assert len(listed) == 2
    spoken = call(fns["speech"], "POST", "/v1/audio/speech", new_ctx, {"input": TEXT, "voice": SYSTEM_VOICE})
    assert spoken["statusCode"] == 200
    assert month_of_key(ddb, cfg, shown["key_id"]) == COST


def test_no_scopes_given_is_every_scope_but_keys_and_a_key_without_keys_cannot_manage_keys(fns, accounts,
                                                                                           authorize):
    ctx = authorize(accounts.create(START).api_key)
    shown, new_ctx = make_key(fns, ctx, authorize)
    assert "keys" not in shown["scopes"] and "speech" in shown["scopes"]
    refused = call(fns["keys"], "POST", "/v1/keys", new_ctx, {"name": "escalate", "scopes": ["keys"]})
    assert error_of(refused).status == 403 and error_of(refused).code == "permission_denied"


@pytest.mark.parametrize("body", [
    {}, {"name": ""}, {"name": "x" * 65}, {"name": "ci", "scopes": []}, {"name": "ci", "scopes": ["admin"]},
    {"name": "ci", "monthly_spend_limit_usd": -1}, {"name": "ci", "monthly_spend_limit_usd": "5"},
    {"name": "ci", "monthly_spend_limit_usd": 0.0000001}, {"name": "ci", "expires_at": "2020-01-01T00:00:00Z"},
    {"name": "ci", "expires_at": "tomorrow"}, {"name": "ci", "colour": "red"}])
def test_bad_key_fields_are_400_and_make_no_key(fns, accounts, authorize, body):
    ctx = authorize(accounts.create(START).api_key)
    response = call(fns["keys"], "POST", "/v1/keys", ctx, body)
    assert error_of(response).status == 400 and error_of(response).code == "invalid_request"
    assert len(body_of(call(fns["keys"], "GET", "/v1/keys", ctx))["keys"]) == 1


def test_another_accounts_key_is_404(fns, accounts, authorize):
    mine, theirs = authorize(accounts.create(START).api_key), authorize(accounts.create(START).api_key)
    shown, _ = make_key(fns, theirs, authorize)
    for method, body in (("PATCH", {"name": "mine now"}), ("DELETE", None)):
        assert error_of(key_call(fns["keys"], method, shown["key_id"], mine, body)).code == "not_found"
    assert error_of(key_call(fns["keys"], "DELETE", "key_../../x", mine)).code == "not_found"


# ── scopes ───────────────────────────────────────────────────────────────
def test_outside_its_scopes_a_key_gets_403_and_nothing_is_charged(fns, accounts, authorize, books, minimax):
    first = accounts.create(START)
    _, speech_only = make_key(fns, authorize(first.api_key), authorize, scopes=["speech"])
    refused = clone_with(fns["clone"], speech_only)
    assert error_of(refused).status == 403 and error_of(refused).code == "permission_denied"
    assert "voices:write" in error_of(refused).message
    balance = call(fns["account"], "GET", "/v1/credits/balance", speech_only)
    assert error_of(balance).code == "permission_denied"
    assert books.balance(first.account_id) == START and holds(books, first.account_id) == []
    assert minimax.calls_to("/v1/voice_clone") == []
    assert call(fns["speech"], "POST", "/v1/audio/speech", speech_only,
                {"input": TEXT, "voice": SYSTEM_VOICE})["statusCode"] == 200


def test_a_scope_removed_stops_paid_work_at_once_whatever_the_authorizer_cached(fns, accounts, authorize, books):
    first = accounts.create(START)
    ctx = authorize(first.api_key)
    shown, cached = make_key(fns, ctx, authorize, scopes=["speech", "voices:read"])
    changed = key_call(fns["keys"], "PATCH", shown["key_id"], ctx, {"scopes": ["voices:read"]})
    assert changed["statusCode"] == 200 and body_of(changed)["scopes"] == ["voices:read"]
    # The cached context still says `speech`: the reserve's key check reads the key itself.
    refused = call(fns["speech"], "POST", "/v1/audio/speech", cached, {"input": TEXT, "voice": SYSTEM_VOICE})
    assert error_of(refused).status == 403 and error_of(refused).code == "permission_denied"
    assert books.balance(first.account_id) == START and books.audit(first.account_id)["consistent"]


def test_a_revoked_key_stops_paid_work_at_once_and_the_authorizer_refuses_it(fns, accounts, authorize, books):
    first = accounts.create(START)
    ctx = authorize(first.api_key)
    shown, cached = make_key(fns, ctx, authorize)
    revoked = key_call(fns["keys"], "DELETE", shown["key_id"], ctx)
    assert revoked["statusCode"] == 200 and body_of(revoked)["status"] == "revoked"
    refused = call(fns["speech"], "POST", "/v1/audio/speech", cached, {"input": TEXT, "voice": SYSTEM_VOICE})
    assert error_of(refused).status == 401 and error_of(refused).code == "auth_error"
    refused_clone = clone_with(fns["clone"], cached)
    assert error_of(refused_clone).status == 401
    with pytest.raises(Exception, match="Unauthorized"):
        authorize(shown["key"])
    assert books.balance(first.account_id) == START and holds(books, first.account_id) == []


def test_an_expired_key_is_refused_by_the_authorizer_and_the_reserve(fns, accounts, authorize, books, monkeypatch):
    first = accounts.create(START)
    shown, cached = make_key(fns, authorize(first.api_key), authorize, expires_at="2099-01-01T00:00:00Z")
    later = time.time() + 100 * 365 * 86_400
    monkeypatch.setattr(time, "time", lambda: later)
    refused = call(fns["speech"], "POST", "/v1/audio/speech", cached, {"input": TEXT, "voice": SYSTEM_VOICE})
    assert error_of(refused).code == "auth_error"
    with pytest.raises(Exception, match="Unauthorized"):
        authorize(shown["key"])
    monkeypatch.undo()
    assert books.balance(first.account_id) == START


def test_the_last_key_that_can_manage_keys_cannot_be_revoked_or_lose_the_scope(fns, accounts, authorize):
    first = accounts.create(START)
    ctx = authorize(first.api_key)
    first_id = ctx["key_id"]
    for method, body in (("DELETE", None), ("PATCH", {"scopes": ["speech"]})):
        response = key_call(fns["keys"], method, first_id, ctx, body)
        assert error_of(response).status == 409 and error_of(response).code == "conflict"
    other, other_ctx = make_key(fns, ctx, authorize, scopes=["keys"])
    assert key_call(fns["keys"], "DELETE", first_id, ctx)["statusCode"] == 200       # another one can
    assert error_of(key_call(fns["keys"], "DELETE", other["key_id"], other_ctx)).code == "conflict"


def test_two_keys_revoking_each_other_at_once_never_lock_the_account_out(fns, accounts, authorize):
    first = accounts.create(START)
    ctx = authorize(first.api_key)
    other, other_ctx = make_key(fns, ctx, authorize, scopes=["keys"])
    barrier = threading.Barrier(2)

    def revoke(key_id, as_ctx):
        barrier.wait()
        return key_call(fns["keys"], "DELETE", key_id, as_ctx)["statusCode"]

    with ThreadPoolExecutor(2) as pool:
        statuses = sorted(pool.map(lambda a: revoke(*a), [(other["key_id"], ctx), (ctx["key_id"], other_ctx)]))
    assert statuses == [200, 409]
    survivor = other_ctx if statuses and key_call(fns["keys"], "PATCH", other["key_id"], other_ctx,
                                                   {"name": "alive"})["statusCode"] == 200 else ctx
    listed = body_of(call(fns["keys"], "GET", "/v1/keys", survivor))["keys"]
    assert sorted(k["status"] for k in listed) == ["active", "revoked"]


# ── the monthly spend limit ──────────────────────────────────────────────
def test_a_key_capped_is_drained_by_speech_until_402_with_what_is_left_and_when_it_resets(
        fns, accounts, authorize, books, ddb, cfg):
    first = accounts.create(START)
    shown, capped = make_key(fns, authorize(first.api_key), authorize, monthly_spend_limit_usd=0.0100)
    statuses = [call(fns["speech"], "POST", "/v1/audio/speech", capped,
                     {"input": TEXT, "voice": SYSTEM_VOICE})["statusCode"] for _ in range(5)]
    assert statuses == [200, 200, 200, 402, 402]                   # 3 × 0.0029 = 0.0087; a 4th is 0.0116
    refused = call(fns["speech"], "POST", "/v1/audio/speech", capped, {"input": TEXT, "voice": SYSTEM_VOICE})
    error = error_of(refused)
    assert error.code == "key_spend_limit_exceeded"
    assert "0.0013 USD left" in error.message and "resets at" in error.message
    assert month_of_key(ddb, cfg, shown["key_id"]) == 3 * COST
    assert books.balance(first.account_id) == START - 3 * COST
    assert [h["status"] for h in holds(books, first.account_id)] == ["charged"] * 3
    listed = {k["key_id"]: k for k in body_of(call(fns["keys"], "GET", "/v1/keys", capped | {"scopes": ""}))["keys"]}
    assert listed[shown["key_id"]]["spent_this_month_usd"] == 0.0087
    limits = body_of(call(fns["keys"], "GET", "/v1/limits", capped))
    assert limits["key"]["remaining_this_month_usd"] == 0.0013 and limits["key"]["spent_this_month_usd"] == 0.0087
    assert limits["concurrency"][SPEECH_STREAM] == {"limit": 10, "in_flight": 0}
    assert set(limits["rate_limits"]) >= {"speech", "voice-clone", "voice-design", "account"}
    assert books.audit(first.account_id)["consistent"]


def test_a_limit_lowered_applies_at_once_through_a_stale_authorizer_cache(fns, accounts, authorize, books):
    first = accounts.create(START)
    ctx = authorize(first.api_key)
    shown, cached = make_key(fns, ctx, authorize, monthly_spend_limit_usd=10)
    assert key_call(fns["keys"], "PATCH", shown["key_id"], ctx, {"monthly_spend_limit_usd": 0.001})[
        "statusCode"] == 200
    refused = call(fns["speech"], "POST", "/v1/audio/speech", cached, {"input": TEXT, "voice": SYSTEM_VOICE})
    assert error_of(refused).code == "key_spend_limit_exceeded"
    assert key_call(fns["keys"], "PATCH", shown["key_id"], ctx, {"monthly_spend_limit_usd": None})[
        "statusCode"] == 200
    assert call(fns["speech"], "POST", "/v1/audio/speech", cached,
                {"input": TEXT, "voice": SYSTEM_VOICE})["statusCode"] == 200
    assert books.balance(first.account_id) == START - COST


def test_a_released_hold_gives_its_amount_back_to_the_month(fns, accounts, authorize, books, ddb, cfg, minimax):
    first = accounts.create(START)
    shown, capped = make_key(fns, authorize(first.api_key), authorize, monthly_spend_limit_usd=1)
    minimax.fail_when(PATH_T2A, "http_500")
    assert call(fns["speech"], "POST", "/v1/audio/speech", capped,
                {"input": TEXT, "voice": SYSTEM_VOICE})["statusCode"] == 502
    minimax.clear_failures()
    minimax.fail_next(PATH_T2A, "stream_drop", after_chunks=3)
    cut = call(fns["speech"], "POST", "/v1/audio/speech", capped,
               {"input": TEXT, "voice": SYSTEM_VOICE, "stream_format": "audio"})
    assert cut["statusCode"] == 200 and not cut["complete"]
    assert [h["status"] for h in holds(books, first.account_id)] == ["released", "released"]
    assert month_of_key(ddb, cfg, shown["key_id"]) == 0
    assert counter(ddb, cfg, inflight_counter_id(first.account_id, SPEECH_STREAM), "n") == 0
    audit = books.audit(first.account_id)
    assert audit["consistent"] and audit["counters"] == 2


# ── under concurrency ────────────────────────────────────────────────────
def _mixed(fns, ctx, n: int, rng: random.Random, *, cut: bool) -> list[int]:
    """n paid requests at once: clones, whole-file speech, streamed speech (read to the end, or cut by
    the client at a random point when `cut`)."""
    from kyma_local.web_adapter import WebAdapterPool

    barrier = threading.Barrier(n)
    kinds = [("clone", "whole", "stream")[i % 3] for i in range(n)]
    pools: list[WebAdapterPool] = []

    def one(kind: str) -> int:
        barrier.wait()
        if kind == "clone":
            return clone_with(fns["clone"], ctx)["statusCode"]
        body = {"input": TEXT, "voice": SYSTEM_VOICE, **({"stream_format": "audio"} if kind == "stream" else {})}
        if kind == "stream" and cut and rng.random() < 0.5:
            return _cut_stream(fns["aws"], ctx, body, rng.randint(1, 6), pools)
        return call(fns["speech"], "POST", "/v1/audio/speech", ctx, body)["statusCode"]

    with ThreadPoolExecutor(n) as pool:
        statuses = list(pool.map(one, kinds))
    for p in pools:
        p.close()
    return statuses


def _cut_stream(aws, ctx, body, reads: int, pools) -> int:
    from kyma_local.web_adapter import WebAdapterPool

    pool = WebAdapterPool(aws.functions["SpeechFunction"])
    pools.append(pool)
    event = api_event("POST", "/v1/audio/speech", body=json.dumps(body), account_id=ctx["account_id"],
                      headers={"Content-Type": "application/json"})
    event["requestContext"]["authorizer"].update(ctx)
    app = pool.invoke_stream(event, wait=30)
    try:
        for _ in range(reads):
            if app.status != 200 or not app.read(10):
                break
    except OSError:
        pass
    finally:
        app.close(reusable=False)
    return app.status


def _settled(books, acct, timeout=20.0) -> list[dict]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = holds(books, acct)
        if all(h["status"] != "open" for h in found):
            return found
        time.sleep(0.05)
    return holds(books, acct)


@pytest.fixture
def same_price(configure, minimax, load_handler, aws):
    """A clone priced like a speech request (so the key's remaining limit affords exactly K of any mix),
    and rate limits that 40 requests at once do not reach."""
    configure(VOICE_CLONE_PRICE_MICROS=COST)
    minimax.first_chunk_ms, minimax.chunk_interval_ms = 50, 20
    return {"keys": load_handler("KeysFunction"), "speech": load_handler("SpeechFunction"),
            "clone": load_handler("VoiceCloneFunction"), "aws": aws}


def _capped_key(same_price, accounts, authorize, limit_micros: int) -> tuple[str, dict, dict]:
    first = accounts.create(START)
    for endpoint in ("speech", "voice-clone"):
        accounts.set_limits(first.account_id, endpoint, per_minute=1000, burst=1000)
    accounts.set_concurrency(first.account_id, SPEECH_STREAM, limit=100)
    shown, ctx = make_key(same_price, authorize(first.api_key), authorize,
                          monthly_spend_limit_usd=limit_micros / 1_000_000)
    return first.account_id, shown, ctx


@pytest.mark.parametrize("k", [7])
def test_forty_concurrent_mixed_paid_requests_on_a_key_that_affords_k_exactly_k_succeed(
        same_price, accounts, authorize, books, ddb, cfg, k):
    acct, shown, ctx = _capped_key(same_price, accounts, authorize, k * COST + COST - 1)
    statuses = _mixed(same_price, ctx, 40, random.Random(20), cut=False)
    assert statuses.count(200) == k and statuses.count(402) == 40 - k, statuses
    found = _settled(books, acct)
    assert [h["status"] for h in found] == ["charged"] * k
    assert month_of_key(ddb, cfg, shown["key_id"]) == k * COST == START - books.balance(acct)
    assert counter(ddb, cfg, inflight_counter_id(acct, SPEECH_STREAM), "n") == 0
    assert books.audit(acct)["consistent"]


@pytest.mark.parametrize("seed", [1, 2])
def test_forty_concurrent_with_client_cuts_and_minimax_failures_mid_stream_never_overshoot(
        same_price, accounts, authorize, books, ddb, cfg, minimax, seed):
    k = 7
    acct, shown, ctx = _capped_key(same_price, accounts, authorize, k * COST + COST - 1)
    if seed == 2:
        minimax.fail_when(PATH_T2A, "stream_error", after_chunks=3, match='"stream": true')
    statuses = _mixed(same_price, ctx, 40, random.Random(seed), cut=True)
    assert set(statuses) <= {200, 402, 502}, statuses
    found = _settled(books, acct)
    charged = [h for h in found if h["status"] == "charged"]
    assert len(charged) <= k                                         # never over the cap
    assert len(found) >= len(charged) and statuses.count(402) >= 40 - len(found)
    assert all(h["status"] in ("charged", "released") for h in found)
    streams_reserved = sum(status == 200 for i, status in enumerate(statuses) if i % 3 == 2)
    if seed == 2 and streams_reserved:
        # Every stream MiniMax served failed mid-stream: each was released.
        assert sum(h["status"] == "released" for h in found) >= streams_reserved
    # The month is exactly the charges (every released hold gave its amount back).
    assert month_of_key(ddb, cfg, shown["key_id"]) == len(charged) * COST == START - books.balance(acct)
    assert counter(ddb, cfg, inflight_counter_id(acct, SPEECH_STREAM), "n") == 0
    assert books.audit(acct)["consistent"]
    # What was given back can be spent again, up to the cap exactly.
    minimax.clear_failures()
    more = [call(same_price["speech"], "POST", "/v1/audio/speech", ctx,
                 {"input": TEXT, "voice": SYSTEM_VOICE})["statusCode"] for _ in range(k - len(charged) + 1)]
    assert more == [200] * (k - len(charged)) + [402]


# ── requests in flight ───────────────────────────────────────────────────
def test_n_plus_one_streams_on_a_limit_of_n_one_is_429_then_a_new_one_is_accepted(
        minimax, load_handler, aws, accounts, authorize, books, ddb, cfg):
    from kyma_local.web_adapter import WebAdapterPool

    n = 3
    first = accounts.create(START)
    accounts.set_limits(first.account_id, "speech", per_minute=100, burst=100)
    accounts.set_concurrency(first.account_id, SPEECH_STREAM, limit=n)
    ctx = authorize(first.api_key)
    minimax.first_chunk_ms, minimax.chunk_interval_ms = 100, 60        # each stream lasts about a second
    pool = WebAdapterPool(aws.functions["SpeechFunction"])
    barrier = threading.Barrier(n + 1)

    def stream(_):
        event = api_event("POST", "/v1/audio/speech", account_id=first.account_id,
                          body=json.dumps({"input": TEXT, "voice": SYSTEM_VOICE, "stream_format": "audio"}),
                          headers={"Content-Type": "application/json"})
        event["requestContext"]["authorizer"].update(ctx)
        barrier.wait()
        app = pool.invoke_stream(event, wait=30)
        headers, body = dict(app.headers), b""
        while data := app.read(10):
            body += data
        app.close(reusable=True)
        return app.status, headers, body

    with ThreadPoolExecutor(n + 1) as threads:
        results = list(threads.map(stream, range(n + 1)))
    refused = [r for r in results if r[0] == 429]
    assert len(refused) == 1 and sum(r[0] == 200 for r in results) == n
    _, headers, body = refused[0]
    assert json.loads(body)["error"]["code"] == "too_many_concurrent" and int(headers["Retry-After"]) > 0
    found = holds(books, first.account_id)
    assert len(found) == n and all(h["status"] == "charged" for h in found)      # no hold for the refused one
    assert counter(ddb, cfg, inflight_counter_id(first.account_id, SPEECH_STREAM), "n") == 0
    barrier = threading.Barrier(1)
    assert stream(0)[0] == 200                                                   # the others finished
    pool.close()
    assert books.audit(first.account_id)["consistent"]


def test_whole_file_speech_is_not_counted_in_flight(fns, accounts, authorize, ddb, cfg):
    first = accounts.create(START)
    accounts.set_concurrency(first.account_id, SPEECH_STREAM, limit=1)
    ctx = authorize(first.api_key)
    for _ in range(3):
        assert call(fns["speech"], "POST", "/v1/audio/speech", ctx,
                    {"input": TEXT, "voice": SYSTEM_VOICE})["statusCode"] == 200


# ── the reconciler and the audit ─────────────────────────────────────────
def test_the_reconciler_gives_back_the_month_and_the_request_in_flight(accounts, authorize, ledger, books, ddb,
                                                                       cfg, load_handler):
    from kyma.accounts import gate
    from kyma.billing.reconcile import release_expired_holds

    first = accounts.create(START)
    accounts.set_concurrency(first.account_id, SPEECH_STREAM, limit=1)
    ctx = authorize(first.api_key) | {"spend_limit_micros": ""}
    crashed = ledger.reserve(first.account_id, COST, kind="speech", request_id="r", expires_in=0,
                             gate=gate.for_caller(cfg, "speech", first.account_id, ctx, in_flight=SPEECH_STREAM))
    month = spend_counter_id(ctx["key_id"], month_of(time.time()))
    assert counter(ddb, cfg, month, "spent_micros") == COST
    assert counter(ddb, cfg, inflight_counter_id(first.account_id, SPEECH_STREAM), "n") == 1
    assert books.audit(first.account_id)["consistent"]                  # an open hold is counted
    with pytest.raises(Exception) as refused:                             # the one slot is taken
        ledger.reserve(first.account_id, COST, kind="speech", request_id="r2",
                       gate=gate.for_caller(cfg, "speech", first.account_id, ctx, in_flight=SPEECH_STREAM))
    assert getattr(refused.value, "code", "") == "too_many_concurrent"
    time.sleep(1.1)
    assert release_expired_holds(books, ledger)["released"] == 1
    assert books.hold_status(crashed) == "released"
    assert counter(ddb, cfg, month, "spent_micros") == 0
    assert counter(ddb, cfg, inflight_counter_id(first.account_id, SPEECH_STREAM), "n") == 0
    assert books.audit(first.account_id)["consistent"]


def test_the_audit_finds_a_counter_that_does_not_match_its_holds(accounts, authorize, ledger, books, ddb, cfg):
    from kyma.accounts import gate
    from kyma.billing.audit import audit_all

    first = accounts.create(START)
    ctx = authorize(first.api_key)
    hold = ledger.reserve(first.account_id, COST, kind="speech", request_id="r",
                          gate=gate.for_caller(cfg, "speech", first.account_id, ctx))
    ledger.settle(hold)
    assert books.audit(first.account_id)["consistent"]
    month = spend_counter_id(ctx["key_id"], month_of(time.time()))
    ddb.update_item(TableName=cfg.rate_counters_table, Key=to_item({"counter_id": month}),
                    UpdateExpression="ADD spent_micros :d", ExpressionAttributeValues={":d": {"N": "-1"}})
    audit = books.audit(first.account_id)
    assert not audit["consistent"] and audit["counters_mismatched"][0]["expected"] == COST
    report = audit_all(books, iter([first.account_id]))
    assert not report.consistent and "counter" in report.mismatched[0]["problems"][0]


def test_a_key_revoked_while_its_request_is_reserved_lets_that_one_finish_and_reserves_no_more(
        fns, accounts, authorize, ledger, books, ddb, cfg):
    from kyma.accounts import gate
    from kyma.edge import errors

    first = accounts.create(START)
    ctx = authorize(first.api_key)
    shown, key_ctx = make_key(fns, ctx, authorize, monthly_spend_limit_usd=1)
    in_flight = ledger.reserve(first.account_id, COST, kind="speech", request_id="r1",
                               gate=gate.for_caller(cfg, "speech", first.account_id, key_ctx))
    assert key_call(fns["keys"], "DELETE", shown["key_id"], ctx)["statusCode"] == 200
    with pytest.raises(errors.AuthError):
        ledger.reserve(first.account_id, COST, kind="speech", request_id="r2",
                       gate=gate.for_caller(cfg, "speech", first.account_id, key_ctx))
    ledger.settle(in_flight)                                   # reserved before the revocation: it finishes
    assert books.hold_status(in_flight) == "charged" and month_of_key(ddb, cfg, shown["key_id"]) == COST
    assert books.balance(first.account_id) == START - COST and books.audit(first.account_id)["consistent"]
