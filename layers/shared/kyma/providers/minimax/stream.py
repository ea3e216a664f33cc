"""Streamed speech: MiniMax's Server-Sent Events, read as audio chunks (`SpeechStream`).

With ``stream: true`` ``/v1/t2a_v2`` answers one ``data: {json}`` event per audio
chunk (hex), the last one with ``data.status == 2`` and ``extra_info``.  An error
event is classified like any answer (`kyma.providers.minimax.codes`); reading is
bounded by the call's deadline.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from collections.abc import Generator, Iterator
from typing import Any

import requests

from kyma.providers import Segment
from kyma.providers.minimax.codes import STEP_STREAM, Failure, cut_off, refusal, status_code, timeout
from kyma.providers.minimax.exchange import MAX_RESPONSE_BYTES, READ_BYTES, Exchange, looks_like_timeout
from kyma.providers.minimax.subtitles import ShapeError, segments_of_event

# Half the margin a request keeps after its deadline (kyma.edge.http.SAFETY_MARGIN_SECONDS, 2 s) to settle
# or release and answer: a stream's end may still be read within it.
END_GRACE_SECONDS = 1.0
# How much of the stream's beginning an aggregated final event must repeat to be taken for one.
AGGREGATE_HEAD_BYTES = 64


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
        stream.take_segments()             # with subtitles: the segments reported since the last call

    With ``subtitles`` (MiniMax's ``subtitle_type``), each segment MiniMax reports (``data.subtitle``
    on the segment's last chunk, `kyma.providers.minimax.subtitles`) is kept for `take_segments`
    before that chunk is yielded; data not in the documented shape, or a stream that ends without
    any, fails the stream like an error event (`ProviderError`).

    Iterate once.  Mid-stream failures raise from the iteration as
    `kyma.edge.errors.UpstreamError` subclasses (an error event: classified by its
    code; a dropped connection or a stream that ends without its final event:
    `ProviderError`); nothing is retried after the first chunk.  Stopping
    early (``break``, an exception in the consumer, `close()`) closes the HTTP
    response, so the connection is released at once.  An aggregated copy of the
    whole audio in the final event (sent when MiniMax ignores
    ``exclude_aggregated_audio``) is recognised and dropped, never yielded twice.
    """

    def __init__(self, exchange: Exchange, response: requests.Response, audio_format: str,
                 deadline: float, key: str, *, subtitles: str | None = None) -> None:
        self.audio_format = audio_format
        self.subtitles = subtitles
        self.segments: list[Segment] = []          # every segment so far
        self._untaken = 0                          # segments[-_untaken:] not yet taken
        self.trace_id: str | None = response.headers.get("Trace-Id") or None
        self.extra_info: dict[str, Any] = {}
        self.complete = False
        self.chunks_received = 0
        self.bytes_received = 0
        self._exchange = exchange
        self._response: requests.Response | None = response
        self._deadline = deadline
        self._key = key
        self._events: Generator[dict, None, None] | None = None
        self._first: bytes | None = None
        self._digest = hashlib.sha256()
        self._head = b""        # the stream's first bytes: an aggregate repeats them
        self._iterating = False
        self._closed = False
        self._held = 0.0        # seconds the consumer kept us waiting (handing chunks on to a slow client)

    @property
    def usage_characters(self) -> int | None:
        value = self.extra_info.get("usage_characters")
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    def take_segments(self) -> list[Segment]:
        """The subtitle segments reported since the last call (in order)."""
        taken = self.segments[len(self.segments) - self._untaken:] if self._untaken else []
        self._untaken = 0
        return taken

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

    def start(self) -> None:
        """Read up to the first audio chunk (raises `Failure`: the caller may retry)."""
        self._events = self._read_events()
        self._first = self._next_audio()

    # --- internals -------------------------------------------------------

    def _chunks(self) -> Iterator[bytes]:
        try:
            chunk, self._first = self._first, None
            while chunk is not None and not self._closed:
                paused = time.monotonic()
                yield chunk
                try:
                    if self.complete:
                        # The final event's own audio: the time the consumer held it counts as over
                        # any other chunk, so where MiniMax puts its last audio never decides a charge.
                        self._held += time.monotonic() - paused
                        self._check_deadline()
                        return
                    chunk = self._next_audio()
                except Failure as failure:
                    raise self._exchange.give_up(failure, attempt=1) from None
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
            code = status_code(event)
            if code is not None and code != 0:
                raise refusal(step, code, event, self._key, trace_id=self.trace_id, http_status=200)
            data = event.get("data")
            if not isinstance(data, dict):
                continue
            if self.subtitles and data.get("subtitle") is not None:
                self._segments(data["subtitle"])
            audio_hex = data.get("audio")
            try:
                audio = bytes.fromhex(audio_hex) if isinstance(audio_hex, str) and audio_hex else b""
            except ValueError:
                raise Failure(step, "audio is not valid hex", trace_id=self.trace_id, http_status=200) from None
            if data.get("status") == 2:
                if self.subtitles and not self.segments:
                    raise Failure(step, "asked for subtitles, the stream carried none", trace_id=self.trace_id,
                                  http_status=200, retryable=False)
                extra = event.get("extra_info")
                self.extra_info = extra if isinstance(extra, dict) else {}
                self.complete = True
                self._drain()
                if audio and not self._is_aggregate(audio):
                    return self._received(audio)
                return None
            if audio:
                return self._received(audio)
        raise cut_off(step, "answer cut off (the stream ended before its final event)", trace_id=self.trace_id,
                      http_status=200)

    def _segments(self, raw: Any) -> None:
        try:
            parsed = segments_of_event(raw, words=self.subtitles == "word")
        except ShapeError as exc:
            raise Failure(STEP_STREAM, f"subtitle data not in the documented shape: {exc}", trace_id=self.trace_id,
                          http_status=200, retryable=False) from None
        if self.segments and parsed and parsed[0].time_begin < self.segments[-1].time_begin:
            raise Failure(STEP_STREAM, "subtitle segments run backwards", trace_id=self.trace_id, http_status=200,
                          retryable=False)
        self.segments.extend(parsed)
        self._untaken += len(parsed)

    def _drain(self) -> None:
        """Read to the end of the answer (nothing should follow the final event), so that
        the connection goes back to the pool instead of being closed."""
        try:
            for _ in self._events or ():
                pass
        except Failure:
            pass            # all audio is in; what happens after the final event does not matter

    def _received(self, audio: bytes) -> bytes:
        self.chunks_received += 1
        self.bytes_received += len(audio)
        self._digest.update(audio)
        if len(self._head) < AGGREGATE_HEAD_BYTES:
            self._head += audio[:AGGREGATE_HEAD_BYTES - len(self._head)]
        return audio

    def _is_aggregate(self, audio: bytes) -> bool:
        """Is this final-event audio the whole audio again (MiniMax's default)?  The same bytes, or
        at least as many beginning as the stream began; new audio in the final event is neither."""
        if not self.bytes_received:
            return False
        if hashlib.sha256(audio).digest() == self._digest.digest():
            return True
        return len(audio) >= self.bytes_received and audio.startswith(self._head)

    def _check_deadline(self) -> None:
        """The deadline bounds MiniMax's stream.  Time the consumer took (`_held`: a slow client over
        the last chunk) is forgiven up to END_GRACE_SECONDS, so the end already on its way can
        still be read and the delivered audio charged; past that, API Gateway may have cut the
        client, so the stream fails (and nothing is charged)."""
        if time.monotonic() > self._deadline + min(self._held, END_GRACE_SECONDS):
            raise timeout(STEP_STREAM, "deadline passed while streaming", trace_id=self.trace_id)

    def _read_events(self) -> Generator[dict, None, None]:
        """The stream's Server-Sent Events, as parsed JSON objects, as they arrive."""
        response, step, deadline = self._response, STEP_STREAM, self._deadline
        if response is None:
            return
        buffer = bytearray()
        pending: list[bytes] = []
        try:
            for block in response.iter_content(READ_BYTES):
                buffer += block
                while True:
                    newline = buffer.find(b"\n")
                    if newline < 0:
                        break
                    line = bytes(buffer[:newline]).rstrip(b"\r")
                    del buffer[:newline + 1]
                    event = sse_line(line, pending)
                    if event is not None:
                        paused = time.monotonic()
                        yield event
                        self._held += time.monotonic() - paused
                    self._check_deadline()              # per event: one block may hold the whole end
                if len(buffer) > MAX_RESPONSE_BYTES:
                    raise Failure(step, "answer too large", trace_id=self.trace_id, retryable=False)
                self._check_deadline()
        except requests.RequestException as exc:
            if self._closed:
                return
            if looks_like_timeout(exc, deadline):
                raise timeout(step, type(exc).__name__, trace_id=self.trace_id) from None
            raise cut_off(step, f"answer cut off ({type(exc).__name__})", trace_id=self.trace_id,
                          http_status=200) from None
        except (OSError, AttributeError, ValueError):
            # urllib3 raises these when the response was closed under it (consumer stopped).
            if self._closed:
                return
            raise cut_off(step, "answer cut off (connection lost)", trace_id=self.trace_id,
                          http_status=200) from None
        for line in (bytes(buffer).rstrip(b"\r"), b""):
            event = sse_line(line, pending)
            if event is not None:
                yield event


def sse_line(line: bytes, pending: list[bytes]) -> dict | None:
    """Feed one line of an event stream; returns an event once one is complete.

    MiniMax sends one JSON object per ``data:`` line; a blank line ends an event
    (Server-Sent Events).  Both are honoured: a ``data:`` line that completes a JSON
    object is an event at once, and data split over several lines is joined.

    Not an SSE library (sseclient-py, httpx-sse): by the specification consecutive ``data:``
    lines form ONE event, joined with newlines, which would merge two of MiniMax's JSON
    objects into one unparseable event; and an event must be acted on as soon as its line
    arrives, not when a blank line follows.
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
            raise Failure(STEP_STREAM, "malformed event in the stream", http_status=200) from None
        return event if isinstance(event, dict) else None
    return None          # comments (":"), event:/id:/retry: fields, blank keep-alives
