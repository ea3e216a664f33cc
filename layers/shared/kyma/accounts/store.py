"""Operating accounts: create one (with its first key and opening balance), issue and
revoke keys.  What the operator's `kyma-admin` does; requests never call this.
(How a request's key becomes an account: `kyma.accounts.keys`.)
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from kyma.accounts.gate import DEFAULT_CONCURRENCY
from kyma.accounts.keys import ACTIVE, REVOKED, hash_key, key_row, new_api_key
from kyma.accounts.rate_limits import DEFAULTS
from kyma.billing.ledger import topup_put
from kyma.edge import errors
from kyma.platform.config import Config
from kyma.platform.dynamo import from_item, rows, to_item, values

API_KEYS_BY_ACCOUNT_INDEX = "ByAccount"


@dataclass(frozen=True)
class NewAccount:
    account_id: str
    api_key: str          # shown once; only its hash is stored


class Accounts:
    def __init__(self, client: Any, cfg: Config) -> None:
        self.ddb = client
        self.cfg = cfg

    def create(self, balance_micros: int = 0, *, label: str = "",
               account_id: str | None = None) -> NewAccount:
        """Account + its first API key + (if funded) the opening top-up, in one transaction."""
        now = time.time()
        account_id = account_id or "acct_" + secrets.token_hex(8)
        api_key = new_api_key()
        items = [
            {"Put": {"TableName": self.cfg.accounts_table,
                     "Item": to_item({"account_id": account_id, "balance_micros": balance_micros,
                                      "status": ACTIVE, "created_at": int(now), "label": label or None}),
                     "ConditionExpression": "attribute_not_exists(account_id)"}},
            {"Put": {"TableName": self.cfg.api_keys_table,
                     "Item": key_row(api_key, account_id, now),
                     "ConditionExpression": "attribute_not_exists(key_hash)"}},
        ]
        if balance_micros > 0:
            items.append(topup_put(self.cfg, account_id, balance_micros, note="opening balance", now=now))
        self.ddb.transact_write_items(TransactItems=items)
        return NewAccount(account_id, api_key)

    def issue_key(self, account_id: str) -> str:
        """A new key for an existing account, carrying the account's own rate limits (if any)."""
        account = from_item(self.ddb.get_item(TableName=self.cfg.accounts_table,
                                              Key=to_item({"account_id": account_id}), ConsistentRead=True).get("Item"))
        if account is None:
            raise errors.NotFound(f"No account {account_id}.")
        api_key = new_api_key()
        row = key_row(api_key, account_id, time.time())
        row.update(to_item({name: account.get(name) for name in ("rate_limits", "concurrency_limits")}))
        self.ddb.put_item(TableName=self.cfg.api_keys_table, Item=row,
                          ConditionExpression="attribute_not_exists(key_hash)")
        return api_key

    def set_limits(self, account_id: str, endpoint: str, *, per_minute: int, burst: int) -> dict:
        """Change one endpoint's rate limit for this account (kyma.accounts.rate_limits), on the account row
        (the source of truth) and on every key of the account (what the authorizer reads).  Returns
        the account's limits.  The caller flushes the authorizer cache so it applies at once."""
        if endpoint not in DEFAULTS:
            raise errors.InvalidRequest(f"Unknown endpoint {endpoint!r}; one of {', '.join(sorted(DEFAULTS))}.")
        if not (0 < burst <= per_minute <= 100_000):
            raise errors.InvalidRequest("Limits must satisfy 0 < burst <= per minute <= 100000.")
        return self._set_limit(account_id, "rate_limits", endpoint, {"rpm": per_minute, "burst": burst})

    def set_concurrency(self, account_id: str, kind: str, *, limit: int) -> dict:
        """Change how many requests of `kind` (kyma.accounts.gate: speech_stream, job) the account may
        have in flight, on the account row and on every key of it (what the authorizer passes on).
        The caller flushes the authorizer cache so it applies at once."""
        if kind not in DEFAULT_CONCURRENCY:
            raise errors.InvalidRequest(f"Unknown kind {kind!r}; one of {', '.join(sorted(DEFAULT_CONCURRENCY))}.")
        if not 0 < limit <= 10_000:
            raise errors.InvalidRequest("A concurrency limit must be from 1 to 10000.")
        return self._set_limit(account_id, "concurrency_limits", kind, limit)

    def _set_limit(self, account_id: str, attribute: str, name: str, value: object) -> dict:
        """Set `name` in the account's JSON `attribute` (rate_limits, concurrency_limits), on the account
        row and on every key of the account; the account's limits afterwards."""
        account = from_item(self.ddb.get_item(TableName=self.cfg.accounts_table,
                                              Key=to_item({"account_id": account_id}), ConsistentRead=True).get("Item"))
        if account is None:
            raise errors.NotFound(f"No account {account_id}.")
        limits = json.loads(account.get(attribute) or "{}")
        limits[name] = value
        encoded = json.dumps(limits, sort_keys=True, separators=(",", ":"))
        update = {"UpdateExpression": f"SET {attribute} = :l", "ExpressionAttributeValues": values(l=encoded)}
        self.ddb.update_item(TableName=self.cfg.accounts_table, Key=to_item({"account_id": account_id}), **update)
        for key_hash in self._key_hashes(account_id):
            self.ddb.update_item(TableName=self.cfg.api_keys_table, Key=to_item({"key_hash": key_hash}), **update)
        return limits

    def revoke_key(self, api_key: str) -> bool:
        return self._revoke_hash(hash_key(api_key))

    def revoke_account_keys(self, account_id: str) -> int:
        return sum(self._revoke_hash(key_hash) for key_hash in self._key_hashes(account_id))

    def _key_hashes(self, account_id: str) -> list[str]:
        return [row["key_hash"] for row in rows(
            self.ddb, "query", TableName=self.cfg.api_keys_table, IndexName=API_KEYS_BY_ACCOUNT_INDEX,
            KeyConditionExpression="account_id = :a", ExpressionAttributeValues=values(a=account_id))]

    def _revoke_hash(self, key_hash: str) -> bool:
        try:
            self.ddb.update_item(TableName=self.cfg.api_keys_table, Key=to_item({"key_hash": key_hash}),
                                 UpdateExpression="SET #s = :revoked, revoked_at = :now",
                                 ConditionExpression="attribute_exists(key_hash) AND #s = :active",
                                 ExpressionAttributeNames={"#s": "status"},
                                 ExpressionAttributeValues=values(revoked=REVOKED, active=ACTIVE,
                                                                  now=int(time.time())))
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True
