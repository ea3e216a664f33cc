"""API keys: how a presented key becomes an account (the authorizer's one read).

An API key is shown once, when it is created, and stored only as the SHA-256
hex of the key (table ApiKeys, key `key_hash`).  The authorizer hashes the
presented key and looks it up: one GetItem per cache miss.  This module is
deliberately small: the authorizer imports it, and nothing heavier.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

from kyma.platform.config import Config
from kyma.platform.dynamo import from_item, to_item

KEY_PREFIX = "sk-kyma-"
ACTIVE, REVOKED = "active", "revoked"


def hash_key(api_key: str) -> str:
    return hashlib.sha256(api_key.encode("utf-8")).hexdigest()


def new_api_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def key_row(api_key: str, account_id: str, now: float) -> dict:
    """The stored form of a new key: its hash, never the key (a short hint for operators)."""
    return to_item({"key_hash": hash_key(api_key), "account_id": account_id, "status": ACTIVE,
                    "created_at": int(now), "key_hint": api_key[:len(KEY_PREFIX) + 4] + "…"})


class ApiKeys:
    def __init__(self, client: Any, cfg: Config) -> None:
        self.ddb = client
        self.cfg = cfg

    def account_for_key(self, api_key: str) -> str | None:
        """The account an active key belongs to, or None (unknown or revoked)."""
        owner = self.owner_of(api_key)
        return owner[0] if owner else None

    def owner_of(self, api_key: str) -> tuple[str, str | None] | None:
        """(account, its own rate limits as JSON or None) for an active key; None if unknown or revoked.
        The limits are copied onto every key of the account (kyma.accounts.store.Accounts.set_limits), so
        the authorizer learns them with its one read and passes them on in its context."""
        # Consistent: a key revoked a moment ago must not be read as active and cached for 300 s.
        item = from_item(self.ddb.get_item(
            TableName=self.cfg.api_keys_table, Key=to_item({"key_hash": hash_key(api_key)}), ConsistentRead=True,
            ProjectionExpression="account_id, #s, rate_limits", ExpressionAttributeNames={"#s": "status"},
        ).get("Item"))
        if not item or item.get("status") != ACTIVE:
            return None
        return str(item["account_id"]), item.get("rate_limits")
