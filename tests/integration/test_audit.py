"""The audit over every account (kyma/billing/audit.py): consistent books pass; a hand-corrupted
balance or a hold stuck open past its window is named; Books.audit and kyma-admin's ledger and
audit commands say so in their verdict and exit code."""

from __future__ import annotations

import time

from helpers import START

from kyma.billing.audit import GRACE_SECONDS, account_ids, audit_all
from kyma.platform.dynamo import to_item, values


def test_consistent_books_pass_and_are_totalled(accounts, ledger, books, ddb, cfg):
    a, b = accounts.create(START).account_id, accounts.create(2_000_000).account_id
    hold = ledger.reserve(a, 2_100_000, kind="voice_clone", request_id="r", reference={"model": "m"})
    ledger.settle(hold)
    ledger.release(ledger.reserve(b, 500_000, kind="speech", request_id="r2"), reason="test")
    report = audit_all(books, account_ids(ddb, cfg.accounts_table))
    assert report.consistent and report.accounts == 2
    assert report.totals["topups"] == START + 2_000_000 and report.totals["charged"] == 2_100_000
    assert report.totals["balance"] == START + 2_000_000 - 2_100_000 and report.totals["released"] == 500_000


def test_a_corrupted_balance_and_a_stuck_hold_are_named(accounts, ledger, books, ddb, cfg):
    good = accounts.create(START).account_id
    corrupt = accounts.create(START).account_id
    stuck = accounts.create(START).account_id
    ddb.update_item(TableName=cfg.accounts_table, Key=to_item({"account_id": corrupt}),
                    UpdateExpression="SET balance_micros = :b", ExpressionAttributeValues=values(b=START + 1))
    ledger.reserve(stuck, 100, kind="speech", request_id="r")
    report = audit_all(books, account_ids(ddb, cfg.accounts_table),
                       now=time.time() + cfg.hold_timeout_seconds + GRACE_SECONDS + 60)
    named = {m["account_id"]: m["problems"] for m in report.mismatched}
    assert set(named) == {corrupt, stuck} and good not in named
    assert "expected" in named[corrupt][0] and "open past their window" in named[stuck][0]


def test_a_corrupted_account_fails_its_audit_and_kyma_admins_exit_codes(accounts, ledger, books, ddb, cfg, capsys):
    from kyma_admin.cli import main

    tables = ["--accounts-table", cfg.accounts_table, "--api-keys-table", cfg.api_keys_table,
              "--ledger-table", cfg.ledger_table, "--voices-table", cfg.voices_table]
    acct = accounts.create(START).account_id
    ledger.settle(ledger.reserve(acct, 2_900, kind="speech", request_id="r"))
    assert books.audit(acct)["consistent"]
    assert main([*tables, "ledger", acct]) == 0 and main([*tables, "audit"]) == 0
    assert capsys.readouterr().out.count(": consistent") == 1

    # A balance changed by hand, outside the ledger: one micro-dollar more than its entries say.
    ddb.update_item(TableName=cfg.accounts_table, Key=to_item({"account_id": acct}),
                    UpdateExpression="SET balance_micros = :b", ExpressionAttributeValues=values(b=START - 2_899))
    audit = books.audit(acct)
    assert (audit["consistent"], audit["balance"], audit["expected"]) == (False, START - 2_899, START - 2_900)
    assert main([*tables, "ledger", acct]) == 2
    assert ": INCONSISTENT" in capsys.readouterr().out
    assert main([*tables, "audit"]) == 1
    out = capsys.readouterr().out
    assert f"MISMATCH {acct}: balance {START - 2_899} != expected {START - 2_900}" in out
    assert "INCONSISTENT: 1 account(s)" in out
