"""Keys a customer manages: POST/GET/PATCH/DELETE /v1/keys (shared/reference/keys-and-limits.md),
and the operator's view of them (`kyma-admin keys`, `kyma-admin revoke-key --key-id`).

A key is shown once, when it is made; only its SHA-256 is stored (kyma.accounts.keys).  Its public
id is `key_` + the first 24 hex digits of that hash, so every key has one.  The no-lock-out rule:
a key may not lose the `keys` scope (revoked, or its scopes changed) unless another active,
unexpired key of the account keeps it; the other key's state is a condition in the same
transaction, so two keys revoked at once can never both pass.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from kyma.accounts.gate import month_of, month_resets_at, spend_counter_id
from kyma.accounts.keys import ACTIVE, KEY_ID_HEX, KEY_ID_PREFIX, REVOKED, key_id_of, key_row, new_api_key
from kyma.billing.money import micros_to_json, usd_to_micros
from kyma.edge import errors
from kyma.edge.scopes import ALL_SCOPES, DEFAULT_SCOPES, KEYS
from kyma.platform.config import Config
from kyma.platform.dynamo import Cancelled, Transaction, error_code, from_item, to_item, values

BY_ACCOUNT = "ByAccount"
MAX_KEYS_PER_ACCOUNT = 100
NAME_MAX = 64
KEY_ID_PATTERN = re.compile(rf"^{KEY_ID_PREFIX}[0-9a-f]{{{KEY_ID_HEX}}}$")
FIELDS = {"name", "scopes", "monthly_spend_limit_usd", "expires_at"}
EXPIRED = "expired"


def iso(epoch: int | None) -> str | None:
    return None if epoch is None else datetime.fromtimestamp(int(epoch), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# ── reading a request ────────────────────────────────────────────────────
def read_fields(body: Mapping[str, Any], *, creating: bool, now: float) -> dict[str, Any]:
    """The fields of POST or PATCH, checked (400 invalid_request); only those sent."""
    unknown = sorted(set(body) - FIELDS)
    if unknown:
        raise errors.InvalidRequest(f"Unknown field(s): {', '.join(unknown)}; allowed: {', '.join(sorted(FIELDS))}.")
    out: dict[str, Any] = {}
    if creating and "name" not in body:
        raise errors.InvalidRequest("'name' is required.")
    if "name" in body:
        name = body["name"]
        if not isinstance(name, str) or not name.strip() or len(name) > NAME_MAX or not name.isprintable():
            raise errors.InvalidRequest(f"'name' must be a printable string of 1 to {NAME_MAX} characters.")
        out["name"] = name.strip()
    if "scopes" in body:
        scopes = body["scopes"]
        if not isinstance(scopes, list) or not scopes or not all(isinstance(s, str) for s in scopes):
            raise errors.InvalidRequest(f"'scopes' must be a non-empty list of: {', '.join(ALL_SCOPES)}.")
        bad = sorted(set(scopes) - set(ALL_SCOPES))
        if bad:
            raise errors.InvalidRequest(f"Unknown scope(s): {', '.join(bad)}; one of {', '.join(ALL_SCOPES)}.")
        out["scopes"] = tuple(s for s in ALL_SCOPES if s in scopes)
    elif creating:
        out["scopes"] = DEFAULT_SCOPES
    if "monthly_spend_limit_usd" in body:
        limit = body["monthly_spend_limit_usd"]
        if limit is None:
            out["spend_limit_micros"] = None
        else:
            if isinstance(limit, bool) or not isinstance(limit, (int, float)):
                raise errors.InvalidRequest("'monthly_spend_limit_usd' must be a number of USD, or null.")
            try:
                out["spend_limit_micros"] = usd_to_micros(str(limit))
            except ValueError as exc:
                raise errors.InvalidRequest(f"'monthly_spend_limit_usd': {exc}.") from None
    if "expires_at" in body:
        raw = body["expires_at"]
        if raw is None:
            out["expires_at"] = None
        else:
            try:
                when = datetime.strptime(raw, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC) if isinstance(raw, str) \
                    else None
            except ValueError:
                when = None
            if when is None:
                raise errors.InvalidRequest("'expires_at' must be a UTC time like 2027-01-01T00:00:00Z, or null.")
            if when.timestamp() <= now:
                raise errors.InvalidRequest("'expires_at' must be in the future.")
            out["expires_at"] = int(when.timestamp())
    if not creating and not out:
        raise errors.InvalidRequest(f"Send at least one of: {', '.join(sorted(FIELDS))}.")
    return out


def status_of(row: Mapping[str, Any], now: float) -> str:
    if row.get("status") != ACTIVE:
        return REVOKED
    if row.get("expires_at") is not None and int(row["expires_at"]) <= now:
        return EXPIRED
    return ACTIVE


def holds_keys(row: Mapping[str, Any], now: float) -> bool:
    """Can this key manage keys now (active, unexpired, with `keys`; no scopes stored: every scope)?"""
    return status_of(row, now) == ACTIVE and (not row.get("scopes") or KEYS in row["scopes"])


class CustomerKeys:
    def __init__(self, client: Any, cfg: Config) -> None:
        self.ddb = client
        self.cfg = cfg

    # ── POST ─────────────────────────────────────────────────────────────
    def create(self, account_id: str, fields: Mapping[str, Any]) -> dict:
        now = time.time()
        if len(self._hashes(account_id)) >= MAX_KEYS_PER_ACCOUNT:
            raise errors.InvalidRequest(f"An account can have at most {MAX_KEYS_PER_ACCOUNT} keys; revoke one first.")
        account = from_item(self.ddb.get_item(
            TableName=self.cfg.accounts_table, Key=to_item({"account_id": account_id}), ConsistentRead=True,
            ProjectionExpression="rate_limits, concurrency_limits").get("Item")) or {}
        api_key = new_api_key()
        row = key_row(api_key, account_id, now, name=fields["name"], scopes=fields["scopes"],
                      spend_limit_micros=fields.get("spend_limit_micros"), expires_at=fields.get("expires_at"))
        # The account's own limits travel on each of its keys (kyma.accounts.store.Accounts.set_limits).
        row.update(to_item({name: account.get(name) for name in ("rate_limits", "concurrency_limits")}))
        self.ddb.put_item(TableName=self.cfg.api_keys_table, Item=row,
                          ConditionExpression="attribute_not_exists(key_hash)")
        shown = self._shown(from_item(row) or {}, now, spent=0)
        for hidden in ("hint", "spent_this_month_usd", "status"):
            shown.pop(hidden, None)
        return {"key_id": shown.pop("key_id"), "key": api_key, **shown}

    # ── GET ──────────────────────────────────────────────────────────────
    def list_keys(self, account_id: str) -> list[dict]:
        now = time.time()
        rows = self._rows(account_id)
        spent = self._spent({key_id_of(r["key_hash"]) for r in rows}, month_of(now))
        shown = [self._shown(r, now, spent=spent.get(key_id_of(r["key_hash"]), 0)) for r in rows]
        return sorted(shown, key=lambda k: (k["created_at"] or "", k["key_id"]))

    def find(self, account_id: str, key_id: str) -> dict:
        """The account's key row with this id, or 404 not_found (another account's key too)."""
        if not KEY_ID_PATTERN.match(key_id):
            raise errors.NotFound(f"No key {key_id}.")
        for row in self._rows(account_id):
            if key_id_of(row["key_hash"]) == key_id:
                return row
        raise errors.NotFound(f"No key {key_id}.")

    # ── PATCH ────────────────────────────────────────────────────────────
    def update(self, account_id: str, key_id: str, fields: Mapping[str, Any]) -> dict:
        now = time.time()
        row = self.find(account_id, key_id)
        if status_of(row, now) != ACTIVE:
            raise errors.KeyConflict(f"Key {key_id} is {status_of(row, now)}; it can no longer be changed.")
        sets, removes, vals = [], [], {}
        if "name" in fields:
            sets.append("#name = :name")
            vals["name"] = fields["name"]
        if "scopes" in fields:
            sets.append("scopes = :scopes")
            vals["scopes"] = set(fields["scopes"])
        for field, attr in (("spend_limit_micros", "spend_limit_micros"), ("expires_at", "expires_at")):
            if field in fields:
                if fields[field] is None:
                    removes.append(attr)
                else:
                    sets.append(f"{attr} = :{attr}")
                    vals[attr] = fields[field]
        expression = (("SET " + ", ".join(sets)) if sets else "") + (" REMOVE " + ", ".join(removes) if removes else "")
        update = {"TableName": self.cfg.api_keys_table, "Key": to_item({"key_hash": row["key_hash"]}),
                  "UpdateExpression": expression.strip(), "ConditionExpression": "#s = :active",
                  "ExpressionAttributeNames": {"#s": "status", **({"#name": "name"} if "name" in fields else {})},
                  "ExpressionAttributeValues": values(active=ACTIVE, **vals)}
        loses_keys = holds_keys(row, now) and "scopes" in fields and KEYS not in fields["scopes"]
        self._apply(account_id, row, update, loses_keys, now)
        return self._shown(self.find(account_id, key_id), now,
                           spent=self._spent({key_id}, month_of(now)).get(key_id, 0))

    # ── DELETE ───────────────────────────────────────────────────────────
    def revoke(self, account_id: str, key_id: str, *, keep_one: bool = True) -> dict:
        """Revoke a key.  `keep_one`: the no-lock-out rule (the operator may revoke any key)."""
        now = time.time()
        row = self.find(account_id, key_id)
        if row.get("status") != ACTIVE:
            return self._shown(row, now, spent=0) | {"status": REVOKED}
        update = {"TableName": self.cfg.api_keys_table, "Key": to_item({"key_hash": row["key_hash"]}),
                  "UpdateExpression": "SET #s = :revoked, revoked_at = :now", "ConditionExpression": "#s = :active",
                  "ExpressionAttributeNames": {"#s": "status"},
                  "ExpressionAttributeValues": values(active=ACTIVE, revoked=REVOKED, now=int(now))}
        self._apply(account_id, row, update, keep_one and holds_keys(row, now), now)
        return self._shown(self.find(account_id, key_id), now,
                           spent=self._spent({key_id}, month_of(now)).get(key_id, 0))

    def _apply(self, account_id: str, row: dict, update: dict, loses_keys: bool, now: float) -> None:
        """Apply `update` to the key; if the key stops managing keys, only together with a condition
        that another key of the account still can (409 conflict if none)."""
        if not loses_keys:
            try:
                self.ddb.update_item(**update)
            except ClientError as exc:
                if error_code(exc) == "ConditionalCheckFailedException":
                    raise errors.KeyConflict("The key was revoked meanwhile.") from None
                raise
            return
        for other in self._rows(account_id):
            if other["key_hash"] == row["key_hash"] or not holds_keys(other, now):
                continue
            tx = Transaction(self.ddb).add("key", {"Update": update}).add("other", {"ConditionCheck": {
                "TableName": self.cfg.api_keys_table, "Key": to_item({"key_hash": other["key_hash"]}),
                "ConditionExpression": "#s = :active AND (attribute_not_exists(scopes) OR contains(scopes, :keys)) "
                                       "AND (attribute_not_exists(expires_at) OR expires_at > :now)",
                "ExpressionAttributeNames": {"#s": "status"},
                "ExpressionAttributeValues": values(active=ACTIVE, keys=KEYS, now=int(now))}})
            try:
                tx.run()
                return
            except Cancelled as cancelled:
                if "key" in cancelled.failed:
                    raise errors.KeyConflict("The key was revoked meanwhile.") from None
                continue        # that one changed meanwhile: try the next
        raise errors.KeyConflict("This is the account's last key that can manage keys (the 'keys' scope); make "
                                 "another one with 'keys' first, so the account is never locked out.")

    # ── reading ──────────────────────────────────────────────────────────
    def _hashes(self, account_id: str) -> list[str]:
        kwargs: dict[str, Any] = {"TableName": self.cfg.api_keys_table, "IndexName": BY_ACCOUNT,
                                  "KeyConditionExpression": "account_id = :a",
                                  "ExpressionAttributeValues": values(a=account_id)}
        hashes: list[str] = []
        while True:
            page = self.ddb.query(**kwargs)
            hashes += [item["key_hash"]["S"] for item in page.get("Items", [])]
            if "LastEvaluatedKey" not in page:
                return hashes
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def _rows(self, account_id: str) -> list[dict]:
        """The account's key rows, read consistently (the index is only a list of hashes)."""
        hashes = self._hashes(account_id)
        rows: list[dict] = []
        for start in range(0, len(hashes), 100):
            pending: dict[str, Any] = {self.cfg.api_keys_table: {
                "Keys": [to_item({"key_hash": h}) for h in hashes[start:start + 100]], "ConsistentRead": True}}
            while pending:
                page = self.ddb.batch_get_item(RequestItems=pending)
                rows += [r for r in map(from_item, page.get("Responses", {}).get(self.cfg.api_keys_table, []))
                         if r is not None and r.get("account_id") == account_id]
                pending = page.get("UnprocessedKeys") or {}
        return rows

    def _spent(self, key_ids: set[str], month: str) -> dict[str, int]:
        """Each key's month so far (charges + open holds), from its counter."""
        ids = sorted(key_ids)
        spent: dict[str, int] = {}
        for start in range(0, len(ids), 100):
            pending: dict[str, Any] = {self.cfg.rate_counters_table: {
                "Keys": [to_item({"counter_id": spend_counter_id(k, month)}) for k in ids[start:start + 100]],
                "ConsistentRead": True}}
            while pending:
                page = self.ddb.batch_get_item(RequestItems=pending)
                for item in map(from_item, page.get("Responses", {}).get(self.cfg.rate_counters_table, [])):
                    if item is not None:
                        spent[str(item["counter_id"]).split("#")[1]] = int(item.get("spent_micros", 0))
                pending = page.get("UnprocessedKeys") or {}
        return spent

    @staticmethod
    def _shown(row: Mapping[str, Any], now: float, *, spent: int) -> dict:
        """What a customer sees of a key: never the key, nor its hash."""
        limit = row.get("spend_limit_micros")
        scopes = row.get("scopes")
        return {"key_id": key_id_of(str(row["key_hash"])), "name": row.get("name"),
                "hint": row.get("key_hint"),
                "scopes": [s for s in ALL_SCOPES if not scopes or s in scopes],
                "monthly_spend_limit_usd": None if limit is None else micros_to_json(int(limit)),
                "spent_this_month_usd": micros_to_json(spent),
                "month_resets_at": month_resets_at(now),
                "expires_at": iso(row.get("expires_at")),
                "status": status_of(row, now), "created_at": iso(row.get("created_at"))}
