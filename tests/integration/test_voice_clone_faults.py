"""Voice-clone under failure: every step fails in turn, and the books still balance.

After each fault: no charge without a voice row, no voice row without a charge,
balance = top-ups − charges − open holds.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import audio_fixtures as fx
import pytest
from botocore.exceptions import ClientError
from helpers import (
    START,
    ProcessDied,
    api_event,
    assert_books_balance,
    body_of,
    clone_event,
    context,
    error_of,
    powertools_records,
    raising,
    voices_of,
)
from integration.conftest import MINIMAX_KEY

from kyma.billing.accounting import Books
from kyma.billing.ledger import Ledger
from kyma_local import aws_calls

MP3 = fx.mp3_cbr(12.0)
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def handler(minimax, load_handler):
    return load_handler("VoiceCloneFunction")


def invoke(handler, event):
    return handler(event, context("VoiceCloneFunction"))


# ── upstream failures: classified (502 mostly), hold released ────────────
@pytest.mark.parametrize("path, failure, options, says, status", [
    ("/v1/files/upload", "http_500", {}, "upload", 502),
    ("/v1/files/upload", 1002, {"msg": "rate limit"}, "upload", 503),      # capacity: 503 + Retry-After
    ("/v1/files/upload", "malformed_json", {}, "upload", 502),
    ("/v1/files/upload", "connection_drop", {}, "upload", 502),
    ("/v1/voice_clone", 2013, {"msg": "invalid params"}, "clone", 502),     # only our ids: our bug
    ("/v1/voice_clone", 2039, {"msg": "duplicate voice id"}, "clone", 502),
    ("/v1/voice_clone", "http_500", {"status": 503}, "clone", 502),
    ("/v1/voice_clone", "malformed_json", {}, "clone", 502),
])
def test_upstream_failures_release_the_hold(handler, accounts, books, ddb, cfg, minimax, path, failure, options,
                                            says, status):
    acct = accounts.create(START).account_id
    minimax.fail_when(path, failure, **options)                  # every attempt fails (the client retries)
    error = error_of(invoke(handler, clone_event(acct, MP3)))
    assert (error.status, error.code) == (status, "service_unavailable" if status == 503 else "provider_error")
    assert says in error.message.lower()
    assert MINIMAX_KEY not in error.message
    assert books.balance(acct) == START
    assert [e["status"] for e in books.entries(acct) if e["type"] == "hold"] == ["released"]
    assert voices_of(ddb, cfg, acct) == set()
    assert_books_balance(books, ddb, cfg, acct)


def test_operator_problems_upstream_are_not_explained_to_the_customer(handler, accounts, minimax):
    acct = accounts.create(START).account_id
    minimax.fail_next("/v1/files/upload", "base_resp", code=1008, msg="insufficient balance")
    error = error_of(invoke(handler, clone_event(acct, MP3)))
    # Our MiniMax account's problem (ProviderAccountProblem): unavailable, never the detail
    assert (error.status, error.code) == (503, "service_unavailable") and "balance" not in error.message.lower()


def test_a_slow_upstream_is_abandoned_before_the_gateway_timeout(configure, minimax, load_handler, accounts,
                                                                 books, ddb, cfg):
    # Given a 6 s API budget (so the handler must stop ~2 s early) and a MiniMax that takes 8 s
    configure(API_TIMEOUT_SECONDS=6)
    handler = load_handler("VoiceCloneFunction")
    acct = accounts.create(START).account_id
    minimax.set_delay("/v1/voice_clone", 8)
    started = time.monotonic()
    error = error_of(invoke(handler, clone_event(acct, MP3)))
    elapsed = time.monotonic() - started
    # Then the client hears back before the gateway would give up, and nothing is charged
    assert (error.status, error.code) == (502, "provider_error")
    assert elapsed < 6
    assert books.balance(acct) == START
    assert_books_balance(books, ddb, cfg, acct)


# ── settle failures: 500 ownership_write_failed, hold released ───────────
def test_a_failed_settle_releases_and_says_safe_to_retry(handler, accounts, books, ddb, cfg, minimax,
                                                         monkeypatch):
    acct = accounts.create(START).account_id

    def broken_settle(self, hold, *, items=()):
        raise ClientError({"Error": {"Code": "InternalServerError", "Message": "injected"}},
                          "TransactWriteItems")

    monkeypatch.setattr(Ledger, "settle", broken_settle)
    error = error_of(invoke(handler, clone_event(acct, MP3)))
    assert (error.status, error.code) == (500, "ownership_write_failed")
    assert "no charge" in error.message.lower() and "safe to retry" in error.message.lower()
    assert len(minimax.calls_to("/v1/voice_clone")) == 1          # the clone had succeeded upstream
    assert books.balance(acct) == START
    assert voices_of(ddb, cfg, acct) == set()
    assert_books_balance(books, ddb, cfg, acct)


def test_a_settle_that_applied_but_lost_its_answer_is_a_success(handler, accounts, books, ddb, cfg,
                                                                monkeypatch):
    acct = accounts.create(START).account_id
    real_settle = Ledger.settle

    def settle_then_lose_the_response(self, hold, *, items=()):
        real_settle(self, hold, items=items)
        raise ClientError({"Error": {"Code": "RequestTimeout", "Message": "injected"}}, "TransactWriteItems")

    monkeypatch.setattr(Ledger, "settle", settle_then_lose_the_response)
    response = invoke(handler, clone_event(acct, MP3))
    assert response["statusCode"] == 200                           # charged once, voice delivered
    assert books.balance(acct) == START - 2_100_000
    assert voices_of(ddb, cfg, acct) == {body_of(response)["voice_id"]}
    assert_books_balance(books, ddb, cfg, acct)


def test_release_failing_too_leaves_the_hold_for_the_reconciler(configure, minimax, load_handler, accounts,
                                                                books, ddb, cfg, monkeypatch):
    configure(HOLD_TIMEOUT_SECONDS=0)
    handler = load_handler("VoiceCloneFunction")
    acct = accounts.create(START).account_id
    minimax.fail_when("/v1/files/upload", "http_500")
    real_release = Ledger.release
    monkeypatch.setattr(Ledger, "release", raising(
        ClientError({"Error": {"Code": "ServiceUnavailable", "Message": "x"}}, "TransactWriteItems")))
    assert error_of(invoke(handler, clone_event(acct, MP3))).code == "provider_error"
    assert books.balance(acct) == START - 2_100_000                 # held, not yet given back
    monkeypatch.setattr(Ledger, "release", real_release)
    reconciler = load_handler("ReconcilerFunction")
    assert reconciler({}, context("ReconcilerFunction"))["released"] == 1
    assert books.balance(acct) == START
    assert_books_balance(books, ddb, cfg, acct)


# ── the process dies after reserve: the reconciler releases, exactly once ──
def test_a_crash_after_reserve_is_released_by_the_reconciler_exactly_once(configure, minimax, load_handler,
                                                                          accounts, books, ddb, cfg,
                                                                          monkeypatch, ledger):
    configure(HOLD_TIMEOUT_SECONDS=0)
    handler = load_handler("VoiceCloneFunction")
    acct = accounts.create(START).account_id
    from kyma.providers.minimax import MiniMaxClient

    monkeypatch.setattr(MiniMaxClient, "clone_voice", raising(ProcessDied()))
    with pytest.raises(ProcessDied):
        invoke(handler, clone_event(acct, MP3))
    # The money is held, nothing was released
    assert books.balance(acct) == START - 2_100_000
    (hold,) = list(books.expired_holds(time.time() + 1))

    # When the scheduled reconciler runs, on its real event, twice
    reconciler = load_handler("ReconcilerFunction")
    event = json.loads((ROOT / "events" / "reconciler-scheduled.json").read_text())
    first = reconciler(event, context("ReconcilerFunction"))
    second = reconciler(event, context("ReconcilerFunction"))

    # Then the hold is released once, and a late settle from the dead request cannot charge
    assert (first["released"], second["released"]) == (1, 0)
    assert books.balance(acct) == START
    from kyma.billing.ledger import HoldNotOpen
    with pytest.raises(HoldNotOpen):
        ledger.settle(hold)
    assert_books_balance(books, ddb, cfg, acct)


def test_a_request_outliving_its_hold_gets_no_voice_and_no_charge(configure, minimax, load_handler, accounts,
                                                                  books, ddb, cfg, monkeypatch, ledger):
    # The reconciler releases the hold while the clone is still running upstream.
    configure(HOLD_TIMEOUT_SECONDS=0)
    handler = load_handler("VoiceCloneFunction")
    acct = accounts.create(START).account_id
    from kyma.providers.minimax import MiniMaxClient

    real_clone = MiniMaxClient.clone_voice

    def clone_while_reconciler_runs(self, *args, **kwargs):
        real_clone(self, *args, **kwargs)
        with aws_calls.invoking("ReconcilerFunction"):   # the reconciler's AWS calls, not the clone's
            assert ledger.release(next(books.expired_holds(time.time() + 1)), reason="expired")

    monkeypatch.setattr(MiniMaxClient, "clone_voice", clone_while_reconciler_runs)
    error = error_of(invoke(handler, clone_event(acct, MP3)))
    assert (error.status, error.code) == (500, "ownership_write_failed")
    assert books.balance(acct) == START and voices_of(ddb, cfg, acct) == set()
    assert_books_balance(books, ddb, cfg, acct)


# ── idempotency ──────────────────────────────────────────────────────────
KEY = {"Idempotency-Key": "clone-7f3a"}


def test_same_key_ten_times_sequentially_is_one_charge_one_voice(handler, accounts, books, ddb, cfg, minimax):
    acct = accounts.create(START).account_id
    responses = [invoke(handler, clone_event(acct, MP3, name="n", headers=KEY)) for _ in range(10)]
    assert {r["statusCode"] for r in responses} == {200}
    assert len({r["body"] for r in responses}) == 1                 # identical bodies
    assert "Idempotent-Replayed" not in responses[0]["headers"]
    assert all(r["headers"]["Idempotent-Replayed"] == "true" for r in responses[1:])
    assert books.balance(acct) == START - 2_100_000
    assert len(voices_of(ddb, cfg, acct)) == 1 and len(minimax.calls_to("/v1/voice_clone")) == 1
    assert_books_balance(books, ddb, cfg, acct)


def test_same_key_ten_times_concurrently_is_one_charge_one_voice(minimax, aws, accounts, books, ddb, cfg):
    from kyma_local.runtime import FunctionPool

    acct = accounts.create(START).account_id
    pool = FunctionPool(aws.functions["VoiceCloneFunction"], max_environments=10)
    with ThreadPoolExecutor(10) as executor:
        responses = list(executor.map(
            lambda _: pool.invoke(clone_event(acct, MP3, name="n", headers=KEY)).payload, range(10)))
    assert {r["statusCode"] for r in responses} == {200}, [body_of(r) for r in responses]
    assert len({r["body"] for r in responses}) == 1
    assert books.balance(acct) == START - 2_100_000
    assert len(voices_of(ddb, cfg, acct)) == 1 and len(minimax.calls_to("/v1/voice_clone")) == 1
    assert_books_balance(books, ddb, cfg, acct)


def test_a_retry_with_a_new_multipart_boundary_is_the_same_request(handler, accounts, books):
    acct = accounts.create(START).account_id
    first = invoke(handler, clone_event(acct, MP3, name="n", headers=KEY))
    retry = invoke(handler, clone_event(acct, MP3, name="n", headers=KEY))   # MultipartEncoder: new boundary
    assert retry["body"] == first["body"] and retry["headers"]["Idempotent-Replayed"] == "true"
    assert books.balance(acct) == START - 2_100_000


@pytest.mark.parametrize("change", [{"name": "other"}, {"audio": fx.mp3_cbr(13.0)}])
def test_a_different_request_under_the_same_key_is_409(handler, accounts, books, minimax, change):
    acct = accounts.create(START).account_id
    assert invoke(handler, clone_event(acct, MP3, name="n", headers=KEY))["statusCode"] == 200
    kwargs = {"audio": MP3, "name": "n", **change}
    error = error_of(invoke(handler, clone_event(acct, headers=KEY, **kwargs)))
    assert (error.status, error.code) == (409, "idempotency_conflict")
    assert books.balance(acct) == START - 2_100_000 and len(minimax.calls_to("/v1/voice_clone")) == 1


def test_keys_are_scoped_per_account(handler, accounts, books):
    a = accounts.create(START).account_id
    b = accounts.create(START).account_id
    first = body_of(invoke(handler, clone_event(a, MP3, headers=KEY)))
    second = body_of(invoke(handler, clone_event(b, MP3, headers=KEY)))
    assert first["voice_id"] != second["voice_id"]
    assert books.balance(a) == books.balance(b) == START - 2_100_000


def test_a_second_request_while_the_first_runs_is_409_in_progress(configure, minimax, aws, accounts, books):
    from kyma_local.runtime import FunctionPool

    configure(IDEMPOTENCY_WAIT_SECONDS=0.3)
    minimax.set_delay("/v1/voice_clone", 2.5)
    acct = accounts.create(START).account_id
    pool = FunctionPool(aws.functions["VoiceCloneFunction"], max_environments=2)
    with ThreadPoolExecutor(2) as executor:
        first = executor.submit(lambda: pool.invoke(clone_event(acct, MP3, headers=KEY)).payload)
        time.sleep(0.8)
        second = executor.submit(lambda: pool.invoke(clone_event(acct, MP3, headers=KEY)).payload)
        first, second = first.result(), second.result()
    assert first["statusCode"] == 200
    error = error_of(second)
    assert (error.status, error.code) == (409, "idempotency_in_progress") and "retry" in error.message
    assert books.balance(acct) == START - 2_100_000


def test_a_failed_first_attempt_is_not_replayed(handler, accounts, books, minimax, ledger):
    acct = accounts.create(2_000_000).account_id
    assert error_of(invoke(handler, clone_event(acct, MP3, headers=KEY))).code == "insufficient_credits"
    ledger.top_up(acct, 1_000_000)
    response = invoke(handler, clone_event(acct, MP3, headers=KEY))       # same key, now affordable
    assert response["statusCode"] == 200 and "Idempotent-Replayed" not in response["headers"]
    assert books.balance(acct) == 900_000


@pytest.mark.parametrize("key", ["", "x" * 256, "naïve", "tab\there"])
def test_malformed_idempotency_keys_are_400(handler, accounts, books, key):
    acct = accounts.create(START).account_id
    error = error_of(invoke(handler, clone_event(acct, MP3, headers={"Idempotency-Key": key})))
    assert (error.status, error.code) == (400, "invalid_request")
    assert books.balance(acct) == START


def test_a_retried_settle_finding_its_own_charge_is_a_success(handler, accounts, books, ddb, cfg, monkeypatch, ledger):
    # botocore retried a settle whose first attempt had applied: the retry fails its
    # `status = open` condition and sees the hold already charged.
    from kyma.billing.ledger import HoldNotOpen

    acct = accounts.create(START).account_id
    real_settle = Ledger.settle

    def settle_then_retry(self, hold, *, items=()):
        real_settle(self, hold, items=items)
        raise HoldNotOpen("charged")

    monkeypatch.setattr(Ledger, "settle", settle_then_retry)
    response = invoke(handler, clone_event(acct, MP3))
    assert response["statusCode"] == 200
    assert voices_of(ddb, cfg, acct) == {body_of(response)["voice_id"]}
    assert books.balance(acct) == START - 2_100_000
    assert_books_balance(books, ddb, cfg, acct)


def test_an_unsaved_idempotency_record_still_delivers_and_never_charges_twice(handler, accounts, books, ddb,
                                                                            cfg, minimax, monkeypatch):
    from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer

    acct = accounts.create(START).account_id

    def broken_update(self, data_record):
        raise ClientError({"Error": {"Code": "InternalServerError", "Message": "injected"}}, "UpdateItem")

    with monkeypatch.context() as broken:
        broken.setattr(DynamoDBPersistenceLayer, "_update_record", broken_update)
        response = invoke(handler, clone_event(acct, MP3, headers=KEY))
    assert response["statusCode"] == 200                    # charged once, and the client learns its voice_id
    assert voices_of(ddb, cfg, acct) == {body_of(response)["voice_id"]}
    # The unsaved record stays "in progress" until it expires; then a retry with the same key
    # would run again.  Expire it now and retry: the charge guard refuses before MiniMax.
    for item in powertools_records(ddb, cfg):
        ddb.delete_item(TableName=cfg.idempotency_table, Key={"id": item["id"]})
    retry = error_of(invoke(handler, clone_event(acct, MP3, headers=KEY)))
    assert (retry.status, retry.code) == (409, "idempotency_key_spent")
    assert len(minimax.calls_to("/v1/voice_clone")) == 1
    assert assert_books_balance(books, ddb, cfg, acct)["charged"] == 2_100_000


# ── after the charge is settled, nothing may fail the request ────────────
def test_a_failed_balance_read_after_the_charge_still_delivers(handler, accounts, books, ddb, cfg, monkeypatch):
    acct = accounts.create(START).account_id
    monkeypatch.setattr(Books, "balance", raising(
        ClientError({"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "x"}}, "GetItem")))
    response = invoke(handler, clone_event(acct, MP3))
    assert response["statusCode"] == 200
    body = body_of(response)
    assert body["balance_usd"] is None and "X-Kyma-Balance-USD" not in response["headers"]
    assert voices_of(ddb, cfg, acct) == {body["voice_id"]}
    monkeypatch.undo()
    assert books.balance(acct) == START - 2_100_000


def test_a_failed_cleanup_after_an_upload_clone_still_delivers(handler, accounts, books, cfg, monkeypatch):
    import boto3

    from kyma.voices.uploads import Uploads

    acct = accounts.create(START).account_id
    create = handler(api_event("POST", "/v1/audio/voice-clone/uploads", account_id=acct), context())
    upload = body_of(create)
    boto3.client("s3").put_object(Bucket=cfg.uploads_bucket, Key=upload["fields"]["key"], Body=MP3)
    real_s3 = Uploads.s3

    class Broken:
        def __init__(self, s3):
            self._s3 = s3

        def __getattr__(self, name):
            return getattr(self._s3, name)

        def delete_object(self, **kwargs):
            raise ConnectionError("S3 unreachable")

    monkeypatch.setattr(Uploads, "s3", property(lambda self: Broken(real_s3.fget(self))))
    response = invoke(handler, api_event("POST", "/v1/audio/voice-clone", body=json.dumps(
        {"upload_id": upload["upload_id"]}), account_id=acct, headers={"Content-Type": "application/json"}))
    assert response["statusCode"] == 200 and body_of(response)["voice_id"]
    assert books.balance(acct) == START - 2_100_000


def test_an_unknown_settle_outcome_never_claims_no_charge(handler, accounts, books, monkeypatch):
    acct = accounts.create(START).account_id
    boom = ClientError({"Error": {"Code": "InternalServerError", "Message": "x"}}, "TransactWriteItems")
    monkeypatch.setattr(Ledger, "settle", raising(boom))
    monkeypatch.setattr(Ledger, "release", raising(boom))
    monkeypatch.setattr(Books, "hold_status", raising(boom))
    error = error_of(invoke(handler, clone_event(acct, MP3)))
    assert (error.status, error.code) == (500, "billing_outcome_unknown")
    assert "no charge" not in error.message.lower() and "balance" in error.message


def test_an_answer_after_the_deadline_is_released_not_charged(configure, minimax, load_handler, accounts,
                                                              books, ddb, cfg, monkeypatch):
    # Given a 3 s API budget (the handler's deadline is 1 s in) and a MiniMax that
    # succeeds only after it: API Gateway would already have answered the client.
    configure(API_TIMEOUT_SECONDS=3)
    handler = load_handler("VoiceCloneFunction")
    acct = accounts.create(START).account_id
    from kyma.providers.minimax import MiniMaxClient

    real_clone = MiniMaxClient.clone_voice

    def slow_success(self, *args, **kwargs):
        real_clone(self, *args, **kwargs)
        time.sleep(1.3)

    monkeypatch.setattr(MiniMaxClient, "clone_voice", slow_success)
    error = error_of(invoke(handler, clone_event(acct, MP3)))
    assert (error.status, error.code) == (502, "provider_error") and "nothing was charged" in error.message
    assert books.balance(acct) == START and voices_of(ddb, cfg, acct) == set()
    assert_books_balance(books, ddb, cfg, acct)
