"""Where a job lives: its rows (table Jobs), its files (the jobs bucket) and its messages (the queue).

Files, under ``jobs/<account_id>/<job_id>/``: ``input.txt`` (the text, written before the
reserve; a job that was never reserved leaves it to the bucket's 7-day expiry),
``parts/<n>.<ext>`` (each part's audio as MiniMax delivered it, fetched well before its
9-hour URL expires) and ``output.<ext>`` (the joined audio).  Everything expires after 7 days.

Messages: ``{"job_id", "step", "part"?}``; a poll or a wait for an upstream slot is the same
message sent again with a delay (SQS allows up to 900 s).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

from botocore.exceptions import ClientError

from kyma.jobs import records
from kyma.platform.config import Config
from kyma.platform.dynamo import error_code, from_item, rows, to_item, values

MAX_DELAY_SECONDS = 900
START, SUBMIT, POLL, JOIN, RESUME = "start", "submit", "poll", "join", "resume"
STEPS = (START, SUBMIT, POLL, JOIN, RESUME)


def prefix(account_id: str, job_id: str) -> str:
    return f"jobs/{account_id}/{job_id}/"


def input_key(account_id: str, job_id: str) -> str:
    return prefix(account_id, job_id) + "input.txt"


def part_audio_key(account_id: str, job_id: str, n: int, ext: str) -> str:
    return prefix(account_id, job_id) + f"parts/{n:03d}.{ext}"


def output_key(account_id: str, job_id: str, ext: str) -> str:
    return prefix(account_id, job_id) + f"output.{ext}"


ACTIVE_PAGE_SIZE = 100          # the sweep's pages of the Active index (it reads them all)


class Jobs:
    def __init__(self, ddb: Any, s3: Any, sqs: Any, cfg: Config) -> None:
        self.ddb, self._s3, self._sqs, self.cfg = ddb, s3, sqs, cfg

    @property
    def s3(self) -> Any:
        return self._s3() if callable(self._s3) else self._s3

    @property
    def sqs(self) -> Any:
        return self._sqs() if callable(self._sqs) else self._sqs

    # ── rows ──
    def get(self, key: str) -> dict | None:
        return from_item(self.ddb.get_item(TableName=self.cfg.jobs_table, Key=to_item({"job_id": key}),
                                           ConsistentRead=True).get("Item"))

    def parts(self, job: dict) -> list[dict]:
        keys = [to_item({"job_id": records.part_key(job["job_id"], n)}) for n in range(int(job.get("parts_total", 0)))]
        found: dict[str, dict] = {}
        for i in range(0, len(keys), 100):
            pending: dict = {self.cfg.jobs_table: {"Keys": keys[i:i + 100], "ConsistentRead": True}}
            while pending:
                page = self.ddb.batch_get_item(RequestItems=pending)
                for item in page["Responses"].get(self.cfg.jobs_table, []):
                    row = from_item(item) or {}
                    found[row["job_id"]] = row
                pending = page.get("UnprocessedKeys") or {}
        return [found[records.part_key(job["job_id"], n)] for n in range(int(job.get("parts_total", 0)))
                if records.part_key(job["job_id"], n) in found]

    def put_part(self, row: dict) -> None:
        """A part's row, once (a redelivered split writes the same rows again: ignored)."""
        try:
            self.ddb.put_item(TableName=self.cfg.jobs_table, Item=to_item(row),
                              ConditionExpression="attribute_not_exists(job_id)")
        except ClientError as exc:
            if error_code(exc) != "ConditionalCheckFailedException":
                raise

    def move(self, key: str, *, was: str | Iterable[str], to: str, fields: dict | None = None,
             remove: Iterable[str] = ()) -> bool:
        """A row's status from `was` (one of them) to `to`, with `fields`: False if it was not in `was`."""
        was = (was,) if isinstance(was, str) else tuple(was)
        fields = {k: v for k, v in (fields or {}).items() if v is not None}
        names = {"#status": "status", **{f"#f{i}": k for i, k in enumerate(fields)},
                 **{f"#r{i}": k for i, k in enumerate(remove)}}
        sets = "".join(f", #f{i} = :f{i}" for i in range(len(fields)))
        removes = (" REMOVE " + ", ".join(f"#r{i}" for i in range(len(tuple(remove))))) if remove else ""
        was_names = {f"was{i}": w for i, w in enumerate(was)}
        try:
            self.ddb.update_item(
                TableName=self.cfg.jobs_table, Key=to_item({"job_id": key}),
                UpdateExpression="SET #status = :to" + sets + removes,
                ConditionExpression=f"#status IN ({', '.join(':' + n for n in was_names)})",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values(to=to, **was_names,
                                                 **{f"f{i}": v for i, v in enumerate(fields.values())}))
        except ClientError as exc:
            if error_code(exc) != "ConditionalCheckFailedException":
                raise
            return False
        return True

    def touch(self, job_id: str, now: int) -> None:
        self.ddb.update_item(TableName=self.cfg.jobs_table, Key=to_item({"job_id": job_id}),
                             UpdateExpression="SET updated_at = :now", ConditionExpression="attribute_exists(job_id)",
                             ExpressionAttributeValues=values(now=now))

    def page(self, account_id: str, *, limit: int, cursor: dict | None,
             status: str | None) -> tuple[list[dict], dict | None]:
        """The account's jobs, newest first (ByAccount), optionally of one status."""
        out: list[dict] = []
        start = cursor
        while len(out) < limit:
            args: dict[str, Any] = {
                "TableName": self.cfg.jobs_table, "IndexName": records.BY_ACCOUNT_INDEX,
                "KeyConditionExpression": "account_id = :a", "ScanIndexForward": False,
                "Limit": limit - len(out), "ExpressionAttributeValues": values(a=account_id)}
            if status:
                args["FilterExpression"] = "#status = :s"
                args["ExpressionAttributeNames"] = {"#status": "status"}
                args["ExpressionAttributeValues"] = values(a=account_id, s=status)
            if start:
                args["ExclusiveStartKey"] = start
            page = self.ddb.query(**args)
            out.extend(from_item(i) or {} for i in page.get("Items", []))
            start = page.get("LastEvaluatedKey")
            if not start:
                break
        return out, start

    def active(self, *, deadline_before: int | None = None) -> Iterator[dict]:
        """Jobs queued or running (the sparse Active index), earliest deadline first, every page."""
        args: dict[str, Any] = {"TableName": self.cfg.jobs_table, "IndexName": records.ACTIVE_INDEX,
                                "KeyConditionExpression": "active = :one",
                                "PaginationConfig": {"PageSize": ACTIVE_PAGE_SIZE},
                                "ExpressionAttributeValues": values(one="1")}
        if deadline_before is not None:
            args["KeyConditionExpression"] += " AND deadline_at < :t"
            args["ExpressionAttributeValues"] = values(one="1", t=deadline_before)
        return rows(self.ddb, "query", **args)

    # ── messages ──
    def send(self, job_id: str, step: str, part: int | None = None, *, delay: int = 0) -> None:
        body = {"job_id": job_id, "step": step, **({"part": part} if part is not None else {})}
        self.sqs.send_message(QueueUrl=self.cfg.jobs_queue_url, MessageBody=json.dumps(body),
                              DelaySeconds=max(0, min(MAX_DELAY_SECONDS, int(delay))))

    def send_many(self, job_id: str, step: str, parts: Iterable[int]) -> None:
        entries = [{"Id": str(n), "MessageBody": json.dumps({"job_id": job_id, "step": step, "part": n})}
                   for n in parts]
        for i in range(0, len(entries), 10):
            answer = self.sqs.send_message_batch(QueueUrl=self.cfg.jobs_queue_url, Entries=entries[i:i + 10])
            if answer.get("Failed"):
                raise RuntimeError(f"{len(answer['Failed'])} messages not sent")

    # ── files ──
    def put_text(self, key: str, text: str) -> None:
        self.s3.put_object(Bucket=self.cfg.jobs_bucket, Key=key, Body=text.encode("utf-8"),
                           ContentType="text/plain; charset=utf-8")

    def read_text(self, key: str) -> str:
        return self.s3.get_object(Bucket=self.cfg.jobs_bucket, Key=key)["Body"].read().decode("utf-8")

    def put_bytes(self, key: str, data: bytes, content_type: str) -> None:
        self.s3.put_object(Bucket=self.cfg.jobs_bucket, Key=key, Body=data, ContentType=content_type)

    def presign(self, key: str, *, filename: str) -> str:
        return str(self.s3.generate_presigned_url("get_object", Params={
            "Bucket": self.cfg.jobs_bucket, "Key": key,
            "ResponseContentDisposition": f'attachment; filename="{filename}"'},
            ExpiresIn=self.cfg.job_output_url_seconds))

    def delete_files(self, account_id: str, job_id: str) -> int:
        """Every file of the job (a handful: the text, each part's audio and subtitles, the output)."""
        listing = self.s3.list_objects_v2(Bucket=self.cfg.jobs_bucket, Prefix=prefix(account_id, job_id))
        keys = [o["Key"] for o in listing.get("Contents", [])]
        for key in keys:
            self.s3.delete_object(Bucket=self.cfg.jobs_bucket, Key=key)
        return len(keys)
