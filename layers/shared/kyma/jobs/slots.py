"""The two counters of speech jobs, both DynamoDB string sets in table RateCounters:

- **upstream slots** (`upstream-async#<provider>`): the async tasks running at MiniMax for our
  account at once.  A part takes a slot (its key joins the set, only while the set has fewer
  than JOB_UPSTREAM_SLOTS members) before its task is created and gives it back once the task
  is over (fetched, failed or abandoned).  A set, not a number: taking or giving back a slot
  twice (a duplicate message) changes nothing, and the sweep can give back the slot of a part
  that is no longer running.  JOB_UPSTREAM_SLOTS is set below MiniMax's concurrency for our
  account so that interactive speech always keeps the rest.  This bounds *concurrent* async
  tasks (each renders for minutes); the *rate* of task creations is the platform's shared
  T2A minute budget (`kyma.accounts.upstream`, issue 18): a part takes a slot, then one call
  from that budget as batch work (`light=False`: never the reserve kept for light interactive
  accounts), then is created.  Either refusal delays the part's submit message; nothing waits.
- **active jobs** (`active-jobs#<account>`): the account's jobs queued or running.  The job
  joins it in the reserve transaction (refused with 429 too_many_jobs at JOB_MAX_ACTIVE) and
  leaves it in the settle or release transaction: it moves with the money.
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from kyma.edge import errors
from kyma.platform.config import Config
from kyma.platform.dynamo import Check, error_code, from_item, to_item, values

RETRY_AFTER_SECONDS = 60


def upstream_counter(provider: str) -> str:
    return f"upstream-async#{provider}"


def active_counter(account_id: str) -> str:
    return f"active-jobs#{account_id}"


def active_join_check(cfg: Config, account_id: str, job_id: str) -> Check:
    """Reserve item: the job joins the account's active jobs, if there is room."""
    def refusal(_: dict | None) -> errors.ApiError:
        return errors.TooManyJobs(
            f"This account already has {cfg.job_max_active} speech jobs queued or running; wait for one to "
            "finish (or cancel one).", headers={"Retry-After": str(RETRY_AFTER_SECONDS)})

    return Check("active_jobs", {"Update": {
        "TableName": cfg.rate_counters_table,
        "Key": to_item({"counter_id": active_counter(account_id)}),
        "UpdateExpression": "ADD members :job",
        "ConditionExpression": "attribute_not_exists(members) OR size(members) < :cap",
        "ExpressionAttributeValues": {**values(cap=cfg.job_max_active), ":job": {"SS": [job_id]}},
    }}, refusal)


def active_leave_item(cfg: Config, account_id: str, job_id: str) -> dict:
    """Settle/release item: the job leaves the account's active jobs (no condition: idempotent)."""
    return {"Update": {
        "TableName": cfg.rate_counters_table,
        "Key": to_item({"counter_id": active_counter(account_id)}),
        "UpdateExpression": "DELETE members :job",
        "ExpressionAttributeValues": {":job": {"SS": [job_id]}},
    }}


class UpstreamSlots:
    def __init__(self, client: Any, cfg: Config, provider: str) -> None:
        self.ddb = client
        self.cfg = cfg
        self.key = to_item({"counter_id": upstream_counter(provider)})

    def take(self, holder: str) -> bool:
        """True if `holder` has a slot now (taken by this call or an earlier one)."""
        try:
            self.ddb.update_item(
                TableName=self.cfg.rate_counters_table, Key=self.key, UpdateExpression="ADD members :me",
                ConditionExpression="attribute_not_exists(members) OR size(members) < :cap OR contains(members, :one)",
                ExpressionAttributeValues={**values(cap=self.cfg.job_upstream_slots, one=holder),
                                           ":me": {"SS": [holder]}})
        except ClientError as exc:
            if error_code(exc) != "ConditionalCheckFailedException":
                raise
            return False
        return True

    def give_back(self, *holders: str) -> None:
        if holders:
            self.ddb.update_item(TableName=self.cfg.rate_counters_table, Key=self.key,
                                 UpdateExpression="DELETE members :us",
                                 ExpressionAttributeValues={":us": {"SS": sorted(set(holders))}})

    def holders(self) -> set[str]:
        item = from_item(self.ddb.get_item(TableName=self.cfg.rate_counters_table, Key=self.key,
                                           ConsistentRead=True).get("Item")) or {}
        return set(item.get("members") or ())
