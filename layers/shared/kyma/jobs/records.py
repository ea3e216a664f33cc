"""Speech jobs: ids, states and the row items of table Jobs.

A job row (key `job_id`) exists if and only if its reserve applied: it is written inside
the reserve transaction.  Its life:

    queued ──(the worker splits it)──> running ──(joined audio stored; the settle)──> succeeded
       │                                  │
       └──────────────┬───────────────────┘
                      ├──(a part failed for good, or the deadline passed: the release)──> failed
                      └──(the owner cancels: the release)──────────────────────────────> canceled

Every terminal transition is an item of the settle or release transaction of the job's hold
(`terminal_update`), conditional on the job still being queued or running, so a job is never
`succeeded` without its charge nor `failed`/`canceled` with one.  While queued or running a
row carries `active` = "1", which puts it in the sparse `Active` index (sort key
`deadline_at`) the sweep reads.

Parts are rows of the same table under `<job_id>#part#<n>`: the characters [start, end) of
the input, one MiniMax async task each:

    pending ──(claimed)──> submitting ──(MiniMax answered a task_id)──> submitted ──(fetched)──> fetched
                                 └───────────(refused for good)──────────> failed     └──> abandoned
    (abandoned: its job finished while MiniMax still rendered it; its upstream slot was held until then)

Each arrow is a conditional update on the part's status, so a duplicate message never submits
a part twice nor counts it twice.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

from kyma.platform.config import Config
from kyma.platform.dynamo import to_item, values

QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELED = "queued", "running", "succeeded", "failed", "canceled"
ACTIVE_STATES = (QUEUED, RUNNING)
TERMINAL_STATES = (SUCCEEDED, FAILED, CANCELED)
PENDING, SUBMITTING, SUBMITTED, FETCHED = "pending", "submitting", "submitted", "fetched"
PART_FAILED = "failed"
ABANDONED = "abandoned"          # its job finished (failed or canceled) while MiniMax rendered it
BY_ACCOUNT_INDEX = "ByAccount"
ACTIVE_INDEX = "Active"
KIND = "speech_job"              # the hold's kind: its usage row's endpoint


def new_job_id() -> str:
    return "job_" + secrets.token_hex(8)


def part_key(job_id: str, n: int) -> str:
    return f"{job_id}#part#{n:03d}"


def is_job_id(value: str) -> bool:
    return len(value) == 20 and value.startswith("job_") and all(c in "0123456789abcdef" for c in value[4:])


def job_put(cfg: Config, row: dict[str, Any]) -> dict:
    """The reserve's item: the job row, queued (never overwrites one)."""
    return {"Put": {
        "TableName": cfg.jobs_table,
        "Item": to_item({**row, "status": QUEUED, "active": "1"}),
        "ConditionExpression": "attribute_not_exists(job_id)",
    }}


def terminal_update(cfg: Config, job_id: str, status: str, *, now: int, fields: dict[str, Any] | None = None) -> dict:
    """The settle's or release's item: the job leaves queued/running for `status`, with `fields`
    (the output of a succeeded job, the error of a failed one)."""
    fields = {k: v for k, v in (fields or {}).items() if v is not None}
    names = {"#status": "status", **{f"#f{i}": k for i, k in enumerate(fields)}}
    sets = ", ".join(f"#f{i} = :f{i}" for i in range(len(fields)))
    return {"Update": {
        "TableName": cfg.jobs_table,
        "Key": to_item({"job_id": job_id}),
        "UpdateExpression": "SET #status = :to, finished_at = :now, updated_at = :now"
                            + (", " + sets if sets else "") + " REMOVE active",
        "ConditionExpression": "#status IN (:queued, :running)",
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": values(to=status, now=now, queued=QUEUED, running=RUNNING,
                                            **{f"f{i}": v for i, v in enumerate(fields.values())}),
    }}


def part_row(job_id: str, n: int, start: int, end: int) -> dict:
    return {"job_id": part_key(job_id, n), "parent": job_id, "n": n, "start": start, "end": end,
            "chars": end - start, "status": PENDING, "created_at": int(time.time())}


def error_of(code: str, message: str) -> dict:
    return {"code": code, "message": message}
