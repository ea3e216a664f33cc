"""`MiniMaxClient`: MiniMax's calls -- clone, speech (whole or streamed), voice management.

Each public method builds its request, hands it to the `Exchange` (HTTP,
deadline, retries) and checks the fields it needs in the answer; a missing or
malformed field is a `ProviderError` like any other failed answer.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from typing import Any

import requests

from kyma.edge import errors
from kyma.providers import SynthesisRequest, SynthesisResult
from kyma.providers.minimax.async_t2a import AsyncT2A
from kyma.providers.minimax.codes import (
    STEP_CLONE,
    STEP_DELETE,
    STEP_DESIGN,
    STEP_STREAM,
    STEP_SUBTITLES,
    STEP_SYNTHESIS,
    STEP_UPLOAD,
    STEP_VOICES,
    VOICE_MISSING_CODES,
    Failure,
    cut_off,
)
from kyma.providers.minimax.exchange import READ_BYTES, Exchange, RetryPolicy
from kyma.providers.minimax.stream import SpeechStream
from kyma.providers.minimax.subtitles import ShapeError, segments_of_file
from kyma.providers.minimax.upload import new_session, reference_upload

# A subtitle file is text: a few hundred bytes per sentence.  Anything larger is not one.
MAX_SUBTITLE_BYTES = 16 * 1024 * 1024


class MiniMaxClient:
    """MiniMax's HTTP API, answering in `kyma.edge.errors` terms.

    Public API::

        clone_voice(audio, filename, voice_id, *, deadline) -> None
        design_voice(prompt, preview_text, voice_id, *, deadline) -> bytes | None   (the preview)
        synthesize(request, *, deadline) -> SynthesisResult
        synthesize_stream(request, *, deadline, start_by=None) -> SpeechStream
        system_voices(*, deadline) -> list[{"voice_id", "name", "description"}]
        delete_voice(voice_id, *, voice_type="voice_cloning", deadline) -> bool
        check_key() -> None
        async_t2a.create / query / download_url / fetch   (long-form speech: `async_t2a`)

    `deadline` is a `time.monotonic()` instant.  Failures raise a
    `kyma.edge.errors.UpstreamError` subclass (`kyma.providers.minimax.codes`).  `name` is
    what ``X-Kyma-Provider`` says ("minimax", or "sandbox" for the local stand-in).
    """

    name = "minimax"

    def __init__(self, base_url: str, api_key: Callable[[], str], *, name: str = "minimax",
                 connect_timeout: float = 3.05, read_timeout: float = 25.0,
                 session: requests.Session | None = None, retry: RetryPolicy | None = None,
                 rng: random.Random | None = None) -> None:
        self.name = name
        self._http = Exchange(
            base_url=base_url.rstrip("/"), api_key=api_key, name=name,
            connect_timeout=float(connect_timeout), read_timeout=float(read_timeout),
            session=session if session is not None else new_session(),
            retry=retry if retry is not None else RetryPolicy(),
            rng=rng if rng is not None else random.Random(),  # noqa: S311 -- jitter, not secrecy
        )
        self.async_t2a = AsyncT2A(self._http)

    def __repr__(self) -> str:
        return f"MiniMaxClient(base_url={self.base_url!r}, name={self.name!r})"

    @property
    def base_url(self) -> str:
        return self._http.base_url

    @property
    def retry_policy(self) -> RetryPolicy:
        return self._http.retry

    def close(self) -> None:
        self._http.session.close()

    def check_key(self) -> None:
        """Look the API key up now, before anything is charged: a slow or failing secret store then
        fails the request up front (503, fast: the SSM client has short timeouts) instead of after
        the reserve.  Cached afterwards (Powertools Parameters), so a warm request pays nothing."""
        try:
            self._http.key("key lookup")
        except Failure as failure:
            if failure.kind is errors.ProviderError:      # the lookup itself failed: unavailable, retry later
                failure.kind = errors.ProviderUnavailable
            raise failure.error() from None

    def clone_voice(self, audio: bytes, filename: str, voice_id: str, *, deadline: float) -> None:
        """Upload `audio` as a clone reference and register it under `voice_id`.

        A retried ``voice_clone`` answered 2039 (duplicate id) for this very id means an
        earlier attempt registered it and only its answer was lost: success."""
        uploaded, trace_id = self._http.post(STEP_UPLOAD, "/v1/files/upload", deadline,
                                             lambda: reference_upload(audio, filename, deadline))
        file_info = uploaded.get("file")
        file_id = file_info.get("file_id") if isinstance(file_info, dict) else None
        if isinstance(file_id, bool) or not isinstance(file_id, (int, str)) or file_id == "":
            raise self._missing(STEP_UPLOAD, "response has no file.file_id", trace_id)
        clone = {"file_id": file_id, "voice_id": voice_id, "need_noise_reduction": False,
                 "need_volume_normalization": False}
        # 2013 here is our bug, not the customer's: the request holds only our ids and flags.
        self._http.post(STEP_CLONE, "/v1/voice_clone", deadline, lambda: {"json": clone},
                        customer_values=False, duplicate_means_done=True)

    def design_voice(self, prompt: str, preview_text: str, voice_id: str, *, deadline: float) -> bytes | None:
        """Design a voice from `prompt` under our `voice_id` (``/v1/voice_design``); returns the
        preview MiniMax rendered of `preview_text` (``trial_audio``, hex-decoded).

        The voice is what is paid for, the preview comes with it: a successful answer whose
        ``trial_audio`` is missing or not hex is still a designed voice (None, logged), and so is
        a retry answered 2039 for this very id (an earlier attempt designed it and only its answer
        was lost; MiniMax renders no preview for it then).  An answer for another voice id is a
        `ProviderError`.  2013 and 1026/1027 concern the customer's description or preview text
        (400 ``invalid_request`` / ``content_rejected``)."""
        design = {"prompt": prompt, "preview_text": preview_text, "voice_id": voice_id}
        body, trace_id = self._http.post(STEP_DESIGN, "/v1/voice_design", deadline, lambda: {"json": design},
                                         duplicate_means_done=True)
        if not body:                        # 2039 on a retry: designed by an earlier attempt
            return None
        if body.get("voice_id") != voice_id:
            raise self._missing(STEP_DESIGN, "response is not for the voice_id we sent", trace_id)
        trial = body.pop("trial_audio", None)
        try:
            preview = bytes.fromhex(trial) if isinstance(trial, str) and trial else None
        except ValueError:
            preview = None
        del trial
        if not preview:
            self._http.log(Failure(STEP_DESIGN, "designed, but the answer has no usable trial_audio",
                                   trace_id=trace_id, http_status=200, retryable=False), 1, will_retry=False)
        return preview

    def synthesize(self, request: SynthesisRequest, *, deadline: float) -> SynthesisResult:
        """Render `request` to audio bytes (the whole answer at once)."""
        payload = t2a_payload(request, stream=False)
        body, trace_id = self._http.post(STEP_SYNTHESIS, "/v1/t2a_v2", deadline, lambda: {"json": payload})
        data = body.get("data")
        audio_hex = data.get("audio") if isinstance(data, dict) else None
        if not isinstance(data, dict) or not isinstance(audio_hex, str) or not audio_hex:
            raise self._missing(STEP_SYNTHESIS, "response has no data.audio", trace_id)
        try:
            audio = bytes.fromhex(audio_hex)
        except ValueError:
            raise self._missing(STEP_SYNTHESIS, "audio is not valid hex", trace_id) from None
        # The hex string is twice the audio: let it go before returning.
        del audio_hex
        data.pop("audio", None)
        extra = body.get("extra_info")
        segments = self._subtitles(data.get("subtitle_file"), request, deadline, trace_id) if request.subtitles else ()
        return SynthesisResult(
            audio=audio,
            audio_format=request.audio_format,
            trace_id=trace_id,
            extra_info=extra if isinstance(extra, dict) else {},
            segments=segments,
        )

    def _subtitles(self, url: Any, request: SynthesisRequest, deadline: float, trace_id: str | None) -> tuple:
        """The segments of ``data.subtitle_file``: fetched (a plain GET: the URL is signed, our key is
        never sent with it), then read strictly (`kyma.providers.minimax.subtitles`).  A missing URL,
        a file that cannot be fetched or one not in the documented shape is a `ProviderError`
        (logged with MiniMax's trace id): the paid call releases its hold."""
        if not isinstance(url, str) or not url.startswith(self._subtitle_schemes()):
            raise self._missing(STEP_SUBTITLES, "response has no usable data.subtitle_file", trace_id)

        def attempt(_key: str) -> bytes:
            remaining = deadline - time.monotonic()
            timeouts = (min(self._http.connect_timeout, remaining), min(self._http.read_timeout, remaining))
            try:
                response = self._http.session.get(url, timeout=timeouts, stream=True)
            except requests.RequestException as exc:
                raise cut_off(STEP_SUBTITLES, f"could not fetch the subtitle file ({type(exc).__name__})",
                              trace_id=trace_id) from None
            try:
                if response.status_code != 200:
                    transient = response.status_code >= 500 or response.status_code in (408, 429)
                    raise Failure(STEP_SUBTITLES, f"subtitle file: HTTP {response.status_code}", trace_id=trace_id,
                                  http_status=response.status_code, retryable=transient, retry_here=transient)
                raw = bytearray()
                for block in response.iter_content(READ_BYTES):
                    raw += block
                    if len(raw) > MAX_SUBTITLE_BYTES or time.monotonic() > deadline:
                        raise Failure(STEP_SUBTITLES, "subtitle file too large or too slow", trace_id=trace_id,
                                      http_status=200, retryable=False)
                return bytes(raw)
            except requests.RequestException as exc:
                raise cut_off(STEP_SUBTITLES, f"subtitle file cut off ({type(exc).__name__})",
                              trace_id=trace_id) from None
            finally:
                response.close()

        raw = self._http.with_retries(STEP_SUBTITLES, deadline, attempt)
        try:
            return segments_of_file(json.loads(raw), words=request.subtitles == "word")
        except (ValueError, ShapeError) as exc:   # JSON that does not parse is a ValueError too
            detail = str(exc) if isinstance(exc, ShapeError) else "the subtitle file is not JSON"
            raise self._missing(STEP_SUBTITLES, detail, trace_id) from None

    def _subtitle_schemes(self) -> tuple[str, ...]:
        """https only; plain http only when MiniMax itself is reached over http (the local sandbox)."""
        return ("https://", "http://") if self.base_url.startswith("http://") else ("https://",)

    def synthesize_stream(self, request: SynthesisRequest, *, deadline: float,
                          start_by: float | None = None) -> SpeechStream:
        """Start a streamed synthesis; returns once MiniMax has produced the first audio chunk.

        Upstream: ``stream: true`` with ``stream_options.exclude_aggregated_audio: true``.
        Everything up to the first audio chunk is retried like any call (so a
        refusal -- 2013, 20132, 1026... -- raises here, before the caller has sent
        anything to its own client); nothing is retried after it.  The returned
        `SpeechStream` yields the audio bytes chunk by chunk as they arrive and
        raises the classified error if MiniMax sends an error event or the
        connection drops mid-stream.  ``deadline`` bounds the whole stream;
        ``start_by`` (if earlier) bounds the wait for the first chunk, retries
        included (a caller whose own client gives up on silence sooner).
        """
        payload = t2a_payload(request, stream=True)
        first_by = deadline if start_by is None else min(deadline, start_by)

        def attempt(key: str) -> SpeechStream:
            response = self._http.send(STEP_STREAM, "/v1/t2a_v2", first_by, key, json=payload,
                                       headers={"Accept": "text/event-stream"})
            content_type = response.headers.get("Content-Type", "")
            if not 200 <= response.status_code < 300 or "text/event-stream" not in content_type:
                # An answer before any audio (a refusal, or an HTTP error) comes as plain JSON.
                _, trace_id = self._http.read_json(STEP_STREAM, response, deadline, key)
                raise Failure(STEP_STREAM, "answered without streaming", trace_id=trace_id, http_status=200)
            stream = SpeechStream(self._http, response, request.audio_format, deadline, key,
                                  subtitles=request.subtitles)
            try:
                stream.start()
            except BaseException:
                stream.close()
                raise
            return stream

        return self._http.with_retries(STEP_STREAM, first_by, attempt)

    def system_voices(self, *, deadline: float) -> list[dict[str, str]]:
        """MiniMax's system voices (``get_voice``, ``voice_type: system``), in its order:
        ``[{"voice_id": ..., "name": ..., "description": ...}]``.  ``name`` falls back to
        the id; MiniMax's list of description sentences is joined into one string."""
        body, trace_id = self._http.post(STEP_VOICES, "/v1/get_voice", deadline,
                                         lambda: {"json": {"voice_type": "system"}}, customer_values=False)
        if "system_voice" not in body:
            raise self._missing(STEP_VOICES, "response has no system_voice", trace_id)
        listed = body.get("system_voice") or []
        if not isinstance(listed, list):
            raise self._missing(STEP_VOICES, "system_voice is not a list", trace_id)
        voices = []
        for entry in listed:
            if not isinstance(entry, dict) or not isinstance(entry.get("voice_id"), str) or not entry["voice_id"]:
                continue
            name = entry.get("voice_name")
            description = entry.get("description")
            if isinstance(description, list):
                description = " ".join(str(part) for part in description if part)
            voices.append({"voice_id": entry["voice_id"],
                           "name": name if isinstance(name, str) and name else entry["voice_id"],
                           "description": description if isinstance(description, str) else ""})
        return voices

    def delete_voice(self, voice_id: str, *, voice_type: str = "voice_cloning", deadline: float) -> bool:
        """Delete one of our voices upstream (``delete_voice``): a clone is ``voice_type:
        voice_cloning``, a designed voice ``voice_generation``.

        Returns True when MiniMax deleted it now, False when MiniMax does not have it
        (any more): MiniMax's documentation does not say what ``delete_voice`` answers for
        an unknown or already-deleted id; its error table's code for "invalid samples or
        voice_id" is 20132, which is what the sandbox answers, and this client reads
        20132 here as "already gone" -- deleting is idempotent for the caller.  A deleted
        id can never be cloned again.  Any other failure raises as classified (2013 is a
        bug here, `ProviderError`: no customer value is sent).
        """
        if voice_type not in ("voice_cloning", "voice_generation"):
            raise ValueError(f"not a voice_type of ours: {voice_type!r}")
        request = {"voice_type": voice_type, "voice_id": voice_id}
        try:
            self._http.post(STEP_DELETE, "/v1/delete_voice", deadline, lambda: {"json": request},
                            customer_values=False, quiet_codes=VOICE_MISSING_CODES)
        except errors.UpstreamVoiceMissing:
            return False
        return True

    def _missing(self, step: str, detail: str, trace_id: str | None) -> errors.UpstreamError:
        """A successful answer without what it should hold: logged, and the error to raise."""
        return self._http.give_up(Failure(step, detail, trace_id=trace_id, http_status=200))


def t2a_payload(request: SynthesisRequest, *, stream: bool) -> dict[str, Any]:
    """``/v1/t2a_v2``'s JSON for `request` (hex audio; streamed without the aggregated copy)."""
    voice_setting: dict[str, Any] = {
        "voice_id": request.voice_id,
        "speed": request.speed,
        "vol": request.vol,
        "pitch": request.pitch,
    }
    if request.emotion:
        voice_setting["emotion"] = request.emotion
    audio_setting: dict[str, Any] = {
        "sample_rate": request.sample_rate,
        "format": request.audio_format,
        "channel": request.channel,
    }
    if request.audio_format == "mp3":
        audio_setting["bitrate"] = request.bitrate
    payload: dict[str, Any] = {
        "model": request.model,
        "text": request.text,
        "stream": stream,
        "output_format": "hex",
        "voice_setting": voice_setting,
        "audio_setting": audio_setting,
    }
    if stream:
        payload["stream_options"] = {"exclude_aggregated_audio": True}
    if request.language_boost:
        payload["language_boost"] = request.language_boost
    if request.subtitles:
        payload["subtitle_enable"] = True
        payload["subtitle_type"] = request.subtitles
    if request.pronunciation:
        payload["pronunciation_dict"] = {"tone": list(request.pronunciation)}
    return payload
