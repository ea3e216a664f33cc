"""Failure injection: what the sandbox's next answers get wrong, on purpose.

``fail_next(path, mode, ...)`` -- the next call(s) to `path` fail (one shot each,
queued); ``fail_when(path, code_or_mode, match=..., times=...)`` -- a persistent
rule (`Rule`).  `FailurePlan` holds both and picks the failure of each call.  Modes:

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
``subtitle_missing`` (t2a_v2 with subtitles) the answer's ``subtitle_file`` URL answers 404
``subtitle_broken``  (t2a_v2 with subtitles) the subtitle file, or each streamed segment,
                     is not in the documented shape
===================  =========================================================

`inject` answers a call with the modes that replace the answer outright; the
others (``lost_answer``, ``stream_*``) act while the call is processed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from kyma_local.sandbox.transport import Handler, drop, end_chunked, send_json, send_raw, write_event
from kyma_local.sandbox.wire import (
    PATH_CLONE,
    PATH_DELETE_VOICE,
    PATH_DESIGN,
    PATH_GET_VOICE,
    PATH_T2A,
    PATH_UPLOAD,
    PATHS,
    STATUS_MESSAGES,
    RecordedCall,
    base_resp,
    error_body,
)

MODES = frozenset({"http_500", "base_resp", "timeout", "malformed_json", "malformed_hex",
                   "missing_field", "connection_drop", "lost_answer", "stream_error", "stream_drop",
                   "subtitle_missing", "subtitle_broken"})
# Modes that do not replace the answer: the call is processed and they act on the way.
IN_FLIGHT_MODES = frozenset({"stream_error", "stream_drop", "lost_answer", "subtitle_missing", "subtitle_broken"})


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


def make_failure(path: str, mode: str, *, code: int, msg: str | None, status: int, seconds: float,
                 after_chunks: int) -> Failure:
    if path not in PATHS:
        raise ValueError(f"unknown path {path!r}")
    if mode not in MODES:
        raise ValueError(f"unknown failure mode {mode!r}; one of {sorted(MODES)}")
    if mode in ("malformed_hex", "stream_error", "stream_drop", "subtitle_missing", "subtitle_broken") \
            and path != PATH_T2A:
        raise ValueError(f"{mode} only applies to {PATH_T2A}")
    return Failure(mode, int(code), msg if msg is not None else STATUS_MESSAGES.get(int(code), "error"),
                   int(status), float(seconds), int(after_chunks))


class FailurePlan:
    """The queued one-shot failures per path, then the rules (the first that applies).
    Not locked: the sandbox holds its lock around every use."""

    def __init__(self) -> None:
        self._queued: dict[str, list[Failure]] = {}
        self._rules: list[Rule] = []

    def queue(self, path: str, failure: Failure, times: int) -> None:
        self._queued.setdefault(path, []).extend([failure] * times)

    def add(self, rule: Rule) -> None:
        self._rules.append(rule)

    def clear(self) -> None:
        self._queued.clear()
        self._rules.clear()

    def next_for(self, call: RecordedCall) -> Failure | None:
        queued = self._queued.get(call.path)
        if queued:
            return queued.pop(0)
        for rule in self._rules:
            if rule.applies(call):
                rule.hits += 1
                return rule.failure
        return None


def inject(h: Handler, call: RecordedCall, failure: Failure, stopping: threading.Event) -> None:
    """Answer `call` as `failure` says (a mode that replaces the answer)."""
    mode, trace_id = failure.mode, call.trace_id
    if mode == "http_500":
        status = failure.status
        page = (f"<html><head><title>{status}</title></head><body><center><h1>{status} "
                f"{h.responses.get(status, ('Error',))[0]}</h1></center></body></html>")
        send_raw(h, call, status, page.encode(), "text/html", trace_id)
    elif mode == "base_resp":
        send_json(h, call, error_body(failure.code, failure.msg, trace_id))
    elif mode == "timeout":
        if stopping.wait(failure.seconds):
            drop(h)
            return
        send_json(h, call, error_body(1001, STATUS_MESSAGES[1001], trace_id))
    elif mode == "malformed_json":
        send_raw(h, call, 200, b'{"data": {"audio": "4944330400000000', "application/json", trace_id)
    elif mode == "connection_drop":
        drop(h)
    elif mode == "missing_field":
        send_json(h, call, _missing_field_body(call.path, trace_id))
    elif mode == "malformed_hex":
        body = {"data": {"audio": "4944330zz9" + "0" * 64, "status": 2},
                "extra_info": {}, "trace_id": trace_id, "base_resp": base_resp(0)}
        send_json(h, call, body)


def stream_failure(h: Handler, call: RecordedCall, failure: Failure) -> None:
    """End a stream as `failure` says: dropped, or an error event."""
    if failure.mode == "stream_drop":
        drop(h)
        return
    call.status_code = failure.code
    write_event(h, {"trace_id": call.trace_id, "base_resp": base_resp(failure.code, failure.msg)})
    end_chunked(h)


def _missing_field_body(path: str, trace_id: str) -> dict:
    if path == PATH_UPLOAD:
        return {"file": {"bytes": 0, "created_at": int(time.time()), "filename": "", "purpose": "voice_clone"},
                "base_resp": base_resp(0)}
    if path == PATH_CLONE:
        return {"input_sensitive": False, "input_sensitive_type": 0, "demo_audio": "", "trace_id": trace_id}
    if path == PATH_DESIGN:         # a success without voice_id or trial_audio
        return {"trace_id": trace_id, "base_resp": base_resp(0)}
    if path == PATH_GET_VOICE:
        return {"trace_id": trace_id, "base_resp": base_resp(0)}
    if path == PATH_DELETE_VOICE:
        return {"voice_id": "", "trace_id": trace_id}
    return {"data": {"status": 2}, "extra_info": {}, "trace_id": trace_id, "base_resp": base_resp(0)}
