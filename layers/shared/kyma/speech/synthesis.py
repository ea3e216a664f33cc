"""Text-to-speech: reserve → synthesize while delivering → settle, or release.

The request was read and priced by `kyma.speech.request`.  Ownership of a cloned
(`kyma_`) voice is decided in the same transaction as the debit, so a voice
that is not yours is never charged and never sent upstream.

The cost is known before the first byte, so the reserve comes first.  The audio
then goes to the client as MiniMax produces it (`kyma.speech.delivery`: one whole
file, raw chunks or Server-Sent Events), and the charge settles only after the last
chunk has been handed on.  If MiniMax fails or stops early, or the client goes away,
the hold is released: partial audio is free.  A whole file with an Idempotency-Key is sent
after the settle (its audio is kept, so a retry replays it); without one it is sent before
the settle, and a client gone before the send went through is released, never charged.

Audio that an Idempotency-Key may replay is kept in S3 *before* the charge settles:
audio that cannot be replayed is never charged.

Clocks: a streamed request may run until its deadline (the function's timeout and the
streaming integration's, up to 15 minutes), but its first chunk must come within API
Gateway's idle timeout; a whole file must be complete within it (nothing flows before).
MiniMax's stream must end AFTER_STREAM_SECONDS before the request's deadline, so what
follows the last chunk (the replay copy, the settle, the end of the response) always fits.
The hold outlives the request's deadline (`kyma.billing.paid_call.hold_lifetime`), so the
reconciler never releases a hold whose stream is still being delivered.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Protocol, cast

from kyma.billing.ledger import Hold
from kyma.billing.paid_call import hold_lifetime
from kyma.edge import errors
from kyma.edge.http import SAFETY_MARGIN_SECONDS
from kyma.platform.dynamo import Check, ReserveGate
from kyma.platform.observability import MetricUnit, logger, metrics, upstream_failure
from kyma.providers import Segment, SynthesisRequest
from kyma.speech.audio_store import speech_key
from kyma.speech.delivery import Billing, Delivery
from kyma.speech.request import SKUS, STREAMABLE_FORMATS, TIMED, SpeechInput, price_micros
from kyma.speech.timestamps import timings_key
from kyma.voices import records as voices
from kyma.voices.records import VOICE_ID_PATTERN, is_cloned_voice_id

if TYPE_CHECKING:
    from kyma.billing.ledger import Ledger
    from kyma.billing.paid_call import PaidCalls
    from kyma.platform.config import Config
    from kyma.providers.minimax import MiniMaxClient
    from kyma.speech.audio_store import AudioStore
    from kyma.voices.lifecycle import Lifecycle
    from kyma.voices.store import Voices


class Services(Protocol):
    """The services a synthesis uses, as `kyma.services.Services` (the composition root above
    this wing) holds them: typed here so that no import, not even a type hint's, points up."""

    @property
    def cfg(self) -> Config: ...
    @property
    def ledger(self) -> Ledger: ...
    @property
    def paid(self) -> PaidCalls: ...
    @property
    def audio(self) -> AudioStore: ...
    @property
    def voices(self) -> Voices: ...
    @property
    def lifecycle(self) -> Lifecycle: ...

# A streamed request's upstream must end this long before the request's deadline (or a tenth of
# the time it has, if less): the S3 copy for a replay, the settle and the end of the response come
# after the last chunk, and a function stopped by its timeout between the charge and the end of
# the response would leave a paid response without its end (and a replay record in progress).
AFTER_STREAM_SECONDS = 10.0


class Timed(Protocol):
    """A delivery that carries timings (kyma.speech.timestamps)."""

    def timestamps(self, segments: list[Segment]) -> None: ...

    def seal(self) -> dict: ...


def synthesize(inp: SpeechInput, *, account_id: str, request_id: str, deadline: float, svc: Services,
               provider: MiniMaxClient, delivery: Delivery, keep: bool = False, guard: str | None = None,
               rate_limit: Check | None = None, upstream: Check | None = None,
               gate: ReserveGate | None = None) -> dict:
    """Reserve, synthesize into `delivery`, settle; return the Idempotency-Key record (small JSON).

    `keep`: store the audio in S3 for a replay, before the settle (if that fails, the hold is
    released).  A cloned voice still activating is activated by this synthesis (after the
    settle); one that MiniMax no longer has becomes expired (refunded if never used): 410."""
    cfg, paid = svc.cfg, svc.paid
    cloned = is_cloned_voice_id(inp.voice_id)
    if cloned and not VOICE_ID_PATTERN.match(inp.voice_id):
        raise errors.VoiceNotFound(f"Voice {inp.voice_id} does not exist.")   # could never have been issued
    # Nothing reaches the client before MiniMax's first chunk (a whole file: before its last one),
    # and API Gateway closes a response that stays silent for its idle timeout.
    silent_until = time.monotonic() + cfg.stream_idle_timeout_seconds - SAFETY_MARGIN_SECONDS
    if not inp.streamed:
        deadline = min(deadline, silent_until)
        upstream_deadline = deadline
    else:
        upstream_deadline = deadline - min(AFTER_STREAM_SECONDS, max(0.0, deadline - time.monotonic()) / 10)
    billing = Billing(inp.sku, inp.chars, price_micros(inp, cfg), inp.content_type, provider.name)
    provider.check_key()              # a failing secret store fails here, before anything is reserved
    hold, activating = _reserve(inp, account_id, request_id, billing.cost_micros, cloned, svc, guard,
                                hold_lifetime(deadline, cfg.hold_timeout_seconds), rate_limit, upstream, gate)
    request = SynthesisRequest(model=SKUS[inp.sku][0], text=inp.text, voice_id=inp.voice_id,
                               audio_format=inp.audio_format, sample_rate=inp.sample_rate, bitrate=inp.bitrate,
                               speed=inp.speed, vol=inp.vol, pitch=inp.pitch, emotion=inp.emotion,
                               language_boost=inp.language_boost, subtitles=inp.timestamps,
                               pronunciation=inp.pronunciation)
    stored_key = speech_key(account_id, request_id, inp.audio_format) if keep else None
    # Timings (kyma.speech.timestamps): fed after each chunk, sealed before the settle.
    timed: Timed | None = cast("Timed", delivery) if inp.timestamps else None

    def work() -> int:
        kept: list[bytes] = []
        size = 0
        with _upstream(provider, request, upstream_deadline, silent_until,
                       whole=inp.delivery == TIMED) as source:  # the first chunk is in
            delivery.begin(billing)
            for chunk in source:
                delivery.audio(chunk)       # handed on before the next one is read
                if timed is not None:
                    timed.timestamps(source.take_segments())
                size += len(chunk)
                if keep:
                    kept.append(chunk)
        timings = timed.seal() if timed is not None else None
        if stored_key is not None:
            svc.audio.put(stored_key, b"".join(kept), inp.content_type)
            if timings is not None:
                svc.audio.put(timings_key(stored_key), json.dumps(timings).encode(), "application/json")
        if delivery.before_charge:
            # A whole file nothing could replay: sent before the charge, so that a client gone
            # before its last byte was accepted is released (ClientGone), never charged.  Too late
            # for API Gateway (nobody is listening any more): released before anything is sent.
            paid.check_deadline(deadline)
            delivery.end(replace(billing, balance_micros=paid.balance_or_none(account_id)))
        return size

    try:
        # A streamed response's last byte has been handed on when `work` returns, and so has a
        # whole file sent before its charge: nothing is left to miss a deadline, so a slow reader
        # that got everything is charged like any other.
        # A voice still activating is recorded as used with the charge (never refunded after this).
        sent_in_work = inp.streamed or delivery.before_charge
        size = paid.complete(hold, work, deadline=None if sent_in_work else deadline, settle_failed=lambda: (
            errors.InternalError("The audio could not be billed, so its delivery was not completed; no charge "
                                 "was applied. Safe to retry.")),
            items=lambda _: [voices.use_update(cfg, inp.voice_id, int(time.time()))] if activating else [])
    except errors.UpstreamVoiceMissing as exc:
        if not cloned:
            raise
        outcome = svc.lifecycle.expire(inp.voice_id, reason="lost_upstream")
        raise errors.VoiceExpired(f"Voice {inp.voice_id} has expired: MiniMax no longer has it; nothing was "
                                  "charged" + (" and the voice's price was refunded." if outcome == "refunded"
                                               else ".")) from exc
    except errors.UpstreamError as exc:
        upstream_failure(exc, "speech", model=inp.sku, streamed=inp.streamed)
        raise
    if activating:
        # Charged first, on its own: a voice deleted or expired meanwhile never makes delivered
        # audio free.  The activation is best effort (the stream's activator and the sweep remain).
        _mark_active(svc, inp.voice_id)
    metrics.add_metric(name="SpeechCharacters", unit=MetricUnit.Count, value=inp.chars)
    metrics.add_metric(name="ChargedMicroUSD", unit=MetricUnit.Count, value=billing.cost_micros)
    logger.info("speech delivered", extra={"account_id": account_id, "model": inp.sku, "chars": inp.chars,
                                           "audio_bytes": size, "cloned_voice": cloned, "delivery": inp.delivery})
    if delivery.before_charge:
        try:
            delivery.after_charge()             # the body, now that it is charged
        except Exception as exc:    # charged, and nothing kept to replay: like a stream cut after its charge
            logger.info("the response could not be completed after the charge",
                        extra={"delivery": inp.delivery, "error": type(exc).__name__})
        return billing.record(stored_key)
    if delivery.needs_balance or keep:
        billing = replace(billing, balance_micros=paid.balance_or_none(account_id))
    try:
        delivery.end(billing)
    except Exception as exc:    # charged: whatever happens now, the record is kept so a replay can resend it
        logger.info("the response could not be completed after the charge",
                    extra={"delivery": inp.delivery, "error": type(exc).__name__})
    record = billing.record(stored_key)
    if timed is not None and stored_key is not None:
        record["timings_key"] = timings_key(stored_key)
    return record


def _mark_active(svc: Services, voice_id: str) -> None:
    try:
        svc.lifecycle.mark_active(voice_id)
    except Exception:
        logger.exception("activating the voice after a charged synthesis failed; the sweep will",
                         extra={"voice_id": voice_id})


def _reserve(inp: SpeechInput, account_id: str, request_id: str, cost: int, cloned: bool, svc: Services,
             guard: str | None, expires_in: int, rate_limit: Check | None,
             upstream: Check | None, gate: ReserveGate | None = None) -> tuple[Hold, bool]:
    """The reserve, gated on the voice for a cloned one: checked as active first (the common case),
    then as activating (then this synthesis activates it).  Returns (hold, activating)."""
    activating = False
    for _ in range(3):          # a voice can change state between two attempts, at most once or twice
        try:
            return svc.ledger.reserve(account_id, cost, kind="speech", request_id=request_id,
                                      reference={"model": inp.sku, "chars": inp.chars, "voice_id": inp.voice_id},
                                      conditions=[voices.ownership_check(svc.cfg, inp.voice_id, account_id,
                                                                         activating=activating)] if cloned else (),
                                      guard=guard, expires_in=expires_in,
                                      rate_limit=rate_limit, upstream=upstream, gate=gate), activating
        except voices.UsableInOtherState as state:
            activating = state.status == voices.ACTIVATING
    raise errors.ServiceUnavailable("The voice is changing state; retry in a moment.")


class _WholeAnswer:
    """MiniMax's non-streamed answer (wav, which it does not stream; with-timestamps, whose
    subtitle file comes with a whole answer) as a one-chunk source."""

    def __init__(self, audio: bytes, segments: tuple[Segment, ...] = ()) -> None:
        self._audio: bytes | None = audio
        self._segments = list(segments)

    def take_segments(self) -> list[Segment]:
        taken, self._segments = self._segments, []
        return taken

    def __enter__(self) -> _WholeAnswer:
        return self

    def __exit__(self, *exc: object) -> None:
        self._audio = None

    def __iter__(self) -> Any:
        audio, self._audio = self._audio, None
        return iter([audio] if audio else [])


def _upstream(provider: MiniMaxClient, request: SynthesisRequest, deadline: float, start_by: float, *,
              whole: bool = False) -> Any:
    """MiniMax's audio as a context-managed iterable of chunks, returned once the first chunk
    has arrived (by `start_by`): any failure before it raises here, before anything was sent
    to the client.  `whole`: one non-streamed answer even for a streamable format."""
    if whole or request.audio_format not in STREAMABLE_FORMATS:
        result = provider.synthesize(request, deadline=deadline)
        if not result.audio:
            raise errors.ProviderError("MiniMax speech synthesis returned no audio.", trace_id=result.trace_id)
        return _WholeAnswer(result.audio, result.segments)
    stream = provider.synthesize_stream(request, deadline=deadline, start_by=start_by)
    if not stream.chunks_received:
        stream.close()
        raise errors.ProviderError("MiniMax speech synthesis returned no audio.", trace_id=stream.trace_id)
    return stream
