"""Where the balance is debited: reserve → work → settle, or release.

Every paid call follows the protocol of ARCHITECTURE.md §4, each step one
DynamoDB transaction:

- reserve: debit the account (only if the balance covers it) and write an
  open hold to the ledger; optionally in the same transaction check that a
  cloned voice belongs to the caller, or claim an uploaded reference.
- settle:  turn the open hold into a charge (only if it is still open), in the
  same transaction as whatever the charge paid for (the voice's ownership row).
- release: give the money back and close the hold (only if it is still open).

`status = open` is the condition on both settle and release, so exactly one
of them ever applies to a hold, whoever runs it (handler or reconciler).

Ledger layout (one item per balance change, table Ledger, key
account_id + entry_id, entry_id time-ordered):
  topup: amount_micros, status "posted"
  hold:  amount_micros, status "open" → "charged" | "released"
Invariant: balance = Σ topups − Σ charged − Σ open holds, and balance ≥ 0.
While a hold is open it carries `open_hold` = "open", which puts it in the
sparse `OpenHolds` index (sort key `expires_at`) the reconciler scans.
"""

from __future__ import annotations

import logging
import secrets
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from botocore.exceptions import ClientError

from kyma import errors
from kyma.config import Config
from kyma.dynamo import cancellation_reasons, error_code, from_item, retry_on_conflict, to_item, values

T = TypeVar("T")
log = logging.getLogger("kyma.billing")

OPEN = "open"
CHARGED = "charged"
RELEASED = "released"
OPEN_HOLDS_INDEX = "OpenHolds"
# Charge guards outlive the idempotency records they back up (24 h); DynamoDB's TTL
# (attribute purge_at, which no money entry carries) removes them afterwards.
GUARD_TTL_SECONDS = 2 * 86_400


@dataclass(frozen=True)
class Hold:
    account_id: str
    entry_id: str
    amount_micros: int
    upload_id: str | None = None
    guard: str | None = None      # the Idempotency-Key's charge guard (see reserve)


class HoldNotOpen(Exception):
    """Settle or release found the hold already closed (by the other party)."""

    def __init__(self, status: str | None) -> None:
        super().__init__(f"hold is {status}")
        self.status = status


def new_entry_id(now: float | None = None) -> str:
    """Time-ordered, unique ledger entry id: 13-digit epoch millis + random suffix."""
    return f"{int((now or time.time()) * 1000):013d}-{secrets.token_hex(6)}"




class Billing:
    def __init__(self, client: Any, cfg: Config) -> None:
        self.ddb = client
        self.cfg = cfg

    # ── reserve ──────────────────────────────────────────────────────────
    def reserve(self, account_id: str, amount_micros: int, *, kind: str, request_id: str,
                reference: dict | None = None, voice_id_owned: str | None = None,
                upload_id: str | None = None, guard: str | None = None) -> Hold:
        """Debit `amount_micros` into an open hold, or raise the reason it cannot be.

        `voice_id_owned`: also require that this cloned voice exists and belongs to
        the caller (403 voice_not_owned / 404 voice_not_found, nothing debited).
        `upload_id`: also claim this pending upload of the caller's (single use).
        `guard`: the charge guard of an Idempotency-Key.  Settle writes it with the
        charge; reserve refuses (409) if it exists.  So a key can be charged at most
        once, even if the idempotency record that normally replays it was lost.
        """
        if amount_micros <= 0:
            raise ValueError("a hold must be positive")
        now = time.time()
        hold = Hold(account_id, new_entry_id(now), amount_micros, upload_id, guard)
        items: list[dict] = [
            {"Update": {
                "TableName": self.cfg.accounts_table,
                "Key": to_item({"account_id": account_id}),
                "UpdateExpression": "SET balance_micros = balance_micros - :amt",
                "ConditionExpression": "balance_micros >= :amt AND #status = :active",
                "ExpressionAttributeNames": {"#status": "status"},
                "ExpressionAttributeValues": values(amt=amount_micros, active="active"),
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            }},
            {"Put": {
                "TableName": self.cfg.ledger_table,
                "Item": to_item({
                    "account_id": account_id, "entry_id": hold.entry_id, "type": "hold",
                    "kind": kind, "status": OPEN, "open_hold": OPEN,
                    "amount_micros": amount_micros, "request_id": request_id,
                    "created_at": int(now), "expires_at": int(now) + self.cfg.hold_timeout_seconds,
                    "upload_id": upload_id, **(reference or {}),
                }),
                "ConditionExpression": "attribute_not_exists(entry_id)",
            }},
        ]
        if voice_id_owned is not None:
            items.append({"ConditionCheck": {
                "TableName": self.cfg.voices_table,
                "Key": to_item({"voice_id": voice_id_owned}),
                "ConditionExpression": "owner_id = :me",
                "ExpressionAttributeValues": values(me=account_id),
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            }})
        if upload_id is not None:
            items.append({"Update": {
                "TableName": self.cfg.uploads_table,
                "Key": to_item({"upload_id": upload_id}),
                "UpdateExpression": "SET #status = :claimed, hold_entry_id = :entry",
                "ConditionExpression": "account_id = :me AND #status = :pending",
                "ExpressionAttributeNames": {"#status": "status"},
                "ExpressionAttributeValues": values(me=account_id, claimed="claimed",
                                                    pending="pending", entry=hold.entry_id),
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            }})
        if guard is not None:
            items.append({"ConditionCheck": {
                "TableName": self.cfg.ledger_table,
                "Key": to_item({"account_id": account_id, "entry_id": guard}),
                "ConditionExpression": "attribute_not_exists(entry_id)",
            }})
        token = str(uuid.uuid4())  # a botocore retry of an applied reserve is applied once
        try:
            retry_on_conflict(lambda: self.ddb.transact_write_items(TransactItems=items, ClientRequestToken=token))
        except ClientError as exc:
            if error_code(exc) != "TransactionCanceledException":
                raise
            raise self._reserve_refusal(exc, account_id, amount_micros, voice_id_owned,
                                        upload_id, guard) from exc
        return hold

    @staticmethod
    def _reserve_refusal(exc: ClientError, account_id: str, amount: int, voice_id: str | None,
                         upload_id: str | None, guard: str | None) -> errors.ApiError:
        """Turn the transaction's cancellation reasons into the answer the client gets.
        Ownership is decided before money: a voice that is not yours is 403 even when
        the balance is also short."""
        reasons = cancellation_reasons(exc)
        failed = {i for i, r in enumerate(reasons) if r.get("Code") == "ConditionalCheckFailed"}
        # The transaction's items, in the order reserve() appended them.
        index = {name: i for i, name in enumerate(
            ["account", "hold"] + (["voice"] if voice_id is not None else [])
            + (["upload"] if upload_id is not None else []) + (["guard"] if guard is not None else []))}
        if index.get("guard") in failed:
            return errors.IdempotencyKeySpent("This Idempotency-Key already completed a charged request whose "
                                              "response can no longer be replayed; send new requests with a new key.")
        if index.get("voice") in failed:
            owner = (from_item(reasons[index["voice"]].get("Item")) or {}).get("owner_id")
            if owner is None:
                return errors.VoiceNotFound(f"Voice {voice_id} does not exist.")
            return errors.VoiceNotOwned(f"Voice {voice_id} belongs to another account.")
        if index.get("upload") in failed:
            upload = from_item(reasons[index["upload"]].get("Item"))
            if upload is None or upload.get("account_id") != account_id:
                return errors.UploadNotFound(f"Upload {upload_id} was not found.")
            if upload.get("status") == "claimed":
                return errors.UploadInUse(f"Upload {upload_id} is being used by another request.")
            return errors.UploadUsed(f"Upload {upload_id} has already been used.")
        if 0 in failed:
            account = from_item(reasons[0].get("Item")) or {}
            if account.get("status") not in (None, "active"):
                return errors.AuthError("This account is not active.")
            from kyma.money import micros_to_header
            return errors.InsufficientCredits(
                f"Balance {micros_to_header(account.get('balance_micros', 0))} USD is below the "
                f"{micros_to_header(amount)} USD this request costs.")
        raise exc  # a reason we do not expect: let the edge answer 500 (nothing was debited)

    # ── the whole protocol around one paid piece of work ───────────────────
    def complete(self, hold: Hold, work: Callable[[], T], *, settle_failed: Callable[[], errors.ApiError],
                 puts: Callable[[T], list[dict]] = lambda result: [], deadline: float | None = None) -> T:
        """Run `work` for an open hold; settle on success, release on any failure.

        - `work` raises → the hold is released (exactly once) and the error propagates;
        - `work` finishes after `deadline` (API Gateway would already have answered the
          client) → released, 502: nothing is charged for a result nobody receives;
        - the settle fails → the hold is released and `settle_failed()` is raised,
          unless the settle had in fact been applied (its answer was lost), which is a success;
          if neither can be confirmed → 500 billing_outcome_unknown (never "no charge");
        - the reconciler released the hold first (the request outlived it) → `settle_failed()`.
        A release that itself fails leaves the hold open for the reconciler.
        """
        try:
            result = work()
        except Exception as exc:
            self.release_safely(hold, "provider_error" if isinstance(exc, errors.ProviderError) else "error")
            raise
        if deadline is not None and time.monotonic() > deadline:
            self.release_safely(hold, "deadline")
            raise errors.ProviderError("The provider answered too late to deliver the result in time; "
                                       "nothing was charged. Retry.")
        try:
            self.settle(hold, puts=puts(result))
        except HoldNotOpen as exc:
            if exc.status != CHARGED:      # released by the reconciler: no charge, no row
                raise settle_failed() from exc
            # Charged already: our own settle applied and a retry of it found the hold closed.
        except Exception as exc:
            log.exception("settle failed", extra={"entry_id": hold.entry_id})
            applied = self._applied_after_all(hold)
            if applied is None:
                raise errors.BillingOutcomeUnknown(
                    "We could not confirm whether this request was charged. Check GET /v1/credits/balance "
                    "before retrying, or retry with the same Idempotency-Key.") from exc
            if not applied:
                raise settle_failed() from exc
        return result

    def release_safely(self, hold: Hold, reason: str) -> bool | None:
        """Release without masking the error being handled.  None: could not release
        now (the hold stays open; the reconciler releases it later)."""
        try:
            return self.release(hold, reason=reason)
        except Exception:
            log.exception("release failed; the reconciler will release the hold",
                          extra={"entry_id": hold.entry_id, "reason": reason})
            return None

    def _applied_after_all(self, hold: Hold) -> bool | None:
        """After a settle that raised: release it, unless the settle had been applied.
        True: charged.  False: not charged (released now, or open for the reconciler).
        None: unknown (neither the release nor a read of the hold succeeded)."""
        if self.release_safely(hold, "settle_failed"):
            return False
        try:
            return self.hold_status(hold) == CHARGED
        except Exception:
            log.exception("could not read the hold's status", extra={"entry_id": hold.entry_id})
            return None

    def balance_or_none(self, account_id: str) -> int | None:
        """The balance for a response after a settle: best effort.  Once the charge is
        settled nothing may fail the request (the client must get what it paid for)."""
        try:
            return self.balance(account_id)
        except Exception:
            log.exception("balance read after settle failed", extra={"account_id": account_id})
            return None

    # ── settle ───────────────────────────────────────────────────────────
    def settle(self, hold: Hold, *, puts: list[dict] | None = None) -> None:
        """Turn the hold into a charge, atomically with `puts` (Put items that must
        exist if and only if the charge does).  Raises HoldNotOpen if the reconciler
        already released the hold; ClientError on any other failure."""
        items = [self._close_hold(hold, CHARGED), *({"Put": p} for p in (puts or []))]
        if hold.upload_id:
            items.append(self._upload_transition(hold, "used"))
        if hold.guard:
            now = int(time.time())
            items.append({"Put": {
                "TableName": self.cfg.ledger_table,
                "Item": to_item({"account_id": hold.account_id, "entry_id": hold.guard,
                                 "type": "idempotency_guard", "hold_entry_id": hold.entry_id,
                                 "created_at": now, "purge_at": now + GUARD_TTL_SECONDS}),
                "ConditionExpression": "attribute_not_exists(entry_id)",
            }})
        self._transact(items, hold, "settle")

    # ── release ──────────────────────────────────────────────────────────
    def release(self, hold: Hold, *, reason: str) -> bool:
        """Give the money back.  True if this call released the hold; False if it was
        already closed (settled or released by someone else).  Exactly once either way."""
        items = [
            {"Update": {
                "TableName": self.cfg.accounts_table,
                "Key": to_item({"account_id": hold.account_id}),
                "UpdateExpression": "SET balance_micros = balance_micros + :amt",
                "ConditionExpression": "attribute_exists(account_id)",
                "ExpressionAttributeValues": values(amt=hold.amount_micros),
            }},
            self._close_hold(hold, RELEASED, reason=reason),
        ]
        if hold.upload_id:
            items.append(self._upload_transition(hold, "pending"))
        try:
            self._transact(items, hold, "release")
        except HoldNotOpen:
            return False
        return True

    def _close_hold(self, hold: Hold, status: str, reason: str | None = None) -> dict:
        update = "SET #status = :status, closed_at = :now REMOVE open_hold"
        vals = values(status=status, now=int(time.time()), open=OPEN)
        if reason:
            update = "SET #status = :status, closed_at = :now, release_reason = :reason REMOVE open_hold"
            vals.update(values(reason=reason))
        return {"Update": {
            "TableName": self.cfg.ledger_table,
            "Key": to_item({"account_id": hold.account_id, "entry_id": hold.entry_id}),
            "UpdateExpression": update,
            "ConditionExpression": "#status = :open",
            "ExpressionAttributeNames": {"#status": "status"},
            "ExpressionAttributeValues": vals,
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }}

    def _upload_transition(self, hold: Hold, status: str) -> dict:
        remove = " REMOVE hold_entry_id" if status == "pending" else ""
        return {"Update": {
            "TableName": self.cfg.uploads_table,
            "Key": to_item({"upload_id": hold.upload_id}),
            "UpdateExpression": "SET #status = :status" + remove,
            "ConditionExpression": "hold_entry_id = :entry",
            "ExpressionAttributeNames": {"#status": "status"},
            "ExpressionAttributeValues": values(status=status, entry=hold.entry_id),
        }}

    def _transact(self, items: list[dict], hold: Hold, step: str) -> None:
        # One ClientRequestToken per call: if botocore retries a transaction whose answer was
        # lost, DynamoDB applies it once.  (Not one per hold: the reconciler's release of the
        # same hold carries other parameters and would be refused as a token mismatch.)
        token = str(uuid.uuid4())
        try:
            retry_on_conflict(lambda: self.ddb.transact_write_items(TransactItems=items, ClientRequestToken=token))
        except ClientError as exc:
            reasons = cancellation_reasons(exc)
            hold_index = 0 if step == "settle" else 1
            if (error_code(exc) == "TransactionCanceledException" and len(reasons) > hold_index
                    and reasons[hold_index].get("Code") == "ConditionalCheckFailed"):
                raise HoldNotOpen((from_item(reasons[hold_index].get("Item")) or {}).get("status")) from exc
            raise

    # ── reading ──────────────────────────────────────────────────────────
    def balance(self, account_id: str) -> int:
        item = from_item(self.ddb.get_item(
            TableName=self.cfg.accounts_table, Key=to_item({"account_id": account_id}),
            ProjectionExpression="balance_micros", ConsistentRead=True).get("Item"))
        if item is None:
            raise errors.AuthError("Unknown account.")
        return item["balance_micros"]

    def hold_status(self, hold: Hold) -> str | None:
        item = from_item(self.ddb.get_item(
            TableName=self.cfg.ledger_table, ConsistentRead=True,
            Key=to_item({"account_id": hold.account_id, "entry_id": hold.entry_id})).get("Item"))
        return None if item is None else item.get("status")

    def entries(self, account_id: str) -> Iterator[dict]:
        kwargs: dict[str, Any] = {
            "TableName": self.cfg.ledger_table, "ConsistentRead": True,
            "KeyConditionExpression": "account_id = :a", "ExpressionAttributeValues": values(a=account_id)}
        while True:
            page = self.ddb.query(**kwargs)
            yield from (e for e in map(from_item, page.get("Items", [])) if e.get("type") != "idempotency_guard")
            if "LastEvaluatedKey" not in page:
                return
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def expired_holds(self, now: float | None = None) -> Iterator[Hold]:
        """Open holds whose time is up (the reconciler's work list)."""
        kwargs: dict[str, Any] = {
            "TableName": self.cfg.ledger_table, "IndexName": OPEN_HOLDS_INDEX,
            "KeyConditionExpression": "open_hold = :open AND expires_at <= :now",
            "ExpressionAttributeValues": values(open=OPEN, now=int(now or time.time()))}
        while True:
            page = self.ddb.query(**kwargs)
            for item in map(from_item, page.get("Items", [])):
                yield Hold(item["account_id"], item["entry_id"], item["amount_micros"], item.get("upload_id"))
            if "LastEvaluatedKey" not in page:
                return
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def audit(self, account_id: str) -> dict:
        """Check the ledger invariant for one account."""
        totals = {"topups": 0, "charged": 0, "open": 0, "released": 0}
        for entry in self.entries(account_id):
            if entry.get("type") == "topup":
                totals["topups"] += entry["amount_micros"]
            elif entry.get("status") in (CHARGED, OPEN, RELEASED):
                totals[entry["status"]] += entry["amount_micros"]
        balance = self.balance(account_id)
        expected = totals["topups"] - totals["charged"] - totals["open"]
        return {**totals, "balance": balance, "expected": expected,
                "consistent": balance == expected and balance >= 0}

    # ── top-ups ──────────────────────────────────────────────────────────
    def top_up(self, account_id: str, amount_micros: int, *, note: str = "") -> int:
        """Credit the account and write the ledger entry, atomically.  Returns the new balance."""
        if amount_micros <= 0:
            raise ValueError("a top-up must be positive")
        now = time.time()
        self.ddb.transact_write_items(TransactItems=[
            {"Update": {
                "TableName": self.cfg.accounts_table,
                "Key": to_item({"account_id": account_id}),
                "UpdateExpression": "SET balance_micros = balance_micros + :amt",
                "ConditionExpression": "attribute_exists(account_id)",
                "ExpressionAttributeValues": values(amt=amount_micros),
            }},
            {"Put": {
                "TableName": self.cfg.ledger_table,
                "Item": to_item({"account_id": account_id, "entry_id": new_entry_id(now),
                                 "type": "topup", "status": "posted", "amount_micros": amount_micros,
                                 "created_at": int(now), "note": note or None}),
                "ConditionExpression": "attribute_not_exists(entry_id)",
            }},
        ])
        return self.balance(account_id)
