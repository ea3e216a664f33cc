"""The audit over every account: the books balance, and no hold stays open past its window.

For each account: balance = top-ups + refunds − charges − open holds, balance ≥ 0, and every
open hold is younger than its expiry plus the reconciler's grace (an older one is money locked
that the reconciler failed to give back).  Run by `kyma-admin audit` and, on a schedule, by
AuditFunction, which emits `AuditMismatches` (alarmed on any non-zero value).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from kyma.billing.accounting import Books
from kyma.billing.ledger import OPEN
from kyma.platform.dynamo import rows

# The reconciler runs every 5 minutes: a hold still open 15 minutes after it expired is stuck.
GRACE_SECONDS = 15 * 60


@dataclass
class Report:
    accounts: int = 0
    totals: dict[str, int] = field(default_factory=lambda: {
        "balance": 0, "topups": 0, "refunds": 0, "charged": 0, "open": 0, "released": 0})
    mismatched: list[dict] = field(default_factory=list)      # {"account_id", "problems": [...], audit}

    @property
    def consistent(self) -> bool:
        return not self.mismatched


def account_ids(client: Any, accounts_table: str) -> Iterator[str]:
    for row in rows(client, "scan", TableName=accounts_table, ProjectionExpression="account_id"):
        yield row["account_id"]


def audit_all(books: Books, ids: Iterator[str], now: float | None = None) -> Report:
    now = time.time() if now is None else now
    report = Report()
    for account_id in ids:
        report.accounts += 1
        audit = books.audit(account_id)
        for name in report.totals:
            report.totals[name] += audit[name]
        problems = []
        if audit["balance"] != audit["expected"]:
            problems.append(f"balance {audit['balance']} != expected {audit['expected']}")
        if audit["balance"] < 0:
            problems.append("negative balance")
        problems.extend(f"counter {c['counter']} {c['attribute']} = {c['value']} != expected {c['expected']} "
                        "(its holds)" for c in audit.get("counters_mismatched", ()))
        stuck = [e["entry_id"] for e in books.entries(account_id)
                 if e.get("status") == OPEN and int(e.get("expires_at", now)) + GRACE_SECONDS < now]
        if stuck:
            problems.append(f"{len(stuck)} hold(s) open past their window: {', '.join(stuck[:5])}")
        if problems:
            report.mismatched.append({"account_id": account_id, "problems": problems, **audit})
    return report
