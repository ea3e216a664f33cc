"""Per-account request limits: requests per minute and a burst (per second), per endpoint.

Why DynamoDB counters and not API Gateway usage plans (measured and argued in the
README): usage plans are documented as best-effort ("don't rely on usage plan
throttling to control costs"), limited to 300 plans per region (so per-account
limits would need tiers), and need an API Gateway API key per customer; a
counter here is exact, per account, the same in `make run`, and costs no extra
round trip on the paid endpoints (its write rides in the reserve transaction)
and one conditional UpdateItem on the others.

One item per (account, endpoint, UTC minute) holds the minute's count `n` and a
count per second `s<second>`; one conditional update adds 1 to both, only if
both stay within the limits, so a refused request counts nowhere.  Items expire
(TTL) two minutes after their minute.  The per-route limits that protect
MiniMax's per-platform quota (template.yaml MethodSettings) still apply on top.

Limits: defaults per endpoint (DEFAULTS, overridable per deployment by
RATE_LIMIT_DEFAULTS) and, per account, what `kyma-admin set-limits` stored; the
authorizer passes an account's own limits in its context (`rate_limits`), so
reading them costs nothing per request.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from kyma.edge import errors
from kyma.platform.config import DEFAULT_RATE_LIMITS, Config
from kyma.platform.dynamo import Check, error_code, from_item, to_item, values

# endpoint → (requests per minute, burst per second)
DEFAULTS = DEFAULT_RATE_LIMITS


@dataclass(frozen=True)
class Limit:
    endpoint: str
    per_minute: int
    burst: int


def own_limits(account_limits: str | Mapping | None) -> Mapping:
    """An account's own limits as the authorizer passes them (JSON text) or as stored: a mapping,
    empty if there are none or they cannot be read (then the defaults apply)."""
    if isinstance(account_limits, str):
        try:
            account_limits = json.loads(account_limits)
        except ValueError:
            return {}
    return account_limits if isinstance(account_limits, Mapping) else {}


def limit_for(endpoint: str, cfg: Config, account_limits: str | Mapping | None) -> Limit:
    """The account's own limit for `endpoint` if it has one, else the deployment's default."""
    rpm, burst = {e: (r, b) for e, r, b in cfg.rate_limit_defaults}.get(endpoint, DEFAULTS[endpoint])
    own = own_limits(account_limits)
    if isinstance(own.get(endpoint), Mapping):
        rpm = int(own[endpoint].get("rpm", rpm))
        burst = int(own[endpoint].get("burst", burst))
    return Limit(endpoint, rpm, burst)


def caller_check(cfg: Config, endpoint: str, account_id: str, authorizer: Mapping) -> Check:
    """`check` for the caller of a paid request: its own limit from the authorizer's context."""
    return check(cfg, account_id, limit_for(endpoint, cfg, authorizer.get("rate_limits")))


def check(cfg: Config, account_id: str, limit: Limit, now: float | None = None) -> Check:
    """The counter update as a transaction item (for the reserve of a paid endpoint), refused with
    429 rate_limited and a Retry-After saying when the next request would pass."""
    now = time.time() if now is None else now
    minute, second = divmod(int(now), 60)

    def refusal(counter: dict | None) -> errors.ApiError:
        counter = counter or {}
        minute_full = int(counter.get("n", 0)) >= limit.per_minute
        retry_after = 60 - second if minute_full else 1
        return errors.RateLimited(
            f"Too many {limit.endpoint} requests for this account ({limit.per_minute} per minute, "
            f"{limit.burst} per second); retry after {retry_after} s.", headers={"Retry-After": str(retry_after)})

    return Check("rate_limit", {"Update": {
        "TableName": cfg.rate_counters_table,
        "Key": to_item({"counter_id": f"{account_id}#{limit.endpoint}#{minute}"}),
        "UpdateExpression": "ADD n :one, #s :one SET expires_at = :expires",
        "ConditionExpression": "(attribute_not_exists(n) OR n < :rpm) AND (attribute_not_exists(#s) OR #s < :burst)",
        "ExpressionAttributeNames": {"#s": f"s{second:02d}"},
        "ExpressionAttributeValues": values(one=1, rpm=limit.per_minute, burst=limit.burst,
                                            expires=(minute + 2) * 60 + 60),
        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
    }}, refusal)


class RateLimiter:
    """For the endpoints that reserve nothing: one conditional UpdateItem per request."""

    def __init__(self, client: Any, cfg: Config) -> None:
        self.ddb = client
        self.cfg = cfg

    def take(self, account_id: str, endpoint: str, account_limits: str | Mapping | None) -> None:
        item = check(self.cfg, account_id, limit_for(endpoint, self.cfg, account_limits))
        try:
            self.ddb.update_item(**item.item["Update"])
        except ClientError as exc:
            if error_code(exc) != "ConditionalCheckFailedException":
                raise
            raise item.refusal(from_item(exc.response.get("Item"))) from None

    def guard(self, endpoint: str, route: Callable[[Any], Any]) -> Callable[[Any], Any]:
        """A route of `endpoint` that first takes one request from the caller's limit (429 if none left)."""
        def limited(request: Any) -> Any:
            self.take(request.account_id, endpoint, request.authorizer.get("rate_limits"))
            return route(request)

        return limited
