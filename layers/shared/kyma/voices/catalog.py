"""What a customer sees of voices: their own voices (cloned and designed), then MiniMax's system catalog.

`GET /v1/audio/voices` pages through both with one opaque cursor (newest own
voice first, tombstones never shown, then the system voices in MiniMax's
order); `GET /v1/audio/voices/{voice_id}` shows one.  Another account's voice is
not found here (its existence is not disclosed).  The system catalog comes
from MiniMax `get_voice`, cached in the function for minutes, not fetched per
request.  Contract: shared/reference/voices.md.
"""

from __future__ import annotations

import base64
import binascii
import json
import threading
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from kyma.edge import errors
from kyma.edge.http import query_limit
from kyma.voices.records import CLONED, DESIGNED, GONE, VOICE_ID_PATTERN, is_cloned_voice_id, kind_of, status_of
from kyma.voices.store import Voices

CATALOG_TTL_SECONDS = 600
DEFAULT_LIMIT, MAX_LIMIT = 20, 100
TYPES = ("all", CLONED, DESIGNED, "system")


def iso(epoch: Any) -> str | None:
    return None if epoch is None else datetime.fromtimestamp(int(epoch), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def own_view(row: Mapping[str, Any]) -> dict:
    """One of the caller's voices: `type` is "cloned" or "designed"."""
    return {"voice_id": row["voice_id"], "type": kind_of(row), "name": row.get("name"), "model": row.get("model"),
            "status": status_of(row), "created_at": iso(row.get("created_at"))}


def system_view(voice: Mapping[str, Any]) -> dict:
    return {"voice_id": voice["voice_id"], "type": "system", "name": voice.get("name") or voice["voice_id"],
            "status": "active", "created_at": None}


class SystemCatalog:
    """MiniMax's system voices, fetched at most once per CATALOG_TTL_SECONDS per process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._voices: list[dict] | None = None
        self._fetched = 0.0

    def voices(self, provider: Any, *, deadline: float) -> list[dict]:
        with self._lock:
            if self._voices is None or time.monotonic() - self._fetched > CATALOG_TTL_SECONDS:
                self._voices = [system_view(v) for v in provider.system_voices(deadline=deadline)]
                self._fetched = time.monotonic()
            return self._voices


def parse_query(query: Mapping[str, str]) -> tuple[str, int, dict | None]:
    """`type`, `limit` and `cursor` of a list request, or 400."""
    kind = query.get("type", "all")
    if kind not in TYPES:
        raise errors.InvalidRequest(f"type must be one of {', '.join(TYPES)}.")
    limit = query_limit(query, default=DEFAULT_LIMIT, maximum=MAX_LIMIT)
    return kind, limit, _decode_cursor(query["cursor"], kind) if "cursor" in query else None


def list_page(owner_id: str, *, kind: str, limit: int, cursor: dict | None, voices: Voices,
              catalog: SystemCatalog, provider: Any, deadline: float) -> dict:
    phase = (cursor or {}).get("phase", "system" if kind == "system" else "cloned")
    if cursor and phase == "cloned" and cursor["after"]["owner_id"] != owner_id:
        raise errors.InvalidRequest("cursor belongs to another listing; start again without it.")
    page: list[dict] = []
    if phase == "cloned":
        rows, last = voices.owned_page(owner_id, limit=limit, start=(cursor or {}).get("after"),
                                       kind=kind if kind in (CLONED, DESIGNED) else None)
        page += [own_view(r) for r in rows]
        if last is not None:
            return {"voices": page, "next_cursor": _encode_cursor(kind, "cloned", after=last)}
        if kind in (CLONED, DESIGNED):
            return {"voices": page, "next_cursor": None}
        phase, cursor = "system", None
    offset = int((cursor or {}).get("offset", 0))
    room = limit - len(page)
    if room == 0:       # the cloned voices filled this page exactly: the system voices start on the next
        return {"voices": page, "next_cursor": _encode_cursor(kind, "system", offset=0)}
    system = catalog.voices(provider, deadline=deadline)
    page += system[offset:offset + room]
    more = offset + room < len(system)
    return {"voices": page, "next_cursor": _encode_cursor(kind, "system", offset=offset + room) if more else None}


def get_one(owner_id: str, voice_id: str, *, voices: Voices, catalog: SystemCatalog, provider: Any,
            deadline: float) -> dict:
    if is_cloned_voice_id(voice_id):
        row = voices.get(voice_id) if VOICE_ID_PATTERN.match(voice_id) else None   # never issued: no lookup
        if row is None or row.get("owner_id") != owner_id or status_of(row) in GONE:
            raise errors.VoiceNotFound(f"Voice {voice_id} does not exist.")
        return own_view(row)
    for voice in catalog.voices(provider, deadline=deadline):
        if voice["voice_id"] == voice_id:
            return voice
    raise errors.VoiceNotFound(f"Voice {voice_id} does not exist.")


# ── the cursor: opaque to clients, checked on the way back ───────────────
def _encode_cursor(kind: str, phase: str, *, after: dict | None = None, offset: int | None = None) -> str:
    state: dict[str, Any] = {"type": kind, "phase": phase}
    if after is not None:
        state["after"] = {k: after[k] for k in ("voice_id", "owner_id", "created_at")}
    if offset is not None:
        state["offset"] = offset
    return base64.urlsafe_b64encode(json.dumps(state, separators=(",", ":")).encode()).decode().rstrip("=")


def _decode_cursor(raw: str, kind: str) -> dict:
    invalid = errors.InvalidRequest("cursor is not a cursor this endpoint returned (send it back unchanged, "
                                    "with the same type).")
    try:
        state = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError, RecursionError):
        raise invalid from None
    if not isinstance(state, dict) or state.get("type") != kind or state.get("phase") not in ("cloned", "system"):
        raise invalid
    after, offset = state.get("after"), state.get("offset", 0)
    if state["phase"] == "cloned" and not (
            isinstance(after, dict) and isinstance(after.get("voice_id"), str)
            and VOICE_ID_PATTERN.match(after["voice_id"]) and isinstance(after.get("owner_id"), str)
            and type(after.get("created_at")) is int and 0 <= after["created_at"] < 2**40):
        raise invalid
    if not isinstance(offset, int) or isinstance(offset, bool) or not 0 <= offset <= 100_000:
        raise invalid
    return state
