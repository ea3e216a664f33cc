"""Reading the books: balances, ledger entries, open holds and the audit.

Nothing here writes.  The ledger holds only money entries (top-ups and holds;
idempotency guards live in the Idempotency table), so what is read here is
what the customer's ledger shows.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from kyma import errors
from kyma.config import Config
from kyma.dynamo import from_item, to_item, values
from kyma.ledger import CHARGED, OPEN, REFUND, RELEASED, TOPUP, Hold

OPEN_HOLDS_INDEX = "OpenHolds"


class Books:
    def __init__(self, client: Any, cfg: Config) -> None:
        self.ddb = client
        self.cfg = cfg

    def balance(self, account_id: str) -> int:
        item = from_item(self.ddb.get_item(
            TableName=self.cfg.accounts_table, Key=to_item({"account_id": account_id}),
            ProjectionExpression="balance_micros", ConsistentRead=True).get("Item"))
        if item is None:
            raise errors.AuthError("Unknown account.")
        return int(item["balance_micros"])

    def hold_status(self, hold: Hold) -> str | None:
        item = from_item(self.ddb.get_item(
            TableName=self.cfg.ledger_table, ConsistentRead=True,
            Key=to_item({"account_id": hold.account_id, "entry_id": hold.entry_id})).get("Item"))
        return None if item is None else item.get("status")

    def entries(self, account_id: str) -> Iterator[dict]:
        """Every ledger entry of the account, oldest first."""
        yield from self._query({"KeyConditionExpression": "account_id = :a", "ConsistentRead": True,
                                "ExpressionAttributeValues": values(a=account_id)})

    def expired_holds(self, now: float | None = None) -> Iterator[Hold]:
        """Open holds whose time is up (the reconciler's work list)."""
        for item in self._query({"IndexName": OPEN_HOLDS_INDEX,
                                 "KeyConditionExpression": "open_hold = :open AND expires_at <= :now",
                                 "ExpressionAttributeValues": values(open=OPEN, now=int(now or time.time()))}):
            yield Hold(item["account_id"], item["entry_id"], item["amount_micros"], item.get("upload_id"))

    def audit(self, account_id: str) -> dict:
        """Check the ledger invariant for one account:
        balance = top-ups + refunds − charges − open holds, and balance ≥ 0."""
        totals = {"topups": 0, "refunds": 0, "charged": 0, "open": 0, "released": 0}
        for entry in self.entries(account_id):
            if entry.get("type") == TOPUP:
                totals["topups"] += entry["amount_micros"]
            elif entry.get("type") == REFUND:
                totals["refunds"] += entry["amount_micros"]
            elif entry.get("status") in (CHARGED, OPEN, RELEASED):
                totals[entry["status"]] += entry["amount_micros"]
        balance = self.balance(account_id)
        expected = totals["topups"] + totals["refunds"] - totals["charged"] - totals["open"]
        return {**totals, "balance": balance, "expected": expected,
                "consistent": balance == expected and balance >= 0}

    def _query(self, kwargs: dict[str, Any]) -> Iterator[dict]:
        kwargs = {"TableName": self.cfg.ledger_table, **kwargs}
        while True:
            page = self.ddb.query(**kwargs)
            for item in page.get("Items", []):
                entry = from_item(item)
                if entry is not None:
                    yield entry
            if "LastEvaluatedKey" not in page:
                return
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
