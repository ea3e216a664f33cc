"""POST /v1/audio/speech/jobs: the request read and priced, then one reserve transaction and one message.

The body is the speech request's (`kyma.speech.request.parse`, up to MAX_JOB_CHARS) without
its streaming fields, in the formats that join exactly (mp3, wav, pcm), plus `metadata`.

The reserve transaction holds, as for speech: the rate limit, the Idempotency-Key's guard,
the cloned voice's ownership (active, or activating: then the job's settle records the use),
the account's cap on active jobs (`kyma.jobs.slots`), the job row (queued) and the debit
with its hold.  The hold lives until the job's deadline plus JOB_HOLD_GRACE_SECONDS, so the
reconciler never releases a job that the worker or the sweep may still settle or release.
Then one message starts the work.  If that send fails the job stays queued and the sweep
sends it (`kyma.jobs.worker.sweep`): the customer's 202 stands.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from kyma.billing.idempotency import fingerprint as hash_parts
from kyma.billing.ledger import Hold, new_entry_id
from kyma.billing.money import micros_to_json
from kyma.edge import errors
from kyma.jobs import records, slots
from kyma.jobs.store import START, input_key
from kyma.platform.dynamo import Check, ReserveGate
from kyma.platform.observability import logger
from kyma.speech import request as speech_request
from kyma.speech.request import SKUS, SpeechInput, price_micros
from kyma.voices import records as voices
from kyma.voices.records import VOICE_ID_PATTERN, is_cloned_voice_id

if TYPE_CHECKING:
    from kyma.billing.accounting import Books
    from kyma.billing.ledger import Ledger
    from kyma.jobs.store import Jobs
    from kyma.platform.config import Config


class Services(Protocol):
    """What a submission uses of `kyma.services.Services` (the composition root above this wing)."""

    @property
    def cfg(self) -> Config: ...
    @property
    def ledger(self) -> Ledger: ...

MAX_JOB_CHARS = 200_000
JOB_FORMATS = ("mp3", "wav", "pcm")
MAX_METADATA_KEYS = 16
MAX_METADATA_CHARS = 256
# After its deadline a job's hold stays open this long for the sweep (every 5 minutes) to
# fail and release it; only then may the reconciler release it.
JOB_HOLD_GRACE_SECONDS = 900


@dataclass(frozen=True)
class JobInput:
    speech: SpeechInput
    metadata: dict[str, str]


def parse(body: Any) -> JobInput:
    if not isinstance(body, dict):
        raise errors.InvalidRequest("The body must be a JSON object.")
    for field in ("stream", "stream_format"):
        if body.get(field) is not None:
            raise errors.InvalidRequest(f"{field} is not a field of a speech job: its audio is one file.")
    metadata = body.get("metadata")
    valid = metadata is None or (isinstance(metadata, dict) and len(metadata) <= MAX_METADATA_KEYS and all(
        isinstance(k, str) and isinstance(v, str) and 0 < len(k) <= MAX_METADATA_CHARS
        and len(v) <= MAX_METADATA_CHARS for k, v in metadata.items()))
    if not valid:
        raise errors.InvalidRequest(f"metadata: at most {MAX_METADATA_KEYS} string keys with string values, "
                                    f"each at most {MAX_METADATA_CHARS} characters.")
    fields = {k: v for k, v in body.items() if k != "metadata"}
    inp = speech_request.parse(fields, max_chars=MAX_JOB_CHARS)
    if inp.audio_format not in JOB_FORMATS:
        raise errors.UnsupportedFormat(f"response_format '{body.get('response_format')}' is not available for a "
                                       f"speech job; use one of {', '.join(JOB_FORMATS)} (they join exactly).")
    return JobInput(inp, dict(metadata or {}))


def fingerprint(job: JobInput) -> str:
    return hash_parts(speech_request.fingerprint(job.speech), job.metadata)


def submit(job: JobInput, *, account_id: str, request_id: str, svc: Services, store: Jobs,
           guard: str | None, rate_limit: Check | None, provider_name: str, gate: ReserveGate | None = None) -> dict:
    """Reserve the whole price with the job row; send its first message; the 202's body."""
    cfg = svc.cfg
    inp = job.speech
    cloned = is_cloned_voice_id(inp.voice_id)
    if cloned and not VOICE_ID_PATTERN.match(inp.voice_id):
        raise errors.VoiceNotFound(f"Voice {inp.voice_id} does not exist.")
    cost = price_micros(inp, cfg)
    now = time.time()
    job_id = records.new_job_id()
    entry_id = new_entry_id(now)
    deadline_at = int(now) + cfg.job_deadline_seconds
    store.put_text(input_key(account_id, job_id), inp.text)
    row = {
        "job_id": job_id, "account_id": account_id, "created_at": int(now), "created_ms": int(now * 1000),
        "updated_at": int(now), "deadline_at": deadline_at, "request_id": request_id,
        "hold_entry_id": entry_id, "amount_micros": cost, "guard": guard, "characters": inp.chars,
        "sku": inp.sku, "model": SKUS[inp.sku][0], "voice_id": inp.voice_id, "cloned": cloned,
        "audio_format": inp.audio_format, "sample_rate": inp.sample_rate, "bitrate": inp.bitrate,
        "speed": str(inp.speed), "vol": str(inp.vol), "pitch": inp.pitch, "emotion": inp.emotion,
        "language_boost": inp.language_boost, "metadata": job.metadata or None, "provider": provider_name,
        "pronunciation": list(inp.pronunciation) or None,
        "parts_done": 0, "parts_total": 0,
    }
    activating = False
    for _ in range(3):
        conditions: list[Check] = []
        if cloned:
            conditions.append(voices.ownership_check(cfg, inp.voice_id, account_id, activating=activating))
        conditions.append(slots.active_join_check(cfg, account_id, job_id))
        conditions.append(Check("job", records.job_put(cfg, {**row, "voice_activating": activating}),
                                lambda _: errors.InternalError("The job could not be recorded.")))
        try:
            svc.ledger.reserve(account_id, cost, kind=records.KIND, request_id=request_id,
                               reference={"model": inp.sku, "chars": inp.chars, "voice_id": inp.voice_id,
                                          "job_id": job_id},
                               conditions=conditions, guard=guard, rate_limit=rate_limit,
                               expires_in=cfg.job_deadline_seconds + JOB_HOLD_GRACE_SECONDS, entry_id=entry_id,
                               gate=gate)
            break
        except voices.UsableInOtherState as state:
            activating = state.status == voices.ACTIVATING
    else:
        raise errors.ServiceUnavailable("The voice is changing state; retry in a moment.")
    try:
        store.send(job_id, START)
    except Exception:     # the job is reserved and queued: the sweep starts it
        logger.exception("the job's first message was not sent; the sweep will", extra={"job_id": job_id})
    logger.info("speech job queued", extra={"account_id": account_id, "job_id": job_id, "chars": inp.chars,
                                            "cost_micros": cost, "cloned_voice": cloned})
    return {"job_id": job_id, "status": records.QUEUED, "model": inp.sku, "voice_id": inp.voice_id,
            "characters": inp.chars, "cost_usd": micros_to_json(cost),
            "balance_usd": None, "metadata": job.metadata,
            "created_at": _iso(int(now))}


def hold_of(job: dict, books: Books) -> Hold:
    """The job's hold, as the settle and release need it, with the counters its reserve moved (the
    key's month: kyma.accounts.gate), so closing it moves them back in the same transaction."""
    return Hold(job["account_id"], job["hold_entry_id"], int(job["amount_micros"]), guard=job.get("guard"),
                kind=records.KIND, model=str(job["sku"]), characters=int(job["characters"]),
                undo=books.hold_undo(job["account_id"], job["hold_entry_id"]))


def _iso(epoch: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))
