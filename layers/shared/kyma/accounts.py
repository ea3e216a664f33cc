"""Operating accounts: create one (with its first key and opening balance), issue and
revoke keys.  What the operator's `kyma-admin` does; requests never call this.
(How a request's key becomes an account: `kyma.api_keys`.)
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from kyma.api_keys import ACTIVE, REVOKED, hash_key, key_row, new_api_key
from kyma.config import Config
from kyma.dynamo import to_item, values
from kyma.ledger import topup_put

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
        api_key = new_api_key()
        self.ddb.put_item(TableName=self.cfg.api_keys_table,
                          Item=key_row(api_key, account_id, time.time()),
                          ConditionExpression="attribute_not_exists(key_hash)")
        return api_key

    def revoke_key(self, api_key: str) -> bool:
        return self._revoke_hash(hash_key(api_key))

    def revoke_account_keys(self, account_id: str) -> int:
        page = self.ddb.query(TableName=self.cfg.api_keys_table, IndexName=API_KEYS_BY_ACCOUNT_INDEX,
                              KeyConditionExpression="account_id = :a",
                              ExpressionAttributeValues=values(a=account_id))
        return sum(self._revoke_hash(i["key_hash"]["S"]) for i in page.get("Items", []))

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
