"""The ledger's writes: where the balance is debited, charged, released and topped up.

Every balance change is one DynamoDB transaction that moves the balance and
writes (or closes) its ledger entry together (ARCHITECTURE.md §4):

- reserve: debit the account, only if the balance covers it, and open a hold;
  in the same transaction the conditions that decide whether the request may be
  charged at all: the caller's own conditions (the voice is theirs: the voices
  wing builds that check), the upload is claimable (`kyma.billing.claims`), the Idempotency-Key was never charged
  (`kyma.billing.idempotency`).  Each condition says what to answer when it fails.
- settle: the hold becomes a charge, only if it is still open, together with
  what the charge paid for (a voice row) and what it records (the upload is
  used, the key's charge guard, the day's usage row: kyma.billing.usage).
- release: the money goes back and the hold closes, only if it is still open
  (the upload is given back).
- top-up and refund: credit and entry together (a refund also with the state change
  that warrants it, so it happens at most once).

`status = open` is the condition on both settle and release, so exactly one of
them ever applies to a hold, whoever runs it (handler or reconciler).

Ledger layout (table Ledger, key account_id + entry_id, entry_id time-ordered):
  topup:  amount_micros, status "posted"
  hold:   amount_micros, status "open" → "charged" | "released"
  refund: amount_micros, status "posted" (e.g. a voice that expired before it was ever used)
While a hold is open it carries `open_hold` = "open", which puts it in the
sparse `OpenHolds` index (sort key `expires_at`) that the reconciler reads.
Invariant (kyma.billing.accounting.Books.audit): balance = Σ topups + Σ refunds − Σ charged − Σ open.

Counters that move with the money (the caller's gate, built by kyma.accounts.gate: a key's spend this
month, an account's requests in flight) are incremented, under their condition, by the reserve;
the hold stores what closing it must do to each (`undo`, kyma.platform.dynamo.Undo), and settle and
release apply it in their own transaction, so billing moves them without knowing what they count.
Invariant: each counter = Σ over its holds of what they left in it (open: the reserve's increment,
−on_release; charged: on_settle − on_release; released: 0).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kyma.billing import claims, idempotency, usage
from kyma.billing.money import MAX_BALANCE_MICROS, micros_to_header
from kyma.edge import errors
from kyma.platform.config import Config
from kyma.platform.dynamo import Cancelled, Check, ReserveGate, Stale, Transaction, Undo, to_item, values

OPEN = "open"
CHARGED = "charged"
RELEASED = "released"
POSTED = "posted"
TOPUP, HOLD, REFUND = "topup", "hold", "refund"


@dataclass(frozen=True)
class Hold:
    account_id: str
    entry_id: str
    amount_micros: int
    upload_id: str | None = None
    guard: str | None = None      # the Idempotency-Key's charge guard (kyma.billing.idempotency)
    kind: str = ""                # what the charge pays for ("voice_clone", "voice_design", "speech"): its usage row
    model: str = ""
    characters: int = 0
    undo: tuple[Undo, ...] = ()   # counters the reserve moved, moved back by the settle or release that closes it


class HoldNotOpen(Exception):
    """Settle or release found the hold already closed (by the other party)."""

    def __init__(self, status: str | None) -> None:
        super().__init__(f"hold is {status}")
        self.status = status


def new_entry_id(now: float | None = None) -> str:
    """Time-ordered, unique ledger entry id: 13-digit epoch millis + random suffix."""
    return f"{int((now or time.time()) * 1000):013d}-{secrets.token_hex(6)}"


def entry_time(entry_id: str) -> float:
    """When an entry was made (epoch seconds), read back from its id (`new_entry_id`)."""
    return int(entry_id[:13]) / 1000


def topup_put(cfg: Config, account_id: str, amount_micros: int, *, note: str | None, now: float) -> dict:
    """The ledger entry of a top-up (also the opening balance of a new account)."""
    return {"Put": {
        "TableName": cfg.ledger_table,
        "Item": to_item({"account_id": account_id, "entry_id": new_entry_id(now), "type": TOPUP,
                         "status": POSTED, "amount_micros": amount_micros, "created_at": int(now),
                         "note": note or None}),
        "ConditionExpression": "attribute_not_exists(entry_id)",
    }}


class Ledger:
    def __init__(self, client: Any, cfg: Config) -> None:
        self.ddb = client
        self.cfg = cfg

    # ── reserve ──────────────────────────────────────────────────────────
    def reserve(self, account_id: str, amount_micros: int, *, kind: str, request_id: str,
                reference: dict | None = None, conditions: Sequence[Check] = (),
                upload_id: str | None = None, guard: str | None = None, rate_limit: Check | None = None,
                upstream: Check | None = None, expires_in: int | None = None,
                entry_id: str | None = None, gate: ReserveGate | None = None) -> Hold:
        """Debit `amount_micros` into an open hold, or raise the reason it cannot be.

        `expires_in`: seconds until the reconciler may release the hold (default: the
        configured hold timeout); a request that may outlive that timeout passes its own.
        `entry_id`: the hold's id, when the caller names it in its own items (a speech job's row);
        made with `new_entry_id` (time-ordered), otherwise made here.

        `conditions`: the caller's own conditions on the request, in the order they are answered
        (the voice is the caller's and usable: kyma.voices.records.ownership_check).
        `upload_id`: also claim this pending upload of the caller's (single use).
        `guard`: the charge guard of an Idempotency-Key; refused (409) if it was ever charged.
        `rate_limit`: the caller's per-account counter (kyma.accounts.rate_limits.check), counted only if
        the reserve applies, at no extra round trip.
        `upstream`: a share of the provider's platform-wide quota (kyma.accounts.upstream.check),
        taken only if the reserve applies: a refused request leaves no hold and no count.
        `gate(amount)`: the caller's key and counters for this amount (kyma.accounts.gate: the key is
        active and holds the scope, its month stays within its limit, the account's requests in
        flight within theirs); each Check's `undo` is stored on the hold.
        The answer when several fail: the rate limit, the gate, the key, the voice, the upload, money, then
        the upstream quota (a voice that is not yours is 403 even when the balance is also short;
        the shared quota answers 503 only for a request that would otherwise have passed).
        """
        if amount_micros <= 0:
            raise ValueError("a hold must be positive")
        try:
            return self._reserve(account_id, amount_micros, kind=kind, request_id=request_id, reference=reference,
                                 conditions=conditions, upload_id=upload_id, guard=guard, rate_limit=rate_limit,
                                 upstream=upstream, expires_in=expires_in, entry_id=entry_id, gate=gate)
        except Stale:       # the gate was built on a limit since changed, and has learnt the new one
            return self._reserve(account_id, amount_micros, kind=kind, request_id=request_id, reference=reference,
                                 conditions=conditions, upload_id=upload_id, guard=guard, rate_limit=rate_limit,
                                 upstream=upstream, expires_in=expires_in, entry_id=entry_id, gate=gate)

    def _reserve(self, account_id: str, amount_micros: int, *, kind: str, request_id: str,
                 reference: dict | None, conditions: Sequence[Check], upload_id: str | None, guard: str | None,
                 rate_limit: Check | None, upstream: Check | None, expires_in: int | None,
                 entry_id: str | None, gate: ReserveGate | None) -> Hold:
        now = time.time()
        reference = reference or {}
        entry_id = entry_id or new_entry_id(now)
        checks: list[Check] = [rate_limit] if rate_limit is not None else []
        if gate is not None:
            checks.extend(gate(amount_micros))
        if guard is not None:
            checks.append(idempotency.guard_check(self.cfg, guard))
        checks.extend(conditions)
        if upload_id is not None:
            checks.append(claims.claim_check(self.cfg, upload_id, account_id, entry_id))
        checks.append(self._debit_check(account_id, amount_micros))
        if upstream is not None:
            checks.append(upstream)
        undo = tuple(u for check in checks for u in check.undo)
        hold = Hold(account_id, entry_id, amount_micros, upload_id, guard, kind=kind,
                    model=str(reference.get("model", "")), characters=int(reference.get("chars", 0)), undo=undo)
        tx = Transaction(self.ddb)
        for check in checks:
            tx.add(check.name, check.item)
        tx.add("hold", {"Put": {
            "TableName": self.cfg.ledger_table,
            "Item": to_item({
                "account_id": account_id, "entry_id": hold.entry_id, "type": HOLD,
                "kind": kind, "status": OPEN, "open_hold": OPEN,
                "amount_micros": amount_micros, "request_id": request_id,
                "created_at": int(now),
                "expires_at": int(now) + (self.cfg.hold_timeout_seconds if expires_in is None else expires_in),
                "upload_id": upload_id, "undo": [u.as_map() for u in undo] or None, **reference,
            }),
            "ConditionExpression": "attribute_not_exists(entry_id)",
        }})
        try:
            tx.run()
        except Cancelled as cancelled:
            for check in checks:                      # in the order of precedence above
                if check.name in cancelled.failed:
                    raise check.refusal(cancelled.failed[check.name]) from cancelled
            raise cancelled.cause from None   # only the hold's own condition failed: unexpected, 500
        return hold

    def _debit_check(self, account_id: str, amount: int) -> Check:
        def refusal(account: dict | None) -> errors.ApiError:
            account = account or {}
            if account.get("status") not in (None, "active"):
                return errors.AuthError("This account is not active.")
            return errors.InsufficientCredits(
                f"Balance {micros_to_header(account.get('balance_micros', 0))} USD is below the "
                f"{micros_to_header(amount)} USD this request costs.")

        return Check("account", {"Update": {
            "TableName": self.cfg.accounts_table,
            "Key": to_item({"account_id": account_id}),
            "UpdateExpression": "SET balance_micros = balance_micros - :amt",
            "ConditionExpression": "balance_micros >= :amt AND #status = :active",
            "ExpressionAttributeNames": {"#status": "status"},
            "ExpressionAttributeValues": values(amt=amount, active="active"),
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }}, refusal)

    # ── settle ───────────────────────────────────────────────────────────
    def settle(self, hold: Hold, *, items: Sequence[dict] = ()) -> None:
        """Turn the hold into a charge, atomically with `items` (TransactItems entries that must
        apply if and only if the charge does: a clone's voice row, a voice activated by speech).
        Raises HoldNotOpen if it was already closed (the reconciler released it, or our own earlier
        attempt charged it); ClientError on any other failure."""
        tx = Transaction(self.ddb).add("hold", self._close_hold(hold, CHARGED))
        for n, item in enumerate(items):
            tx.add(f"item{n}", item)
        if hold.upload_id:
            tx.add("upload", claims.used_item(self.cfg, hold.upload_id, hold.entry_id))
        if hold.guard:
            tx.add("guard", idempotency.guard_put(self.cfg, hold.guard, hold.entry_id))
        for n, undo in enumerate(hold.undo):
            if undo.on_settle:
                tx.add(f"undo{n}", undo.item(undo.on_settle))
        if hold.kind:
            # Counted on the day of the request (its hold), as the ledger dates it, even if a long
            # stream ends after midnight UTC: GET /v1/usage and GET /v1/credits/ledger agree per day.
            tx.add("usage", usage.usage_update(self.cfg, hold.account_id, kind=hold.kind, model=hold.model,
                                               characters=hold.characters, cost_micros=hold.amount_micros,
                                               now=entry_time(hold.entry_id)))
        self._run_closing(tx)

    # ── release ──────────────────────────────────────────────────────────
    def release(self, hold: Hold, *, reason: str, items: Sequence[dict] = ()) -> bool:
        """Give the money back.  True if this call released the hold; False if it was already
        closed (settled or released by someone else).  Exactly once either way.
        `items`: TransactItems that must apply if and only if the release does (a speech job
        becoming failed or canceled)."""
        tx = Transaction(self.ddb).add("hold", self._close_hold(hold, RELEASED, reason=reason))
        tx.add("account", self._credit(hold.account_id, hold.amount_micros))
        for n, item in enumerate(items):
            tx.add(f"item{n}", item)
        if hold.upload_id:
            tx.add("upload", claims.returned_item(self.cfg, hold.upload_id, hold.entry_id))
        for n, undo in enumerate(hold.undo):
            if undo.on_release:
                tx.add(f"undo{n}", undo.item(undo.on_release))
        try:
            self._run_closing(tx)
        except HoldNotOpen:
            return False
        return True

    # ── top-up ───────────────────────────────────────────────────────────
    def top_up(self, account_id: str, amount_micros: int, *, note: str = "") -> None:
        """Credit the account and write its ledger entry, atomically."""
        if amount_micros <= 0:
            raise ValueError("a top-up must be positive")
        if amount_micros > MAX_BALANCE_MICROS:
            raise errors.InvalidRequest("A top-up cannot exceed the maximum balance.")
        credit = self._credit(account_id, amount_micros)
        credit["Update"]["ConditionExpression"] = "attribute_exists(account_id) AND balance_micros <= :room"
        credit["Update"]["ExpressionAttributeValues"].update(values(room=MAX_BALANCE_MICROS - amount_micros))
        credit["Update"]["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
        try:
            Transaction(self.ddb).add("account", credit).add(
                "entry", topup_put(self.cfg, account_id, amount_micros, note=note, now=time.time())).run()
        except Cancelled as cancelled:
            if cancelled.failed.get("account"):          # the account exists: the balance is the problem
                raise errors.InvalidRequest(
                    f"This top-up would take the balance over the maximum of "
                    f"{micros_to_header(MAX_BALANCE_MICROS)} USD.") from cancelled
            raise

    # ── refund ───────────────────────────────────────────────────────────
    def refund(self, account_id: str, amount_micros: int, *, reason: str, reference: dict, because: Check,
               also: Mapping[str, dict] | None = None) -> bool:
        """Give `amount_micros` back as a `refund` entry, atomically with `because` (the state change
        that warrants it, e.g. a never-activated voice becoming expired), so at most once: False
        if `because` no longer holds (someone else refunded or changed it first).  `also`: more
        items, by name, that belong to the same fact (e.g. the event that tells the customer)."""
        now = time.time()
        tx = Transaction(self.ddb).add(because.name, because.item)
        for name, item in (also or {}).items():
            tx.add(name, item)
        tx.add("account", self._credit(account_id, amount_micros))
        tx.add("entry", {"Put": {
            "TableName": self.cfg.ledger_table,
            "Item": to_item({"account_id": account_id, "entry_id": new_entry_id(now), "type": REFUND,
                             "status": POSTED, "amount_micros": amount_micros, "created_at": int(now),
                             "reason": reason, **reference}),
            "ConditionExpression": "attribute_not_exists(entry_id)",
        }})
        try:
            tx.run()
        except Cancelled as cancelled:
            if because.name in cancelled.failed:
                return False
            raise
        return True

    # ── items ────────────────────────────────────────────────────────────
    def _credit(self, account_id: str, amount: int) -> dict:
        return {"Update": {
            "TableName": self.cfg.accounts_table,
            "Key": to_item({"account_id": account_id}),
            "UpdateExpression": "SET balance_micros = balance_micros + :amt",
            "ConditionExpression": "attribute_exists(account_id)",
            "ExpressionAttributeValues": values(amt=amount),
        }}

    def _close_hold(self, hold: Hold, status: str, reason: str | None = None) -> dict:
        update = "SET #status = :status, closed_at = :now" + (", release_reason = :reason" if reason else "")
        vals = values(status=status, now=int(time.time()), open=OPEN, **({"reason": reason} if reason else {}))
        return {"Update": {
            "TableName": self.cfg.ledger_table,
            "Key": to_item({"account_id": hold.account_id, "entry_id": hold.entry_id}),
            "UpdateExpression": update + " REMOVE open_hold",
            "ConditionExpression": "#status = :open",
            "ExpressionAttributeNames": {"#status": "status"},
            "ExpressionAttributeValues": vals,
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }}

    @staticmethod
    def _run_closing(tx: Transaction) -> None:
        """Run a settle or release; the hold already closed is HoldNotOpen(its status)."""
        try:
            tx.run()
        except Cancelled as cancelled:
            if "hold" in cancelled.failed:
                raise HoldNotOpen((cancelled.failed["hold"] or {}).get("status")) from cancelled.cause
            raise cancelled.cause from None
