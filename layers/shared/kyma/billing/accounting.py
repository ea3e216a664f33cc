"""Reading the books: balances, ledger entries, open holds and the audit.

Nothing here writes.  The ledger holds only money entries (top-ups and holds;
idempotency guards live in the Idempotency table), so what is read here is
what the customer's ledger shows.
"""

from __future__ import annotations

import base64
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from kyma.billing.ledger import CHARGED, HOLD, OPEN, REFUND, RELEASED, TOPUP, Hold
from kyma.billing.money import micros_to_json
from kyma.billing.usage import ENDPOINT_OF_KIND
from kyma.edge import errors
from kyma.platform.config import Config
from kyma.platform.dynamo import Undo, from_item, rows, to_item, values

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

    def hold_undo(self, account_id: str, entry_id: str) -> tuple[Undo, ...]:
        """What closing this hold must move back (its stored `undo`), for work that closes a hold it
        did not reserve in the same process (a speech job's worker)."""
        item = from_item(self.ddb.get_item(
            TableName=self.cfg.ledger_table, Key=to_item({"account_id": account_id, "entry_id": entry_id}),
            ProjectionExpression="#undo", ExpressionAttributeNames={"#undo": "undo"},
            ConsistentRead=True).get("Item"))
        return undo_of(item or {})

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
            yield Hold(item["account_id"], item["entry_id"], item["amount_micros"], item.get("upload_id"),
                       undo=undo_of(item))

    def audit(self, account_id: str) -> dict:
        """Check the ledger invariant for one account:
        balance = top-ups + refunds − charges − open holds, and balance ≥ 0; and every counter its
        holds moved (kyma.billing.ledger: a key's month, requests in flight) = what they left in it."""
        totals = {"topups": 0, "refunds": 0, "charged": 0, "open": 0, "released": 0}
        counters: dict[tuple[str, tuple, str], int] = {}
        for entry in self.entries(account_id):
            for undo in undo_of(entry):
                status = str(entry.get("status"))
                left = {OPEN: -undo.on_release, CHARGED: undo.on_settle - undo.on_release}.get(status, 0)
                where = (undo.table, tuple(sorted(undo.key.items())), undo.attribute)
                counters[where] = counters.get(where, 0) + left
            if entry.get("type") == TOPUP:
                totals["topups"] += entry["amount_micros"]
            elif entry.get("type") == REFUND:
                totals["refunds"] += entry["amount_micros"]
            elif entry.get("status") in (CHARGED, OPEN, RELEASED):
                totals[entry["status"]] += entry["amount_micros"]
        balance = self.balance(account_id)
        expected = totals["topups"] + totals["refunds"] - totals["charged"] - totals["open"]
        mismatched = []
        for (table, key, attribute), want in sorted(counters.items()):
            item = from_item(self.ddb.get_item(TableName=table, Key=to_item(dict(key)), ConsistentRead=True,
                                               ProjectionExpression="#n", ExpressionAttributeNames={"#n": attribute},
                                               ).get("Item")) or {}
            have = int(item.get(attribute, 0))
            if have != want:
                mismatched.append({"counter": "#".join(v for _, v in key), "attribute": attribute,
                                   "value": have, "expected": want})
        return {**totals, "balance": balance, "expected": expected, "counters": len(counters),
                "counters_mismatched": mismatched,
                "consistent": balance == expected and balance >= 0 and not mismatched}

    def page(self, account_id: str, *, limit: int, cursor: str | None) -> dict:
        """The customer's ledger, newest first: one entry per paid request (its hold, shown with its
        final state), top-up and refund (GET /v1/credits/ledger; shared/reference/account.md)."""
        kwargs: dict[str, Any] = {
            "TableName": self.cfg.ledger_table, "ScanIndexForward": False, "Limit": limit,
            "KeyConditionExpression": "account_id = :a", "ExpressionAttributeValues": values(a=account_id)}
        if cursor is not None:
            kwargs["ExclusiveStartKey"] = to_item({"account_id": account_id, "entry_id": _entry_of(cursor)})
        page = self.ddb.query(**kwargs)
        entries = [statement_entry(e) for e in map(from_item, page.get("Items", [])) if e is not None]
        last = page.get("LastEvaluatedKey")
        return {"entries": entries,
                "next_cursor": _cursor_of(last["entry_id"]["S"]) if last else None}

    def _query(self, kwargs: dict[str, Any]) -> Iterator[dict]:
        return rows(self.ddb, "query", TableName=self.cfg.ledger_table, **kwargs)


def undo_of(entry: dict) -> tuple[Undo, ...]:
    """The counters a hold's closing moves (kyma.billing.ledger), as stored on it."""
    return tuple(Undo.from_map(u) for u in entry.get("undo") or ())


# ── the customer's view of an entry ──────────────────────────────────────
STATUS_SHOWN = {OPEN: "pending", CHARGED: "charged", RELEASED: "released"}
ENTRY_ID = re.compile(r"[0-9]{13}-[0-9a-f]{12}")     # whole string: fullmatch (a `$` also takes a final newline)


def statement_entry(entry: dict) -> dict:
    created = datetime.fromtimestamp(int(entry.get("created_at", 0)), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    shown: dict[str, Any] = {"entry_id": entry["entry_id"], "amount_usd": micros_to_json(int(entry["amount_micros"])),
                             "created_at": created}
    if entry.get("type") == HOLD:
        reference = {k: entry[k] for k in ("voice_id", "job_id") if entry.get(k)}
        if "chars" in entry:
            reference["characters"] = int(entry["chars"])
        shown.update({"type": "charge", "status": STATUS_SHOWN.get(entry.get("status", ""), "pending"),
                      "endpoint": ENDPOINT_OF_KIND.get(entry.get("kind", ""), entry.get("kind")),
                      "model": entry.get("model"), "reference": reference, "request_id": entry.get("request_id")})
    elif entry.get("type") == REFUND:
        shown.update({"type": "refund", "status": "posted", "reason": entry.get("reason"),
                      "reference": {k: entry[k] for k in ("voice_id",) if entry.get(k)}})
    else:
        shown.update({"type": "topup", "status": "posted", **({"note": entry["note"]} if entry.get("note") else {})})
    return shown


def _cursor_of(entry_id: str) -> str:
    return base64.urlsafe_b64encode(entry_id.encode()).decode().rstrip("=")


def _entry_of(cursor: str) -> str:
    try:
        entry_id = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    except (ValueError, UnicodeDecodeError):
        entry_id = ""
    if not ENTRY_ID.fullmatch(entry_id):
        raise errors.InvalidRequest("cursor is not a cursor this endpoint returned (send it back unchanged).")
    return entry_id
