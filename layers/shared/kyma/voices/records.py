"""Our voices, cloned or designed: ids, who owns them, and the states they live in (table Voices).

A voice row exists if and only if its clone (or design) was charged: it is written only
inside the settle transaction (kyma.billing.ledger.Ledger.settle).  A designed voice
(POST /v1/audio/voice-design) is a row like a cloned one, with `kind` "designed" (rows without
`kind` are cloned); it lives the same life, because MiniMax keeps it under the same 7-day
rule, and is deleted upstream as a `voice_generation` voice.  Its life
(shared/reference/voices.md):

    activating ──(a real synthesis upstream succeeded)──> active
        │                                                   │
        └──────────(MiniMax answers 20132: lost)─────────> expired  (refunded only if never used)
    any ──(the owner deletes it)──> deleting ──(MiniMax confirms)──> deleted  (a tombstone: never
                                    listed, speech 404; `deleting` is final, the sweep finishes it)

A customer's paid synthesis with a voice still activating records the use
(`used_at`) in the settle transaction itself, then marks the voice active on
its own (best effort): a voice used in a paid request is never refunded, even
if that second write is lost.  Rows are never removed, only tombstoned.

MiniMax deletes a clone that no real synthesis used within 7 days, so every
new voice is activated soon after its clone (kyma.voices.lifecycle).  While a
voice is `activating` its row carries `activating` = "1", which puts it in the
sparse `Activating` index the sweep reads.

Speech with a cloned voice is gated by `ownership_check`, an item of the
reserve transaction: the voice is the caller's and usable.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Mapping
from typing import Any

from kyma.edge import errors
from kyma.platform.config import Config
from kyma.platform.dynamo import Check, to_item, values

VOICE_ID_PREFIX = "kyma_"
VOICE_ID_PATTERN = re.compile(r"^kyma_[0-9a-f]{16}$")
BY_OWNER_INDEX = "ByOwner"
ACTIVATING_INDEX = "Activating"
PENDING_DELETES_INDEX = "PendingDeletes"

ACTIVATING, ACTIVE, EXPIRED, DELETED = "activating", "active", "expired", "deleted"
# Once its owner deletes it a voice is `deleting` until MiniMax confirms (then `deleted`, a
# tombstone): gone for speech and listings, out of reach of activation and expiry (never refunded).
DELETING = "deleting"
GONE = (DELETING, DELETED)

# What a voice of ours is (`kind` on its row; absent: cloned), and what MiniMax calls it
# (`voice_type` in get_voice and delete_voice).
CLONED, DESIGNED = "cloned", "designed"
KINDS = (CLONED, DESIGNED)
UPSTREAM_VOICE_TYPE = {CLONED: "voice_cloning", DESIGNED: "voice_generation"}


def new_voice_id() -> str:
    """kyma_ + 16 lowercase hex from a CSPRNG.  Also valid as a MiniMax voice_id
    (starts with a letter, 8–256 chars, letters/digits/_, no trailing _ or -)."""
    return VOICE_ID_PREFIX + secrets.token_hex(8)


# MiniMax system voice ids: letters, digits, spaces, ( ) _ - and full-width parentheses, starting
# with a letter and not ending in a space (e.g. "English_expressive_narrator",
# "Chinese (Mandarin)_Warm_Girl", "Cantonese_ProfessionalHost（F)").
SYSTEM_VOICE_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9 ()（）_-]{0,255}(?<! )$")


def is_cloned_voice_id(voice_id: str) -> bool:
    """Ids with our prefix, in any letter case, are cloned voices (gated per account).
    Case-insensitive so that "Kyma_..." can never slip past the ownership check as a
    "system voice" should the upstream compare ids loosely."""
    return voice_id[:len(VOICE_ID_PREFIX)].lower() == VOICE_ID_PREFIX


def is_valid_voice_id(voice_id: str) -> bool:
    """A well-formed id: one of ours (checked exactly later) or a plausible system voice.
    Leading spaces, non-ASCII look-alikes and control characters are refused outright."""
    return is_cloned_voice_id(voice_id) or bool(SYSTEM_VOICE_PATTERN.match(voice_id))


def kind_of(row: Mapping[str, Any]) -> str:
    """Rows written before voices could be designed are cloned voices."""
    return str(row.get("kind") or CLONED)


def upstream_voice_type(row: Mapping[str, Any] | None) -> str:
    """MiniMax's `voice_type` for one of our voices (a row not found: a clone)."""
    return UPSTREAM_VOICE_TYPE[kind_of(row or {})]


def price_of(row: Mapping[str, Any], cfg: Config) -> int:
    """What the voice cost its owner (micro-dollars): the price its row recorded when it was charged,
    else (rows from before prices were recorded) the price of its kind."""
    recorded = row.get("price_micros")
    if recorded:
        return int(recorded)
    return cfg.voice_design_price_micros if kind_of(row) == DESIGNED else cfg.voice_clone_price_micros


def status_of(row: Mapping[str, Any]) -> str:
    """Rows written before voices had a status are voices that still need activating."""
    return str(row.get("status") or ACTIVATING)


# ── the voice's part in the ledger's transactions ───────────────────────
def voice_put(cfg: Config, *, voice_id: str, owner_id: str, name: str | None, model: str,
              provider: str, request_id: str, price_micros: int, kind: str = CLONED,
              preview_key: str | None = None) -> dict:
    """Settle of a clone or a design: the ownership row (status activating), a Put that fails if
    the id exists.  `price_micros` is what this voice cost: an expiry refunds exactly that.
    `preview_key`: where a designed voice's preview is kept (S3, AudioBucket)."""
    if kind not in KINDS:
        raise ValueError(f"not a kind of voice: {kind!r}")
    return {"Put": {
        "TableName": cfg.voices_table,
        "Item": to_item({"voice_id": voice_id, "owner_id": owner_id, "name": name, "model": model,
                         "provider": provider, "provider_voice_id": voice_id, "status": ACTIVATING,
                         "activating": "1", "price_micros": price_micros, "kind": kind,
                         "preview_key": preview_key,
                         "created_at": int(time.time()), "request_id": request_id}),
        "ConditionExpression": "attribute_not_exists(voice_id)",
    }}


class UsableInOtherState(Exception):
    """The reserve's voice check found the caller's voice usable, but not in the state it checked
    for (activating rather than active, or the other way round: see `ownership_check`)."""

    def __init__(self, voice_id: str, status: str) -> None:
        super().__init__(f"voice {voice_id} is {status}")
        self.status = status


def ownership_check(cfg: Config, voice_id: str, account_id: str, *, activating: bool = False) -> Check:
    """Reserve of speech: the cloned voice is the caller's and usable.

    The common case is checked first: the voice is `active` (`activating=False`).  A voice still
    activating fails that check with `UsableInOtherState`; the caller reserves again with
    `activating=True` and then, once charged, marks the voice active (`activation_update`), because
    a successful synthesis is the use MiniMax counts.  So an active voice costs no extra write.
    """
    def refusal(voice: dict | None) -> Exception:
        if voice is None or voice.get("owner_id") is None or status_of(voice) in GONE:
            return errors.VoiceNotFound(f"Voice {voice_id} does not exist.")
        if voice["owner_id"] != account_id:
            return errors.VoiceNotOwned(f"Voice {voice_id} belongs to another account.")
        if status_of(voice) == EXPIRED:
            return errors.VoiceExpired(f"Voice {voice_id} has expired: MiniMax no longer has it. Clone or design "
                                       "it again (an expired voice that was never used was refunded).")
        return UsableInOtherState(voice_id, status_of(voice))

    usable = ("(attribute_not_exists(#status) OR #status = :activating)" if activating else "#status = :active")
    return Check("voice", {"ConditionCheck": {
        "TableName": cfg.voices_table,
        "Key": to_item({"voice_id": voice_id}),
        "ConditionExpression": f"owner_id = :me AND {usable}",
        "ExpressionAttributeNames": {"#status": "status"},
        "ExpressionAttributeValues": values(me=account_id, **({"activating": ACTIVATING} if activating
                                                               else {"active": ACTIVE})),
        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
    }}, refusal)


def use_update(cfg: Config, voice_id: str, now: int) -> dict:
    """Settle of speech with a voice that was activating at the reserve: it was used in a paid
    synthesis (`used_at`), written with the charge, so the voice is never refunded even if marking
    it active afterwards fails.  No condition: whatever state the voice is in by now (deleted or
    expired mid-stream), delivered audio is charged; rows are never removed, so this only ever adds
    a field to the row the reserve checked."""
    return {"Update": {
        "TableName": cfg.voices_table,
        "Key": to_item({"voice_id": voice_id}),
        "UpdateExpression": "SET used_at = if_not_exists(used_at, :now)",
        "ExpressionAttributeValues": values(now=now),
    }}


def activation_update(cfg: Config, voice_id: str, now: int) -> dict:
    """The UpdateItem arguments of an activation: an activating voice was used upstream."""
    return {
        "TableName": cfg.voices_table,
        "Key": to_item({"voice_id": voice_id}),
        "UpdateExpression": "SET #status = :active, activated_at = if_not_exists(activated_at, :now) "
                            "REMOVE activating",
        "ConditionExpression": "attribute_not_exists(#status) OR #status IN (:activating, :active)",
        "ExpressionAttributeNames": {"#status": "status"},
        "ExpressionAttributeValues": values(active=ACTIVE, activating=ACTIVATING, now=now),
    }


def expiry_check(cfg: Config, voice_id: str, *, refund: bool, now: int, reason: str) -> Check:
    """A voice MiniMax no longer has becomes `expired`.  With `refund=True` the transition is only
    from activating and never used in a paid request (the refund travels with it in the same
    transaction); otherwise from active, or from activating once used (no refund)."""
    never_active = "(attribute_not_exists(#status) OR #status = :activating)"
    was = (f"{never_active} AND attribute_not_exists(used_at)" if refund
           else f"#status = :active OR ({never_active} AND attribute_exists(used_at))")
    return Check("voice", {"Update": {
        "TableName": cfg.voices_table,
        "Key": to_item({"voice_id": voice_id}),
        "UpdateExpression": "SET #status = :expired, expired_at = :now, expiry_reason = :reason REMOVE activating",
        "ConditionExpression": was,
        "ExpressionAttributeNames": {"#status": "status"},
        "ExpressionAttributeValues": values(expired=EXPIRED, now=now, reason=reason, activating=ACTIVATING,
                                            **({} if refund else {"active": ACTIVE})),
        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
    }}, lambda row: errors.VoiceNotFound(f"Voice {voice_id} changed state meanwhile."))
