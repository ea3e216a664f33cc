"""reserve → settle | release, on moto, including races and concurrency."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from helpers import raising

from kyma.billing.ledger import CHARGED, OPEN, RELEASED, HoldNotOpen
from kyma.edge import errors
from kyma.platform.dynamo import to_item
from kyma.voices.records import ownership_check

PRICE = 2_100_000


def test_reserve_debits_and_opens_a_hold_then_settle_charges(accounts, books, ledger):
    acct = accounts.create(10_000_000).account_id
    hold = ledger.reserve(acct, PRICE, kind="voice_clone", request_id="r1")
    assert books.balance(acct) == 7_900_000
    assert books.hold_status(hold) == OPEN
    ledger.settle(hold)
    assert books.hold_status(hold) == CHARGED
    assert books.balance(acct) == 7_900_000
    audit = books.audit(acct)
    assert audit["consistent"] and audit["charged"] == PRICE and audit["open"] == 0


def test_release_refunds_exactly_once(accounts, books, ledger):
    acct = accounts.create(10_000_000).account_id
    hold = ledger.reserve(acct, PRICE, kind="voice_clone", request_id="r1")
    assert ledger.release(hold, reason="provider_error") is True
    assert ledger.release(hold, reason="provider_error") is False   # second release: no-op
    assert books.balance(acct) == 10_000_000
    assert books.hold_status(hold) == RELEASED
    with pytest.raises(HoldNotOpen) as info:
        ledger.settle(hold)                                            # cannot charge a released hold
    assert info.value.status == RELEASED
    assert books.audit(acct)["consistent"]


def test_settled_hold_cannot_be_released(accounts, books, ledger):
    acct = accounts.create(10_000_000).account_id
    hold = ledger.reserve(acct, PRICE, kind="voice_clone", request_id="r1")
    ledger.settle(hold)
    assert ledger.release(hold, reason="late") is False
    assert books.balance(acct) == 7_900_000


def test_insufficient_balance_is_402_and_changes_nothing(accounts, books, ledger):
    acct = accounts.create(2_099_999).account_id
    with pytest.raises(errors.InsufficientCredits):
        ledger.reserve(acct, PRICE, kind="voice_clone", request_id="r1")
    assert books.balance(acct) == 2_099_999
    assert [e["type"] for e in books.entries(acct)] == ["topup"]


def test_voice_gate_decides_ownership_atomically_with_the_debit(accounts, books, ddb, cfg, ledger):
    owner = accounts.create(10_000_000).account_id
    other = accounts.create(10_000_000).account_id
    ddb.put_item(TableName=cfg.voices_table, Item=to_item({"voice_id": "kyma_0123456789abcdef", "status": "active",
                                                           "owner_id": owner, "created_at": 1}))
    with pytest.raises(errors.VoiceNotOwned):
        ledger.reserve(other, 100, kind="speech", request_id="r",
                       conditions=[ownership_check(cfg, "kyma_0123456789abcdef", other)])
    with pytest.raises(errors.VoiceNotFound):
        ledger.reserve(owner, 100, kind="speech", request_id="r",
                       conditions=[ownership_check(cfg, "kyma_ffffffffffffffff", owner)])
    # Not owned AND too poor: ownership is the answer, and nothing is debited.
    poor = accounts.create(1).account_id
    with pytest.raises(errors.VoiceNotOwned):
        ledger.reserve(poor, 100, kind="speech", request_id="r",
                       conditions=[ownership_check(cfg, "kyma_0123456789abcdef", poor)])
    assert books.balance(other) == 10_000_000 and books.balance(poor) == 1
    hold = ledger.reserve(owner, 100, kind="speech", request_id="r",
                       conditions=[ownership_check(cfg, "kyma_0123456789abcdef", owner)])
    assert books.balance(owner) == 10_000_000 - 100 and hold.amount_micros == 100


def test_forty_parallel_reserves_never_overdraw(accounts, books, ledger):
    # Given a balance that affords exactly 7 clones
    acct = accounts.create(7 * PRICE + 2_099_999).account_id
    outcomes: list[str] = []
    lock = threading.Lock()

    def attempt(i: int) -> None:
        try:
            ledger.reserve(acct, PRICE, kind="voice_clone", request_id=f"r{i}")
            result = "ok"
        except errors.InsufficientCredits:
            result = "402"
        with lock:
            outcomes.append(result)

    # When 40 reserve at once
    with ThreadPoolExecutor(40) as pool:
        list(pool.map(attempt, range(40)))
    # Then exactly 7 succeed and the balance is exactly what is left
    assert outcomes.count("ok") == 7 and outcomes.count("402") == 33
    assert books.balance(acct) == 2_099_999
    audit = books.audit(acct)
    assert audit["consistent"] and audit["open"] == 7 * PRICE


def test_settle_and_release_racing_on_one_hold_apply_exactly_once(accounts, books, ledger):
    # The handler settling and the reconciler releasing at the same moment, 30 times.
    acct = accounts.create(100_000_000).account_id
    for i in range(30):
        hold = ledger.reserve(acct, PRICE, kind="voice_clone", request_id=f"r{i}")
        results: dict[str, object] = {}
        barrier = threading.Barrier(2)

        def settle(hold=hold, results=results, barrier=barrier) -> None:
            barrier.wait()
            try:
                ledger.settle(hold)
                results["settle"] = True
            except HoldNotOpen:
                results["settle"] = False

        def release(hold=hold, results=results, barrier=barrier) -> None:
            barrier.wait()
            results["release"] = ledger.release(hold, reason="expired")

        threads = [threading.Thread(target=settle), threading.Thread(target=release)]
        [t.start() for t in threads]
        [t.join() for t in threads]
        assert results["settle"] != results["release"], results   # exactly one of them won
    audit = books.audit(acct)
    assert audit["consistent"] and audit["open"] == 0
    assert audit["charged"] + audit["released"] == 30 * PRICE


def test_expired_holds_are_listed_for_the_reconciler(accounts, books, ledger):
    acct = accounts.create(10_000_000).account_id
    hold = ledger.reserve(acct, PRICE, kind="voice_clone", request_id="r1")
    settled = ledger.reserve(acct, PRICE, kind="voice_clone", request_id="r2")
    ledger.settle(settled)
    import time
    assert list(books.expired_holds(time.time())) == []
    later = time.time() + ledger.cfg.hold_timeout_seconds + 1
    assert [h.entry_id for h in books.expired_holds(later)] == [hold.entry_id]


def test_top_ups_are_ledger_entries(accounts, books, ledger):
    acct = accounts.create(0).account_id
    assert books.balance(acct) == 0
    ledger.top_up(acct, 5_000_000, note="invoice 7")
    assert books.balance(acct) == 5_000_000
    (entry,) = list(books.entries(acct))
    assert (entry["type"], entry["amount_micros"], entry["note"]) == ("topup", 5_000_000, "invoice 7")
    assert books.audit(acct)["consistent"]
    from botocore.exceptions import ClientError
    with pytest.raises(ClientError) as info:
        ledger.top_up("acct_missing", 1)   # never credits an account that does not exist
    assert info.value.response["Error"]["Code"] == "TransactionCanceledException"


def test_a_top_up_never_takes_the_balance_over_the_maximum(accounts, ledger, books):
    from kyma.billing.money import MAX_BALANCE_MICROS

    acct = accounts.create(MAX_BALANCE_MICROS - 5).account_id
    with pytest.raises(errors.InvalidRequest, match="maximum"):
        ledger.top_up(acct, 6)
    assert books.balance(acct) == MAX_BALANCE_MICROS - 5 and books.audit(acct)["consistent"]
    ledger.top_up(acct, 5)
    assert books.balance(acct) == MAX_BALANCE_MICROS


def test_the_reconciler_reports_release_failures_and_money_still_locked(accounts, ledger, ddb, cfg, load_handler,
                                                                        monkeypatch, metrics_seen):
    import time

    from helpers import context, raising

    from kyma.billing.audit import GRACE_SECONDS
    from kyma.billing.ledger import Ledger

    acct = accounts.create(10_000_000).account_id
    hold = ledger.reserve(acct, PRICE, kind="speech", request_id="r")
    # A hold whose request died long ago, and a release that keeps failing (DynamoDB throttled)
    ddb.update_item(TableName=cfg.ledger_table, Key=to_item({"account_id": acct, "entry_id": hold.entry_id}),
                    UpdateExpression="SET expires_at = :t",
                    ExpressionAttributeValues={":t": {"N": str(int(time.time()) - GRACE_SECONDS - 60)}})
    reconciler = load_handler("ReconcilerFunction")
    monkeypatch.setattr(Ledger, "release", raising(RuntimeError("throttled")))
    result = reconciler({}, context("ReconcilerFunction"))
    assert (result["released"], result["failed"], result["stuck"]) == (0, 1, 1)
    assert metrics_seen["ReleaseFailures"] == 1 and metrics_seen["OpenHoldsPastWindow"] == 1


# ── the paid-call protocol around a settle that fails ─────────────────────
def _settle_error():
    from botocore.exceptions import ClientError

    return ClientError({"Error": {"Code": "InternalServerError", "Message": "x"}}, "TransactWriteItems")


def _counting_releases(monkeypatch, ledger) -> list[bool]:
    results: list[bool] = []
    release = type(ledger).release

    def counted(self, hold, *, reason):
        results.append(release(self, hold, reason=reason))
        return results[-1]

    monkeypatch.setattr(type(ledger), "release", counted)
    return results


def test_a_failed_settle_is_released_once_and_costs_nothing(accounts, books, ledger, monkeypatch):
    from kyma.billing.paid_call import PaidCalls

    acct = accounts.create(10_000_000).account_id
    hold = ledger.reserve(acct, PRICE, kind="speech", request_id="r1")
    releases = _counting_releases(monkeypatch, ledger)
    monkeypatch.setattr(type(ledger), "settle", raising(_settle_error()))
    with pytest.raises(errors.InternalError, match=r"^settle failed$"):
        PaidCalls(ledger, books).complete(hold, lambda: "audio",
                                          settle_failed=lambda: errors.InternalError("settle failed"))
    assert releases == [True]                       # one release, and it was this one that applied
    assert books.balance(acct) == 10_000_000 and books.hold_status(hold) == RELEASED
    assert [e.get("release_reason") for e in books.entries(acct) if e["type"] == "hold"] == ["settle_failed"]
    assert books.audit(acct)["consistent"]


def test_a_settle_that_applied_but_lost_its_answer_stays_charged(accounts, books, ledger, monkeypatch):
    # The paid call tries to release a settle whose outcome it does not know; the ledger's release
    # applies only to an open hold, so a charge that did apply is kept (and the request succeeds).
    from kyma.billing.paid_call import PaidCalls

    acct = accounts.create(10_000_000).account_id
    hold = ledger.reserve(acct, PRICE, kind="speech", request_id="r1")
    releases = _counting_releases(monkeypatch, ledger)
    settle = type(ledger).settle

    def applied_then_lost(self, hold, items=()):
        settle(self, hold, items=items)
        raise _settle_error()

    monkeypatch.setattr(type(ledger), "settle", applied_then_lost)
    assert PaidCalls(ledger, books).complete(hold, lambda: "audio",
                                             settle_failed=lambda: errors.InternalError("settle failed")) == "audio"
    assert releases == [False]                      # tried once, refused: the hold was no longer open
    assert books.balance(acct) == 10_000_000 - PRICE and books.hold_status(hold) == CHARGED
    audit = books.audit(acct)
    assert audit["consistent"] and audit["charged"] == PRICE and audit["released"] == 0
