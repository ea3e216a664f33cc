"""``POST /v1/t2a_v2``: the audio, whole (hex in JSON) or streamed (Server-Sent Events).

With ``stream: true``: one ``data: {json}`` event per chunk (``data.audio`` hex,
``data.status`` 1), then a final event (``status`` 2) with ``extra_info`` and
``base_resp`` and -- unless ``stream_options.exclude_aggregated_audio`` -- the
whole audio again.  Pace: the first chunk after the sandbox's ``first_chunk_ms``,
then one chunk of about ``chunk_ms`` of audio every ``chunk_interval_ms``
(`audio.chunks`: the chunks concatenated are the non-stream answer, byte for byte).

With ``subtitle_enable``: the segments of `subtitles` (timed on this very audio), linked as
``data.subtitle_file`` in a whole answer, or as ``data.subtitle`` on the chunk that ends each
segment in a stream.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Protocol

from kyma_local.sandbox import audio as sandbox_audio
from kyma_local.sandbox import subtitles
from kyma_local.sandbox.endpoints import Account, extra_info
from kyma_local.sandbox.failures import Failure, stream_failure
from kyma_local.sandbox.transport import Handler, drop, end_chunked, send_json, write_event
from kyma_local.sandbox.validation import Synthesis, validate_t2a
from kyma_local.sandbox.wire import RecordedCall, Reject, base_resp


class Speaker(Protocol):
    """What a synthesis reads of its sandbox (`MiniMaxSandbox`, which imports this module)."""

    account: Account
    first_chunk_ms: float
    chunk_ms: float
    chunk_interval_ms: float
    always_aggregate: bool
    stopping: threading.Event

    def subtitle_file(self, trace_id: str, found: list[dict] | None, /) -> str: ...


DEFAULT_FIRST_CHUNK_MS = 300
DEFAULT_CHUNK_MS = 160
DEFAULT_CHUNK_INTERVAL_MS = 40
STREAM_FAILURES = ("stream_error", "stream_drop")
SUBTITLE_FAILURES = ("subtitle_missing", "subtitle_broken")


def t2a(sandbox: Speaker, h: Handler, call: RecordedCall, body: Any, failure: Failure | None) -> None:
    synthesis = validate_t2a(body)
    sandbox.account.use_voice(synthesis.voice_id)
    if failure is not None and failure.mode in SUBTITLE_FAILURES:
        if not synthesis.subtitles:
            failure = None          # a subtitle failure only touches calls that ask for subtitles
    elif failure is not None and failure.mode != "lost_answer":
        call.injected = failure.mode
        if not synthesis.stream:
            if failure.mode == "stream_drop":
                drop(h)
                return
            raise Reject(failure.code, failure.msg)
    rendered = sandbox.account.render(synthesis)
    info = extra_info(synthesis, rendered)
    found = (subtitles.segments(synthesis.text, rendered, words=synthesis.subtitles != "sentence",
                                pronunciation=synthesis.pronunciation) if synthesis.subtitles else None)
    if found is not None and failure is not None and failure.mode == "subtitle_broken":
        call.injected = failure.mode
        found = subtitles.broken(found)
    if synthesis.stream:
        _stream(sandbox, h, call, synthesis, rendered, info, failure, found)
        return
    data: dict[str, Any] = {"audio": rendered.audio.hex(), "status": 2}
    if found is not None:
        missing = failure is not None and failure.mode == "subtitle_missing"
        if missing:
            call.injected = "subtitle_missing"
        data["subtitle_file"] = sandbox.subtitle_file(call.trace_id, None if missing else found)
    send_json(h, call, {
        "data": data,
        "extra_info": info,
        "trace_id": call.trace_id,
        "base_resp": base_resp(0),
    })


def _stream(sandbox: Speaker, h: Handler, call: RecordedCall, synthesis: Synthesis,
            rendered: sandbox_audio.Rendered, info: dict, failure: Failure | None,
            found: list[dict] | None = None) -> None:
    if h.lose_answer:
        drop(h)
        return
    pieces = sandbox_audio.chunks(rendered, sandbox.chunk_ms)
    placed = subtitles.segments_by_chunk(found, rendered, pieces) if found is not None else None
    call.http_status = 200
    try:
        h.send_response(200)
        h.send_header("Content-Type", "text/event-stream")
        h.send_header("Cache-Control", "no-cache")
        h.send_header("Transfer-Encoding", "chunked")
        h.send_header("Trace-Id", call.trace_id)
        h.end_headers()
        if sandbox.stopping.wait(sandbox.first_chunk_ms / 1000):
            drop(h)
            return
        for index, piece in enumerate(pieces):
            if failure is not None and failure.mode in STREAM_FAILURES and index == failure.after_chunks:
                stream_failure(h, call, failure)
                return
            if index and sandbox.stopping.wait(sandbox.chunk_interval_ms / 1000):
                drop(h)
                return
            data: dict[str, Any] = {"audio": piece.hex(), "status": 1}
            if placed is not None and placed[index]:
                data["subtitle"] = placed[index][0] if len(placed[index]) == 1 else placed[index]
            write_event(h, {"data": data, "trace_id": call.trace_id, "base_resp": base_resp(0)})
            call.chunks_sent += 1
            call.chunk_times.append(time.monotonic())
        if failure is not None and failure.mode in STREAM_FAILURES:
            stream_failure(h, call, failure)
            return
        excluded = synthesis.exclude_aggregated and not sandbox.always_aggregate
        aggregated = "" if excluded else rendered.audio.hex()
        write_event(h, {"data": {"audio": aggregated, "status": 2}, "extra_info": info,
                        "trace_id": call.trace_id, "base_resp": base_resp(0)})
        end_chunked(h)
        call.status_code = 0
        call.finished = True
    except OSError:         # the client went away (closed early, or gave up)
        call.client_closed = True
        h.close_connection = True
