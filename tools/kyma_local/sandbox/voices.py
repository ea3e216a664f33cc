"""Cloned and designed voices in the sandbox, and MiniMax's 7-day rule.

MiniMax (minimax-upstream.md §2, §4; voice-design.md):

* a cloned or designed voice that is not used by a real T2A call (streamed or
  not) within 7 days of its making is deleted; the preview inside
  ``voice_clone`` or ``voice_design`` does not count;
* a voice has a ``voice_type``: ``voice_cloning`` or ``voice_generation``
  (designed); ``get_voice`` lists each under its own, and ``delete_voice``
  finds a voice only under its own type;
* a cloned voice may not appear in ``get_voice`` until it has been used once;
* ``delete_voice`` deletes a clone, and a deleted id can never be reused
  (cloning it again answers 2039, like a duplicate).

Here the window is a constructor argument (tests shorten it) and time comes
from a clock the sandbox can move forward (`advance`).  Expiry is evaluated
lazily, whenever a voice is looked at: the result is the same as a sweeper's.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

SEVEN_DAYS = 7 * 24 * 3600.0
CLONING, GENERATION = "voice_cloning", "voice_generation"


@dataclass
class ClonedVoice:
    voice_id: str
    file_id: int
    created_at: float                 # sandbox clock (epoch seconds)
    first_used_at: float | None = None
    uses: int = 0
    deleted_at: float | None = None
    deleted_because: str | None = None   # "unused" (the 7-day rule) or "deleted" (delete_voice)
    voice_type: str = CLONING            # or GENERATION: a designed voice (file_id 0, no file)
    prompt: str | None = None            # what a designed voice was designed from

    def as_dict(self) -> dict:
        return {"voice_id": self.voice_id, "voice_type": self.voice_type, "file_id": self.file_id,
                "created_at": self.created_at,
                "first_used_at": self.first_used_at, "uses": self.uses, "deleted_at": self.deleted_at,
                "deleted_because": self.deleted_because}


class VoiceTaken(Exception):
    """The id exists, or existed: MiniMax never reuses an id (2039)."""


class UnknownVoice(Exception):
    """No live clone with this id (never cloned, expired or deleted)."""


class VoiceRegistry:
    def __init__(self, *, window_seconds: float = SEVEN_DAYS,
                 clock: Callable[[], float] = time.time) -> None:
        self.window_seconds = float(window_seconds)
        self._clock = clock
        self._offset = 0.0
        self._voices: dict[str, ClonedVoice] = {}
        self._lock = threading.RLock()

    # --- time ----------------------------------------------------------
    def now(self) -> float:
        return self._clock() + self._offset

    def advance(self, seconds: float) -> None:
        """Move the sandbox's clock forward (e.g. past the 7-day window)."""
        with self._lock:
            self._offset += float(seconds)

    # --- state changes -------------------------------------------------
    def clone(self, voice_id: str, file_id: int) -> ClonedVoice:
        with self._lock:
            if voice_id in self._voices:
                raise VoiceTaken(voice_id)
            voice = ClonedVoice(voice_id, file_id, self.now())
            self._voices[voice_id] = voice
            return voice

    def design(self, voice_id: str, prompt: str) -> ClonedVoice:
        """A voice designed from `prompt` (``voice_generation``): ids are shared with clones."""
        with self._lock:
            if voice_id in self._voices:
                raise VoiceTaken(voice_id)
            voice = ClonedVoice(voice_id, 0, self.now(), voice_type=GENERATION, prompt=prompt)
            self._voices[voice_id] = voice
            return voice

    def register(self, voice_id: str, file_id: int) -> ClonedVoice:
        """Test control: make `voice_id` a live clone now, whatever its past (a live one is kept)."""
        with self._lock:
            voice = self._voices.get(voice_id)
            if voice is not None and self._alive(voice):
                return voice
            voice = ClonedVoice(voice_id, file_id, self.now())
            self._voices[voice_id] = voice
            return voice

    def use(self, voice_id: str) -> ClonedVoice:
        """A real T2A call with this voice: it counts as use (and keeps the voice)."""
        with self._lock:
            voice = self._live(voice_id)
            if voice.first_used_at is None:
                voice.first_used_at = self.now()
            voice.uses += 1
            return voice

    def delete(self, voice_id: str, voice_type: str = CLONING) -> ClonedVoice:
        """`delete_voice`: only a live voice of that `voice_type` (another type's is unknown)."""
        with self._lock:
            voice = self._live(voice_id)
            if voice.voice_type != voice_type:
                raise UnknownVoice(voice_id)
            voice.deleted_at, voice.deleted_because = self.now(), "deleted"
            return voice

    def forget(self) -> None:
        with self._lock:
            self._voices.clear()
            self._offset = 0.0

    # --- queries -------------------------------------------------------
    def is_live(self, voice_id: str) -> bool:
        with self._lock:
            try:
                self._live(voice_id)
            except UnknownVoice:
                return False
            return True

    def listed(self, voice_type: str = CLONING) -> list[ClonedVoice]:
        """Live voices of `voice_type` that `get_voice` shows: only those used at least once."""
        with self._lock:
            return [v for v in list(self._voices.values())
                    if v.voice_type == voice_type and self._alive(v) and v.first_used_at is not None]

    def get(self, voice_id: str) -> ClonedVoice | None:
        with self._lock:
            voice = self._voices.get(voice_id)
            if voice is not None:
                self._alive(voice)
            return voice

    def all(self) -> dict[str, ClonedVoice]:
        with self._lock:
            for voice in self._voices.values():
                self._alive(voice)
            return dict(self._voices)

    # --- internals -----------------------------------------------------
    def _alive(self, voice: ClonedVoice) -> bool:
        if voice.deleted_at is not None:
            return False
        expires = voice.created_at + self.window_seconds
        if voice.first_used_at is None and self.now() > expires:
            voice.deleted_at, voice.deleted_because = expires, "unused"
            return False
        return True

    def _live(self, voice_id: str) -> ClonedVoice:
        voice = self._voices.get(voice_id)
        if voice is None or not self._alive(voice):
            raise UnknownVoice(voice_id)
        return voice


def date_of(epoch_seconds: float) -> str:
    """MiniMax's ``created_time`` format in get_voice: YYYY-MM-DD."""
    return datetime.fromtimestamp(epoch_seconds, UTC).strftime("%Y-%m-%d")
