"""Keeping the promise "reusable in unlimited TTS calls": activation, expiry (with refund), deletion.

MiniMax deletes a cloned or designed voice that no real T2A synthesis used within
7 days (the preview inside voice_clone or voice_design does not count).  So every
new voice is used once upstream, at our cost (included in its price: $2.10 for a
clone, $4.20 for a design), soon after it is made:

- the Voices table's stream invokes the activation function for each new row
  (retried with backoff, then an on-failure queue: template.yaml);
- a scheduled sweep retries whatever is still activating, paced to stay well
  inside MiniMax's shared rate limit, and reports how many voices have been
  activating for over a day (an operator alarm);
- a customer's own successful synthesis also activates it (kyma.speech.synthesis).

A voice MiniMax no longer has (it answers 20132 for it) becomes `expired`.  If
it was never activated, that is our fault: the voice's own price (`price_micros` on
its row, what its clone or design charged) comes back as a
`refund` ledger entry, in the same transaction as the state change, so exactly
once.  Only MiniMax's answer expires a voice, never its age alone.

Each change tells the owner's webhooks: `voice.active` and `voice.expired` (with `refund_usd`
when refunded) are event items written in the very transaction of the state change
(kyma.webhooks.events), so an event exists exactly when its change does.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kyma.accounts.upstream import UpstreamBudget
from kyma.billing.ledger import Ledger
from kyma.billing.money import micros_to_json
from kyma.edge import errors
from kyma.platform.config import Config
from kyma.platform.observability import MetricUnit, logger, metrics, upstream_failure
from kyma.providers import SynthesisRequest
from kyma.voices.catalog import own_view
from kyma.voices.records import (
    ACTIVATING,
    EXPIRED,
    GONE,
    VOICE_ID_PATTERN,
    expiry_check,
    price_of,
    status_of,
    upstream_voice_type,
)
from kyma.voices.store import Voices
from kyma.webhooks import events

if TYPE_CHECKING:
    from kyma.providers.minimax import MiniMaxClient

# The smallest real synthesis MiniMax counts as use: a few characters on the cheaper model.
ACTIVATION_TEXT = "Hello."
# Whose share of the upstream budget an activation takes: the platform's own, never the owner's
# (the call is at our cost, and must not make its owner's next request look busy).
ACTIVATION_TENANT = "kyma_platform_activation"
ACTIVATION_MODEL = "speech-2.8-turbo"


@dataclass(frozen=True)
class Lifecycle:
    voices: Voices
    ledger: Ledger
    cfg: Config
    upstream: UpstreamBudget | None = None    # MiniMax's shared quota (kyma.accounts.upstream)

    # ── activation ───────────────────────────────────────────────────────
    def activate(self, voice_id: str, provider: MiniMaxClient, *, deadline: float) -> str:
        """Use the voice upstream once.  Returns what happened: "activated", "expired" (MiniMax no
        longer has it: refunded), or "skipped" (not activating).  Any other upstream failure is
        recorded on the row, logged with MiniMax's trace_id, and raised (so the caller retries)."""
        row = self.voices.get(voice_id)
        if row is None or status_of(row) != ACTIVATING:
            return "skipped"
        request = SynthesisRequest(model=ACTIVATION_MODEL, text=ACTIVATION_TEXT, voice_id=voice_id,
                                   audio_format="mp3", sample_rate=16000, bitrate=32000)
        now = int(time.time())
        if self.upstream is not None:
            try:
                # Batch work: from the open part of the minute only, never the reserve kept for
                # interactive customers (the stream's retries and the sweep try again later).
                self.upstream.take(ACTIVATION_TENANT, light=False)
            except errors.ServiceUnavailable as full:
                logger.info("voice activation deferred: the upstream budget is in use", extra={"voice_id": voice_id})
                raise errors.ProviderUnavailable(full.message, headers=full.headers) from None
        try:
            provider.synthesize(request, deadline=deadline)
        except errors.UpstreamVoiceMissing:
            self.expire(voice_id, reason="lost_upstream_before_activation")
            return "expired"
        except errors.UpstreamError as exc:
            self.voices.record_attempt(voice_id, error=f"{exc.code} {exc.provider_code}: {exc.message}", now=now)
            metrics.add_metric(name="VoiceActivationFailures", unit=MetricUnit.Count, value=1)
            upstream_failure(exc, "voice activation", voice_id=voice_id, retryable=exc.retryable)
            raise
        if self.mark_active(voice_id, row=row, now=now):
            metrics.add_metric(name="VoicesActivated", unit=MetricUnit.Count, value=1)
            logger.info("voice activated", extra={"voice_id": voice_id, "after_s": now - int(row["created_at"])})
            return "activated"
        return "skipped"

    def mark_active(self, voice_id: str, *, row: dict | None = None, now: int | None = None) -> bool:
        """The voice was used upstream: `active`, with its `voice.active` event (only on the change
        from activating).  False if it is no longer activating or active."""
        now = int(time.time()) if now is None else now
        row = row if row is not None else self.voices.get(voice_id)
        if row is None:
            return False
        return self.voices.mark_active(voice_id, now, event=self._event(row, events.VOICE_ACTIVE, "active"))

    def _event(self, row: dict, type: str, status: str, refund_micros: int | None = None) -> dict:
        data = {**own_view({**row, "status": status})}
        if refund_micros is not None:
            data["refund_usd"] = micros_to_json(refund_micros)
        return events.event_put(self.cfg, row["owner_id"], type, data)

    # ── expiry ───────────────────────────────────────────────────────────
    def expire(self, voice_id: str, *, reason: str) -> str:
        """MiniMax no longer has the voice.  "refunded" (never activated and never used in a paid
        request: the voice's own price -- $2.10 for a clone, $4.20 for a design -- is back in the
        balance), "expired" (it had been active or used),
        or "unchanged" (already expired, deleted or unknown).  Safe to call from anywhere, any
        number of times."""
        row = self.voices.get(voice_id)
        if row is None or status_of(row) in (EXPIRED, *GONE):
            return "unchanged"
        now = int(time.time())
        if status_of(row) == ACTIVATING and "used_at" not in row:
            price = price_of(row, self.cfg)
            if self.ledger.refund(row["owner_id"], price, reason="voice_expired_before_activation",
                                  reference={"voice_id": voice_id},
                                  because=expiry_check(self.cfg, voice_id, refund=True, now=now, reason=reason),
                                  also={"event": self._event(row, events.VOICE_EXPIRED, EXPIRED, price)}):
                metrics.add_metric(name="VoicesRefunded", unit=MetricUnit.Count, value=1)
                metrics.add_metric(name="RefundedMicroUSD", unit=MetricUnit.Count, value=price)
                logger.warning("voice expired before activation: refunded",
                               extra={"voice_id": voice_id, "account_id": row["owner_id"], "reason": reason})
                return "refunded"
        # Active, or used in a paid request (or either meanwhile): expired, no refund.
        if self.voices.apply_with(expiry_check(self.cfg, voice_id, refund=False, now=now, reason=reason).item["Update"],
                                  self._event(row, events.VOICE_EXPIRED, EXPIRED)):
            logger.warning("voice expired upstream", extra={"voice_id": voice_id, "reason": reason})
            return "expired"
        return "unchanged"

    # ── deletion ─────────────────────────────────────────────────────────
    def delete(self, voice_id: str, owner_id: str, provider: MiniMaxClient, *, deadline: float) -> bool:
        """The owner deletes their voice.  It is `deleting` here first, which is final: gone for its
        owner at once, and out of reach of activation and expiry, so never refunded.  Then MiniMax
        (`/v1/delete_voice`; an id it no longer has is fine); once it confirms, the tombstone.  If
        MiniMax fails or its answer is lost, the sweep retries until it confirms: an outcome we
        cannot see is never undone (it may have deleted the voice).  Returns True if MiniMax
        confirmed now.  Another account's, unknown or already deleted: 404.  No refund."""
        row = self.voices.begin_delete(voice_id, owner_id, int(time.time())) \
            if VOICE_ID_PATTERN.match(voice_id) else None
        if row is None:
            raise errors.VoiceNotFound(f"Voice {voice_id} does not exist.")
        logger.info("voice deleted", extra={"voice_id": voice_id, "account_id": owner_id})
        return self._delete_upstream(voice_id, upstream_voice_type(row), provider, deadline=deadline)

    def _delete_upstream(self, voice_id: str, voice_type: str, provider: MiniMaxClient, *,
                         deadline: float) -> bool:
        """MiniMax's `delete_voice` under the voice's own `voice_type` (a designed voice is
        `voice_generation`: deleted as a clone, MiniMax would not find it)."""
        try:
            provider.delete_voice(voice_id, voice_type=voice_type, deadline=deadline)
        except Exception as exc:
            metrics.add_metric(name="VoiceDeleteRetries", unit=MetricUnit.Count, value=1)
            logger.warning("MiniMax did not confirm a voice deletion; the sweep retries it",
                           extra={"voice_id": voice_id, "error": type(exc).__name__,
                                  "trace_id": getattr(exc, "trace_id", None)})
            return False
        self.voices.finish_delete(voice_id, int(time.time()))
        return True

    # ── the sweep ────────────────────────────────────────────────────────
    def sweep(self, provider: MiniMaxClient, *, deadline: float, limit: int) -> dict[str, int]:
        """Retry activation of what is still activating (oldest first, at most `limit`, one upstream
        call per pace): a voice MiniMax no longer has (20132) expires and is refunded then; retry
        the upstream deletion of voices their owners deleted that MiniMax has not confirmed.

        Nothing expires on age alone: only MiniMax knows whether it still has a voice, and a
        customer's synthesis may have used it meanwhile (then it is theirs, paid, and must never
        be refunded; their charge does not wait for the activation)."""
        now = int(time.time())
        min_age_seconds, pace_seconds = self.cfg.voice_sweep_min_age_seconds, self.cfg.voice_sweep_pace_seconds
        outcome = {"activated": 0, "expired": 0, "failed": 0, "skipped": 0, "deleted": 0}
        for row in self.voices.activating(limit=limit):
            voice_id, age = row["voice_id"], now - int(row["created_at"])
            if age < min_age_seconds or time.monotonic() + pace_seconds >= deadline:
                outcome["skipped"] += 1               # the stream's turn first / no time left this run
                continue
            started = time.monotonic()
            try:
                result = self.activate(voice_id, provider, deadline=deadline)
                outcome["activated" if result == "activated" else "expired" if result == "expired"
                        else "skipped"] += 1
            except errors.UpstreamError:
                outcome["failed"] += 1
            time.sleep(max(0.0, pace_seconds - (time.monotonic() - started)))
        for voice_id in self.voices.pending_deletes(limit=limit, before=now - min_age_seconds):
            if time.monotonic() + pace_seconds >= deadline:
                break
            started = time.monotonic()
            voice_type = upstream_voice_type(self.voices.get(voice_id))   # the index holds only keys
            outcome["deleted" if self._delete_upstream(voice_id, voice_type, provider, deadline=deadline)
                    else "failed"] += 1
            time.sleep(max(0.0, pace_seconds - (time.monotonic() - started)))
        threshold = now - self.cfg.voice_activation_alarm_seconds
        stuck = self.voices.count_activating_since(threshold)
        metrics.add_metric(name="VoicesActivatingOverOneDay", unit=MetricUnit.Count, value=stuck)
        undeleted = len(self.voices.pending_deletes(limit=100, before=threshold))
        metrics.add_metric(name="VoiceDeletesPendingOverOneDay", unit=MetricUnit.Count, value=undeleted)
        if stuck or undeleted:
            logger.error("voices still activating, or not deleted upstream, after the alarm threshold",
                         extra={"activating": stuck, "deletes_pending": undeleted})
        return {**outcome, "stuck": stuck, "deletes_pending": undeleted}
