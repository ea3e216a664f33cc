"""A fake MiniMax: a real HTTP server on 127.0.0.1 speaking MiniMax's wire format.

Follows ``/work/shared/reference/minimax-upstream.md``: the same paths, field
names, ``base_resp`` envelope, ``trace_id`` in the body and the ``Trace-Id``
header, and HTTP 200 with a non-zero ``base_resp.status_code`` for most
errors (a wrong or missing bearer token is 200 + 1004, as MiniMax does).

    with FakeMiniMax(api_key="test-minimax-key") as fake:
        client = MiniMaxClient(fake.base_url, lambda: "test-minimax-key")
        fake.fail_next("/v1/t2a_v2", "base_resp", code=1002)
        ...

As a pytest fixture::

    from fakes.minimax_server import fake_minimax
    fake_minimax = pytest.fixture(fake_minimax)

Failure injection (``fail_next``, one shot per call, queued per path):

=================  ===========================================================
``http_500``       HTTP 500 (or ``status=``) with an HTML body, Trace-Id header
``base_resp``      HTTP 200, ``base_resp`` ``code=`` (default 1000), ``msg=``
``timeout``        sleeps ``seconds=`` (default 30), then answers 1001
``malformed_json`` HTTP 200 with a truncated JSON body
``malformed_hex``  (t2a_v2 only) success, but ``data.audio`` is not hex
``missing_field``  success without the field the client needs: ``file.file_id``
                   (upload), ``base_resp`` (voice_clone), ``data.audio`` (t2a)
``connection_drop`` reads the request, closes the socket without answering
=================  ===========================================================

Audio from ``/v1/t2a_v2`` is deterministic for the request and grows with the
text: a real WAV (``wave``), MP3 (``lameenc`` when installed, else valid-looking
MPEG frames), raw 16-bit little-endian PCM, or a real FLAC stream (verbatim
subframes).  ``fake.last_audio`` holds the bytes of the last successful call.
"""

from __future__ import annotations

import hashlib
import http.server
import itertools
import json
import re
import socket
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from requests.structures import CaseInsensitiveDict
from requests_toolbelt.multipart.decoder import MultipartDecoder

from kyma.providers.sandbox_audio import LEAD_IN_MS, MS_PER_CHAR, render_audio

PATH_UPLOAD = "/v1/files/upload"
PATH_CLONE = "/v1/voice_clone"
PATH_T2A = "/v1/t2a_v2"
PATHS = (PATH_UPLOAD, PATH_CLONE, PATH_T2A)

MODES = frozenset({"http_500", "base_resp", "timeout", "malformed_json", "malformed_hex",
                   "missing_field", "connection_drop"})

MODELS = frozenset({
    "speech-2.8-hd", "speech-2.8-turbo", "speech-2.6-hd", "speech-2.6-turbo",
    "speech-02-hd", "speech-02-turbo", "speech-01-hd", "speech-01-turbo",
})
FORMATS = frozenset({"mp3", "wav", "flac", "pcm"})
SAMPLE_RATES = frozenset({8000, 16000, 22050, 24000, 32000, 44100})
BITRATES = frozenset({32000, 64000, 128000, 256000})
MAX_TEXT = 10_000               # text must be shorter than this
MAX_UPLOAD = 20 * 1024 * 1024   # MiniMax's own cap on a clone reference
MAX_BODY = 64 * 1024 * 1024     # what the fake reads at all

_VOICE_ID = re.compile(r"[A-Za-z][A-Za-z0-9_-]{6,254}[A-Za-z0-9]")

STATUS_MESSAGES = {
    0: "success",
    1000: "unknown error",
    1001: "request timeout",
    1002: "rate limit exceeded",
    1004: "login fail: Please carry the API secret key in the 'Authorization' field of the request header",
    1008: "insufficient balance",
    1024: "internal error",
    1026: "input new_sensitive",
    1039: "token limit exceeded",
    2013: "invalid params",
    2038: "no voice clone permission",
    2039: "voice id already exists",
}

DEFAULT_API_KEY = "test-minimax-key"
# Milliseconds of audio per character of text (plus a short lead-in).


@dataclass
class RecordedCall:
    """One request the fake received (recorded before it is answered)."""

    method: str
    path: str
    headers: CaseInsensitiveDict
    json: Any = None                 # parsed JSON body (voice_clone, t2a_v2)
    multipart: dict | None = None    # upload: purpose, filename, content_type, size, sha256, file
    body_size: int = 0
    timestamp: float = 0.0           # time.time()
    monotonic: float = 0.0           # time.monotonic()
    client_port: int = 0             # the same port twice = a reused connection
    trace_id: str = ""
    injected: str | None = None      # the failure mode used on this call, if any
    http_status: int | None = None   # filled in when answered
    status_code: int | None = None   # base_resp.status_code answered, if any

    def __getitem__(self, name: str) -> Any:  # dict-style access for convenience
        return getattr(self, name)

    @property
    def file_bytes(self) -> bytes | None:
        return self.multipart.get("file") if self.multipart else None


class _Reject(Exception):
    def __init__(self, code: int, msg: str | None = None) -> None:
        super().__init__(code)
        self.code = code
        self.msg = msg or STATUS_MESSAGES.get(code, "error")


class FakeMiniMax:
    def __init__(self, api_key: str = DEFAULT_API_KEY, *, host: str = "127.0.0.1",
                 port: int = 0) -> None:
        self.api_key = api_key
        self._host = host
        self._port = port
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._connections: set[socket.socket] = set()
        self._failures: dict[str, list[dict]] = {}
        self._delays: dict[str, float] = {}
        self._calls: list[RecordedCall] = []
        self._files: dict[int, dict] = {}
        self._voices: dict[str, int] = {}
        self._file_ids = itertools.count(381_945_770_001)
        self._audio_size: int | None = None
        self._last_audio: bytes | None = None

    # ------------------------------------------------------------------
    # Life cycle
    # ------------------------------------------------------------------

    def start(self) -> FakeMiniMax:
        if self._server is not None:
            return self
        self._stopping.clear()
        server = _Server((self._host, self._port), _Handler)
        server.fake = self
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01},
                                        name="fake-minimax", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping.set()            # wakes handlers sleeping in delays/timeouts
        server.shutdown()
        server.server_close()
        with self._lock:
            connections = list(self._connections)
        for conn in connections:        # ends idle keep-alive connections
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> FakeMiniMax:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("FakeMiniMax is not running")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    # ------------------------------------------------------------------
    # Test controls
    # ------------------------------------------------------------------

    def fail_next(self, path: str, mode: str, *, code: int = 1000, msg: str | None = None,
                  status: int = 500, seconds: float = 30.0) -> None:
        """Make the next call to `path` fail in `mode` (one shot; calls queue up)."""
        if path not in PATHS:
            raise ValueError(f"unknown path {path!r}")
        if mode not in MODES:
            raise ValueError(f"unknown failure mode {mode!r}; one of {sorted(MODES)}")
        if mode == "malformed_hex" and path != PATH_T2A:
            raise ValueError("malformed_hex only applies to /v1/t2a_v2")
        failure = {"mode": mode, "code": code, "msg": msg if msg is not None
                   else STATUS_MESSAGES.get(code, "error"), "status": status, "seconds": seconds}
        with self._lock:
            self._failures.setdefault(path, []).append(failure)

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
        """Pretend `voice_id` was cloned here (for tests that only synthesize)."""
        with self._lock:
            self._voices[voice_id] = file_id if file_id is not None else next(self._file_ids)

    @property
    def calls(self) -> list[RecordedCall]:
        with self._lock:
            return list(self._calls)

    def calls_to(self, path: str) -> list[RecordedCall]:
        with self._lock:
            return [c for c in self._calls if c.path == path]

    @property
    def voices(self) -> dict[str, int]:
        with self._lock:
            return dict(self._voices)

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
        elif path in PATHS:
            try:
                parsed_json = json.loads(body)
            except ValueError:
                parsed_json = None
            call.json = parsed_json
        del body

        with self._lock:
            self._calls.append(call)
            queue = self._failures.get(path)
            failure = queue.pop(0) if queue else None
            delay = self._delays.get(path, 0.0)

        try:
            if path not in PATHS or h.command != "POST":
                self._send_raw(h, call, 404, b"404 page not found", "text/plain", trace_id)
                return
            if failure is not None:
                call.injected = failure["mode"]
                self._inject(h, call, failure)
                return
            if delay and self._stopping.wait(delay):
                self._drop(h)
                return
            if h.headers.get("Authorization", "") != f"Bearer {self.api_key}":
                raise _Reject(1004)
            if path == PATH_UPLOAD:
                self._send_json(h, call, self._upload(parts))
            elif path == PATH_CLONE:
                self._send_json(h, call, self._clone(parsed_json, trace_id))
            else:
                self._send_json(h, call, self._t2a(parsed_json, trace_id))
        except _Reject as rej:
            self._send_json(h, call, _error_body(rej.code, rej.msg, trace_id))

    def _inject(self, h: _Handler, call: RecordedCall, failure: dict) -> None:
        mode, trace_id = failure["mode"], call.trace_id
        if mode == "http_500":
            status = failure["status"]
            page = (f"<html><head><title>{status}</title></head><body><center><h1>{status} "
                    f"{h.responses.get(status, ('Error',))[0]}</h1></center></body></html>")
            self._send_raw(h, call, status, page.encode(), "text/html", trace_id)
        elif mode == "base_resp":
            self._send_json(h, call, _error_body(failure["code"], failure["msg"], trace_id))
        elif mode == "timeout":
            if self._stopping.wait(failure["seconds"]):
                self._drop(h)
                return
            self._send_json(h, call, _error_body(1001, STATUS_MESSAGES[1001], trace_id))
        elif mode == "malformed_json":
            self._send_raw(h, call, 200,
                           b'{"data": {"audio": "4944330400000000', "application/json", trace_id)
        elif mode == "connection_drop":
            self._drop(h)
        elif mode == "missing_field":
            if call.path == PATH_UPLOAD:
                body = {"file": {"bytes": 0, "created_at": int(time.time()),
                                 "filename": "", "purpose": "voice_clone"},
                        "base_resp": _base_resp(0)}
            elif call.path == PATH_CLONE:
                body = {"input_sensitive": False, "input_sensitive_type": 0, "demo_audio": "",
                        "trace_id": trace_id}
            else:
                body = {"data": {"status": 2}, "extra_info": {}, "trace_id": trace_id,
                        "base_resp": _base_resp(0)}
            self._send_json(h, call, body)
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
        with self._lock:
            if file_id not in self._files:
                raise _Reject(2013, "invalid params, file_id not found")
            if voice_id in self._voices:
                raise _Reject(2039)
            self._voices[voice_id] = file_id
        return {"input_sensitive": False, "input_sensitive_type": 0, "demo_audio": "",
                "trace_id": trace_id, "base_resp": _base_resp(0)}

    def _t2a(self, body: Any, trace_id: str) -> dict:
        if not isinstance(body, dict):
            raise _Reject(2013, "invalid params, body is not a JSON object")
        model, text = body.get("model"), body.get("text")
        if model not in MODELS:
            raise _Reject(2013, f"invalid params, model {model!r} is not supported")
        if not isinstance(text, str) or not text.strip():
            raise _Reject(2013, "invalid params, text is empty")
        if len(text) >= MAX_TEXT:
            raise _Reject(2013, f"invalid params, text must be shorter than {MAX_TEXT} characters")
        if body.get("stream"):
            raise _Reject(2013, "invalid params, the fake does not stream")
        if body.get("output_format", "hex") != "hex":
            raise _Reject(2013, "invalid params, the fake only answers output_format hex")
        voice = body.get("voice_setting")
        if not isinstance(voice, dict) or not isinstance(voice.get("voice_id"), str) \
                or not voice["voice_id"]:
            raise _Reject(2013, "invalid params, voice_setting.voice_id is required")
        voice_id = voice["voice_id"]
        if voice_id.startswith("kyma_"):
            with self._lock:
                known = voice_id in self._voices
            if not known:
                raise _Reject(2013, f"invalid params, voice id {voice_id} does not exist")
        _check_number(voice, "speed", 0.5, 2.0)
        _check_number(voice, "vol", 0.0, 10.0, low_open=True)
        _check_number(voice, "pitch", -12, 12, integer=True)
        if "emotion" in voice and not isinstance(voice["emotion"], str):
            raise _Reject(2013, "invalid params, voice_setting.emotion must be a string")
        if "language_boost" in body and not isinstance(body["language_boost"], str):
            raise _Reject(2013, "invalid params, language_boost must be a string")
        audio = body.get("audio_setting") or {}
        if not isinstance(audio, dict):
            raise _Reject(2013, "invalid params, audio_setting must be an object")
        fmt = audio.get("format", "mp3")
        rate = audio.get("sample_rate", 32000)
        bitrate = audio.get("bitrate", 128000)
        channels = audio.get("channel", 1)
        if fmt not in FORMATS:
            raise _Reject(2013, f"invalid params, audio_setting.format {fmt!r}")
        if rate not in SAMPLE_RATES or isinstance(rate, bool):
            raise _Reject(2013, f"invalid params, audio_setting.sample_rate {rate!r}")
        if bitrate not in BITRATES or isinstance(bitrate, bool):
            raise _Reject(2013, f"invalid params, audio_setting.bitrate {bitrate!r}")
        if channels not in (1, 2) or isinstance(channels, bool):
            raise _Reject(2013, f"invalid params, audio_setting.channel {channels!r}")

        seed = _seed(body)
        with self._lock:
            size = self._audio_size
        duration_ms = LEAD_IN_MS + MS_PER_CHAR * len(text)
        produced, duration_ms = render_audio(fmt, rate, channels, bitrate, seed, duration_ms, size)
        audio_hex = produced.hex()
        with self._lock:
            self._last_audio = produced
        return {
            "data": {"audio": audio_hex, "status": 2},
            "extra_info": {
                "audio_length": duration_ms,
                "audio_sample_rate": rate,
                "audio_size": len(produced),
                "bitrate": bitrate if fmt == "mp3" else rate * 16 * channels,
                "word_count": len(text.split()),
                "invisible_character_ratio": 0,
                "usage_characters": len(text),
                "audio_format": fmt,
                "audio_channel": channels,
            },
            "trace_id": trace_id,
            "base_resp": _base_resp(0),
        }

    # --- sending -------------------------------------------------------

    def _send_json(self, h: _Handler, call: RecordedCall, body: dict) -> None:
        data = json.dumps(body, separators=(",", ":")).encode()
        base = body.get("base_resp")
        if isinstance(base, dict):
            call.status_code = base.get("status_code")
        self._send_raw(h, call, 200, data, "application/json; charset=utf-8", call.trace_id)

    def _send_raw(self, h: _Handler, call: RecordedCall | None, status: int, data: bytes,
                  content_type: str, trace_id: str) -> None:
        if call is not None:
            call.http_status = status
        try:
            h.send_response(status)
            h.send_header("Content-Type", content_type)
            h.send_header("Content-Length", str(len(data)))
            h.send_header("Trace-Id", trace_id)
            h.send_header("Alb_receive_time", f"{time.time():.3f}")
            h.end_headers()
            h.wfile.write(data)
            h.wfile.flush()
        except OSError:         # the client gave up (timeout): nothing to do
            h.close_connection = True

    @staticmethod
    def _drop(h: _Handler) -> None:
        h.close_connection = True
        try:
            h.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


# ----------------------------------------------------------------------
# HTTP plumbing
# ----------------------------------------------------------------------

class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    fake: FakeMiniMax

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, OSError):    # resets and broken pipes are expected here
            return
        super().handle_error(request, client_address)


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "FakeMiniMax/1.0"
    timeout = 30
    server: _Server

    def setup(self) -> None:
        super().setup()
        with self.server.fake._lock:
            self.server.fake._connections.add(self.connection)

    def finish(self) -> None:
        with self.server.fake._lock:
            self.server.fake._connections.discard(self.connection)
        try:
            super().finish()
        except OSError:
            pass

    def do_POST(self) -> None:
        self.server.fake._handle(self)

    do_GET = do_PUT = do_DELETE = do_POST  # answered 404 by _handle

    def log_message(self, format: str, *args: Any) -> None:
        pass


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


def fake_minimax() -> Iterator[FakeMiniMax]:
    """Generator for ``pytest.fixture(fake_minimax)``: a running fake, stopped afterwards."""
    with FakeMiniMax() as fake:
        yield fake


# ----------------------------------------------------------------------
# Audio
# ----------------------------------------------------------------------

def _seed(body: dict) -> int:
    canonical = json.dumps({k: body.get(k) for k in
                            ("model", "text", "voice_setting", "audio_setting", "language_boost")},
                           sort_keys=True, separators=(",", ":"))
    return int.from_bytes(hashlib.sha256(canonical.encode()).digest()[:8], "big")
