"""Cloned voices and who owns them (table Voices, key voice_id, GSI ByOwner).

A voice row exists if and only if its clone was charged: it is written only
inside the settle transaction (kyma.ledger.Ledger.settle).  Speech with a
cloned voice is gated by `ownership_check`, an item of the reserve transaction.
"""

from __future__ import annotations

import re
import secrets
import time

from kyma import errors
from kyma.config import Config
from kyma.dynamo import Check, to_item, values

VOICE_ID_PREFIX = "kyma_"
VOICE_ID_PATTERN = re.compile(r"^kyma_[0-9a-f]{16}$")


def new_voice_id() -> str:
    """kyma_ + 16 lowercase hex from a CSPRNG.  Also valid as a MiniMax voice_id
    (starts with a letter, 8–256 chars, letters/digits/_, no trailing _ or -)."""
    return VOICE_ID_PREFIX + secrets.token_hex(8)


# MiniMax system voice ids: letters, digits, spaces, ( ) _ - , starting with a letter and
# not ending in a space (e.g. "English_expressive_narrator", "Chinese (Mandarin)_Warm_Girl").
SYSTEM_VOICE_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9 ()_-]{0,255}(?<! )$")


def is_cloned_voice_id(voice_id: str) -> bool:
    """Ids with our prefix, in any letter case, are cloned voices (gated per account).
    Case-insensitive so that "Kyma_..." can never slip past the ownership check as a
    "system voice" should the upstream compare ids loosely."""
    return voice_id[:len(VOICE_ID_PREFIX)].lower() == VOICE_ID_PREFIX


def is_valid_voice_id(voice_id: str) -> bool:
    """A well-formed id: one of ours (checked exactly later) or a plausible system voice.
    Leading spaces, non-ASCII look-alikes and control characters are refused outright."""
    return is_cloned_voice_id(voice_id) or bool(SYSTEM_VOICE_PATTERN.match(voice_id))


def voice_put(cfg: Config, *, voice_id: str, owner_id: str, name: str | None, model: str,
              provider: str, request_id: str) -> dict:
    """The ownership row, as a transaction Put that fails if the id already exists."""
    return {
        "TableName": cfg.voices_table,
        "Item": to_item({"voice_id": voice_id, "owner_id": owner_id, "name": name, "model": model,
                         "provider": provider, "provider_voice_id": voice_id,
                         "created_at": int(time.time()), "request_id": request_id}),
        "ConditionExpression": "attribute_not_exists(voice_id)",
    }


def ownership_check(cfg: Config, voice_id: str, account_id: str) -> Check:
    """Reserve-transaction item: the cloned voice exists and is the caller's (403 / 404 otherwise)."""
    def refusal(voice: dict | None) -> errors.ApiError:
        if voice is None or voice.get("owner_id") is None:
            return errors.VoiceNotFound(f"Voice {voice_id} does not exist.")
        return errors.VoiceNotOwned(f"Voice {voice_id} belongs to another account.")

    return Check("voice", {"ConditionCheck": {
        "TableName": cfg.voices_table,
        "Key": to_item({"voice_id": voice_id}),
        "ConditionExpression": "owner_id = :me",
        "ExpressionAttributeValues": values(me=account_id),
        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
    }}, refusal)
