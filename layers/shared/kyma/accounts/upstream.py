"""The upstream budget: MiniMax's speech quota, shared fairly by every account of the platform.

MiniMax allows the whole platform (one MiniMax account) `UpstreamSpeechRpm` T2A calls a
minute (60 by default; template.yaml parameter, UPSTREAM_SPEECH_RPM).  Every customer's
speech, the voice activations and speech jobs' parts draw on that one quota, so it is
counted here, once, in DynamoDB: one item per pool and UTC minute in the RateCounters
table (`upstream#speech#<minute>`), holding the minute's total `n` and each account's
share of it (`a_<account_id>`).

Admission, for a budget of Q a minute (`Budget.of(cfg)`; Q = 60 gives 40 / 20 / 15):
- anyone, while the minute's total is below Q - Q/3 (the open part: 40);
- the rest of the minute (the reserve, Q/3: 20) only to *light* accounts, those that have
  taken fewer than Q/4 (15) of this minute's budget: accounts past 15 (busy ones) can take at
  most the open part between them, so a quiet account is refused only once more than 20
  requests of the minute, after its first 40, came from accounts that were themselves light
  (e.g. four accounts at 15 each);
- batch work (voice activations, job parts: `light=False`) only from the open part, and all of
  it together at most Q/6 (10) a minute (the count `b`), so it can never crowd customers out;
- nothing once Q are taken: a refusal that is ours, not the customer's: 503
  service_unavailable with Retry-After (the seconds to the next minute), never 429.

The per-account default limit for speech is derived from the same Q (kyma.platform.config:
Q - Q/3 - Q/6 a minute, 30 of 60: one account alone within its limit never meets the shared
refusal, even with batch work at its share), and the
API stage's platform throttle sits far above what this budget admits (template.yaml
Mappings `UpstreamQuota`): it is the last guard against floods, not the quota.

The check is one conditional UpdateItem.  A paid request adds it to its reserve transaction
(`check`, with `Ledger.reserve(upstream=...)`), so a refused request leaves no hold, no
count in its own rate limit and no count here; work that reserves nothing per call (a job
worker's part, an activation) takes from the same budget with `UpstreamBudget.take`, with
`light=False` so batch work never draws on the reserve kept for interactive customers.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from kyma.edge import errors
from kyma.platform.config import Config
from kyma.platform.dynamo import Check, error_code, retry_on_conflict, to_item, values
from kyma.platform.observability import MetricUnit, metrics

SPEECH = "speech"          # MiniMax T2A (sync, streamed, and async parts)


@dataclass(frozen=True)
class Budget:
    """What one minute of an upstream pool admits."""

    per_minute: int        # Q: the whole platform's quota
    open: int              # anyone, while the total is below this
    light_below: int       # an account with fewer than this many this minute may use the reserve
    batch_share: int       # batch work (light=False) together, at most this many a minute

    @classmethod
    def of(cls, cfg: Config, pool: str = SPEECH) -> Budget:
        q = cfg.upstream_speech_rpm
        return cls(per_minute=q, open=q - q // 3, light_below=max(1, q // 4), batch_share=max(1, q // 6))

    @property
    def reserve(self) -> int:
        return self.per_minute - self.open


def check(cfg: Config, account_id: str, *, pool: str = SPEECH, light: bool = True,
          now: float | None = None) -> Check:
    """Take one call from this minute's budget, as a transaction item (refused: 503)."""
    budget = Budget.of(cfg, pool)
    now = time.time() if now is None else now
    minute, second = divmod(int(now), 60)
    retry_after = 60 - second

    def refusal(_counter: dict | None) -> errors.ApiError:
        metrics.add_metric(name="UpstreamBudgetFull", unit=MetricUnit.Count, value=1)
        return errors.ServiceUnavailable(
            f"MiniMax's capacity for this minute ({budget.per_minute} {pool} requests for the whole platform) "
            f"is in use; nothing was charged. Retry after {retry_after} s.",
            headers={"Retry-After": str(retry_after)})

    if light:
        condition = ("attribute_not_exists(n) OR n < :open"
                     " OR (n < :budget AND (attribute_not_exists(#a) OR #a < :light))")
        update, extra = "ADD n :one, #a :one", {"budget": budget.per_minute, "light": budget.light_below}
    else:       # batch: the open part only, and all batch work together within its share
        condition = "(attribute_not_exists(n) OR n < :open) AND (attribute_not_exists(b) OR b < :share)"
        update, extra = "ADD n :one, #a :one, b :one", {"share": budget.batch_share}
    expression = update + " SET expires_at = :expires"  # noqa: S608 (DynamoDB update syntax, constants only)
    return Check("upstream", {"Update": {
        "TableName": cfg.rate_counters_table,
        "Key": to_item({"counter_id": f"upstream#{pool}#{minute}"}),
        "UpdateExpression": expression,
        "ConditionExpression": condition,
        "ExpressionAttributeNames": {"#a": f"a_{account_id}"},
        "ExpressionAttributeValues": values(one=1, open=budget.open, expires=(minute + 2) * 60 + 60, **extra),
        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
    }}, refusal)


class UpstreamBudget:
    """For upstream work outside a reserve (a job worker's part): one conditional UpdateItem."""

    def __init__(self, client: Any, cfg: Config) -> None:
        self.ddb = client
        self.cfg = cfg

    def take(self, account_id: str, *, pool: str = SPEECH, light: bool = False, now: float | None = None) -> None:
        """One call from this minute's budget, or ServiceUnavailable (with Retry-After)."""
        item = check(self.cfg, account_id, pool=pool, light=light, now=now)
        try:
            # Every speech reserve writes this item in a transaction: a plain update meeting one in
            # flight is a TransactionConflict, which botocore does not retry (found by a review).
            retry_on_conflict(lambda: self.ddb.update_item(**item.item["Update"]))
        except ClientError as exc:
            if error_code(exc) != "ConditionalCheckFailedException":
                raise
            raise item.refusal(None) from None

