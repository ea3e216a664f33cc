"""The MiniMax client: voice cloning, speech (whole or streamed) and voice management over HTTPS.

Wire format: ``/work/shared/reference/minimax-upstream.md``.  Calls:

* ``POST /v1/files/upload`` (multipart, streamed) -> ``file.file_id``
* ``POST /v1/voice_clone`` (JSON) registers the file under our ``voice_id``
* ``POST /v1/t2a_v2`` (JSON, ``output_format: "hex"``) -> ``data.audio``; with
  ``stream: true`` Server-Sent Events, one ``data: {json}`` per audio chunk
* ``POST /v1/get_voice`` / ``POST /v1/delete_voice``

Answers.  MiniMax answers most errors with HTTP 200 and a non-zero
``base_resp.status_code``, so every answer is checked at four levels: HTTP
status, JSON, ``base_resp`` and the fields we need.  Every
``base_resp.status_code`` of MiniMax's error table maps to one
`kyma.errors.UpstreamError` class (`classify`):

=================================================  ==========================================
1026, 1027, 1042 (the text)                        `ContentRejected` (400)
1043, 1044, 2037, 2048 (the reference clip)        `ReferenceRejected` (400)
2013 (a parameter value)                           `UpstreamInvalidRequest` (400); a bug
                                                   (`ProviderError`) where no customer value
                                                   was sent (voice_clone, get_voice,
                                                   delete_voice)
1004, 1008, 2038, 2042, 2049, 2056 (our account)   `ProviderAccountProblem` (503, alarms)
20132 (the voice does not exist upstream)          `UpstreamVoiceMissing` (404)
1000, 1001, 1013, 1024, 1033                       retried, then `ProviderError` (502)
1002, 1039, 1041, 2045 (rate, capacity)            retried, then `ProviderUnavailable` (503)
                                                   with ``Retry-After``
anything else (2039 included)                      `ProviderError` (502)
=================================================  ==========================================

Connection errors, timeouts and HTTP 5xx/408/429 are retried too, then
`ProviderError`.  Retries use jittered exponential backoff (`RetryPolicy`) and
never outlive the caller's deadline: a retry is only made if it can start at
least `MIN_TIME_LEFT` seconds before it.  A retried ``voice_clone`` that
answers 2039 (duplicate id) for the id this very call is registering means an
earlier attempt did register it and only its answer was lost: success.

Every failed attempt is logged (WARNING, structured, on
``kyma.providers.minimax``) with MiniMax's ``trace_id``, the code, the attempt
number and whether it will be retried.

Secrets: the API key is fetched per attempt from a callable (the caller
caches it), sent only in the ``Authorization`` header and scrubbed from
anything MiniMax echoes back; neither the key nor audio is ever logged.
Errors are raised ``from None`` so that the `requests` exception -- whose
``.request`` holds the headers -- is not chained into tracebacks.

Deadlines: every call is bounded by the caller's ``deadline`` (a
``time.monotonic()`` instant): socket timeouts are capped by the time left,
the upload aborts when the deadline passes while sending, and so does
reading the answer (a stream included).

Import cost is kept low for Lambda cold starts: only ``requests`` and the
toolbelt's multipart encoder besides the standard library.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import random
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from typing import Any

import requests
from requests_toolbelt.multipart.encoder import MultipartEncoder, MultipartEncoderMonitor

from kyma import errors
from kyma.providers import SynthesisRequest, SynthesisResult

logger = logging.getLogger("kyma.providers.minimax")

# Below this much time before the deadline a call (or a retry) is not started at all.
MIN_TIME_LEFT = 0.5
# Safety net against a runaway response (hex doubles the audio size).
MAX_RESPONSE_BYTES = 256 * 1024 * 1024
_CHUNK = 256 * 1024

STEP_UPLOAD = "file upload"
STEP_CLONE = "voice clone"
STEP_SYNTHESIS = "speech synthesis"
STEP_STREAM = "streamed speech synthesis"
STEP_VOICES = "voice listing"
STEP_DELETE = "voice deletion"

# MiniMax's error table (minimax-upstream.md §6), by what the answer means here.
CONTENT_REJECTED_CODES = frozenset({1026, 1027, 1042})
REFERENCE_REJECTED_CODES = frozenset({1043, 1044, 2037, 2048})
INVALID_PARAMETER_CODES = frozenset({2013})
OPERATOR_CODES = frozenset({1004, 1008, 2038, 2042, 2049, 2056})
VOICE_MISSING_CODES = frozenset({20132})
RETRYABLE_CODES = frozenset({1000, 1001, 1002, 1013, 1024, 1033, 1039, 1041, 2045})
CAPACITY_CODES = frozenset({1002, 1039, 1041, 2045})     # rate, token, connection, growth limits
DUPLICATE_VOICE_ID = 2039
# Retry-After (seconds) sent to our client when MiniMax stays rate-limited after our retries.
RETRY_AFTER_SECONDS = 5

_OPERATOR_MESSAGE = ("the voice service is unavailable because of a problem on our side, not with your "
                     "request; nothing was charged and our operators have been alerted")

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


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a failed call is retried (always within its deadline).

    The n-th retry waits between half and all of ``min(max_delay, base_delay * 2**(n-1))``
    seconds ("equal jitter"): growing, never synchronised across Lambda instances.
    """

    attempts: int = 3
    base_delay: float = 0.25
    max_delay: float = 2.0

    def delay(self, retry: int, rng: random.Random) -> float:
        ceiling = min(self.max_delay, self.base_delay * 2 ** (retry - 1))
        return ceiling / 2 + rng.uniform(0, ceiling / 2)


NO_RETRY = RetryPolicy(attempts=1)


class _DeadlinePassed(Exception):
    """Raised from inside the upload stream when the deadline passes."""


class _TooLarge(Exception):
    """The answer exceeded MAX_RESPONSE_BYTES."""


class _Failure(Exception):
    """One failed attempt, classified; `error()` is what the caller gets if it is the last."""

    def __init__(self, step: str, detail: str, *, kind: type[errors.UpstreamError] = errors.ProviderError,
                 message: str | None = None, trace_id: str | None = None, provider_code: int | None = None,
                 http_status: int | None = None, retryable: bool = True, retry_here: bool = False,
                 operator: bool = False, capacity: bool = False) -> None:
        super().__init__(detail)
        self.step = step
        self.detail = detail
        self.kind = kind
        self.message = message or f"MiniMax {step} failed: {detail}"
        self.trace_id = trace_id
        self.provider_code = provider_code
        self.http_status = http_status
        self.retryable = retryable          # may our caller try again later?
        self.retry_here = retry_here        # is it worth retrying within this call?
        self.operator = operator
        self.capacity = capacity

    def error(self) -> errors.UpstreamError:
        headers = {"Retry-After": str(RETRY_AFTER_SECONDS)} if self.capacity else None
        return self.kind(self.message, trace_id=self.trace_id, provider_code=self.provider_code,
                         retryable=self.retryable, headers=headers)


def classify(step: str, code: int, status_msg: str, *, trace_id: str | None = None,
             http_status: int | None = None, customer_values: bool = True) -> _Failure:
    """The meaning of a non-zero ``base_resp.status_code`` (see the module docstring)."""
    detail = f"{status_msg} ({code})"
    common: dict[str, Any] = {"trace_id": trace_id, "provider_code": code, "http_status": http_status}
    if code in OPERATOR_CODES:
        return _Failure(step, detail, kind=errors.ProviderAccountProblem,
                        message=f"MiniMax {step} failed: {_OPERATOR_MESSAGE}", retryable=False,
                        operator=True, **common)
    if code in RETRYABLE_CODES:
        capacity = code in CAPACITY_CODES
        return _Failure(step, detail, kind=errors.ProviderUnavailable if capacity else errors.ProviderError,
                        retryable=True, retry_here=True, capacity=capacity, **common)
    if code in CONTENT_REJECTED_CODES:
        return _Failure(step, detail, kind=errors.ContentRejected, retryable=False, **common)
    if code in REFERENCE_REJECTED_CODES:
        return _Failure(step, detail, kind=errors.ReferenceRejected, retryable=False, **common)
    if code in INVALID_PARAMETER_CODES and customer_values:
        return _Failure(step, detail, kind=errors.UpstreamInvalidRequest, retryable=False, **common)
    if code in VOICE_MISSING_CODES:
        return _Failure(step, detail, kind=errors.UpstreamVoiceMissing, retryable=False, **common)
    return _Failure(step, detail, kind=errors.ProviderError, retryable=False, **common)


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
    """MiniMax's HTTP API, answering in `kyma.errors` terms.

    Public API::

        clone_voice(audio, filename, voice_id, *, deadline) -> None
        synthesize(request, *, deadline) -> SynthesisResult
        synthesize_stream(request, *, deadline, start_by=None) -> SpeechStream
        system_voices(*, deadline) -> list[{"voice_id", "name", "description"}]
        delete_voice(voice_id, *, deadline) -> bool

    `deadline` is a `time.monotonic()` instant.  Failures raise a
    `kyma.errors.UpstreamError` subclass (module docstring).  `name` is what
    ``X-Kyma-Provider`` says ("minimax", or "sandbox" for the local stand-in).
    """

    name = "minimax"

    def __init__(self, base_url: str, api_key: Callable[[], str], *, name: str = "minimax",
                 connect_timeout: float = 3.05, read_timeout: float = 25.0,
                 session: requests.Session | None = None, retry: RetryPolicy | None = None,
                 rng: random.Random | None = None) -> None:
        self._base_url = base_url.rstrip("/")
        self._api_key = api_key
        self.name = name
        self._connect_timeout = float(connect_timeout)
        self._read_timeout = float(read_timeout)
        self._session = session if session is not None else _session()
        self._retry = retry if retry is not None else RetryPolicy()
        self._rng = rng if rng is not None else random.Random()  # noqa: S311 -- jitter, not secrecy

    def __repr__(self) -> str:
        return f"MiniMaxClient(base_url={self._base_url!r}, name={self.name!r})"

    @property
    def base_url(self) -> str:
        return self._base_url

    @property
    def retry_policy(self) -> RetryPolicy:
        return self._retry

    def close(self) -> None:
        self._session.close()

    # ------------------------------------------------------------------
    # Voice cloning
    # ------------------------------------------------------------------

    def clone_voice(self, audio: bytes, filename: str, voice_id: str, *, deadline: float) -> None:
        """Upload `audio` as a clone reference and register it under `voice_id`."""

        def upload() -> dict[str, Any]:
            encoder = MultipartEncoder(fields={
                "purpose": "voice_clone",
                "file": (filename, io.BytesIO(audio), _mime_type(filename)),
            })

            def watch(_monitor: MultipartEncoderMonitor) -> None:
                if time.monotonic() > deadline:
                    raise _DeadlinePassed()

            body = MultipartEncoderMonitor(encoder, watch)
            return {"data": body, "headers": {"Content-Type": body.content_type}}

        uploaded, trace_id = self._post(STEP_UPLOAD, "/v1/files/upload", deadline, upload)
        file_info = uploaded.get("file")
        file_id = file_info.get("file_id") if isinstance(file_info, dict) else None
        if isinstance(file_id, bool) or not isinstance(file_id, (int, str)) or file_id == "":
            raise self._give_up(_Failure(STEP_UPLOAD, "response has no file.file_id", trace_id=trace_id,
                                         http_status=200))
        clone = {"file_id": file_id, "voice_id": voice_id, "need_noise_reduction": False,
                 "need_volume_normalization": False}
        # 2013 here is our bug, not the customer's: the request holds only our ids and flags.
        self._post(STEP_CLONE, "/v1/voice_clone", deadline, lambda: {"json": clone},
                   customer_values=False, duplicate_means_done=True)

    # ------------------------------------------------------------------
    # Speech
    # ------------------------------------------------------------------

    def synthesize(self, request: SynthesisRequest, *, deadline: float) -> SynthesisResult:
        """Render `request` to audio bytes (the whole answer at once)."""
        payload = _t2a_payload(request, stream=False)
        body, trace_id = self._post(STEP_SYNTHESIS, "/v1/t2a_v2", deadline, lambda: {"json": payload})
        data = body.get("data")
        audio_hex = data.get("audio") if isinstance(data, dict) else None
        if not isinstance(data, dict) or not isinstance(audio_hex, str) or not audio_hex:
            raise self._give_up(_Failure(STEP_SYNTHESIS, "response has no data.audio", trace_id=trace_id,
                                         http_status=200))
        try:
            audio = bytes.fromhex(audio_hex)
        except ValueError:
            raise self._give_up(_Failure(STEP_SYNTHESIS, "audio is not valid hex", trace_id=trace_id,
                                         http_status=200)) from None
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
        payload = _t2a_payload(request, stream=True)
        first_by = deadline if start_by is None else min(deadline, start_by)

        def attempt(key: str) -> SpeechStream:
            response = self._send(STEP_STREAM, "/v1/t2a_v2", first_by, key, json=payload,
                                  headers={"Accept": "text/event-stream"})
            content_type = response.headers.get("Content-Type", "")
            if not 200 <= response.status_code < 300 or "text/event-stream" not in content_type:
                # An answer before any audio (a refusal, or an HTTP error) comes as plain JSON.
                _, trace_id = self._read_json(STEP_STREAM, response, deadline, key)
                raise _Failure(STEP_STREAM, "answered without streaming", trace_id=trace_id, http_status=200)
            stream = SpeechStream(self, response, request.audio_format, deadline, key)
            try:
                stream._start()
            except BaseException:
                stream.close()
                raise
            return stream

        return self._with_retries(STEP_STREAM, first_by, attempt)

    # ------------------------------------------------------------------
    # Voice management
    # ------------------------------------------------------------------

    def system_voices(self, *, deadline: float) -> list[dict[str, str]]:
        """MiniMax's system voices (``get_voice``, ``voice_type: system``), in its order:
        ``[{"voice_id": ..., "name": ..., "description": ...}]``.  ``name`` falls back to
        the id; MiniMax's list of description sentences is joined into one string."""
        body, trace_id = self._post(STEP_VOICES, "/v1/get_voice", deadline,
                                    lambda: {"json": {"voice_type": "system"}}, customer_values=False)
        if "system_voice" not in body:
            raise self._give_up(_Failure(STEP_VOICES, "response has no system_voice", trace_id=trace_id,
                                         http_status=200))
        listed = body.get("system_voice") or []
        if not isinstance(listed, list):
            raise self._give_up(_Failure(STEP_VOICES, "system_voice is not a list", trace_id=trace_id,
                                         http_status=200))
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

    def delete_voice(self, voice_id: str, *, deadline: float) -> bool:
        """Delete a cloned voice upstream (``delete_voice``, ``voice_type: voice_cloning``).

        Returns True when MiniMax deleted it now, False when MiniMax does not have it
        (any more): MiniMax's documentation does not say what ``delete_voice`` answers for
        an unknown or already-deleted id; its error table's code for "invalid samples or
        voice_id" is 20132, which is what the sandbox answers, and this client reads
        20132 here as "already gone" -- deleting is idempotent for the caller.  A deleted
        id can never be cloned again.  Any other failure raises as classified (2013 is a
        bug here, `ProviderError`: no customer value is sent).
        """
        request = {"voice_type": "voice_cloning", "voice_id": voice_id}
        try:
            self._post(STEP_DELETE, "/v1/delete_voice", deadline, lambda: {"json": request},
                       customer_values=False, quiet_codes=VOICE_MISSING_CODES)
        except errors.UpstreamVoiceMissing:
            return False
        return True

    # ------------------------------------------------------------------
    # Retries
    # ------------------------------------------------------------------

    def _with_retries(self, step: str, deadline: float, attempt: Callable[[str], Any], *,
                      duplicate_means_done: bool = False, quiet_codes: frozenset[int] = frozenset()) -> Any:
        """Run `attempt(key)` until it succeeds, fails for good, or the deadline is near."""
        tries = 0
        while True:
            tries += 1
            try:
                if deadline - time.monotonic() < MIN_TIME_LEFT:
                    raise _Failure(step, "not attempted, too little time left before the deadline",
                                   message=f"MiniMax {step} not attempted: too little time left")
                return attempt(self._key(step))
            except _Failure as failure:
                if duplicate_means_done and tries > 1 and failure.provider_code == DUPLICATE_VOICE_ID:
                    # An earlier attempt registered this id; only its answer was lost.
                    logger.info("MiniMax %s: duplicate id on attempt %d, an earlier attempt succeeded",
                                step, tries, extra={"provider": self.name, "step": step,
                                                    "trace_id": failure.trace_id, "attempt": tries})
                    return None
                pause = self._pause_before_retry(failure, tries, deadline)
                self._log(failure, tries, will_retry=pause is not None,
                          level=logging.INFO if failure.provider_code in quiet_codes else logging.WARNING)
                if pause is None:
                    raise failure.error() from None
                time.sleep(pause)

    def _pause_before_retry(self, failure: _Failure, tries: int, deadline: float) -> float | None:
        if not failure.retry_here or tries >= self._retry.attempts:
            return None
        pause = self._retry.delay(tries, self._rng)
        if deadline - time.monotonic() - pause < MIN_TIME_LEFT:
            return None
        return pause

    def _post(self, step: str, path: str, deadline: float, make: Callable[[], dict[str, Any]], *,
              customer_values: bool = True, duplicate_means_done: bool = False,
              quiet_codes: frozenset[int] = frozenset()) -> tuple[dict, str | None]:
        """POST (with retries) and return (parsed body, trace_id) of a successful answer.
        `make()` builds the request's keyword arguments afresh for every attempt."""

        def attempt(key: str) -> tuple[dict, str | None]:
            kwargs = make()
            response = self._send(step, path, deadline, key, **kwargs)
            return self._read_json(step, response, deadline, key, customer_values=customer_values)

        result = self._with_retries(step, deadline, attempt, duplicate_means_done=duplicate_means_done,
                                    quiet_codes=quiet_codes)
        return result if result is not None else ({}, None)

    # ------------------------------------------------------------------
    # One HTTP exchange
    # ------------------------------------------------------------------

    def _send(self, step: str, path: str, deadline: float, key: str, *,
              headers: dict[str, str] | None = None, **kwargs: Any) -> requests.Response:
        """Send one request; the answer's body is left unread (``stream=True``)."""
        remaining = deadline - time.monotonic()
        send_headers = {"Authorization": f"Bearer {key}", "Accept": "application/json"}
        if headers:
            send_headers.update(headers)
        timeout = (min(self._connect_timeout, remaining), min(self._read_timeout, remaining))
        try:
            return self._session.post(self._base_url + path, headers=send_headers, timeout=timeout,
                                      stream=True, **kwargs)
        except _DeadlinePassed:
            raise _timeout(step, "deadline passed while sending") from None
        except requests.Timeout as exc:
            raise _timeout(step, type(exc).__name__) from None
        except requests.RequestException as exc:
            if _looks_like_timeout(exc, deadline):
                raise _timeout(step, type(exc).__name__) from None
            raise _Failure(step, f"could not reach MiniMax ({type(exc).__name__})",
                           message=f"could not reach MiniMax during {step}", retry_here=True) from None

    def _read_json(self, step: str, response: requests.Response, deadline: float, key: str, *,
                   customer_values: bool = True) -> tuple[dict, str | None]:
        """Read, close and check one JSON answer; (body, trace_id) if it is a success."""
        try:
            header_trace = response.headers.get("Trace-Id") or None
            http_status = response.status_code
            try:
                raw = _read_body(response, deadline)
            except _DeadlinePassed:
                raise _timeout(step, "deadline passed while reading the answer", trace_id=header_trace) from None
            except _TooLarge:
                raise _Failure(step, "answer too large", trace_id=header_trace, http_status=http_status,
                               retryable=False) from None
            except requests.RequestException as exc:
                if _looks_like_timeout(exc, deadline):
                    raise _timeout(step, type(exc).__name__, trace_id=header_trace) from None
                raise _Failure(step, f"answer cut off ({type(exc).__name__})",
                               message=f"could not reach MiniMax during {step}", trace_id=header_trace,
                               http_status=http_status, retry_here=True) from None
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
            if isinstance(base_resp, dict) and isinstance(code, int) and has_code and code != 0:
                raise classify(step, code, _scrub(base_resp.get("status_msg"), key) or "unknown error",
                               trace_id=trace_id, http_status=http_status, customer_values=customer_values)
            transient = http_status >= 500 or http_status in (408, 429)
            raise _Failure(step, f"HTTP {http_status}", trace_id=trace_id, http_status=http_status,
                           retryable=transient, retry_here=transient)
        if not isinstance(body, dict):
            raise _Failure(step, "malformed response", trace_id=trace_id, http_status=http_status)
        if not isinstance(base_resp, dict) or not isinstance(code, int) or not has_code:
            raise _Failure(step, "response has no base_resp.status_code", trace_id=trace_id,
                           http_status=http_status)
        if code != 0:
            raise classify(step, code, _scrub(base_resp.get("status_msg"), key) or "unknown error",
                           trace_id=trace_id, http_status=http_status, customer_values=customer_values)
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("MiniMax %s succeeded", step, extra={
                "provider": self.name, "step": step, "trace_id": trace_id, "http_status": http_status})
        return body, trace_id

    def check_key(self) -> None:
        """Look the API key up now, before anything is charged: a slow or failing secret store then
        fails the request up front (503, fast: the SSM client has short timeouts) instead of after
        the reserve.  Cached afterwards (Powertools Parameters), so a warm request pays nothing."""
        try:
            self._key("key lookup")
        except _Failure as failure:
            if failure.kind is errors.ProviderError:      # the lookup itself failed: unavailable, retry later
                failure.kind = errors.ProviderUnavailable
            raise failure.error() from None

    def _key(self, step: str) -> str:
        try:
            key = self._api_key()
        except Exception as exc:  # the secret lookup failed (e.g. SSM unavailable)
            raise _Failure(step, f"API key lookup failed ({type(exc).__name__})",
                           message=f"MiniMax {step} failed: {_OPERATOR_MESSAGE}", retry_here=True) from None
        if not isinstance(key, str) or not key.strip():
            raise _Failure(step, "API key is empty", kind=errors.ProviderAccountProblem,
                           message=f"MiniMax {step} failed: {_OPERATOR_MESSAGE}", retryable=False,
                           operator=True)
        return key.strip()

    # ------------------------------------------------------------------
    # Errors
    # ------------------------------------------------------------------

    def _log(self, failure: _Failure, attempt: int, *, will_retry: bool, level: int = logging.WARNING) -> None:
        logger.log(level, "MiniMax %s failed: %s%s", failure.step, failure.detail,
                   " (will retry)" if will_retry else "", extra={
                           "provider": self.name,
                           "step": failure.step,
                           "provider_code": failure.provider_code,
                           "trace_id": failure.trace_id,
                           "http_status": failure.http_status,
                           "retryable": failure.retryable,
                           "operator_problem": failure.operator,
                           "attempt": attempt,
                           "will_retry": will_retry,
                           "error_class": failure.kind.__name__,
                       })

    def _give_up(self, failure: _Failure, attempt: int = 1) -> errors.UpstreamError:
        """Log a failure that is not retried and build the exception to raise."""
        self._log(failure, attempt, will_retry=False)
        return failure.error()


class SpeechStream:
    """The audio of one streamed synthesis, chunk by chunk, as MiniMax produces it.

    Made by `MiniMaxClient.synthesize_stream` (which has already received the
    first chunk)::

        stream = client.synthesize_stream(request, deadline=deadline)
        with stream:                       # closes the HTTP response however the block ends
            for chunk in stream:           # bytes, in order; never the whole audio at once
                send(chunk)
        stream.complete                    # True: MiniMax sent its final event
        stream.extra_info                  # MiniMax's extra_info (audio_length, usage_characters...)
        stream.usage_characters            # what MiniMax bills, or None
        stream.trace_id                    # MiniMax's trace id (also on every error)

    Iterate once.  Mid-stream failures raise from the iteration as
    `kyma.errors.UpstreamError` subclasses (an error event: classified by its
    code; a dropped connection or a stream that ends without its final event:
    `ProviderError`); nothing is retried after the first chunk.  Stopping
    early (``break``, an exception in the consumer, `close()`) closes the HTTP
    response, so the connection is released at once.  An aggregated copy of the
    whole audio in the final event (sent when MiniMax ignores
    ``exclude_aggregated_audio``) is recognised and dropped, never yielded twice.
    """

    def __init__(self, client: MiniMaxClient, response: requests.Response, audio_format: str,
                 deadline: float, key: str) -> None:
        self.audio_format = audio_format
        self.trace_id: str | None = response.headers.get("Trace-Id") or None
        self.extra_info: dict[str, Any] = {}
        self.complete = False
        self.chunks_received = 0
        self.bytes_received = 0
        self._client = client
        self._response: requests.Response | None = response
        self._deadline = deadline
        self._key = key
        self._events: Generator[dict, None, None] | None = None
        self._first: bytes | None = None
        self._digest = hashlib.sha256()
        self._iterating = False
        self._closed = False

    @property
    def usage_characters(self) -> int | None:
        value = self.extra_info.get("usage_characters")
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    def __enter__(self) -> SpeechStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop reading and release the connection (idempotent)."""
        self._closed = True
        response, self._response = self._response, None
        if response is not None:
            response.close()
        events, self._events = self._events, None
        if events is not None:
            with contextlib.suppress(ValueError):      # "generator already executing"
                events.close()

    def __iter__(self) -> Iterator[bytes]:
        if self._iterating:
            raise RuntimeError("a SpeechStream can be iterated once")
        self._iterating = True
        return self._chunks()

    # --- internals -------------------------------------------------------

    def _start(self) -> None:
        """Read up to the first audio chunk (raises `_Failure`: the caller may retry)."""
        self._events = self._read_events()
        self._first = self._next_audio()

    def _chunks(self) -> Iterator[bytes]:
        try:
            if self._closed:
                return
            if self._first is not None:
                first, self._first = self._first, None
                yield first
            while not self._closed:
                try:
                    chunk = self._next_audio()
                except _Failure as failure:
                    raise self._client._give_up(failure, attempt=1) from None
                if chunk is None:
                    return
                yield chunk
        finally:
            self.close()

    def _next_audio(self) -> bytes | None:
        """The next audio chunk, or None at the end of the stream."""
        if self._events is None or self.complete:
            return None
        step = STEP_STREAM
        for event in self._events:
            if isinstance(event.get("trace_id"), str) and event["trace_id"]:
                self.trace_id = event["trace_id"]
            base_resp = event.get("base_resp")
            code = base_resp.get("status_code") if isinstance(base_resp, dict) else 0
            if isinstance(base_resp, dict) and isinstance(code, int) and not isinstance(code, bool) and code != 0:
                raise classify(step, code, _scrub(base_resp.get("status_msg"), self._key) or "unknown error",
                               trace_id=self.trace_id, http_status=200)
            data = event.get("data")
            if not isinstance(data, dict):
                continue
            audio_hex = data.get("audio")
            try:
                audio = bytes.fromhex(audio_hex) if isinstance(audio_hex, str) and audio_hex else b""
            except ValueError:
                raise _Failure(step, "audio is not valid hex", trace_id=self.trace_id, http_status=200) from None
            if data.get("status") == 2:
                extra = event.get("extra_info")
                self.extra_info = extra if isinstance(extra, dict) else {}
                self.complete = True
                self._drain()
                if audio and not self._is_aggregate(audio):
                    return self._received(audio)
                return None
            if audio:
                return self._received(audio)
        raise _Failure(step, "answer cut off (the stream ended before its final event)",
                       message=f"could not reach MiniMax during {step}", trace_id=self.trace_id,
                       http_status=200, retry_here=True)

    def _drain(self) -> None:
        """Read to the end of the answer (nothing should follow the final event), so that
        the connection goes back to the pool instead of being closed."""
        try:
            for _ in self._events or ():
                pass
        except _Failure:
            pass            # all audio is in; what happens after the final event does not matter

    def _received(self, audio: bytes) -> bytes:
        self.chunks_received += 1
        self.bytes_received += len(audio)
        self._digest.update(audio)
        return audio

    def _is_aggregate(self, audio: bytes) -> bool:
        """Is this final-event audio the whole audio again (MiniMax's default)?"""
        if not self.bytes_received:
            return False
        return len(audio) >= self.bytes_received or hashlib.sha256(audio).digest() == self._digest.digest()

    def _read_events(self) -> Generator[dict, None, None]:
        """The stream's Server-Sent Events, as parsed JSON objects, as they arrive."""
        response, step, deadline = self._response, STEP_STREAM, self._deadline
        if response is None:
            return
        buffer = bytearray()
        pending: list[bytes] = []
        try:
            for block in response.iter_content(_CHUNK):
                buffer += block
                while True:
                    newline = buffer.find(b"\n")
                    if newline < 0:
                        break
                    line = bytes(buffer[:newline]).rstrip(b"\r")
                    del buffer[:newline + 1]
                    event = _sse_line(line, pending)
                    if event is not None:
                        yield event
                if len(buffer) > MAX_RESPONSE_BYTES:
                    raise _Failure(step, "answer too large", trace_id=self.trace_id, retryable=False)
                if time.monotonic() > deadline:
                    raise _timeout(step, "deadline passed while streaming", trace_id=self.trace_id)
        except requests.RequestException as exc:
            if self._closed:
                return
            if _looks_like_timeout(exc, deadline):
                raise _timeout(step, type(exc).__name__, trace_id=self.trace_id) from None
            raise _Failure(step, f"answer cut off ({type(exc).__name__})",
                           message=f"could not reach MiniMax during {step}", trace_id=self.trace_id,
                           http_status=200, retry_here=True) from None
        except (OSError, AttributeError, ValueError):
            # urllib3 raises these when the response was closed under it (consumer stopped).
            if self._closed:
                return
            raise _Failure(step, "answer cut off (connection lost)",
                           message=f"could not reach MiniMax during {step}", trace_id=self.trace_id,
                           http_status=200, retry_here=True) from None
        for line in (bytes(buffer).rstrip(b"\r"), b""):
            event = _sse_line(line, pending)
            if event is not None:
                yield event


def _sse_line(line: bytes, pending: list[bytes]) -> dict | None:
    """Feed one line of an event stream; returns an event once one is complete.

    MiniMax sends one JSON object per ``data:`` line; a blank line ends an event
    (Server-Sent Events).  Both are honoured: a ``data:`` line that completes a JSON
    object is an event at once, and data split over several lines is joined.
    """
    if line.startswith(b"data:"):
        value = line[5:]
        pending.append(value[1:] if value.startswith(b" ") else value)
        try:
            event = json.loads(b"\n".join(pending))
        except ValueError:
            return None
        pending.clear()
        return event if isinstance(event, dict) else None
    if line == b"" and pending:
        joined = b"\n".join(pending)
        pending.clear()
        try:
            event = json.loads(joined)
        except ValueError:
            raise _Failure(STEP_STREAM, "malformed event in the stream", http_status=200) from None
        return event if isinstance(event, dict) else None
    return None          # comments (":"), event:/id:/retry: fields, blank keep-alives


def _t2a_payload(request: SynthesisRequest, *, stream: bool) -> dict[str, Any]:
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
    return payload


def _read_body(response: requests.Response, deadline: float) -> bytearray:
    raw = bytearray()
    for chunk in response.iter_content(_CHUNK):
        raw += chunk
        if len(raw) > MAX_RESPONSE_BYTES:
            raise _TooLarge()
        if time.monotonic() > deadline:
            raise _DeadlinePassed()
    return raw


def _timeout(step: str, detail: str, *, trace_id: str | None = None) -> _Failure:
    return _Failure(step, f"no answer in time ({detail})", message=f"MiniMax did not answer in time during {step}",
                    trace_id=trace_id, retry_here=True)


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
