"""`MiniMaxSandbox`: a real HTTP server on loopback speaking MiniMax's wire format.

One stand-in for MiniMax, used by the local stack (`make run`) and by the
tests.  This module owns the server's life cycle, the test controls (Python;
the same over HTTP in `control`) and the dispatch of each request: record it,
pick its injected failure (`failures`), check the key, answer from the account
(`endpoints`, `speech`).

    with MiniMaxSandbox(api_key="test-minimax-key") as sandbox:
        client = MiniMaxClient(sandbox.base_url, lambda: "test-minimax-key")
        sandbox.fail_when("/v1/t2a_v2", 1002, times=2)
        ...

Not modelled (the service checks these itself, or only injection produces them):
``output_format: "url"``, ``timbre_weights``, opus/pcmu formats, and rate limits
(1002/1039/1041/2045: inject them).
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from typing import Any
from urllib.parse import parse_qs

from kyma_local.sandbox import control, speech, subtitles
from kyma_local.sandbox.async_tasks import DEFAULT_SECONDS_PER_TASK, AsyncTasks
from kyma_local.sandbox.audio import MS_PER_CHAR
from kyma_local.sandbox.endpoints import Account
from kyma_local.sandbox.failures import IN_FLIGHT_MODES, FailurePlan, Rule, inject, make_failure
from kyma_local.sandbox.speech import DEFAULT_CHUNK_INTERVAL_MS, DEFAULT_CHUNK_MS, DEFAULT_FIRST_CHUNK_MS
from kyma_local.sandbox.transport import Handler, Server, drop, is_loopback, read_body, record, send_json, send_raw
from kyma_local.sandbox.voices import SEVEN_DAYS, VoiceRegistry
from kyma_local.sandbox.wire import (
    CONTROL_PREFIX,
    DEFAULT_API_KEY,
    FILES_PREFIX,
    GET_PATHS,
    PATH_ASYNC_CREATE,
    PATH_ASYNC_QUERY,
    PATH_FILE_RETRIEVE,
    PATH_T2A,
    PATHS,
    RecordedCall,
    Reject,
    error_body,
)

MAX_SUBTITLE_FILES = 256


class MiniMaxSandbox:
    def __init__(self, api_key: str = DEFAULT_API_KEY, *, host: str = "127.0.0.1", port: int = 0,
                 voice_window_seconds: float = SEVEN_DAYS, first_chunk_ms: float = DEFAULT_FIRST_CHUNK_MS,
                 chunk_ms: float = DEFAULT_CHUNK_MS, chunk_interval_ms: float = DEFAULT_CHUNK_INTERVAL_MS,
                 clock: Callable[[], float] = time.time, async_seconds: float = DEFAULT_SECONDS_PER_TASK,
                 async_ms_per_char: float = MS_PER_CHAR) -> None:
        if not is_loopback(host):
            raise ValueError("the sandbox only listens on loopback")
        self.api_key = api_key
        self.first_chunk_ms = float(first_chunk_ms)
        # Test control: send the aggregated audio in the final event even when the request
        # excludes it (a MiniMax that ignores stream_options.exclude_aggregated_audio).
        self.always_aggregate = False
        self.chunk_ms = float(chunk_ms)
        self.chunk_interval_ms = float(chunk_interval_ms)
        self.stopping = threading.Event()     # wakes handlers sleeping in delays, timeouts and pacing
        self._host = host
        self._port = port
        self._lock = threading.RLock()
        self._server: Server | None = None
        self._thread: threading.Thread | None = None
        self._plan = FailurePlan()
        self._delays: dict[str, float] = {}
        self._calls: list[RecordedCall] = []
        self._subtitle_files: dict[str, bytes] = {}
        self.registry = VoiceRegistry(window_seconds=voice_window_seconds, clock=clock)
        self.account = Account(self.registry, self._lock)
        self.async_tasks = AsyncTasks(self.account, self._lock, seconds_per_task=async_seconds,
                                      ms_per_char=async_ms_per_char)

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
            "async_seconds": num("KYMA_SANDBOX_ASYNC_SECONDS", DEFAULT_SECONDS_PER_TASK),
            "async_ms_per_char": num("KYMA_SANDBOX_ASYNC_MS_PER_CHAR", MS_PER_CHAR),
        }
        options.update(overrides)
        return cls(**options)

    # --- life cycle ------------------------------------------------------

    def start(self) -> MiniMaxSandbox:
        if self._server is not None:
            return self
        self.stopping.clear()
        server = Server((self._host, self._port), self)
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01},
                                        name="minimax-sandbox", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        self.stopping.set()
        server.shutdown()
        server.server_close()
        server.shut_connections()       # ends idle keep-alive connections
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

    # --- test controls ---------------------------------------------------

    def fail_next(self, path: str, mode: str, *, code: int = 1000, msg: str | None = None,
                  status: int = 500, seconds: float = 30.0, after_chunks: int = 0, times: int = 1) -> None:
        """Make the next call (or `times` calls) to `path` fail in `mode` (one shot each; queued)."""
        failure = make_failure(path, mode, code=code, msg=msg, status=status, seconds=seconds,
                               after_chunks=after_chunks)
        with self._lock:
            self._plan.queue(path, failure, int(times))

    def fail_when(self, path: str, code: int | str, *, match: Callable[[RecordedCall], bool] | str | None = None,
                  times: int | None = None, msg: str | None = None, status: int = 500, seconds: float = 30.0,
                  after_chunks: int = 0) -> Rule:
        """A persistent rule: calls to `path` fail while it applies.

        `code` is a ``base_resp`` status code (an int: any code, official or not) or a
        mode name (`failures`).  `match` narrows the rule to some calls: a callable on
        the `RecordedCall`, or a substring of the request body (JSON as sent; for
        uploads, the form fields and file name).  `times`: how many calls it fails
        (None: until removed with `clear_failures` or `reset`).
        """
        mode, failure_code = ("base_resp", code) if isinstance(code, int) else (code, 1000)
        failure = make_failure(path, mode, code=failure_code, msg=msg, status=status, seconds=seconds,
                               after_chunks=after_chunks)
        rule = Rule(path, failure, match, times)
        with self._lock:
            self._plan.add(rule)
        return rule

    def clear_failures(self) -> None:
        with self._lock:
            self._plan.clear()

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
            self.account.audio_size = None if n is None else int(n)

    def register_voice(self, voice_id: str, file_id: int | None = None) -> None:
        """Pretend `voice_id` was cloned here just now (for tests that only synthesize).
        A live voice of that id is kept as it is."""
        self.account.register_voice(voice_id, file_id)

    def advance_clock(self, seconds: float) -> None:
        """Move the sandbox's clock forward (the 7-day rule sees the new time)."""
        self.registry.advance(seconds)

    def reset(self, *, voices: bool = False) -> None:
        """Forget failures, rules, delays, the audio size, recorded calls (and, with
        `voices`, every cloned voice, uploaded file and clock offset)."""
        with self._lock:
            self._plan.clear()
            self._delays.clear()
            self.account.audio_size = None
            self._calls.clear()
            self.account.last_audio = None
            self.async_tasks.reset()
            if voices:
                self.account.forget_voices()

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
        return self.account.live_voices()

    @property
    def files(self) -> dict[int, dict]:
        with self._lock:
            return {k: dict(v) for k, v in self.account.files.items()}

    @property
    def last_audio(self) -> bytes | None:
        with self._lock:
            return self.account.last_audio

    # --- one request (on a handler thread) ---------------------------------

    def subtitle_file(self, trace_id: str, found: list[dict] | None) -> str:
        """Keep `found` (None: the file is missing) and return the URL MiniMax would link it at."""
        with self._lock:
            if found is not None:
                self._subtitle_files[trace_id] = json.dumps(found, ensure_ascii=False).encode()
                while len(self._subtitle_files) > MAX_SUBTITLE_FILES:
                    self._subtitle_files.pop(next(iter(self._subtitle_files)))
        return f"{self.base_url}{subtitles.FILE_PREFIX}{trace_id}.json"

    def _serve_subtitle_file(self, h: Handler, name: str, trace_id: str) -> None:
        """A GET of a ``subtitle_file`` URL: signed by its URL, so no Authorization.  Like an object
        store's presigned URL, a request that also carries an Authorization header is refused (and a
        client that sent one would have handed our MiniMax key to a file host)."""
        if h.headers.get("Authorization"):
            send_raw(h, None, 400, b"<Error><Code>InvalidArgument</Code><Message>Only one auth mechanism "
                     b"allowed</Message></Error>", "application/xml", trace_id)
            return
        with self._lock:
            data = self._subtitle_files.get(name.removesuffix(".json"))
        if data is None:
            send_raw(h, None, 404, b"<Error><Code>NoSuchKey</Code></Error>", "application/xml", trace_id)
            return
        send_raw(h, None, 200, data, "application/json", trace_id)

    def handle(self, h: Handler) -> None:
        path, _, query_string = h.path.partition("?")
        query = {k: v[0] for k, v in parse_qs(query_string).items()}
        trace_id = uuid.uuid4().hex
        try:
            body = read_body(h)
        except ValueError as exc:
            send_raw(h, None, 413 if "large" in str(exc) else 400, b"bad request", "text/plain", trace_id)
            return
        if path.startswith(CONTROL_PREFIX):
            control.answer(self, h, path[len(CONTROL_PREFIX):], body)
            return
        if path.startswith(subtitles.FILE_PREFIX) and h.command == "GET":
            self._serve_subtitle_file(h, path[len(subtitles.FILE_PREFIX):], trace_id)
            return
        if path.startswith(FILES_PREFIX) and h.command == "GET":      # an async result's download URL (no key)
            result = self.async_tasks.download(path[len(FILES_PREFIX):])
            if result is None:
                send_raw(h, None, 404, b"<Error><Code>NoSuchKey</Code></Error>", "application/xml", "")
            else:
                send_raw(h, None, 200, result, "application/x-tar", "")
            return
        call, parsed_json, parts = record(h, path, body, trace_id)
        del body

        with self._lock:
            self._calls.append(call)
            failure = self._plan.next_for(call)
            delay = self._delays.get(path, 0.0)

        try:
            if path not in PATHS or h.command != ("GET" if path in GET_PATHS else "POST"):
                send_raw(h, call, 404, b"404 page not found", "text/plain", trace_id)
                return
            if failure is not None and failure.mode not in IN_FLIGHT_MODES:
                call.injected = failure.mode
                inject(h, call, failure, self.stopping)
                return
            if failure is not None and failure.mode == "lost_answer":
                call.injected = failure.mode
                h.lose_answer = True            # processed below; every send drops instead of answering
            if delay and self.stopping.wait(delay):
                drop(h)
                return
            if h.headers.get("Authorization", "") != f"Bearer {self.api_key}":
                raise Reject(1004)
            if path == PATH_T2A:
                speech.t2a(self, h, call, parsed_json, failure)
            elif path == PATH_ASYNC_CREATE:
                send_json(h, call, self.async_tasks.create(parsed_json, trace_id))
            elif path == PATH_ASYNC_QUERY:
                send_json(h, call, self.async_tasks.query(query, trace_id))
            elif path == PATH_FILE_RETRIEVE:
                send_json(h, call, self.async_tasks.retrieve(query, self.base_url, trace_id))
            else:
                send_json(h, call, self.account.answer(path, parsed_json, parts, trace_id))
        except Reject as rej:
            send_json(h, call, error_body(rej.code, rej.msg, trace_id))


def sandbox() -> Iterator[MiniMaxSandbox]:
    """Generator for ``pytest.fixture(sandbox)``: a running sandbox, stopped afterwards."""
    with MiniMaxSandbox() as running:
        yield running
