"""GET /v1/limits: what applies to the caller now (shared/reference/keys-and-limits.md): the
per-endpoint rate limits, the account's concurrency limits and their current use, and the
key's scopes, monthly spend limit, what it spent this month and when that resets."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from kyma.accounts.customer_keys import CustomerKeys, status_of
from kyma.accounts.gate import (
    DEFAULT_CONCURRENCY,
    concurrency_limit,
    inflight_counter_id,
    month_of,
    month_resets_at,
    spend_counter_id,
)
from kyma.accounts.keys import key_id_of
from kyma.accounts.rate_limits import DEFAULTS, limit_for
from kyma.billing.money import micros_to_json
from kyma.edge.scopes import ALL_SCOPES
from kyma.platform.config import Config
from kyma.platform.dynamo import from_item, to_item


def _counter(ddb: Any, cfg: Config, counter_id: str, attribute: str) -> int:
    item = from_item(ddb.get_item(TableName=cfg.rate_counters_table, Key=to_item({"counter_id": counter_id}),
                                  ConsistentRead=True).get("Item")) or {}
    return max(0, int(item.get(attribute, 0)))


def for_caller(ddb: Any, cfg: Config, account_id: str, authorizer: Mapping) -> dict:
    now = time.time()
    own = authorizer.get("rate_limits")
    endpoints = sorted({e for e, _, _ in cfg.rate_limit_defaults} | set(DEFAULTS))
    rate = {}
    for endpoint in endpoints:
        limit = limit_for(endpoint, cfg, own)
        rate[endpoint] = {"per_minute": limit.per_minute, "burst": limit.burst}
    concurrency = {kind: {"limit": concurrency_limit(kind, authorizer.get("concurrency_limits")),
                          "in_flight": _counter(ddb, cfg, inflight_counter_id(account_id, kind), "n")}
                   for kind in DEFAULT_CONCURRENCY}
    key: dict[str, Any] | None = None
    key_hash = authorizer.get("key_hash")
    if isinstance(key_hash, str) and key_hash:
        row = CustomerKeys(ddb, cfg).find(account_id, key_id_of(key_hash))
        limit_micros = row.get("spend_limit_micros")
        spent = _counter(ddb, cfg, spend_counter_id(key_id_of(key_hash), month_of(now)), "spent_micros")
        key = {"key_id": key_id_of(key_hash), "status": status_of(row, now),
               "scopes": [s for s in ALL_SCOPES if not row.get("scopes") or s in row["scopes"]],
               "monthly_spend_limit_usd": None if limit_micros is None else micros_to_json(int(limit_micros)),
               "spent_this_month_usd": micros_to_json(spent),
               "remaining_this_month_usd": None if limit_micros is None
               else micros_to_json(max(0, int(limit_micros) - spent)),
               "month_resets_at": month_resets_at(now)}
    return {"rate_limits": rate, "concurrency": concurrency, "key": key}

