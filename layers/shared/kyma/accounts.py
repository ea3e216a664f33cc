"""Accounts and API keys.

An API key is shown once, when it is created, and stored only as the SHA-256
hex of the key (table ApiKeys, key `key_hash`).  The authorizer hashes the
presented key and looks it up: one GetItem per cache miss.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from kyma.billing import new_entry_id
from kyma.config import Config
from kyma.dynamo import from_item, to_item, values

KEY_PREFIX = "sk-kyma-"
API_KEYS_BY_ACCOUNT_INDEX = "ByAccount"


def hash_key(api_key: str) -> str:
    return hashlib.sha256(api_key.encode("utf-8")).hexdigest()


def new_api_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


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
                                      "status": "active", "created_at": int(now), "label": label or None}),
                     "ConditionExpression": "attribute_not_exists(account_id)"}},
            {"Put": {"TableName": self.cfg.api_keys_table,
                     "Item": self._key_item(api_key, account_id, now),
                     "ConditionExpression": "attribute_not_exists(key_hash)"}},
        ]
        if balance_micros > 0:
            items.append({"Put": {"TableName": self.cfg.ledger_table,
                                  "Item": to_item({"account_id": account_id, "entry_id": new_entry_id(now),
                                                   "type": "topup", "status": "posted",
                                                   "amount_micros": balance_micros, "created_at": int(now),
                                                   "note": "opening balance"})}})
        self.ddb.transact_write_items(TransactItems=items)
        return NewAccount(account_id, api_key)

    def issue_key(self, account_id: str) -> str:
        api_key = new_api_key()
        self.ddb.put_item(TableName=self.cfg.api_keys_table,
                          Item=self._key_item(api_key, account_id, time.time()),
                          ConditionExpression="attribute_not_exists(key_hash)")
        return api_key

    @staticmethod
    def _key_item(api_key: str, account_id: str, now: float) -> dict:
        return to_item({"key_hash": hash_key(api_key), "account_id": account_id, "status": "active",
                        "created_at": int(now), "key_hint": api_key[:len(KEY_PREFIX) + 4] + "…"})

    def account_for_key(self, api_key: str) -> str | None:
        """The account an active key belongs to, or None (unknown or revoked)."""
        item = from_item(self.ddb.get_item(
            TableName=self.cfg.api_keys_table, Key=to_item({"key_hash": hash_key(api_key)}),
            ProjectionExpression="account_id, #s", ExpressionAttributeNames={"#s": "status"},
        ).get("Item"))
        if not item or item.get("status") != "active":
            return None
        return item["account_id"]

    def revoke_key(self, api_key: str) -> bool:
        return self._revoke_hash(hash_key(api_key))

    def revoke_account_keys(self, account_id: str) -> int:
        page = self.ddb.query(TableName=self.cfg.api_keys_table, IndexName=API_KEYS_BY_ACCOUNT_INDEX,
                              KeyConditionExpression="account_id = :a",
                              ExpressionAttributeValues=values(a=account_id))
        return sum(self._revoke_hash(from_item(i)["key_hash"]) for i in page.get("Items", []))

    def _revoke_hash(self, key_hash: str) -> bool:
        try:
            self.ddb.update_item(TableName=self.cfg.api_keys_table, Key=to_item({"key_hash": key_hash}),
                                 UpdateExpression="SET #s = :revoked, revoked_at = :now",
                                 ConditionExpression="attribute_exists(key_hash) AND #s = :active",
                                 ExpressionAttributeNames={"#s": "status"},
                                 ExpressionAttributeValues=values(revoked="revoked", active="active",
                                                                  now=int(time.time())))
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def get(self, account_id: str) -> dict | None:
        return from_item(self.ddb.get_item(TableName=self.cfg.accounts_table,
                                           Key=to_item({"account_id": account_id}),
                                           ConsistentRead=True).get("Item"))
