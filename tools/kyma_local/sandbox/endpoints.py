"""MiniMax's endpoints over the sandbox's account: uploaded files, cloned voices, rendered audio.

``POST /v1/files/upload``  multipart (``purpose=voice_clone``, ``file``) -> ``file.file_id``
``POST /v1/voice_clone``   registers ``voice_id`` for an uploaded file (2039 if the id
                           exists or ever existed)
``POST /v1/voice_design``  a voice from ``prompt`` (our ``voice_id``, or one made up), with
                           ``trial_audio``: the hex of a deterministic, playable MP3 of
                           ``preview_text`` (the same request, the same audio); the preview
                           never counts as use (the 7-day rule)
``POST /v1/t2a_v2``        hex audio (`speech` answers it, whole or streamed)
``POST /v1/get_voice``     ``voice_type`` system / voice_cloning / voice_generation / all
``POST /v1/delete_voice``  ``voice_type`` voice_cloning / voice_generation; unknown, gone or
                           of the other type -> 20132

Requests are checked first (`validation`); the 7-day rule lives in
`voices.VoiceRegistry`, the system voices in `catalog`.  Not modelled:
``voice_clone``'s rendered preview (``demo_audio`` is empty; the preview never
counts as use), other accounts' voices (2042).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import threading
import time
from typing import Any

from kyma_local.sandbox import audio as sandbox_audio
from kyma_local.sandbox import catalog
from kyma_local.sandbox.validation import (
    Synthesis,
    validate_clone,
    validate_delete_voice,
    validate_design,
    validate_get_voice,
    validate_upload,
)
from kyma_local.sandbox.voices import CLONING, GENERATION, UnknownVoice, VoiceRegistry, VoiceTaken, date_of
from kyma_local.sandbox.wire import (
    PATH_CLONE,
    PATH_DELETE_VOICE,
    PATH_DESIGN,
    PATH_GET_VOICE,
    PATH_UPLOAD,
    Reject,
    base_resp,
)

# The preview of a design: MP3 as MiniMax renders it by default.
PREVIEW_RATE, PREVIEW_BITRATE = 32000, 128000


class Account:
    """What MiniMax holds for our key: files, cloned voices (`registry`), the last audio rendered.
    `lock` is the sandbox's."""

    def __init__(self, registry: VoiceRegistry, lock: threading.RLock) -> None:
        self.registry = registry
        self.lock = lock
        self.files: dict[int, dict] = {}
        self.file_of_voice: dict[str, int] = {}
        self.file_ids = itertools.count(381_945_770_001)
        self.audio_size: int | None = None      # t2a_v2 audio exactly this long (None: natural)
        self.last_audio: bytes | None = None

    def answer(self, path: str, body: Any, parts: dict | None, trace_id: str) -> dict:
        """The JSON answer to a call of upload, voice_clone, voice_design, get_voice or delete_voice."""
        if path == PATH_UPLOAD:
            return self.upload(parts)
        if path == PATH_CLONE:
            return self.clone(body, trace_id)
        if path == PATH_DESIGN:
            return self.design(body, trace_id)
        if path == PATH_GET_VOICE:
            return self.get_voice(body, trace_id)
        if path == PATH_DELETE_VOICE:
            return self.delete_voice(body, trace_id)
        raise ValueError(f"not an account endpoint: {path}")

    def upload(self, parts: dict | None) -> dict:
        upload = validate_upload(parts)
        created = int(time.time())
        with self.lock:
            file_id = next(self.file_ids)
            self.files[file_id] = {
                "filename": upload["filename"], "bytes": len(upload["content"]),
                "sha256": hashlib.sha256(upload["content"]).hexdigest(), "purpose": "voice_clone",
                "created_at": created,
            }
        return {
            "file": {"file_id": file_id, "bytes": len(upload["content"]), "created_at": created,
                     "filename": upload["filename"], "purpose": "voice_clone"},
            "base_resp": base_resp(0),
        }

    def clone(self, body: Any, trace_id: str) -> dict:
        file_id, voice_id = validate_clone(body)
        with self.lock:
            if file_id not in self.files:
                raise Reject(2013, "invalid params, file_id not found")
            try:
                self.registry.clone(voice_id, file_id)
            except VoiceTaken:
                raise Reject(2039) from None
            self.file_of_voice[voice_id] = file_id
        return {"input_sensitive": False, "input_sensitive_type": 0, "demo_audio": "",
                "trace_id": trace_id, "base_resp": base_resp(0)}

    def design(self, body: Any, trace_id: str) -> dict:
        request = validate_design(body)
        voice_id = request.voice_id or "ttv-voice-" + hashlib.sha256(trace_id.encode()).hexdigest()[:16]
        with self.lock:
            try:
                self.registry.design(voice_id, request.prompt)
            except VoiceTaken:
                raise Reject(2039) from None
        seed = int.from_bytes(hashlib.sha256(json.dumps([request.prompt, request.preview_text]).encode())
                              .digest()[:8], "big")
        preview = sandbox_audio.render("mp3", PREVIEW_RATE, 1, PREVIEW_BITRATE, seed, sandbox_audio.LEAD_IN_MS
                                       + sandbox_audio.MS_PER_CHAR * len(request.preview_text))
        return {"voice_id": voice_id, "trial_audio": preview.audio.hex(), "trace_id": trace_id,
                "base_resp": base_resp(0)}

    def get_voice(self, body: Any, trace_id: str) -> dict:
        voice_type = validate_get_voice(body)
        out: dict[str, Any] = {}
        if voice_type in ("system", "all"):
            out["system_voice"] = catalog.system_voices()
        if voice_type in ("voice_cloning", "all"):
            out["voice_cloning"] = [{"voice_id": v.voice_id, "description": [],
                                     "created_time": date_of(v.created_at)} for v in self.registry.listed(CLONING)]
        if voice_type in ("voice_generation", "all"):
            out["voice_generation"] = [{"voice_id": v.voice_id, "description": [v.prompt or ""],
                                        "created_time": date_of(v.created_at)}
                                       for v in self.registry.listed(GENERATION)]
        return {**out, "trace_id": trace_id, "base_resp": base_resp(0)}

    def delete_voice(self, body: Any, trace_id: str) -> dict:
        voice_type, voice_id = validate_delete_voice(body)
        try:
            voice = self.registry.delete(voice_id, voice_type)
        except UnknownVoice:
            raise Reject(20132, "invalid voice_id, voice not exist") from None
        return {"voice_id": voice_id, "created_time": str(int(voice.created_at)), "trace_id": trace_id,
                "base_resp": base_resp(0)}

    def use_voice(self, voice_id: str) -> None:
        """A real T2A call: a cloned voice is kept (the 7-day rule); an unknown one is 20132."""
        if not catalog.is_system_voice(voice_id):
            try:
                self.registry.use(voice_id)
            except UnknownVoice:
                raise Reject(20132, f"invalid voice_id, voice {voice_id} not exist") from None

    def render(self, synthesis: Synthesis) -> sandbox_audio.Rendered:
        """The audio of `synthesis` (deterministic), remembered as the last audio."""
        with self.lock:
            size = self.audio_size
        rendered = sandbox_audio.render(synthesis.fmt, synthesis.rate, synthesis.channels, synthesis.bitrate,
                                        _seed(synthesis.body), sandbox_audio.LEAD_IN_MS
                                        + sandbox_audio.MS_PER_CHAR * len(synthesis.text), size)
        with self.lock:
            self.last_audio = rendered.audio
        return rendered

    def register_voice(self, voice_id: str, file_id: int | None = None) -> None:
        with self.lock:
            voice = self.registry.register(voice_id, file_id if file_id is not None else next(self.file_ids))
            self.file_of_voice[voice_id] = voice.file_id

    def live_voices(self) -> dict[str, int]:
        with self.lock:
            return {v: self.file_of_voice.get(v, 0) for v in self.registry.all() if self.registry.is_live(v)}

    def forget_voices(self) -> None:
        """Every cloned voice, uploaded file and clock offset (the caller holds the lock)."""
        self.registry.forget()
        self.files.clear()
        self.file_of_voice.clear()


def extra_info(synthesis: Synthesis, rendered: sandbox_audio.Rendered) -> dict:
    return {
        "audio_length": rendered.duration_ms,
        "audio_sample_rate": synthesis.rate,
        "audio_size": len(rendered.audio),
        "bitrate": synthesis.bitrate if synthesis.fmt == "mp3" else synthesis.rate * 16 * synthesis.channels,
        "word_count": len(synthesis.text.split()),
        "invisible_character_ratio": round(synthesis.invisible_ratio, 4),
        "usage_characters": len(synthesis.text),
        "audio_format": synthesis.fmt,
        "audio_channel": synthesis.channels,
    }


def _seed(body: dict) -> int:
    """The audio depends on what is said and how, never on stream vs non-stream."""
    canonical = json.dumps({k: body.get(k) for k in
                            ("model", "text", "voice_setting", "audio_setting", "language_boost")},
                           sort_keys=True, separators=(",", ":"))
    return int.from_bytes(hashlib.sha256(canonical.encode()).digest()[:8], "big")
