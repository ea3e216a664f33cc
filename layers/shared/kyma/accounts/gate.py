"""What the caller's key and account add to a reserve: the key may do this, its month and the
account's requests in flight stay within their limits; all in the reserve's one transaction.

`for_caller(...)` returns the gate a paid endpoint passes to `Ledger.reserve(gate=...)`; the
ledger calls it with the amount and adds its items to the transaction (no extra round trip):

- the key (ApiKeys, a ConditionCheck): still active, not expired, holds the route's scope, and
  its monthly limit is the one this gate was built with.  Revoked or expired: 401; scope
  removed: 403 permission_denied; the limit changed since the authorizer's cache read it: the
  gate learns the key's limit from the refusal and the reserve is tried once more (`Stale`);
- the key's month (RateCounters `spend#<key_id>#<YYYY-MM>`, `spent_micros`): the amount is
  added, only if it stays within the key's limit; over: 402 key_spend_limit_exceeded, saying
  what is left and when it resets.  Settle keeps it; release gives it back (its `Undo`);
- requests in flight (RateCounters `inflight#<account>#<kind>`, `n`), for the kinds that hold
  capacity while they run (streamed speech, jobs): 1 is added, only if below the account's
  limit; over: 429 too_many_concurrent with Retry-After.  Settle and release take it back.

Every counter is also undone by the reconciler's release (the hold stores its Undo items), and
the audit holds each counter to the holds that moved it (kyma.billing.accounting).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from kyma.accounts.rate_limits import own_limits
from kyma.billing.money import micros_to_header
from kyma.edge import errors
from kyma.platform.config import Config
from kyma.platform.dynamo import Check, Stale, Undo, to_item, values

SPEECH_STREAM, JOB = "speech_stream", "job"
DEFAULT_CONCURRENCY = {SPEECH_STREAM: 10, JOB: 3}
CONCURRENCY_RETRY_AFTER_SECONDS = 5
NO_LIMIT = -1          # how "no monthly limit" is compared on the key row


def month_of(now: float) -> str:
    return datetime.fromtimestamp(now, UTC).strftime("%Y-%m")


def month_resets_at(now: float) -> str:
    """The start of the next UTC month (ISO 8601)."""
    day = datetime.fromtimestamp(now, UTC)
    nxt = datetime(day.year + (day.month == 12), day.month % 12 + 1, 1, tzinfo=UTC)
    return nxt.strftime("%Y-%m-%dT%H:%M:%SZ")


def spend_counter_id(key_id: str, month: str) -> str:
    return f"spend#{key_id}#{month}"


def inflight_counter_id(account_id: str, kind: str) -> str:
    return f"inflight#{account_id}#{kind}"


def concurrency_limit(kind: str, account_limits: str | Mapping | None) -> int:
    own = own_limits(account_limits)
    if isinstance(own.get(kind), int) and not isinstance(own.get(kind), bool):
        return int(own[kind])
    return DEFAULT_CONCURRENCY[kind]


class Gate:
    """The reserve's conditions for one caller (see the module docstring); `gate(amount)` → Checks."""

    def __init__(self, cfg: Config, scope: str, account_id: str, authorizer: Mapping,
                 in_flight: str | None = None, now: float | None = None) -> None:
        self.cfg, self.scope, self.account_id = cfg, scope, account_id
        self.key_hash = str(authorizer.get("key_hash") or "")
        self.key_id = str(authorizer.get("key_id") or "")
        raw = authorizer.get("spend_limit_micros")
        self.limit: int | None = int(raw) if raw not in (None, "") else None
        self.in_flight = in_flight
        self.max_in_flight = concurrency_limit(in_flight, authorizer.get("concurrency_limits")) if in_flight else 0
        self.now = time.time() if now is None else now

    def __call__(self, amount_micros: int) -> Sequence[Check]:
        checks: list[Check] = []
        if self.key_hash:
            checks.append(self._key_check())
        if self.in_flight:
            checks.append(self._in_flight_check())
        if self.key_id:
            checks.append(self._spend_check(amount_micros))
        return checks

    # ── the key itself ───────────────────────────────────────────────────
    def _key_check(self) -> Check:
        def refusal(key: dict | None) -> Exception:
            key = key or {}
            if key.get("status") != "active" or (key.get("expires_at") is not None
                                                 and int(key["expires_at"]) <= self.now):
                return errors.AuthError("This API key is revoked or expired.")
            if key.get("scopes") and self.scope not in key["scopes"]:
                return errors.PermissionDenied(f"This API key does not have the '{self.scope}' scope.")
            stored = key.get("spend_limit_micros")
            self.limit = None if stored is None else int(stored)       # learnt: the reserve tries once more
            return Stale("the key's monthly limit changed")

        limit = NO_LIMIT if self.limit is None else self.limit
        return Check("key", {"ConditionCheck": {
            "TableName": self.cfg.api_keys_table,
            "Key": to_item({"key_hash": self.key_hash}),
            "ConditionExpression": "#s = :active AND (attribute_not_exists(scopes) OR contains(scopes, :scope)) "
                                   "AND (attribute_not_exists(expires_at) OR expires_at > :now) AND "
                                   + ("attribute_not_exists(spend_limit_micros)" if limit == NO_LIMIT
                                      else "spend_limit_micros = :limit"),
            "ExpressionAttributeNames": {"#s": "status"},
            "ExpressionAttributeValues": values(active="active", scope=self.scope, now=int(self.now),
                                                **({} if limit == NO_LIMIT else {"limit": limit})),
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }}, refusal)

    # ── the key's month ──────────────────────────────────────────────────
    def _spend_check(self, amount: int) -> Check:
        counter_id = spend_counter_id(self.key_id, month_of(self.now))
        limit = self.limit

        def refusal(counter: dict | None) -> Exception:
            spent = int((counter or {}).get("spent_micros", 0))
            left = max(0, (limit or 0) - spent)
            return errors.KeySpendLimitExceeded(
                f"This request costs {micros_to_header(amount)} USD but this API key has {micros_to_header(left)} "
                f"USD left of its monthly spend limit of {micros_to_header(limit or 0)} USD; the limit resets at "
                f"{month_resets_at(self.now)}. Nothing was charged.")

        update: dict = {
            "TableName": self.cfg.rate_counters_table,
            "Key": to_item({"counter_id": counter_id}),
            "UpdateExpression": "ADD spent_micros :amt SET account_id = :acct",
            "ExpressionAttributeValues": values(amt=amount, acct=self.account_id),
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }
        if limit is not None:
            room = limit - amount
            # A negative room fails even on a fresh month (no counter yet): the price alone is over.
            update["ConditionExpression"] = ("spent_micros <= :room" if room < 0
                                             else "attribute_not_exists(spent_micros) OR spent_micros <= :room")
            update["ExpressionAttributeValues"].update(values(room=room))
        return Check("key_month", {"Update": update}, refusal,
                     undo=(Undo(self.cfg.rate_counters_table, {"counter_id": counter_id}, "spent_micros",
                                on_settle=0, on_release=-amount),))

    # ── requests in flight ───────────────────────────────────────────────
    def _in_flight_check(self) -> Check:
        kind = str(self.in_flight)
        counter_id = inflight_counter_id(self.account_id, kind)
        limit = self.max_in_flight
        noun = {SPEECH_STREAM: "streamed speech requests", JOB: "speech jobs"}.get(kind, kind)

        def refusal(counter: dict | None) -> Exception:
            return errors.TooManyConcurrent(
                f"This account already has {int((counter or {}).get('n', 0))} {noun} in flight, its limit of "
                f"{limit}; retry when one finishes.",
                headers={"Retry-After": str(CONCURRENCY_RETRY_AFTER_SECONDS)})

        return Check("in_flight", {"Update": {
            "TableName": self.cfg.rate_counters_table,
            "Key": to_item({"counter_id": counter_id}),
            "UpdateExpression": "ADD n :one SET account_id = :acct",
            "ConditionExpression": "attribute_not_exists(n) OR n < :max",
            "ExpressionAttributeValues": values(one=1, max=limit, acct=self.account_id),
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }}, refusal, undo=(Undo(self.cfg.rate_counters_table, {"counter_id": counter_id}, "n",
                                on_settle=-1, on_release=-1),))


def for_caller(cfg: Config, scope: str, account_id: str, authorizer: Mapping, *,
               in_flight: str | None = None) -> Gate:
    """The gate of a paid request: `scope` the route needs (kyma.edge.scopes), `in_flight` the kind
    of work it holds capacity for while it runs (SPEECH_STREAM, JOB) or None."""
    return Gate(cfg, scope, account_id, authorizer, in_flight)
