"""API keys: how a presented key becomes an account (the authorizer's one read).

An API key is shown once, when it is created, and stored only as the SHA-256
hex of the key (table ApiKeys, key `key_hash`).  The authorizer hashes the
presented key and looks it up: one GetItem per cache miss.  This module is
deliberately small: the authorizer imports it, and nothing heavier.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from typing import Any

from kyma.platform.config import Config
from kyma.platform.dynamo import from_item, to_item

KEY_PREFIX = "sk-kyma-"
ACTIVE, REVOKED = "active", "revoked"
KEY_ID_PREFIX = "key_"
KEY_ID_HEX = 24        # key_<the first 24 hex digits of the key's hash>: public, and not the key


def key_id_of(key_hash: str) -> str:
    """A key's public id, derived from its stored hash (so keys made before ids existed have one)."""
    return KEY_ID_PREFIX + key_hash[:KEY_ID_HEX]


def hash_key(api_key: str) -> str:
    return hashlib.sha256(api_key.encode("utf-8")).hexdigest()


def new_api_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def key_row(api_key: str, account_id: str, now: float, *, name: str | None = None,
            scopes: tuple[str, ...] | None = None, spend_limit_micros: int | None = None,
            expires_at: int | None = None) -> dict:
    """The stored form of a new key: its hash, never the key (a short hint: the prefix and its last
    four characters, as the contract shows it: sk-kyma-…a1b2).  `scopes` None: every scope (the
    account's first key, an operator's key)."""
    return to_item({"key_hash": hash_key(api_key), "account_id": account_id, "status": ACTIVE,
                    "created_at": int(now), "key_hint": KEY_PREFIX + "…" + api_key[-4:],
                    "name": name, "scopes": set(scopes) if scopes else None,
                    "spend_limit_micros": spend_limit_micros, "expires_at": expires_at})


class ApiKeys:
    def __init__(self, client: Any, cfg: Config) -> None:
        self.ddb = client
        self.cfg = cfg

    def account_for_key(self, api_key: str) -> str | None:
        """The account an active key belongs to, or None (unknown or revoked)."""
        owner = self.owner_of(api_key)
        return owner[0] if owner else None

    def context_for(self, api_key: str, now: float | None = None) -> dict[str, str] | None:
        """The authorizer's context for an active, unexpired key (values are strings), or None.
        `scopes` comma-separated (absent: every scope); the account's own limits as JSON."""
        key_hash = hash_key(api_key)
        item = from_item(self.ddb.get_item(
            TableName=self.cfg.api_keys_table, Key=to_item({"key_hash": key_hash}), ConsistentRead=True,
            ProjectionExpression="account_id, #s, rate_limits, concurrency_limits, scopes, expires_at, "
                                 "spend_limit_micros", ExpressionAttributeNames={"#s": "status"},
        ).get("Item"))
        if not item or item.get("status") != ACTIVE:
            return None
        if item.get("expires_at") is not None and int(item["expires_at"]) <= (time.time() if now is None else now):
            return None
        context = {"account_id": str(item["account_id"]), "key_hash": key_hash, "key_id": key_id_of(key_hash)}
        if item.get("scopes"):
            context["scopes"] = ",".join(sorted(item["scopes"]))
        if item.get("spend_limit_micros") is not None:
            context["spend_limit_micros"] = str(int(item["spend_limit_micros"]))
        for name in ("rate_limits", "concurrency_limits"):
            if item.get(name):
                context[name] = item[name] if isinstance(item[name], str) else json.dumps(item[name])
        return context

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
