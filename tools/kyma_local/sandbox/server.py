"""The MiniMax sandbox: a real HTTP server on loopback speaking MiniMax's wire format.

One stand-in for MiniMax, used by the local stack (`make run`) and by the
tests.  It follows ``/work/shared/reference/minimax-upstream.md``: the same
paths, field names, ``base_resp`` envelope, ``trace_id`` in the body and the
``Trace-Id`` header, and HTTP 200 with a non-zero ``base_resp.status_code``
for errors (a missing or wrong bearer token is 200 + 1004).

    with MiniMaxSandbox(api_key="test-minimax-key") as sandbox:
        client = MiniMaxClient(sandbox.base_url, lambda: "test-minimax-key")
        sandbox.fail_when("/v1/t2a_v2", 1002, times=2)
        ...

Endpoints
=========

``POST /v1/files/upload``  multipart (``purpose=voice_clone``, ``file``) -> ``file.file_id``
``POST /v1/voice_clone``   registers ``voice_id`` for an uploaded file (2039 if the id
                           exists or ever existed)
``POST /v1/t2a_v2``        hex audio; with ``stream: true`` Server-Sent Events: one
                           ``data: {json}`` event per chunk (``data.audio`` hex,
                           ``data.status`` 1), then a final event (``status`` 2) with
                           ``extra_info`` and ``base_resp`` and -- unless
                           ``stream_options.exclude_aggregated_audio`` -- the whole
                           audio again.  ``wav`` cannot stream (2013).
``POST /v1/get_voice``     ``voice_type`` system / voice_cloning / voice_generation / all
``POST /v1/delete_voice``  ``voice_type: voice_cloning``; unknown or gone -> 20132

Validation like MiniMax: models, text < 10,000 characters, emotions per model,
``language_boost`` from MiniMax's list, invisible characters over 10 % (1042),
formats / sample rates / bitrates / channels, unknown voices (20132).  The
7-day rule lives in `voices.VoiceRegistry`; the system voices in `catalog`.

Streaming pace: the first chunk after ``first_chunk_ms``, then one chunk of
about ``chunk_ms`` of audio every ``chunk_interval_ms`` (`audio.chunks`: the
chunks concatenated are the non-stream answer, byte for byte).

Failure injection
=================

``fail_next(path, mode, ...)`` -- the next call(s) to `path` fail (one shot each,
queued); ``fail_when(path, code_or_mode, match=..., times=...)`` -- a persistent
rule.  Modes:

===================  =========================================================
``base_resp``        HTTP 200, ``base_resp`` ``code=`` (any code), ``msg=``
``http_500``         HTTP 500 (or ``status=``) with an HTML body, Trace-Id header
``timeout``          sleeps ``seconds=`` (default 30), then answers 1001
``malformed_json``   HTTP 200 with a truncated JSON body
``malformed_hex``    (t2a_v2) success, but ``data.audio`` is not hex
``missing_field``    success without the field a client needs
``connection_drop``  reads the request, closes the socket without answering
``lost_answer``      processes the request (a file stored, a voice cloned or used...),
                     then closes the socket without answering: the client cannot
                     know that it succeeded
``stream_error``     (streamed t2a_v2) after ``after_chunks=`` chunks, an error
                     event with ``base_resp`` ``code=``; a non-stream call gets
                     the plain error answer
``stream_drop``      (streamed t2a_v2) after ``after_chunks=`` chunks, the
                     connection is dropped mid-stream
===================  =========================================================

HTTP control (loopback only, no key): ``/__sandbox/...`` -- see `control.py`.

Not modelled (the service checks these itself, or only injection produces them):
the reference clip's duration and format (2037, 1043/1044 -- the upload takes any
bytes), ``output_format: "url"``, ``voice_clone``'s rendered preview (``demo_audio``
is empty; the preview never counts as use), ``timbre_weights``, opus/pcmu formats,
other accounts' voices (2042), and rate limits (1002/1039/1041/2045: inject them).
"""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import ipaddress
import itertools
import json
import os
import re
import socket
import sys
import threading
import time
import unicodedata
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from requests.structures import CaseInsensitiveDict
from requests_toolbelt.multipart.decoder import MultipartDecoder

from kyma_local.sandbox import audio as sandbox_audio
from kyma_local.sandbox import catalog
from kyma_local.sandbox.voices import SEVEN_DAYS, UnknownVoice, VoiceRegistry, VoiceTaken, date_of

PATH_UPLOAD = "/v1/files/upload"
PATH_CLONE = "/v1/voice_clone"
PATH_T2A = "/v1/t2a_v2"
PATH_GET_VOICE = "/v1/get_voice"
PATH_DELETE_VOICE = "/v1/delete_voice"
PATHS = (PATH_UPLOAD, PATH_CLONE, PATH_T2A, PATH_GET_VOICE, PATH_DELETE_VOICE)
CONTROL_PREFIX = "/__sandbox/"

MODES = frozenset({"http_500", "base_resp", "timeout", "malformed_json", "malformed_hex",
                   "missing_field", "connection_drop", "lost_answer", "stream_error", "stream_drop"})

MODELS = frozenset({
    "speech-2.8-hd", "speech-2.8-turbo", "speech-2.6-hd", "speech-2.6-turbo",
    "speech-02-hd", "speech-02-turbo", "speech-01-hd", "speech-01-turbo",
})
BASE_EMOTIONS = frozenset({"happy", "sad", "angry", "fearful", "disgusted", "surprised", "calm"})
# `fluent` and `whisper` exist only on the speech-2.6 models (speech-2.8 takes no whisper).
EMOTIONS_2_6 = BASE_EMOTIONS | {"fluent", "whisper"}


def emotions_for(model: str) -> frozenset[str]:
    return EMOTIONS_2_6 if model.startswith("speech-2.6-") else BASE_EMOTIONS


# MiniMax's fixed language_boost list: "auto" and 40 languages.
LANGUAGE_BOOSTS = frozenset({
    "auto", "Chinese", "Chinese,Yue", "English", "Arabic", "Russian", "Spanish", "French",
    "Portuguese", "German", "Turkish", "Dutch", "Ukrainian", "Vietnamese", "Indonesian", "Japanese",
    "Italian", "Korean", "Thai", "Polish", "Romanian", "Greek", "Czech", "Finnish", "Hindi",
    "Bulgarian", "Danish", "Hebrew", "Malay", "Persian", "Slovak", "Swedish", "Croatian",
    "Filipino", "Hungarian", "Norwegian", "Slovenian", "Catalan", "Nynorsk", "Tamil", "Afrikaans",
})
FORMATS = frozenset({"mp3", "wav", "flac", "pcm"})
STREAM_FORMATS = frozenset({"mp3", "flac", "pcm"})
SAMPLE_RATES = frozenset({8000, 16000, 22050, 24000, 32000, 44100})
BITRATES = frozenset({32000, 64000, 128000, 256000})
MAX_TEXT = 10_000               # text must be shorter than this
MAX_CLONE_PREVIEW_TEXT = 1000
MAX_INVISIBLE_RATIO = 0.10
MAX_UPLOAD = 20 * 1024 * 1024   # MiniMax's own cap on a clone reference
MAX_BODY = 64 * 1024 * 1024     # what the sandbox reads at all

DEFAULT_FIRST_CHUNK_MS = 300
DEFAULT_CHUNK_MS = 160
DEFAULT_CHUNK_INTERVAL_MS = 40

_VOICE_ID = re.compile(r"[A-Za-z][A-Za-z0-9_-]{6,254}[A-Za-z0-9]")

# base_resp.status_msg per code (MiniMax's error table, minimax-upstream.md §6).
STATUS_MESSAGES = {
    0: "success",
    1000: "unknown error",
    1001: "request timeout",
    1002: "rate limit exceeded",
    1004: "login fail: Please carry the API secret key in the 'Authorization' field of the request header",
    1008: "insufficient balance",
    1013: "internal service error",
    1024: "internal error",
    1026: "input new_sensitive",
    1027: "output new_sensitive",
    1033: "system error",
    1039: "token limit exceeded",
    1041: "conn limit exceeded",
    1042: "invisible characters exceed 10% of the text",
    1043: "asr similarity check failed",
    1044: "clone prompt similarity check failed",
    2013: "invalid params",
    20132: "invalid samples or voice_id",
    2037: "voice clip duration too short or too long",
    2038: "no voice clone permission",
    2039: "voice id already exists",
    2042: "no access to this voice_id",
    2045: "rate growth limit exceeded",
    2048: "prompt audio too long",
    2049: "invalid api key",
    2056: "usage limit exceeded",
}
OFFICIAL_CODES = frozenset(STATUS_MESSAGES) - {0}

DEFAULT_API_KEY = "test-minimax-key"


@dataclass
class RecordedCall:
    """One request the sandbox received (recorded before it is answered)."""

    method: str
    path: str
    headers: CaseInsensitiveDict
    json: Any = None                 # parsed JSON body
    multipart: dict | None = None    # upload: purpose, filename, content_type, size, sha256, file
    body_size: int = 0
    body_text: str = ""              # the JSON body as sent, or the upload's fields (for `match=`)
    timestamp: float = 0.0           # time.time()
    monotonic: float = 0.0           # time.monotonic()
    client_port: int = 0             # the same port twice = a reused connection
    trace_id: str = ""
    injected: str | None = None      # the failure mode used on this call, if any
    http_status: int | None = None   # filled in when answered
    status_code: int | None = None   # base_resp.status_code answered, if any
    stream: bool = False             # a streamed t2a_v2 answer (Server-Sent Events)
    chunks_sent: int = 0             # audio events written (streamed calls)
    chunk_times: list[float] = field(default_factory=list)   # time.monotonic() of each audio event
    finished: bool = False           # the final status-2 event was written
    client_closed: bool = False      # the client went away mid-answer

    def __getitem__(self, name: str) -> Any:  # dict-style access for convenience
        return getattr(self, name)

    @property
    def file_bytes(self) -> bytes | None:
        return self.multipart.get("file") if self.multipart else None

    def summary(self) -> dict[str, Any]:
        """What the HTTP control endpoint reports (no bodies, no headers)."""
        return {"method": self.method, "path": self.path, "trace_id": self.trace_id,
                "http_status": self.http_status, "status_code": self.status_code,
                "injected": self.injected, "stream": self.stream, "chunks_sent": self.chunks_sent,
                "finished": self.finished, "client_closed": self.client_closed,
                "timestamp": self.timestamp, "json": self.json if self.path != PATH_UPLOAD else None}


@dataclass(frozen=True)
class Failure:
    mode: str
    code: int = 1000
    msg: str = ""
    status: int = 500
    seconds: float = 30.0
    after_chunks: int = 0


@dataclass
class Rule:
    """A persistent failure: calls to `path` that `match` fail, `times` times (None: always)."""

    path: str
    failure: Failure
    match: Callable[[RecordedCall], bool] | str | None = None
    times: int | None = None
    hits: int = 0

    def applies(self, call: RecordedCall) -> bool:
        if call.path != self.path or (self.times is not None and self.hits >= self.times):
            return False
        if self.match is None:
            return True
        if isinstance(self.match, str):
            return self.match in call.body_text
        return bool(self.match(call))


class _Reject(Exception):
    def __init__(self, code: int, msg: str | None = None) -> None:
        super().__init__(code)
        self.code = code
        self.msg = msg or STATUS_MESSAGES.get(code, "error")


@dataclass
class _Synthesis:
    """A validated t2a_v2 request."""

    body: dict
    model: str
    text: str
    voice_id: str
    fmt: str
    rate: int
    bitrate: int
    channels: int
    stream: bool
    exclude_aggregated: bool
    invisible_ratio: float


class MiniMaxSandbox:
    def __init__(self, api_key: str = DEFAULT_API_KEY, *, host: str = "127.0.0.1", port: int = 0,
                 voice_window_seconds: float = SEVEN_DAYS, first_chunk_ms: float = DEFAULT_FIRST_CHUNK_MS,
                 chunk_ms: float = DEFAULT_CHUNK_MS, chunk_interval_ms: float = DEFAULT_CHUNK_INTERVAL_MS,
                 clock: Callable[[], float] = time.time) -> None:
        if not _is_loopback(host):
            raise ValueError("the sandbox only listens on loopback")
        self.api_key = api_key
        self.first_chunk_ms = float(first_chunk_ms)
        # Test control: send the aggregated audio in the final event even when the request
        # excludes it (a MiniMax that ignores stream_options.exclude_aggregated_audio).
        self.always_aggregate = False
        self.chunk_ms = float(chunk_ms)
        self.chunk_interval_ms = float(chunk_interval_ms)
        self._host = host
        self._port = port
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._connections: set[socket.socket] = set()
        self._failures: dict[str, list[Failure]] = {}
        self._rules: list[Rule] = []
        self._delays: dict[str, float] = {}
        self._calls: list[RecordedCall] = []
        self._files: dict[int, dict] = {}
        self._file_of_voice: dict[str, int] = {}
        self._file_ids = itertools.count(381_945_770_001)
        self._audio_size: int | None = None
        self._last_audio: bytes | None = None
        self.registry = VoiceRegistry(window_seconds=voice_window_seconds, clock=clock)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> MiniMaxSandbox:
        """Configured from ``KYMA_SANDBOX_*`` variables (the local stack's way)."""
        env = os.environ if env is None else env

        def num(name: str, default: float) -> float:
            return float(env.get(name) or default)

        options: dict[str, Any] = {
            "port": int(env.get("KYMA_SANDBOX_PORT") or 0),
            "voice_window_seconds": num("KYMA_SANDBOX_VOICE_WINDOW_SECONDS", SEVEN_DAYS),
            "first_chunk_ms": num("KYMA_SANDBOX_FIRST_CHUNK_MS", DEFAULT_FIRST_CHUNK_MS),
            "chunk_ms": num("KYMA_SANDBOX_CHUNK_MS", DEFAULT_CHUNK_MS),
            "chunk_interval_ms": num("KYMA_SANDBOX_CHUNK_INTERVAL_MS", DEFAULT_CHUNK_INTERVAL_MS),
        }
        options.update(overrides)
        return cls(**options)

    # ------------------------------------------------------------------
    # Life cycle
    # ------------------------------------------------------------------

    def start(self) -> MiniMaxSandbox:
        if self._server is not None:
            return self
        self._stopping.clear()
        server = _Server((self._host, self._port), _Handler)
        server.sandbox = self
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01},
                                        name="minimax-sandbox", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping.set()            # wakes handlers sleeping in delays, timeouts and pacing
        server.shutdown()
        server.server_close()
        with self._lock:
            connections = list(self._connections)
        for conn in connections:        # ends idle keep-alive connections
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> MiniMaxSandbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("the MiniMax sandbox is not running")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def control_url(self) -> str:
        return self.base_url + CONTROL_PREFIX.rstrip("/")

    # ------------------------------------------------------------------
    # Test controls
    # ------------------------------------------------------------------

    def fail_next(self, path: str, mode: str, *, code: int = 1000, msg: str | None = None,
                  status: int = 500, seconds: float = 30.0, after_chunks: int = 0, times: int = 1) -> None:
        """Make the next call (or `times` calls) to `path` fail in `mode` (one shot each; queued)."""
        failure = _failure(path, mode, code=code, msg=msg, status=status, seconds=seconds,
                           after_chunks=after_chunks)
        with self._lock:
            self._failures.setdefault(path, []).extend([failure] * int(times))

    def fail_when(self, path: str, code: int | str, *, match: Callable[[RecordedCall], bool] | str | None = None,
                  times: int | None = None, msg: str | None = None, status: int = 500, seconds: float = 30.0,
                  after_chunks: int = 0) -> Rule:
        """A persistent rule: calls to `path` fail while it applies.

        `code` is a ``base_resp`` status code (an int: any code, official or not) or a
        mode name (see the module docstring).  `match` narrows the rule to some calls:
        a callable on the `RecordedCall`, or a substring of the request body (JSON as
        sent; for uploads, the form fields and file name).  `times`: how many calls
        it fails (None: until removed with `clear_failures` or `reset`).
        """
        mode, failure_code = ("base_resp", code) if isinstance(code, int) else (code, 1000)
        failure = _failure(path, mode, code=failure_code, msg=msg, status=status, seconds=seconds,
                           after_chunks=after_chunks)
        rule = Rule(path, failure, match, times)
        with self._lock:
            self._rules.append(rule)
        return rule

    def clear_failures(self) -> None:
        with self._lock:
            self._failures.clear()
            self._rules.clear()

    def set_delay(self, path: str, seconds: float) -> None:
        """Answer every call to `path` successfully, but only after `seconds` (0 clears)."""
        if path not in PATHS:
            raise ValueError(f"unknown path {path!r}")
        with self._lock:
            if seconds > 0:
                self._delays[path] = float(seconds)
            else:
                self._delays.pop(path, None)

    def audio_size(self, n: int | None) -> None:
        """Make t2a_v2 audio exactly `n` bytes long (None: natural length)."""
        with self._lock:
            self._audio_size = None if n is None else int(n)

    def register_voice(self, voice_id: str, file_id: int | None = None) -> None:
        """Pretend `voice_id` was cloned here just now (for tests that only synthesize).
        A live voice of that id is kept as it is."""
        with self._lock:
            voice = self.registry.register(voice_id, file_id if file_id is not None else next(self._file_ids))
            self._file_of_voice[voice_id] = voice.file_id

    def advance_clock(self, seconds: float) -> None:
        """Move the sandbox's clock forward (the 7-day rule sees the new time)."""
        self.registry.advance(seconds)

    def reset(self, *, voices: bool = False) -> None:
        """Forget failures, rules, delays, the audio size, recorded calls (and, with
        `voices`, every cloned voice, uploaded file and clock offset)."""
        with self._lock:
            self._failures.clear()
            self._rules.clear()
            self._delays.clear()
            self._audio_size = None
            self._calls.clear()
            self._last_audio = None
            if voices:
                self.registry.forget()
                self._files.clear()
                self._file_of_voice.clear()

    @property
    def calls(self) -> list[RecordedCall]:
        with self._lock:
            return list(self._calls)

    def calls_to(self, path: str) -> list[RecordedCall]:
        with self._lock:
            return [c for c in self._calls if c.path == path]

    @property
    def voices(self) -> dict[str, int]:
        """Live cloned voices -> their file id."""
        with self._lock:
            return {v: self._file_of_voice[v] for v in self.registry.all() if self.registry.is_live(v)}

    @property
    def files(self) -> dict[int, dict]:
        with self._lock:
            return {k: dict(v) for k, v in self._files.items()}

    @property
    def last_audio(self) -> bytes | None:
        with self._lock:
            return self._last_audio

    # ------------------------------------------------------------------
    # Request handling (runs on handler threads)
    # ------------------------------------------------------------------

    def _handle(self, h: _Handler) -> None:
        path = h.path.split("?", 1)[0]
        trace_id = uuid.uuid4().hex
        try:
            body = _read_body(h)
        except ValueError as exc:
            self._send_raw(h, None, 413 if "large" in str(exc) else 400, b"bad request",
                           "text/plain", trace_id)
            return
        if path.startswith(CONTROL_PREFIX):
            self._control(h, path[len(CONTROL_PREFIX):], body)
            return
        call = RecordedCall(
            method=h.command, path=path, headers=CaseInsensitiveDict(h.headers.items()),
            body_size=len(body), timestamp=time.time(), monotonic=time.monotonic(),
            client_port=h.client_address[1], trace_id=trace_id,
        )
        parsed_json: Any = None
        parts: dict | None = None
        if path == PATH_UPLOAD:
            parts = _parse_multipart(body, h.headers.get("Content-Type", ""))
            if parts is not None:
                call.multipart = _multipart_summary(parts)
                call.body_text = json.dumps({**parts["fields"], "filename": call.multipart["filename"]})
        elif path in PATHS:
            call.body_text = body.decode("utf-8", "replace")
            try:
                parsed_json = json.loads(body)
            except ValueError:
                parsed_json = None
            call.json = parsed_json
            call.stream = path == PATH_T2A and isinstance(parsed_json, dict) and parsed_json.get("stream") is True
        del body

        with self._lock:
            self._calls.append(call)
            failure = self._next_failure(call)
            delay = self._delays.get(path, 0.0)

        try:
            if path not in PATHS or h.command != "POST":
                self._send_raw(h, call, 404, b"404 page not found", "text/plain", trace_id)
                return
            if failure is not None and failure.mode not in ("stream_error", "stream_drop", "lost_answer"):
                call.injected = failure.mode
                self._inject(h, call, failure)
                return
            if failure is not None and failure.mode == "lost_answer":
                call.injected = failure.mode
                h.lose_answer = True            # processed below; _send_* drops instead of answering
            if delay and self._stopping.wait(delay):
                self._drop(h)
                return
            if h.headers.get("Authorization", "") != f"Bearer {self.api_key}":
                raise _Reject(1004)
            if path == PATH_UPLOAD:
                self._send_json(h, call, self._upload(parts))
            elif path == PATH_CLONE:
                self._send_json(h, call, self._clone(parsed_json, trace_id))
            elif path == PATH_GET_VOICE:
                self._send_json(h, call, self._get_voice(parsed_json, trace_id))
            elif path == PATH_DELETE_VOICE:
                self._send_json(h, call, self._delete_voice(parsed_json, trace_id))
            else:
                self._t2a(h, call, parsed_json, failure)
        except _Reject as rej:
            self._send_json(h, call, _error_body(rej.code, rej.msg, trace_id))

    def _next_failure(self, call: RecordedCall) -> Failure | None:
        queue = self._failures.get(call.path)
        if queue:
            return queue.pop(0)
        for rule in self._rules:
            if rule.applies(call):
                rule.hits += 1
                return rule.failure
        return None

    def _inject(self, h: _Handler, call: RecordedCall, failure: Failure) -> None:
        mode, trace_id = failure.mode, call.trace_id
        if mode == "http_500":
            status = failure.status
            page = (f"<html><head><title>{status}</title></head><body><center><h1>{status} "
                    f"{h.responses.get(status, ('Error',))[0]}</h1></center></body></html>")
            self._send_raw(h, call, status, page.encode(), "text/html", trace_id)
        elif mode == "base_resp":
            self._send_json(h, call, _error_body(failure.code, failure.msg, trace_id))
        elif mode == "timeout":
            if self._stopping.wait(failure.seconds):
                self._drop(h)
                return
            self._send_json(h, call, _error_body(1001, STATUS_MESSAGES[1001], trace_id))
        elif mode == "malformed_json":
            self._send_raw(h, call, 200,
                           b'{"data": {"audio": "4944330400000000', "application/json", trace_id)
        elif mode == "connection_drop":
            self._drop(h)
        elif mode == "missing_field":
            self._send_json(h, call, _missing_field_body(call.path, trace_id))
        elif mode == "malformed_hex":
            body = {"data": {"audio": "4944330zz9" + "0" * 64, "status": 2},
                    "extra_info": {}, "trace_id": trace_id, "base_resp": _base_resp(0)}
            self._send_json(h, call, body)

    # --- endpoints -----------------------------------------------------

    def _upload(self, parts: dict | None) -> dict:
        if parts is None:
            raise _Reject(2013, "invalid params, expected multipart/form-data")
        purpose = parts["fields"].get("purpose")
        if purpose != "voice_clone":
            raise _Reject(2013, "invalid params, purpose must be voice_clone")
        upload = parts["file"]
        if upload is None or not upload["content"]:
            raise _Reject(2013, "invalid params, file is empty")
        if len(upload["content"]) > MAX_UPLOAD:
            raise _Reject(2013, "invalid params, file too large")
        created = int(time.time())
        with self._lock:
            file_id = next(self._file_ids)
            self._files[file_id] = {
                "filename": upload["filename"], "bytes": len(upload["content"]),
                "sha256": hashlib.sha256(upload["content"]).hexdigest(), "purpose": purpose,
                "created_at": created,
            }
        return {
            "file": {"file_id": file_id, "bytes": len(upload["content"]), "created_at": created,
                     "filename": upload["filename"], "purpose": purpose},
            "base_resp": _base_resp(0),
        }

    def _clone(self, body: Any, trace_id: str) -> dict:
        if not isinstance(body, dict):
            raise _Reject(2013, "invalid params, body is not a JSON object")
        file_id = body.get("file_id")
        voice_id = body.get("voice_id")
        if not isinstance(file_id, int) or isinstance(file_id, bool):
            raise _Reject(2013, "invalid params, file_id must be an integer")
        if not isinstance(voice_id, str) or not _VOICE_ID.fullmatch(voice_id):
            raise _Reject(2013, "invalid params, voice_id: 8-256 characters, starting with a "
                                "letter, letters/digits/-/_ only, not ending with - or _")
        for flag in ("need_noise_reduction", "need_volume_normalization"):
            if flag in body and not isinstance(body[flag], bool):
                raise _Reject(2013, f"invalid params, {flag} must be a boolean")
        if body.get("text") is not None:        # the preview: rendered upstream, never counts as use
            text = body["text"]
            if not isinstance(text, str) or len(text) > MAX_CLONE_PREVIEW_TEXT:
                raise _Reject(2013, f"invalid params, text: at most {MAX_CLONE_PREVIEW_TEXT} characters")
            if body.get("model") not in MODELS:
                raise _Reject(2013, "invalid params, model is required with text")
        with self._lock:
            if file_id not in self._files:
                raise _Reject(2013, "invalid params, file_id not found")
            try:
                self.registry.clone(voice_id, file_id)
            except VoiceTaken:
                raise _Reject(2039) from None
            self._file_of_voice[voice_id] = file_id
        return {"input_sensitive": False, "input_sensitive_type": 0, "demo_audio": "",
                "trace_id": trace_id, "base_resp": _base_resp(0)}

    def _get_voice(self, body: Any, trace_id: str) -> dict:
        voice_type = body.get("voice_type") if isinstance(body, dict) else None
        if voice_type not in ("system", "voice_cloning", "voice_generation", "all"):
            raise _Reject(2013, "invalid params, voice_type: system, voice_cloning, voice_generation or all")
        out: dict[str, Any] = {}
        if voice_type in ("system", "all"):
            out["system_voice"] = catalog.system_voices()
        if voice_type in ("voice_cloning", "all"):
            out["voice_cloning"] = [{"voice_id": v.voice_id, "description": [],
                                     "created_time": date_of(v.created_at)} for v in self.registry.listed()]
        if voice_type in ("voice_generation", "all"):
            out["voice_generation"] = []
        return {**out, "trace_id": trace_id, "base_resp": _base_resp(0)}

    def _delete_voice(self, body: Any, trace_id: str) -> dict:
        if not isinstance(body, dict):
            raise _Reject(2013, "invalid params, body is not a JSON object")
        voice_type, voice_id = body.get("voice_type"), body.get("voice_id")
        if voice_type not in ("voice_cloning", "voice_generation"):
            raise _Reject(2013, "invalid params, voice_type must be voice_cloning or voice_generation")
        if not isinstance(voice_id, str) or not voice_id:
            raise _Reject(2013, "invalid params, voice_id is required")
        if catalog.is_system_voice(voice_id):
            raise _Reject(2013, "invalid params, system voices cannot be deleted")
        try:
            voice = self.registry.delete(voice_id)
        except UnknownVoice:
            raise _Reject(20132, "invalid voice_id, voice not exist") from None
        return {"voice_id": voice_id, "created_time": str(int(voice.created_at)), "trace_id": trace_id,
                "base_resp": _base_resp(0)}

    # --- t2a_v2 --------------------------------------------------------

    def _t2a(self, h: _Handler, call: RecordedCall, body: Any, failure: Failure | None) -> None:
        synthesis = _validate_t2a(body)
        voice_id = synthesis.voice_id
        if not catalog.is_system_voice(voice_id):
            try:
                self.registry.use(voice_id)          # a real T2A call: the clone is kept
            except UnknownVoice:
                raise _Reject(20132, f"invalid voice_id, voice {voice_id} not exist") from None
        if failure is not None and failure.mode != "lost_answer":
            call.injected = failure.mode
            if not synthesis.stream:
                if failure.mode == "stream_drop":
                    self._drop(h)
                    return
                raise _Reject(failure.code, failure.msg)
        with self._lock:
            size = self._audio_size
        rendered = sandbox_audio.render(synthesis.fmt, synthesis.rate, synthesis.channels, synthesis.bitrate,
                                        _seed(synthesis.body), sandbox_audio.LEAD_IN_MS
                                        + sandbox_audio.MS_PER_CHAR * len(synthesis.text), size)
        with self._lock:
            self._last_audio = rendered.audio
        extra_info = _extra_info(synthesis, rendered)
        if synthesis.stream:
            self._stream(h, call, synthesis, rendered, extra_info, failure)
            return
        self._send_json(h, call, {
            "data": {"audio": rendered.audio.hex(), "status": 2},
            "extra_info": extra_info,
            "trace_id": call.trace_id,
            "base_resp": _base_resp(0),
        })

    def _stream(self, h: _Handler, call: RecordedCall, synthesis: _Synthesis,
                rendered: sandbox_audio.Rendered, extra_info: dict, failure: Failure | None) -> None:
        if h.lose_answer:
            self._drop(h)
            return
        pieces = sandbox_audio.chunks(rendered, self.chunk_ms)
        call.http_status = 200
        try:
            h.send_response(200)
            h.send_header("Content-Type", "text/event-stream")
            h.send_header("Cache-Control", "no-cache")
            h.send_header("Transfer-Encoding", "chunked")
            h.send_header("Trace-Id", call.trace_id)
            h.end_headers()
            if self._stopping.wait(self.first_chunk_ms / 1000):
                self._drop(h)
                return
            for index, piece in enumerate(pieces):
                if failure is not None and index == failure.after_chunks:
                    self._stream_failure(h, call, failure)
                    return
                if index and self._stopping.wait(self.chunk_interval_ms / 1000):
                    self._drop(h)
                    return
                _write_event(h, {"data": {"audio": piece.hex(), "status": 1}, "trace_id": call.trace_id,
                                 "base_resp": _base_resp(0)})
                call.chunks_sent += 1
                call.chunk_times.append(time.monotonic())
            if failure is not None:
                self._stream_failure(h, call, failure)
                return
            excluded = synthesis.exclude_aggregated and not self.always_aggregate
            aggregated = "" if excluded else rendered.audio.hex()
            _write_event(h, {"data": {"audio": aggregated, "status": 2}, "extra_info": extra_info,
                             "trace_id": call.trace_id, "base_resp": _base_resp(0)})
            _end_chunked(h)
            call.status_code = 0
            call.finished = True
        except OSError:         # the client went away (closed early, or gave up)
            call.client_closed = True
            h.close_connection = True

    def _stream_failure(self, h: _Handler, call: RecordedCall, failure: Failure) -> None:
        if failure.mode == "stream_drop":
            self._drop(h)
            return
        call.status_code = failure.code
        _write_event(h, {"trace_id": call.trace_id, "base_resp": _base_resp(failure.code, failure.msg)})
        _end_chunked(h)

    # --- HTTP control (loopback only) ------------------------------------

    def _control(self, h: _Handler, action: str, body: bytes) -> None:
        if not _is_loopback(h.client_address[0]):
            self._send_raw(h, None, 403, b'{"error": "loopback only"}', "application/json", "")
            return
        try:
            args = json.loads(body) if body else {}
            if not isinstance(args, dict):
                raise ValueError("the body must be a JSON object")
            answer = self._control_action(h.command, action, args)
        except (ValueError, TypeError, KeyError) as exc:
            self._send_raw(h, None, 400, json.dumps({"error": str(exc)}).encode(), "application/json", "")
            return
        self._send_raw(h, None, 200, json.dumps(answer).encode(), "application/json", "")

    def _control_action(self, method: str, action: str, args: dict) -> Any:
        if method == "GET" and action == "calls":
            return [c.summary() for c in self.calls]
        if method == "GET" and action == "voices":
            return {v: voice.as_dict() for v, voice in self.registry.all().items()}
        if method == "GET" and action == "config":
            return {"base_url": self.base_url, "voice_window_seconds": self.registry.window_seconds,
                    "first_chunk_ms": self.first_chunk_ms, "chunk_ms": self.chunk_ms,
                    "chunk_interval_ms": self.chunk_interval_ms}
        if method != "POST":
            raise ValueError(f"unknown control {method} {action}")
        failure_options = {k: args[k] for k in ("msg", "status", "seconds", "after_chunks") if k in args}
        if action == "fail_next":
            self.fail_next(args["path"], args["mode"], code=int(args.get("code", 1000)),
                           times=int(args.get("times", 1)), **failure_options)
        elif action == "fail_when":
            match = args.get("match")
            if match is not None and not isinstance(match, str):
                raise ValueError("match: a substring of the request body")
            times = args.get("times")
            self.fail_when(args["path"], args["code"], match=match,
                           times=None if times is None else int(times), **failure_options)
        elif action == "clear_failures":
            self.clear_failures()
        elif action == "set_delay":
            self.set_delay(args["path"], float(args["seconds"]))
        elif action == "audio_size":
            self.audio_size(None if args.get("size") is None else int(args["size"]))
        elif action == "register_voice":
            self.register_voice(args["voice_id"])
        elif action == "advance_clock":
            self.advance_clock(float(args["seconds"]))
        elif action == "reset":
            self.reset(voices=bool(args.get("voices", False)))
        else:
            raise ValueError(f"unknown control {action!r}")
        return {"ok": True}

    # --- sending -------------------------------------------------------

    def _send_json(self, h: _Handler, call: RecordedCall, body: dict) -> None:
        data = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
        base = body.get("base_resp")
        if isinstance(base, dict):
            call.status_code = base.get("status_code")
        self._send_raw(h, call, 200, data, "application/json; charset=utf-8", call.trace_id)

    @classmethod
    def _send_raw(cls, h: _Handler, call: RecordedCall | None, status: int, data: bytes,
                  content_type: str, trace_id: str) -> None:
        if h.lose_answer:
            cls._drop(h)
            return
        if call is not None:
            call.http_status = status
        try:
            h.send_response(status)
            h.send_header("Content-Type", content_type)
            h.send_header("Content-Length", str(len(data)))
            if trace_id:
                h.send_header("Trace-Id", trace_id)
                h.send_header("Alb_receive_time", f"{time.time():.3f}")
            h.end_headers()
            h.wfile.write(data)
            h.wfile.flush()
        except OSError:         # the client gave up (timeout): nothing to do
            if call is not None:
                call.client_closed = True
            h.close_connection = True

    @staticmethod
    def _drop(h: _Handler) -> None:
        h.close_connection = True
        with contextlib.suppress(OSError):
            h.connection.shutdown(socket.SHUT_RDWR)


# ----------------------------------------------------------------------
# Validation
# ----------------------------------------------------------------------

def _validate_t2a(body: Any) -> _Synthesis:
    if not isinstance(body, dict):
        raise _Reject(2013, "invalid params, body is not a JSON object")
    model, text = body.get("model"), body.get("text")
    if model not in MODELS:
        raise _Reject(2013, f"invalid params, model {model!r} is not supported")
    if not isinstance(text, str) or not text.strip():
        raise _Reject(2013, "invalid params, text is empty")
    if len(text) >= MAX_TEXT:
        raise _Reject(2013, f"invalid params, text must be shorter than {MAX_TEXT} characters")
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise _Reject(2013, "invalid params, stream must be a boolean")
    options = body.get("stream_options") or {}
    if not isinstance(options, dict):
        raise _Reject(2013, "invalid params, stream_options must be an object")
    if not stream and body.get("output_format", "hex") != "hex":
        raise _Reject(2013, "invalid params, the sandbox only answers output_format hex")
    voice = body.get("voice_setting")
    if not isinstance(voice, dict) or not isinstance(voice.get("voice_id"), str) or not voice["voice_id"]:
        raise _Reject(2013, "invalid params, voice_setting.voice_id is required")
    _check_number(voice, "speed", 0.5, 2.0)
    _check_number(voice, "vol", 0.0, 10.0, low_open=True)
    _check_number(voice, "pitch", -12, 12, integer=True)
    if "emotion" in voice and voice["emotion"] not in emotions_for(model):
        raise _Reject(2013, f"invalid params, emotion {voice['emotion']!r} is not supported by {model}")
    boost = body.get("language_boost")
    if boost is not None and boost not in LANGUAGE_BOOSTS:
        raise _Reject(2013, f"invalid params, language_boost {boost!r}")
    setting = body.get("audio_setting") or {}
    if not isinstance(setting, dict):
        raise _Reject(2013, "invalid params, audio_setting must be an object")
    fmt = setting.get("format", "mp3")
    rate = setting.get("sample_rate", 32000)
    bitrate = setting.get("bitrate", 128000)
    channels = setting.get("channel", 1)
    if fmt not in FORMATS:
        raise _Reject(2013, f"invalid params, audio_setting.format {fmt!r}")
    if stream and fmt not in STREAM_FORMATS:
        raise _Reject(2013, f"invalid params, format {fmt} does not support streaming")
    if rate not in SAMPLE_RATES or isinstance(rate, bool):
        raise _Reject(2013, f"invalid params, audio_setting.sample_rate {rate!r}")
    if bitrate not in BITRATES or isinstance(bitrate, bool):
        raise _Reject(2013, f"invalid params, audio_setting.bitrate {bitrate!r}")
    if channels not in (1, 2) or isinstance(channels, bool):
        raise _Reject(2013, f"invalid params, audio_setting.channel {channels!r}")
    ratio = invisible_ratio(text)
    if ratio > MAX_INVISIBLE_RATIO:
        raise _Reject(1042)
    return _Synthesis(body, model, text, voice["voice_id"], fmt, rate, bitrate, channels, stream,
                      options.get("exclude_aggregated_audio") is True, ratio)


_VISIBLE_CONTROLS = frozenset("\n\r\t")


def invisible_ratio(text: str) -> float:
    """The share of characters that render as nothing: control and format characters
    (zero-width spaces, joiners, BOMs...), private-use, surrogates and unassigned
    code points.  Line breaks and tabs are ordinary text."""
    if not text:
        return 0.0
    hidden = sum(1 for ch in text if ch not in _VISIBLE_CONTROLS
                 and unicodedata.category(ch) in ("Cc", "Cf", "Co", "Cs", "Cn"))
    return hidden / len(text)


def _check_number(obj: dict, name: str, low: float, high: float, *, integer: bool = False,
                  low_open: bool = False) -> None:
    if name not in obj:
        return
    value = obj[name]
    kinds = (int,) if integer else (int, float)
    ok = isinstance(value, kinds) and not isinstance(value, bool)
    if ok:
        ok = (low < value if low_open else low <= value) and value <= high
    if not ok:
        raise _Reject(2013, f"invalid params, voice_setting.{name} {value!r}")


def _failure(path: str, mode: str, *, code: int, msg: str | None, status: int, seconds: float,
             after_chunks: int) -> Failure:
    if path not in PATHS:
        raise ValueError(f"unknown path {path!r}")
    if mode not in MODES:
        raise ValueError(f"unknown failure mode {mode!r}; one of {sorted(MODES)}")
    if mode in ("malformed_hex", "stream_error", "stream_drop") and path != PATH_T2A:
        raise ValueError(f"{mode} only applies to {PATH_T2A}")
    return Failure(mode, int(code), msg if msg is not None else STATUS_MESSAGES.get(int(code), "error"),
                   int(status), float(seconds), int(after_chunks))


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


# ----------------------------------------------------------------------
# HTTP plumbing
# ----------------------------------------------------------------------

class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    sandbox: MiniMaxSandbox

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, OSError):    # resets and broken pipes are expected here
            return
        super().handle_error(request, client_address)


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "MiniMaxSandbox/2.0"
    timeout = 30
    server: _Server
    lose_answer = False

    def handle_one_request(self) -> None:
        self.lose_answer = False
        super().handle_one_request()

    def setup(self) -> None:
        super().setup()
        with self.server.sandbox._lock:
            self.server.sandbox._connections.add(self.connection)

    def finish(self) -> None:
        with self.server.sandbox._lock:
            self.server.sandbox._connections.discard(self.connection)
        with contextlib.suppress(OSError):
            super().finish()

    def do_POST(self) -> None:
        self.server.sandbox._handle(self)

    do_GET = do_PUT = do_DELETE = do_POST  # answered 404 by _handle (or the control endpoint)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def _write_event(h: _Handler, event: dict) -> None:
    """One Server-Sent Event, sent as one HTTP chunk."""
    data = b"data: " + json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode() + b"\n\n"
    h.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
    h.wfile.flush()


def _end_chunked(h: _Handler) -> None:
    h.wfile.write(b"0\r\n\r\n")
    h.wfile.flush()


def _read_body(h: _Handler) -> bytes:
    if "chunked" in h.headers.get("Transfer-Encoding", "").lower():
        out = bytearray()
        while True:
            size = int(h.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                while h.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass
                return bytes(out)
            out += h.rfile.read(size)
            h.rfile.readline()
            if len(out) > MAX_BODY:
                raise ValueError("body too large")
    length = int(h.headers.get("Content-Length") or 0)
    if length > MAX_BODY:
        raise ValueError("body too large")
    return h.rfile.read(length) if length else b""


def _parse_multipart(body: bytes, content_type: str) -> dict | None:
    if not content_type.lower().startswith("multipart/form-data"):
        return None
    try:
        decoder = MultipartDecoder(body, content_type)
    except Exception:
        return None
    fields: dict[str, str] = {}
    upload = None
    for part in decoder.parts:
        disposition = part.headers.get(b"Content-Disposition", b"").decode("utf-8", "replace")
        name = _disposition_param(disposition, "name")
        filename = _disposition_param(disposition, "filename")
        if name == "file":
            upload = {
                "filename": filename or "",
                "content_type": part.headers.get(b"Content-Type", b"").decode("latin-1"),
                "content": part.content,
            }
        elif name:
            fields[name] = part.content.decode("utf-8", "replace")
    return {"fields": fields, "file": upload}


def _disposition_param(disposition: str, param: str) -> str | None:
    match = re.search(rf'(?:^|;)\s*{param}="((?:[^"\\]|\\.)*)"', disposition)
    if match:
        return match.group(1)
    match = re.search(rf"(?:^|;)\s*{param}=([^;\s]+)", disposition)
    return match.group(1) if match else None


def _multipart_summary(parts: dict) -> dict:
    upload = parts["file"] or {}
    content = upload.get("content", b"")
    return {
        "purpose": parts["fields"].get("purpose"),
        "fields": dict(parts["fields"]),
        "filename": upload.get("filename"),
        "content_type": upload.get("content_type"),
        "size": len(content),
        "sha256": hashlib.sha256(content).hexdigest(),
        "file": content,
    }


def _base_resp(code: int, msg: str | None = None) -> dict:
    return {"status_code": code, "status_msg": msg if msg is not None
            else STATUS_MESSAGES.get(code, "error")}


def _error_body(code: int, msg: str, trace_id: str) -> dict:
    return {"trace_id": trace_id, "base_resp": _base_resp(code, msg)}


def _missing_field_body(path: str, trace_id: str) -> dict:
    if path == PATH_UPLOAD:
        return {"file": {"bytes": 0, "created_at": int(time.time()), "filename": "", "purpose": "voice_clone"},
                "base_resp": _base_resp(0)}
    if path == PATH_CLONE:
        return {"input_sensitive": False, "input_sensitive_type": 0, "demo_audio": "", "trace_id": trace_id}
    if path == PATH_GET_VOICE:
        return {"trace_id": trace_id, "base_resp": _base_resp(0)}
    if path == PATH_DELETE_VOICE:
        return {"voice_id": "", "trace_id": trace_id}
    return {"data": {"status": 2}, "extra_info": {}, "trace_id": trace_id, "base_resp": _base_resp(0)}


def _extra_info(synthesis: _Synthesis, rendered: sandbox_audio.Rendered) -> dict:
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


def sandbox() -> Iterator[MiniMaxSandbox]:
    """Generator for ``pytest.fixture(sandbox)``: a running sandbox, stopped afterwards."""
    with MiniMaxSandbox() as running:
        yield running
