"""The queue's steps of a speech job, each idempotent, each short (no step waits on MiniMax
for longer than one call), and the sweep.

    start   queued → running: the text split into parts (rows written once), one `submit` per part
    submit  a part takes an upstream slot (or waits: the same message, delayed), is claimed
            (pending → submitting), its MiniMax task created, recorded (→ submitted); then `poll`
    poll    the task queried; processing → `poll` again, delayed; success → its result fetched at
            once (MiniMax keeps it 9 hours), stored, the part fetched and counted with the job in one
            transaction, the slot given back; the last part sends `join`
    join    the parts' audio joined into one file (a stream: never the whole in memory), then the
            settle, whose transaction also makes the job `succeeded`
    resume  (the sweep's) whatever each part needs next

A duplicate message finds its transition already made and does nothing new (or re-sends the
next message, which is itself idempotent).  Failure for good (MiniMax refuses a part, a task
fails, its result expired, the deadline passed) is `fail`: the release, whose transaction also
makes the job `failed`.  Cancel is the same release making it `canceled`.  Settle and release
are both conditional on the hold being open, so exactly one of them applies, whoever runs
first; the job's state moves with it.

A part whose claim is older than a submit call could take, without a task id, belonged to a
worker that stopped mid-call: MiniMax may or may not have its task, so it is never submitted
again; the job fails and is released (no charge).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from kyma.audio.join import Payload, payload, wav_header
from kyma.billing.ledger import CHARGED, HoldNotOpen
from kyma.edge import errors
from kyma.jobs import captions, records, slots, split, views
from kyma.jobs.store import JOIN, POLL, RESUME, START, SUBMIT, Jobs, input_key, output_key, part_audio_key, prefix
from kyma.jobs.submit import hold_of
from kyma.platform.dynamo import Cancelled, Transaction, to_item, values
from kyma.platform.observability import MetricUnit, logger, metrics
from kyma.providers import SynthesisRequest
from kyma.providers.minimax.async_t2a import EXPIRED, FAILED, PROCESSING, ResultExpired
from kyma.providers.minimax.codes import RETRYABLE_CODES
from kyma.speech.request import CONTENT_TYPES
from kyma.voices import records as voices
from kyma.webhooks import events

if TYPE_CHECKING:
    from kyma.accounts.upstream import UpstreamBudget
    from kyma.billing.accounting import Books
    from kyma.billing.ledger import Ledger
    from kyma.platform.config import Config
    from kyma.providers.minimax import MiniMaxClient
    from kyma.voices.store import Voices


class Services(Protocol):
    """What the worker uses of `kyma.services.Services` (the composition root above this wing),
    typed here so that no import, not even a type hint's, points up."""

    @property
    def cfg(self) -> Config: ...
    @property
    def ledger(self) -> Ledger: ...
    @property
    def upstream(self) -> UpstreamBudget: ...
    @property
    def voices(self) -> Voices: ...
    @property
    def books(self) -> Books: ...


CALL_SECONDS = 60.0                     # one MiniMax call's deadline within a step
STALE_CLAIM_SECONDS = 300               # a claim older than this without a task id: its worker died
UPLOAD_PART_BYTES = 8 * 1024 * 1024     # S3 multipart part size of the join
READ_BYTES = 1024 * 1024


class Worker:
    def __init__(self, svc: Services, store: Jobs, provider: MiniMaxClient) -> None:
        self.svc, self.store, self.provider = svc, store, provider
        self.cfg = svc.cfg
        self.slots = slots.UpstreamSlots(store.ddb, svc.cfg, provider.name)

    # ── dispatch ──
    def handle(self, message: dict) -> str:
        job_id, step = message.get("job_id"), message.get("step")
        if not isinstance(job_id, str) or not records.is_job_id(job_id) or step not in (START, SUBMIT, POLL, JOIN,
                                                                                          RESUME):
            logger.error("a job message of an unknown shape was dropped", extra={"step": str(step)[:16]})
            return "dropped"
        job = self.store.get(job_id)
        if job is None:
            return "no job"
        part = message.get("part")
        if job["status"] in records.TERMINAL_STATES:
            if isinstance(part, int) and 0 <= part < int(job.get("parts_total", 0)):
                return self._wind_down(job, part, step)
            return "finished"
        if time.time() > int(job["deadline_at"]):
            self.fail(job, errors.JobTimeout, "The job did not finish before its deadline; nothing was charged.")
            return "timeout"
        if step == START:
            return self.start(job)
        if step == RESUME:
            return self.resume(job)
        if step == JOIN:
            return self.join(job)
        if not isinstance(part, int) or not 0 <= part < int(job.get("parts_total", 0)):
            return "no part"
        return self.submit(job, part) if step == SUBMIT else self.poll(job, part)

    # ── start ──
    def start(self, job: dict) -> str:
        job_id = job["job_id"]
        if job["status"] == records.RUNNING:       # redelivered: what its parts need next
            return self.resume(job)
        text = self.store.read_text(input_key(job["account_id"], job_id))
        spans = split.spans(text, self.cfg.job_part_max_chars)
        for n, (a, b) in enumerate(spans):
            self.store.put_part(records.part_row(job_id, n, a, b))
        self.store.move(job_id, was=records.QUEUED, to=records.RUNNING,
                        fields={"parts_total": len(spans), "started_at": int(time.time()),
                                "updated_at": int(time.time())})
        self.store.send_many(job_id, SUBMIT, range(len(spans)))
        return "started"

    def resume(self, job: dict) -> str:
        job_id = job["job_id"]
        if job["status"] == records.QUEUED:
            self.store.send(job_id, START)
            return "resumed"
        parts = self.store.parts(job)
        if len(parts) < int(job.get("parts_total", 0)):
            return "parts missing"
        now = time.time()
        for part in parts:
            if part["status"] == records.PENDING:
                self.store.send(job_id, SUBMIT, part["n"])
            elif part["status"] == records.SUBMITTING and now - int(part.get("claimed_at", 0)) > STALE_CLAIM_SECONDS:
                self.fail(job, errors.ProviderError, "A part's MiniMax task could not be confirmed; nothing was "
                                                     "charged. Submit the job again.")
                return "failed"
            elif part["status"] == records.SUBMITTED:
                self.store.send(job_id, POLL, part["n"])
            elif part["status"] == records.PART_FAILED:
                self.fail(job, errors.ProviderError, "A part failed upstream; nothing was charged.")
                return "failed"
        if parts and all(p["status"] == records.FETCHED for p in parts):
            self.store.send(job_id, JOIN)
        self.store.touch(job_id, int(now))
        return "resumed"

    # ── submit ──
    def submit(self, job: dict, n: int) -> str:
        job_id, key = job["job_id"], records.part_key(job["job_id"], n)
        part = self.store.get(key)
        if part is None:
            return "no part"
        if part["status"] == records.SUBMITTED:     # redelivered after the task was recorded
            self.store.send(job_id, POLL, n, delay=self.cfg.job_poll_seconds)
            return "already submitted"
        if part["status"] != records.PENDING:
            return "not pending"
        if not self.slots.take(key):
            self.store.send(job_id, SUBMIT, n, delay=self.cfg.job_slot_retry_seconds)
            return "waiting for a slot"
        try:
            # One T2A call from the platform's shared minute budget (kyma.accounts.upstream), as batch
            # work: never from the reserve kept for light interactive customers.
            self.svc.upstream.take(job["account_id"], light=False)
        except errors.ServiceUnavailable as full:
            self.slots.give_back(key)
            wait = int((full.headers or {}).get("Retry-After", self.cfg.job_slot_retry_seconds))
            self.store.send(job_id, SUBMIT, n, delay=max(self.cfg.job_slot_retry_seconds, wait))
            return "waiting for the upstream budget"
        if not self.store.move(key, was=records.PENDING, to=records.SUBMITTING,
                               fields={"claimed_at": int(time.time())}):
            return "claimed elsewhere"
        text = self.store.read_text(input_key(job["account_id"], job_id))[int(part["start"]):int(part["end"])]
        try:
            task = self.provider.async_t2a.create(self._request(job, text), deadline=time.monotonic() + CALL_SECONDS)
        except errors.UpstreamError as exc:
            if exc.provider_code in RETRYABLE_CODES:      # MiniMax refused it (rate, capacity): try later
                self.store.move(key, was=records.SUBMITTING, to=records.PENDING, remove=("claimed_at",))
                self.slots.give_back(key)
                self.store.send(job_id, SUBMIT, n, delay=self.cfg.job_slot_retry_seconds)
                return "retry later"
            self.store.move(key, was=records.SUBMITTING, to=records.PART_FAILED,
                            fields={"error_code": exc.code, "provider_code": exc.provider_code})
            self.slots.give_back(key)
            unanswered = exc.provider_code is None
            self.fail(job, type(exc) if not unanswered else errors.ProviderError,
                      f"Part {n + 1} of {job['parts_total']}: " + (
                          "MiniMax did not answer whether it accepted it" if unanswered else str(exc))
                      + "; nothing was charged.")
            return "failed"
        self.store.move(key, was=records.SUBMITTING, to=records.SUBMITTED,
                        fields={"task_id": task.task_id, "file_id": task.file_id, "submitted_at": int(time.time())})
        self.store.send(job_id, POLL, n, delay=self.cfg.job_poll_seconds)
        return "submitted"

    def _request(self, job: dict, text: str) -> SynthesisRequest:
        return SynthesisRequest(model=job["model"], text=text, voice_id=job["voice_id"],
                                audio_format=job["audio_format"], sample_rate=int(job["sample_rate"]),
                                bitrate=int(job["bitrate"]), speed=float(job["speed"]), vol=float(job["vol"]),
                                pitch=int(job["pitch"]), emotion=job.get("emotion"),
                                language_boost=job.get("language_boost"),
                                pronunciation=tuple(job.get("pronunciation") or ()))

    # ── poll and fetch ──
    def poll(self, job: dict, n: int) -> str:
        job_id, key = job["job_id"], records.part_key(job["job_id"], n)
        part = self.store.get(key)
        if part is None or part["status"] != records.SUBMITTED:
            return "not submitted"
        deadline = time.monotonic() + CALL_SECONDS
        try:
            status = self.provider.async_t2a.query(str(part["task_id"]), deadline=deadline)
            if status.status == PROCESSING:
                self.store.send(job_id, POLL, n, delay=self.cfg.job_poll_seconds)
                return "processing"
            if status.status in (FAILED, EXPIRED):
                raise (ResultExpired("MiniMax's result expired before it was fetched") if status.status == EXPIRED
                       else errors.ProviderError("MiniMax could not render it", retryable=False))
            url = self.provider.async_t2a.download_url(str(status.file_id), deadline=deadline)
            result = self.provider.async_t2a.fetch(url, job["audio_format"], deadline=deadline)
            found = payload(result.audio, job["audio_format"], sample_rate=int(job["sample_rate"]))
        except (errors.UpstreamError, errors.AudioUnreadable) as exc:
            # Querying and fetching are reads: a transient failure (a timeout, a dropped connection,
            # a 5xx, MiniMax's rate limit) is tried again at the next poll, until the deadline.
            retry = (isinstance(exc, errors.UpstreamError) and not isinstance(exc, ResultExpired)
                     and (exc.retryable or exc.provider_code in RETRYABLE_CODES))
            if retry:
                self.store.send(job_id, POLL, n, delay=self.cfg.job_poll_seconds)
                return "retry later"
            self.store.move(key, was=records.SUBMITTED, to=records.PART_FAILED, fields={"error_code": exc.code})
            self.slots.give_back(key)
            self.fail(job, errors.ProviderError, f"Part {n + 1} of {job['parts_total']}: {exc}; nothing was charged.")
            return "failed"
        audio_key = part_audio_key(job["account_id"], job_id, n, job["audio_format"])
        self.store.put_bytes(audio_key, result.audio, CONTENT_TYPES[job["audio_format"]])
        subtitles_key = audio_key + ".subtitles.json" if result.subtitles else ""
        if subtitles_key:
            self.store.put_bytes(subtitles_key, json.dumps(result.subtitles).encode(), "application/json")
        done = self._count_fetched(job, key, audio_key, found, subtitles_key)
        self.slots.give_back(key)
        if done is not None and done >= int(job["parts_total"]):
            self.store.send(job_id, JOIN)
        return "fetched"

    def _count_fetched(self, job: dict, key: str, audio_key: str, found: Payload, subtitles_key: str) -> int | None:
        """The part fetched and the job's count of fetched parts, in one transaction; the new count
        (None if a duplicate had already counted it, or the job is no longer running)."""
        now = int(time.time())
        tx = Transaction(self.store.ddb)
        tx.add("part", {"Update": {
            "TableName": self.cfg.jobs_table, "Key": to_item({"job_id": key}),
            "UpdateExpression": "SET #status = :fetched, audio_key = :k, audio_start = :a, audio_end = :b, "
                                "seconds = :s, sample_rate_found = :r, channels = :c, block_align = :ba, "
                                "fetched_at = :now, subtitles_key = :sk",
            "ConditionExpression": "#status = :submitted",
            "ExpressionAttributeNames": {"#status": "status"},
            "ExpressionAttributeValues": values(fetched=records.FETCHED, k=audio_key, a=found.start, b=found.end,
                                                s=str(found.seconds), r=found.sample_rate, c=found.channels,
                                                ba=found.block_align, now=now, submitted=records.SUBMITTED,
                                                sk=subtitles_key)}})
        tx.add("job", {"Update": {
            "TableName": self.cfg.jobs_table, "Key": to_item({"job_id": job["job_id"]}),
            "UpdateExpression": "ADD parts_done :one SET updated_at = :now",
            "ConditionExpression": "#status = :running",
            "ExpressionAttributeNames": {"#status": "status"},
            "ExpressionAttributeValues": values(one=1, now=now, running=records.RUNNING)}})
        try:
            tx.run()
        except Cancelled:
            return None
        fresh = self.store.get(job["job_id"]) or {}
        return int(fresh.get("parts_done", 0))

    # ── join and settle ──
    def join(self, job: dict) -> str:
        if job["status"] != records.RUNNING:
            return "not running"
        parts = self.store.parts(job)
        if len(parts) != int(job["parts_total"]) or not all(p["status"] == records.FETCHED for p in parts):
            return "parts missing"
        fmt = job["audio_format"]
        key = output_key(job["account_id"], job["job_id"], fmt)
        size, seconds = self._join_into(key, parts, fmt)
        duration_ms = round(seconds * 1000)
        caption_keys = self._captions(job, parts)
        hold = hold_of(job, self.svc.books)
        now = int(time.time())
        done = {"output_key": key, "output_bytes": size, "duration_ms": duration_ms, **caption_keys}
        items = [records.terminal_update(self.cfg, job["job_id"], records.SUCCEEDED, now=now, fields=done),
                 slots.active_leave_item(self.cfg, job["account_id"], job["job_id"]),
                 # speech.job.succeeded, true exactly when the charge is (the same transaction)
                 self._event(job, events.SPEECH_JOB_SUCCEEDED, records.SUCCEEDED, now, done)]
        if job.get("cloned"):
            items.append(voices.use_update(self.cfg, job["voice_id"], now))
        try:
            self.svc.ledger.settle(hold, items=items)
        except HoldNotOpen as exc:
            if exc.status == CHARGED:
                return "already settled"
            # Released first (a cancel, the deadline, the reconciler): no charge, so no audio.
            for written in (key, *caption_keys.values()):
                self.store.s3.delete_object(Bucket=self.cfg.jobs_bucket, Key=written)
            self._mark_failed_if_active(job, errors.JobTimeout, "The job was stopped before it was delivered; "
                                                               "nothing was charged.")
            return "released first"
        if job.get("voice_activating"):
            try:
                self.svc.voices.mark_active(job["voice_id"], now)
            except Exception:
                logger.exception("activating the voice after a charged job failed; the sweep will",
                                 extra={"voice_id": job["voice_id"]})
        metrics.add_metric(name="SpeechJobsSucceeded", unit=MetricUnit.Count, value=1)
        metrics.add_metric(name="ChargedMicroUSD", unit=MetricUnit.Count, value=int(job["amount_micros"]))
        logger.info("speech job delivered", extra={"job_id": job["job_id"], "account_id": job["account_id"],
                                                   "chars": job["characters"], "parts": job["parts_total"],
                                                   "duration_ms": duration_ms, "audio_bytes": size})
        return "succeeded"

    def _captions(self, job: dict, parts: list[dict]) -> dict[str, str]:
        """The parts' subtitles on the joined timeline, as MiniMax's JSON, SRT and WebVTT; their keys
        ({} when MiniMax gave no subtitles)."""
        if not any(p.get("subtitles_key") for p in parts):
            return {}
        per_part = []
        for part in parts:
            cues = []
            if part.get("subtitles_key"):
                body = self.store.s3.get_object(Bucket=self.cfg.jobs_bucket, Key=part["subtitles_key"])["Body"]
                loaded = json.loads(body.read())
                cues = loaded if isinstance(loaded, list) else []
            per_part.append((float(part["seconds"]), cues))
        cues = captions.merged(per_part)
        srt, vtt = captions.documents(cues)
        base = prefix(job["account_id"], job["job_id"])
        keys = {"subtitles_key": base + "subtitles.json", "srt_key": base + "captions.srt",
                "vtt_key": base + "captions.vtt"}
        self.store.put_bytes(keys["subtitles_key"], json.dumps(cues).encode(), "application/json")
        self.store.put_bytes(keys["srt_key"], srt.encode(), "application/x-subrip")
        self.store.put_bytes(keys["vtt_key"], vtt.encode(), "text/vtt")
        return keys

    def _join_into(self, key: str, parts: list[dict], fmt: str) -> tuple[int, float]:
        """Every part's payload, in order, into one S3 object (multipart, a part buffer at a time)."""
        s3, bucket = self.store.s3, self.cfg.jobs_bucket
        seconds = sum(float(p["seconds"]) for p in parts)
        data_bytes = sum(int(p["audio_end"]) - int(p["audio_start"]) for p in parts)
        upload = s3.create_multipart_upload(Bucket=bucket, Key=key, ContentType=CONTENT_TYPES[fmt])
        etags: list[dict] = []
        buffer = bytearray()
        size = 0

        def flush(final: bool = False) -> None:
            nonlocal buffer
            if buffer and (final or len(buffer) >= UPLOAD_PART_BYTES):
                number = len(etags) + 1
                answer = s3.upload_part(Bucket=bucket, Key=key, UploadId=upload["UploadId"], PartNumber=number,
                                        Body=bytes(buffer))
                etags.append({"ETag": answer["ETag"], "PartNumber": number})
                buffer = bytearray()

        try:
            if fmt == "wav":
                first = parts[0]
                header = wav_header(data_bytes, sample_rate=int(first["sample_rate_found"]),
                                    channels=int(first["channels"]), block_align=int(first["block_align"]))
                buffer += header
                size += len(header)
            for part in parts:
                start, end = int(part["audio_start"]), int(part["audio_end"])
                if end <= start:
                    continue
                body = s3.get_object(Bucket=bucket, Key=part["audio_key"], Range=f"bytes={start}-{end - 1}")["Body"]
                for chunk in body.iter_chunks(READ_BYTES):
                    buffer += chunk
                    size += len(chunk)
                    flush()
            flush(final=True)
            s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload["UploadId"],
                                         MultipartUpload={"Parts": etags})
        except BaseException:
            s3.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload["UploadId"])
            raise
        return size, seconds

    def _wind_down(self, job: dict, n: int, step: str) -> str:
        """A part of a finished job (failed or canceled while it ran).  Its MiniMax task, if it has
        one, renders on (MiniMax has no cancel): its slot stays taken until the task is over, so the
        upstream budget counts it, and the poll goes on without fetching."""
        key = records.part_key(job["job_id"], n)
        part = self.store.get(key) or {}
        status = part.get("status")
        if status == records.SUBMITTING:
            return "finished"                       # its submit is in flight; that worker records it
        if status == records.SUBMITTED:
            if step != POLL:
                return "finished"
            task = self.provider.async_t2a.query(str(part["task_id"]), deadline=time.monotonic() + CALL_SECONDS)
            if task.status == PROCESSING:
                self.store.send(job["job_id"], POLL, n, delay=self.cfg.job_poll_seconds)
                return "winding down"
            self.store.move(key, was=records.SUBMITTED, to=records.ABANDONED)
        self.slots.give_back(key)
        return "finished"

    # ── fail, cancel ──
    def fail(self, job: dict, error: type[errors.ApiError], message: str) -> bool:
        """Release the hold with the job becoming failed; True if this call released it."""
        return self._stop(job, records.FAILED, error, message)

    def cancel(self, job: dict) -> bool:
        return self._stop(job, records.CANCELED, None, "")

    def _stop(self, job: dict, status: str, error: type[errors.ApiError] | None, message: str) -> bool:
        now = int(time.time())
        fields = {"error": records.error_of(error.code, message)} if error is not None else None
        items = [records.terminal_update(self.cfg, job["job_id"], status, now=now, fields=fields),
                 slots.active_leave_item(self.cfg, job["account_id"], job["job_id"])]
        if status == records.FAILED:      # speech.job.failed, with the release (a cancel tells no one)
            items.append(self._event(job, events.SPEECH_JOB_FAILED, status, now, fields))
        reason = error.code if error is not None else "canceled"
        released = self.svc.ledger.release(hold_of(job, self.svc.books), reason=reason, items=items)
        # Closed already: settled (then the job is succeeded: the same transaction) or released by
        # someone else (a cancel or fail made the job terminal with it; the reconciler, which knows no
        # jobs, did not): a job still active is failed now.  No read of the hold is needed.
        # Upstream slots are given back by each part's own next message (`_wind_down`): a task still
        # rendering at MiniMax keeps its slot until it is over.
        if not released:
            self._mark_failed_if_active(job, error or errors.JobTimeout, message)
        if released:
            metrics.add_metric(name="SpeechJobsFailed" if status == records.FAILED else "SpeechJobsCanceled",
                               unit=MetricUnit.Count, value=1)
            logger.info("speech job stopped", extra={"job_id": job["job_id"], "status": status, "reason": reason})
        return released

    def _mark_failed_if_active(self, job: dict, error: type[errors.ApiError], message: str) -> None:
        """A job whose hold someone else released (the reconciler knows no jobs) still active: failed."""
        now, fields = int(time.time()), {"error": records.error_of(error.code, message)}
        try:
            Transaction(self.store.ddb).add("job", records.terminal_update(
                self.cfg, job["job_id"], records.FAILED, now=now, fields=fields)).add(
                "active", slots.active_leave_item(self.cfg, job["account_id"], job["job_id"])).add(
                "event", self._event(job, events.SPEECH_JOB_FAILED, records.FAILED, now, fields)).run()
        except Exception:     # not active any more (canceled or failed by whoever released it)
            logger.info("the job was already finished", extra={"job_id": job["job_id"]})

    def _event(self, job: dict, type: str, status: str, now: int, fields: dict | None) -> dict:
        """The webhook event item (kyma.webhooks.events) of the job's terminal state: the job object
        as GET returns it then (output URLs included), written in the transaction that makes it so."""
        after = {**job, "status": status, "finished_at": now, **(fields or {})}
        return events.event_put(self.cfg, job["account_id"], type, views.view(after, self.store))


# The sweep stops taking new work with this much of its invocation left; the next run (every
# 5 minutes) goes on from the earliest deadline, so a backlog of any size drains.  The timeouts
# leave SWEEP_RESUME_SECONDS more for the resumes: a backlog of expired jobs must not keep a
# queued job whose first message was lost from being started (only the sweep resends it).
SWEEP_MARGIN_SECONDS = 10.0
SWEEP_RESUME_SECONDS = 30.0


def sweep(worker: Worker, *, now: float | None = None, time_left: Callable[[], float] | None = None) -> dict[str, int]:
    """Fail jobs past their deadline (released), resume jobs that have not moved for
    JOB_STUCK_SECONDS, and give back upstream slots of parts no longer running.  Reads every
    page of the active jobs; stops early (``unfinished``: 1) when `time_left()` runs low."""
    now = time.time() if now is None else now

    def out_of_time(keep: float = 0.0) -> bool:
        return time_left is not None and time_left() < SWEEP_MARGIN_SECONDS + keep

    timed_out = resumed = freed = unfinished = 0
    for job in worker.store.active(deadline_before=int(now)):
        if out_of_time(keep=SWEEP_RESUME_SECONDS):
            unfinished = 1
            break
        full = worker.store.get(job["job_id"])
        if full and full["status"] in records.ACTIVE_STATES and worker.fail(
                full, errors.JobTimeout, "The job did not finish before its deadline; nothing was charged."):
            timed_out += 1
    stuck_before = now - worker.cfg.job_stuck_seconds
    for job in worker.store.active():
        if out_of_time():
            unfinished = 1
            break
        if int(job.get("updated_at", 0)) < stuck_before:
            worker.store.send(job["job_id"], RESUME)
            resumed += 1
    for holder in worker.slots.holders():
        part = worker.store.get(holder)
        running = part is not None and part["status"] in (records.SUBMITTING, records.SUBMITTED)
        if running and part is not None:
            # A part of a finished job whose polls stopped (its messages lost): given back once it
            # has had as long as a stuck job.
            parent = worker.store.get(str(part["parent"])) or {}
            abandoned = (parent.get("status") in records.TERMINAL_STATES
                         and int(part.get("submitted_at", part.get("claimed_at", 0))) < stuck_before)
            running = not abandoned
        if not running:
            worker.slots.give_back(holder)
            freed += 1
    metrics.add_metric(name="SpeechJobsTimedOut", unit=MetricUnit.Count, value=timed_out)
    metrics.add_metric(name="SpeechJobsStuck", unit=MetricUnit.Count, value=resumed)
    if unfinished:
        logger.warning("the sweep ran out of time; the next run goes on", extra={"timed_out": timed_out,
                                                                                  "resumed": resumed})
    return {"timed_out": timed_out, "resumed": resumed, "slots_freed": freed, "unfinished": unfinished}


def message_of(record: dict[str, Any]) -> dict:
    try:
        body = json.loads(record.get("body") or "")
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
