"""Text-to-speech: reserve → synthesize → settle, and how the audio reaches the client.

The request was read and priced by `kyma.speech_request`.  Ownership of a cloned
(`kyma_`) voice is decided in the same transaction as the debit, so a voice
that is not yours is never charged and never sent upstream.

Audio up to INLINE_AUDIO_MAX_BYTES comes back in the response body.  Larger
audio (a Lambda response is capped at 6 MB including base64) and audio that an
Idempotency-Key may replay are stored in S3 *before* the charge settles: audio
that cannot be delivered is never charged.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kyma import errors, voices
from kyma.audio_store import AudioStore, speech_key
from kyma.ledger import Hold
from kyma.money import micros_to_header
from kyma.observability import MetricUnit, logger, metrics, upstream_failure
from kyma.providers import SynthesisRequest, VoiceProvider
from kyma.speech_request import SKUS, SpeechInput, price_micros
from kyma.voices import VOICE_ID_PATTERN, is_cloned_voice_id

if TYPE_CHECKING:
    from kyma.services import Services

# 4.4 MB of audio is 5.87 MB as base64: under Lambda's 6 MB response limit with room for headers.
INLINE_AUDIO_MAX_BYTES = 4_400_000


@dataclass(frozen=True)
class SpeechResult:
    audio: bytes
    sku: str
    chars: int
    cost_micros: int
    balance_micros: int | None   # None only if the read after settle failed
    content_type: str
    audio_format: str
    stored_key: str | None = None    # where the audio was put in S3, if it was


@dataclass(frozen=True)
class Delivery:
    """What the client gets: the audio itself, or (large audio) a short-lived URL to it."""

    audio: bytes | None
    url: str | None
    headers: dict[str, str]


def synthesize(inp: SpeechInput, *, account_id: str, request_id: str, deadline: float, svc: Services,
               provider: VoiceProvider, keep: bool = False, guard: str | None = None) -> SpeechResult:
    """Reserve, synthesize, settle.  Audio that is large, or kept for an Idempotency-Key replay
    (`keep`), goes to S3 before the charge settles: if that fails, the hold is released.
    A cloned voice still activating is activated by this synthesis (in the settle); one that
    MiniMax no longer has becomes expired (refunded if never used) and the answer is 410."""
    cfg, paid, audio_store = svc.cfg, svc.paid, svc.audio
    cloned = is_cloned_voice_id(inp.voice_id)
    if cloned and not VOICE_ID_PATTERN.match(inp.voice_id):
        raise errors.VoiceNotFound(f"Voice {inp.voice_id} does not exist.")   # could never have been issued
    cost = price_micros(inp, cfg)
    provider.check_key()              # a failing secret store fails here, before anything is reserved
    hold, activating = _reserve(inp, account_id, request_id, cost, cloned, svc, guard)
    request = SynthesisRequest(model=SKUS[inp.sku][0], text=inp.text, voice_id=inp.voice_id,
                               audio_format=inp.audio_format, sample_rate=inp.sample_rate, bitrate=inp.bitrate,
                               speed=inp.speed, vol=inp.vol, pitch=inp.pitch, emotion=inp.emotion,
                               language_boost=inp.language_boost)

    def work() -> tuple[bytes, str | None]:
        result = provider.synthesize(request, deadline=deadline)
        if not result.audio:
            raise errors.ProviderError("MiniMax speech synthesis returned no audio.", trace_id=result.trace_id)
        if not keep and len(result.audio) <= INLINE_AUDIO_MAX_BYTES:
            return result.audio, None
        key = speech_key(account_id, request_id, inp.audio_format)
        audio_store.put(key, result.audio, inp.content_type)
        return result.audio, key

    activated = [voices.activated_item(cfg, inp.voice_id, int(time.time()))] if activating else []
    try:
        audio, stored_key = paid.complete(
            hold, work, items=lambda _: activated, deadline=deadline, settle_failed=lambda: errors.InternalError(
                "The audio could not be billed, so it was not delivered; no charge was applied. Safe to retry."))
    except errors.UpstreamVoiceMissing as exc:
        if not cloned:
            raise
        outcome = svc.lifecycle.expire(inp.voice_id, reason="lost_upstream")
        raise errors.VoiceExpired(f"Voice {inp.voice_id} has expired: MiniMax no longer has it; nothing was "
                                  "charged" + (" and the clone's price was refunded." if outcome == "refunded"
                                               else ".")) from exc
    except errors.UpstreamError as exc:
        upstream_failure(exc, "speech", model=inp.sku)
        raise
    metrics.add_metric(name="SpeechCharacters", unit=MetricUnit.Count, value=inp.chars)
    metrics.add_metric(name="ChargedMicroUSD", unit=MetricUnit.Count, value=cost)
    logger.info("speech delivered", extra={"account_id": account_id, "model": inp.sku, "chars": inp.chars,
                                           "audio_bytes": len(audio), "cloned_voice": cloned})
    return SpeechResult(audio, inp.sku, inp.chars, cost, paid.balance_or_none(account_id), inp.content_type,
                        inp.audio_format, stored_key)


def _reserve(inp: SpeechInput, account_id: str, request_id: str, cost: int, cloned: bool, svc: Services,
             guard: str | None) -> tuple[Hold, bool]:
    """The reserve, gated on the voice for a cloned one: checked as active first (the common case),
    then as activating (then this synthesis activates it).  Returns (hold, activating)."""
    activating = False
    for _ in range(3):          # a voice can change state between two attempts, at most once or twice
        try:
            return svc.ledger.reserve(account_id, cost, kind="speech", request_id=request_id,
                                      reference={"model": inp.sku, "chars": inp.chars, "voice_id": inp.voice_id},
                                      voice_id_owned=inp.voice_id if cloned else None,
                                      voice_activating=activating, guard=guard), activating
        except voices.UsableInOtherState as state:
            activating = state.status == voices.ACTIVATING
    raise errors.ServiceUnavailable("The voice is changing state; retry in a moment.")


def record(result: SpeechResult, provider_name: str) -> dict:
    """What an Idempotency-Key record keeps of a delivered request: headers and where the audio is."""
    headers = {
        "Content-Type": result.content_type,
        "X-Kyma-Model": result.sku,
        "X-Kyma-Chars-Billed": str(result.chars),
        "X-Kyma-Cost-USD": micros_to_header(result.cost_micros),
        **({"X-Kyma-Balance-USD": micros_to_header(result.balance_micros)}
           if result.balance_micros is not None else {}),   # unknown only if the read after the charge failed
        "X-Kyma-Provider": provider_name,
    }
    return {"headers": headers, "audio_key": result.stored_key,
            "inline": len(result.audio) <= INLINE_AUDIO_MAX_BYTES}


def deliver(rec: dict, audio: bytes | None, audio_store: AudioStore) -> Delivery:
    """The audio of a fresh request (in memory) or of a replay (from S3), or a URL to large audio."""
    if not rec["inline"]:
        return Delivery(None, audio_store.url(rec["audio_key"]), dict(rec["headers"]))
    if audio is None:  # a replay: the audio was kept in S3 for exactly this
        audio = audio_store.get(rec["audio_key"])
        if audio is None:
            raise errors.IdempotencyExpired("The audio of this Idempotency-Key has expired; send a new request.")
    return Delivery(audio, None, dict(rec["headers"]))
