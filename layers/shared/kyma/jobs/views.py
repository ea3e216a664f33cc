"""What a customer sees of a job (GET one, GET the list) and DELETE (cancel, or delete the files).

Another account's job, or an id that could never have been issued, is 404 job_not_found.
Output URLs are presigned on each GET (JOB_OUTPUT_URL_SECONDS); the files are kept 7 days.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from typing import TYPE_CHECKING, Protocol

from kyma.billing.money import micros_to_json
from kyma.edge import errors
from kyma.jobs import records
from kyma.platform.dynamo import to_item

if TYPE_CHECKING:
    from kyma.jobs.store import Jobs


class Canceler(Protocol):
    """What `delete` needs of the worker (kyma.jobs.worker.Worker, which imports this module for
    the job object its webhook events carry)."""

    def cancel(self, job: dict) -> bool: ...

FILES_KEPT_SECONDS = 7 * 86_400
EXTENSIONS = {"mp3": "mp3", "wav": "wav", "pcm": "pcm"}


def _iso(epoch: int | None) -> str | None:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch)) if epoch else None


def owned(store: Jobs, job_id: str, account_id: str) -> dict:
    job = store.get(job_id) if records.is_job_id(job_id) else None
    if job is None or job.get("account_id") != account_id:
        raise errors.JobNotFound(f"Speech job {job_id[:64]} does not exist.")
    return job


def view(job: dict, store: Jobs, *, with_urls: bool = True) -> dict:
    status = job["status"]
    output = None
    if status == records.SUCCEEDED and job.get("output_key") and not job.get("files_deleted_at"):
        fmt = job["audio_format"]
        output = {"content_type": {"mp3": "audio/mpeg", "wav": "audio/wav", "pcm": "audio/pcm"}[fmt],
                  "duration_ms": int(job.get("duration_ms", 0)), "bytes": int(job.get("output_bytes", 0)),
                  "audio_url": store.presign(job["output_key"], filename=f"{job['job_id']}.{EXTENSIONS[fmt]}")
                  if with_urls else None,
                  "expires_at": _iso(int(job.get("finished_at", 0)) + FILES_KEPT_SECONDS)}
        for field, key, name in (("subtitles_url", "subtitles_key", "subtitles.json"),
                                 ("srt_url", "srt_key", "captions.srt"), ("vtt_url", "vtt_key", "captions.vtt")):
            output[field] = (store.presign(job[key], filename=f"{job['job_id']}.{name}")
                             if with_urls and job.get(key) else None)
    error = job.get("error")
    return {
        "job_id": job["job_id"], "status": status,
        "progress": {"parts_done": int(job.get("parts_done", 0)), "parts_total": int(job.get("parts_total", 0))},
        "model": job["sku"], "voice_id": job["voice_id"], "characters": int(job["characters"]),
        "cost_usd": micros_to_json(int(job["amount_micros"])),
        "created_at": _iso(int(job["created_at"])), "finished_at": _iso(job.get("finished_at")),
        "output": output,
        "error": {"code": error["code"], "message": error["message"]} if isinstance(error, dict) else None,
        "metadata": job.get("metadata") or {},
    }


def parse_list_query(query: dict[str, str]) -> tuple[str | None, dict | None]:
    status = query.get("status")
    if status is not None and status not in (*records.ACTIVE_STATES, *records.TERMINAL_STATES):
        raise errors.InvalidRequest("status must be one of queued, running, succeeded, failed, canceled.")
    cursor = query.get("cursor")
    start = None
    if cursor is not None:
        try:
            start = json.loads(base64.urlsafe_b64decode(cursor.encode("ascii") + b"=" * (-len(cursor) % 4)))
            if not isinstance(start, dict) or set(start) != {"job_id", "account_id", "created_ms"}:
                raise ValueError
            start = to_item(start)
        except (ValueError, UnicodeError, binascii.Error, TypeError):
            raise errors.InvalidRequest("cursor is not one this API returned.") from None
    return status, start


def list_page(store: Jobs, account_id: str, *, limit: int, status: str | None, start: dict | None) -> dict:
    if start is not None and start.get("account_id", {}).get("S") != account_id:
        raise errors.InvalidRequest("cursor is not one this API returned.")
    rows, last = store.page(account_id, limit=limit, cursor=start, status=status)
    cursor = None
    if last:
        plain = {"job_id": last["job_id"]["S"], "account_id": last["account_id"]["S"],
                 "created_ms": int(last["created_ms"]["N"])}
        cursor = base64.urlsafe_b64encode(json.dumps(plain, separators=(",", ":")).encode()).decode().rstrip("=")
    return {"data": [view(r, store, with_urls=False) for r in rows], "next_cursor": cursor,
            "has_more": cursor is not None}


def delete(store: Jobs, worker: Canceler, job: dict) -> dict:
    """Cancel a queued or running job (its hold released), or delete a finished job's files."""
    if job["status"] in records.ACTIVE_STATES:
        worker.cancel(job)
        job = store.get(job["job_id"]) or job
        if job["status"] in records.ACTIVE_STATES:
            raise errors.ServiceUnavailable("The job is changing state; retry in a moment.")
        return {**view(job, store), "canceled": job["status"] == records.CANCELED}
    store.delete_files(job["account_id"], job["job_id"])
    store.ddb.update_item(TableName=store.cfg.jobs_table, Key=to_item({"job_id": job["job_id"]}),
                          UpdateExpression="SET files_deleted_at = :now",
                          ExpressionAttributeValues={":now": {"N": str(int(time.time()))}})
    job = store.get(job["job_id"]) or job
    return {**view(job, store), "canceled": False, "files_deleted": True}
