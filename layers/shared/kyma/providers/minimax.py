"""The real MiniMax client: voice cloning and text-to-speech over HTTPS.

Wire format: ``/work/shared/reference/minimax-upstream.md``.  Three calls:

* ``POST /v1/files/upload`` (multipart, streamed) -> ``file.file_id``
* ``POST /v1/voice_clone`` (JSON) registers the file under our ``voice_id``
* ``POST /v1/t2a_v2`` (JSON, ``output_format: "hex"``) -> ``data.audio``

MiniMax answers most errors with HTTP 200 and a non-zero
``base_resp.status_code``, so every response is checked at four levels:
HTTP status, JSON, ``base_resp`` and the fields we need.  Every failure
becomes a `kyma.errors.ProviderError` whose message names the step, carries
MiniMax's ``trace_id`` and is logged (WARNING, structured) on
``kyma.providers.minimax``.

Secrets: the API key is fetched per request from a callable (the caller
caches it), sent only in the ``Authorization`` header and scrubbed from
anything MiniMax echoes back.  Errors are raised ``from None`` so that the
`requests` exception -- whose ``.request`` holds the headers -- is not
chained into tracebacks.

Deadlines: every call is bounded by the caller's ``deadline`` (a
``time.monotonic()`` instant): socket timeouts are capped by the time left,
the upload aborts when the deadline passes while sending, and so does
reading the response body.

Import cost is kept low for Lambda cold starts: only ``requests`` and the
toolbelt's multipart encoder besides the standard library.
"""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import Callable
from typing import Any

import requests
from requests_toolbelt.multipart.encoder import MultipartEncoder, MultipartEncoderMonitor

from kyma.errors import ProviderError
from kyma.providers import SynthesisRequest, SynthesisResult

logger = logging.getLogger("kyma.providers.minimax")

# Below this much time before the deadline a call is not started at all.
MIN_TIME_LEFT = 0.5
# Safety net against a runaway response (hex doubles the audio size).
MAX_RESPONSE_BYTES = 256 * 1024 * 1024
_CHUNK = 256 * 1024

STEP_UPLOAD = "file upload"
STEP_CLONE = "voice clone"
STEP_SYNTHESIS = "speech synthesis"

# base_resp.status_code -> retryable.  Codes not listed are treated as not
# retryable: an unknown failure is not worth paying for twice.
RETRYABLE_CODES = frozenset({1000, 1001, 1002, 1024, 1039})
NON_RETRYABLE_CODES = frozenset({1004, 1008, 1026, 2013, 2038, 2039})
# Problems of the operator's MiniMax account (bad key, no balance): clients
# only learn that the upstream is unavailable; the detail goes to the log.
OPERATOR_CODES = frozenset({1004, 1008})
_OPERATOR_MESSAGE = "upstream provider is unavailable"

_MIME_BY_EXTENSION = {
    "mp3": "audio/mpeg",
    "m4a": "audio/mp4",
    "mp4": "audio/mp4",
    "aac": "audio/aac",
    "wav": "audio/wav",
    "wave": "audio/wav",
    "flac": "audio/flac",
    "ogg": "audio/ogg",
    "oga": "audio/ogg",
    "opus": "audio/opus",
    "webm": "audio/webm",
}


def _mime_type(filename: str) -> str:
    _, dot, ext = filename.rpartition(".")
    if not dot:
        return "application/octet-stream"
    return _MIME_BY_EXTENSION.get(ext.lower(), "application/octet-stream")


class _DeadlinePassed(Exception):
    """Raised from inside the upload stream when the deadline passes."""


class _TooLarge(Exception):
    """The answer exceeded MAX_RESPONSE_BYTES."""


# Bodies are sent in 256 KiB blocks: with urllib3's default 16 KiB, streaming a 4 MB
# reference costs ~257 encoder reads, most of the upload's CPU (bench/results.md).
SEND_BLOCK_BYTES = 256 << 10


class _LargeBlockAdapter(requests.adapters.HTTPAdapter):
    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["blocksize"] = SEND_BLOCK_BYTES
        super().init_poolmanager(*args, **kwargs)


def _session() -> requests.Session:
    session = requests.Session()
    # No proxy/netrc lookups in the environment on every call: Lambda needs none, and
    # the MiniMax key must never be replaced by credentials from a netrc file.
    session.trust_env = False
    session.mount("https://", _LargeBlockAdapter())
    session.mount("http://", _LargeBlockAdapter())
    return session


class MiniMaxClient:
    """`kyma.providers.VoiceProvider` backed by MiniMax's HTTP API."""

    name = "minimax"

    def __init__(self, base_url: str, api_key: Callable[[], str], *, connect_timeout: float = 3.05,
                 read_timeout: float = 25.0, session: requests.Session | None = None) -> None:
        self._base_url = base_url.rstrip("/")
        self._api_key = api_key
        self._connect_timeout = float(connect_timeout)
        self._read_timeout = float(read_timeout)
        self._session = session if session is not None else _session()

    def __repr__(self) -> str:
        return f"MiniMaxClient(base_url={self._base_url!r})"

    @property
    def base_url(self) -> str:
        return self._base_url

    def close(self) -> None:
        self._session.close()

    # ------------------------------------------------------------------
    # VoiceProvider
    # ------------------------------------------------------------------

    def clone_voice(self, audio: bytes, filename: str, voice_id: str, *, deadline: float) -> None:
        encoder = MultipartEncoder(fields={
            "purpose": "voice_clone",
            "file": (filename, io.BytesIO(audio), _mime_type(filename)),
        })

        def watch(_monitor: MultipartEncoderMonitor) -> None:
            if time.monotonic() > deadline:
                raise _DeadlinePassed()

        body = MultipartEncoderMonitor(encoder, watch)
        uploaded, trace_id = self._post(
            STEP_UPLOAD, "/v1/files/upload", deadline,
            data=body, headers={"Content-Type": body.content_type},
        )
        file_info = uploaded.get("file")
        file_id = file_info.get("file_id") if isinstance(file_info, dict) else None
        if isinstance(file_id, bool) or not isinstance(file_id, (int, str)) or file_id == "":
            raise self._error(STEP_UPLOAD, "response has no file.file_id", trace_id=trace_id,
                              http_status=200)

        self._post(STEP_CLONE, "/v1/voice_clone", deadline, json={
            "file_id": file_id,
            "voice_id": voice_id,
            "need_noise_reduction": False,
            "need_volume_normalization": False,
        })

    def synthesize(self, request: SynthesisRequest, *, deadline: float) -> SynthesisResult:
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
            "stream": False,
            "output_format": "hex",
            "voice_setting": voice_setting,
            "audio_setting": audio_setting,
        }
        if request.language_boost:
            payload["language_boost"] = request.language_boost

        body, trace_id = self._post(STEP_SYNTHESIS, "/v1/t2a_v2", deadline, json=payload)
        del payload
        data = body.get("data")
        audio_hex = data.get("audio") if isinstance(data, dict) else None
        if not isinstance(audio_hex, str) or not audio_hex:
            raise self._error(STEP_SYNTHESIS, "response has no data.audio", trace_id=trace_id,
                              http_status=200)
        try:
            audio = bytes.fromhex(audio_hex)
        except ValueError:
            raise self._error(STEP_SYNTHESIS, "audio is not valid hex", trace_id=trace_id,
                              http_status=200) from None
        # The hex string is twice the audio: let it go before returning.
        del audio_hex
        data.pop("audio", None)
        extra = body.get("extra_info")
        return SynthesisResult(
            audio=audio,
            audio_format=request.audio_format,
            trace_id=trace_id,
            extra_info=extra if isinstance(extra, dict) else {},
        )

    # ------------------------------------------------------------------
    # One HTTP exchange
    # ------------------------------------------------------------------

    def _post(self, step: str, path: str, deadline: float, *,
              headers: dict[str, str] | None = None, **kwargs: Any) -> tuple[dict, str | None]:
        """POST and return (parsed body, trace_id) of a successful answer."""
        remaining = deadline - time.monotonic()
        if remaining < MIN_TIME_LEFT:
            raise self._error(step, "not attempted, too little time left before the deadline",
                              message=f"MiniMax {step} not attempted: too little time left",
                              retryable=True)
        key = self._key(step)
        send_headers = {"Authorization": f"Bearer {key}", "Accept": "application/json"}
        if headers:
            send_headers.update(headers)
        timeout = (min(self._connect_timeout, remaining), min(self._read_timeout, remaining))
        started = time.monotonic()
        try:
            response = self._session.post(self._base_url + path, headers=send_headers,
                                          timeout=timeout, stream=True, **kwargs)
        except _DeadlinePassed:
            raise self._timeout(step, "deadline passed while sending") from None
        except requests.Timeout as exc:
            raise self._timeout(step, type(exc).__name__) from None
        except requests.RequestException as exc:
            if _looks_like_timeout(exc, deadline):
                raise self._timeout(step, type(exc).__name__) from None
            raise self._error(step, f"could not reach MiniMax ({type(exc).__name__})",
                              message=f"could not reach MiniMax during {step}",
                              retryable=True) from None
        del send_headers

        try:
            header_trace = response.headers.get("Trace-Id") or None
            http_status = response.status_code
            try:
                raw = self._read_body(response, deadline)
            except _DeadlinePassed:
                raise self._timeout(step, "deadline passed while reading the answer",
                                    trace_id=header_trace) from None
            except _TooLarge:
                raise self._error(step, "answer too large", trace_id=header_trace,
                                  http_status=http_status, retryable=False) from None
            except requests.RequestException as exc:
                if _looks_like_timeout(exc, deadline):
                    raise self._timeout(step, type(exc).__name__, trace_id=header_trace) from None
                raise self._error(step, f"answer cut off ({type(exc).__name__})",
                                  message=f"could not reach MiniMax during {step}",
                                  trace_id=header_trace, http_status=http_status,
                                  retryable=True) from None
        finally:
            response.close()

        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        del raw
        trace_id = header_trace
        if isinstance(body, dict) and isinstance(body.get("trace_id"), str) and body["trace_id"]:
            trace_id = body["trace_id"]
        base_resp = body.get("base_resp") if isinstance(body, dict) else None
        code = base_resp.get("status_code") if isinstance(base_resp, dict) else None
        has_code = isinstance(code, int) and not isinstance(code, bool)

        if not 200 <= http_status < 300:
            if has_code and code != 0:
                raise self._base_resp_error(step, base_resp, trace_id, http_status, key)
            raise self._error(step, f"HTTP {http_status}", trace_id=trace_id,
                              http_status=http_status,
                              retryable=http_status >= 500 or http_status in (408, 429))
        if not isinstance(body, dict):
            raise self._error(step, "malformed response", trace_id=trace_id,
                              http_status=http_status)
        if not has_code:
            raise self._error(step, "response has no base_resp.status_code", trace_id=trace_id,
                              http_status=http_status)
        if code != 0:
            raise self._base_resp_error(step, base_resp, trace_id, http_status, key)
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("MiniMax %s succeeded", step, extra={
                "provider": self.name, "step": step, "trace_id": trace_id,
                "http_status": http_status,
                "elapsed_ms": round((time.monotonic() - started) * 1000),
            })
        return body, trace_id

    @staticmethod
    def _read_body(response: requests.Response, deadline: float) -> bytearray:
        raw = bytearray()
        for chunk in response.iter_content(_CHUNK):
            raw += chunk
            if len(raw) > MAX_RESPONSE_BYTES:
                raise _TooLarge()
            if time.monotonic() > deadline:
                raise _DeadlinePassed()
        return raw

    def _key(self, step: str) -> str:
        try:
            key = self._api_key()
        except Exception as exc:  # the secret lookup failed: an operator problem
            raise self._error(step, f"API key lookup failed ({type(exc).__name__})",
                              message=f"MiniMax {step} failed: {_OPERATOR_MESSAGE}",
                              retryable=True) from None
        if not isinstance(key, str) or not key.strip():
            raise self._error(step, "API key is empty",
                              message=f"MiniMax {step} failed: {_OPERATOR_MESSAGE}",
                              retryable=False)
        return key.strip()

    # ------------------------------------------------------------------
    # Errors
    # ------------------------------------------------------------------

    def _base_resp_error(self, step: str, base_resp: dict, trace_id: str | None,
                         http_status: int, key: str) -> ProviderError:
        code = base_resp["status_code"]
        status_msg = _scrub(base_resp.get("status_msg"), key) or "unknown error"
        if code in OPERATOR_CODES:
            return self._error(step, f"{status_msg} ({code})",
                               message=f"MiniMax {step} failed: {_OPERATOR_MESSAGE}",
                               trace_id=trace_id, provider_code=code, http_status=http_status,
                               retryable=False, operator_problem=True)
        return self._error(step, f"{status_msg} ({code})", trace_id=trace_id, provider_code=code,
                           http_status=http_status, retryable=code in RETRYABLE_CODES)

    def _timeout(self, step: str, detail: str, *, trace_id: str | None = None) -> ProviderError:
        return self._error(step, f"no answer in time ({detail})",
                           message=f"MiniMax did not answer in time during {step}",
                           trace_id=trace_id, retryable=True)

    def _error(self, step: str, detail: str, *, message: str | None = None,
               trace_id: str | None = None, provider_code: int | None = None,
               http_status: int | None = None, retryable: bool = True,
               operator_problem: bool = False) -> ProviderError:
        """Log one provider failure and build the exception to raise."""
        logger.warning("MiniMax %s failed: %s", step, detail, extra={
            "provider": self.name,
            "step": step,
            "provider_code": provider_code,
            "trace_id": trace_id,
            "http_status": http_status,
            "retryable": retryable,
            "operator_problem": operator_problem,
        })
        return ProviderError(message or f"MiniMax {step} failed: {detail}", trace_id=trace_id,
                             provider_code=provider_code, retryable=retryable)



def _scrub(text: Any, key: str) -> str:
    """MiniMax's status_msg, on one line, without our key and not too long."""
    if not isinstance(text, str):
        return ""
    text = " ".join(text.split())
    if key:
        text = text.replace(key, "[redacted]")
    return text[:200]


def _looks_like_timeout(exc: BaseException, deadline: float) -> bool:
    """`requests` reports a read timeout while streaming as ConnectionError."""
    if isinstance(exc, requests.Timeout):
        return True
    for arg in getattr(exc, "args", ()):
        if "timeout" in type(arg).__name__.lower() or "timed out" in str(arg).lower():
            return True
    return deadline - time.monotonic() <= 0.05
