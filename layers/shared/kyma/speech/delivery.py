"""How speech reaches the client: one whole file, raw audio chunks, or Server-Sent Events.

`kyma.speech.synthesis` hands every delivery the same calls: `begin(billing)` once the first audio
is in hand (before it, nothing has been sent, so any failure is an ordinary error
response), `audio(chunk)` for each chunk as MiniMax produces it, and `end(billing)` after
the charge settled.

- `Buffered` ("buffered", no stream flag): keeps the chunks and sends the whole file with
  every billing header including X-Kyma-Balance-USD (the reserve has debited it already).
  Without an Idempotency-Key it is sent *before* the settle (one chunk; the body's
  terminating chunk after it) and charged only if the send went through (`before_charge`);
  with one, after the settle (the audio is kept first), with Content-Length.
- `RawAudio` ("audio", or `stream: true`): status and the headers known before the first
  byte (model, characters, cost, provider) at `begin`, each chunk at once, the body's
  last chunk after the settle.  No balance header (it is not known when headers go).
- `Events` ("sse"): `text/event-stream` in OpenAI's shape:
  ``data: {"type": "speech.audio.delta", "audio": "<base64>"}`` per chunk, then
  ``data: {"type": "speech.audio.done", "usage": {...}}`` after the settle.  OpenAI's
  usage fields are all there (`input_tokens` and `total_tokens` carry the characters
  billed, our unit; `output_tokens` is 0), plus `characters_billed`, `cost_usd` and
  `balance_usd` (null if it could not be read).  A failure after the first event ends the
  stream with ``data: {"type": "error", "error": {"code": ..., "message": ...}}``.

Failure after the first byte on a raw stream is a body without its last chunk
(`kyma.edge.web_app`): the client cannot take a cut stream for a whole file.

`replay` answers an Idempotency-Key replay from the audio kept in S3 and the billing
facts of the record, in whichever form the replay asks for.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from kyma.billing.money import micros_to_header, micros_to_json, usd_to_micros
from kyma.edge import errors
from kyma.edge.errors import ApiError
from kyma.edge.http import Response
from kyma.speech.request import AUDIO, BUFFERED, SSE

if TYPE_CHECKING:
    from kyma.edge.web_app import Output
    from kyma.speech.audio_store import AudioStore

REPLAY_CHUNK_BYTES = 64 * 1024
SSE_HEADERS = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}


@dataclass(frozen=True)
class Billing:
    """What a request costs and what the client is told about it."""

    sku: str
    chars: int
    cost_micros: int
    content_type: str
    provider: str
    balance_micros: int | None = None       # after the charge; None before it, or if unreadable

    def headers(self, *, balance: bool = True) -> dict[str, str]:
        return {
            "Content-Type": self.content_type,
            "X-Kyma-Model": self.sku,
            "X-Kyma-Chars-Billed": str(self.chars),
            "X-Kyma-Cost-USD": micros_to_header(self.cost_micros),
            **({"X-Kyma-Balance-USD": micros_to_header(self.balance_micros)}
               if balance and self.balance_micros is not None else {}),
            "X-Kyma-Provider": self.provider,
        }

    def record(self, audio_key: str | None) -> dict:
        """What an Idempotency-Key record keeps: these headers and where the audio is (never audio)."""
        return {"headers": self.headers(), "audio_key": audio_key}

    @classmethod
    def from_record(cls, record: dict) -> Billing:
        h = record["headers"]
        balance = h.get("X-Kyma-Balance-USD")
        return cls(sku=h["X-Kyma-Model"], chars=int(h["X-Kyma-Chars-Billed"]),
                   cost_micros=usd_to_micros(h["X-Kyma-Cost-USD"]), content_type=h["Content-Type"],
                   provider=h.get("X-Kyma-Provider", ""),
                   balance_micros=None if balance is None else usd_to_micros(balance))


class Delivery(Protocol):
    needs_balance: bool
    before_charge: bool         # headers before the settle, the body after it (see HeldBody)

    def begin(self, billing: Billing) -> None: ...

    def audio(self, chunk: bytes) -> None: ...

    def end(self, billing: Billing) -> None: ...

    def after_charge(self) -> None: ...


class HeldBody:
    """A whole answer nothing could replay (no Idempotency-Key), delivered around its settle: before
    it, the connection is checked (`Output.ensure_connected`, at every chunk and once more) and the
    status and headers are sent, so a client known to be gone, or a failed send, raises ClientGone
    and the hold is released; the body itself only after the settle applied (`after_charge`), then
    the terminating chunk (kyma.edge.web_app, when the route returns).  A settle that fails leaves
    headers and no body: nothing is given away (found by a review: sending the body first gave the
    whole file free when the settle failed)."""

    out: Output
    before_charge: bool
    parts: list[bytes]
    held: bytes | None = None

    def begin(self, billing: Billing) -> None:
        pass

    def audio(self, chunk: bytes) -> None:
        if self.before_charge:
            self.out.ensure_connected()      # a client known to be gone: released, the upstream stopped
        self.parts.append(chunk)

    def hold_back(self, headers: dict[str, str], body: bytes) -> None:
        self.out.ensure_connected()
        self.out.start(200, headers)
        self.held = body

    def after_charge(self) -> None:
        """The charge is applied: the body now (ClientGone here is charged, like a cut stream)."""
        body, self.held = self.held, None
        if body:
            self.out.write(body)


class Buffered(HeldBody):
    """The whole file.  `before_charge` (no Idempotency-Key, so nothing could replay it): headers
    before the settle and the file after it (HeldBody); the upstream stops at once if the client is
    known to be gone.  Otherwise (a key: the audio is kept for replays first) the file is sent
    after the settle with Content-Length, as the replay would send it."""

    needs_balance = True

    def __init__(self, out: Output, extra_headers: dict[str, str], *, before_charge: bool = False) -> None:
        self.out, self.extra = out, extra_headers
        self.before_charge = before_charge
        self.parts = []
        self.sent = False

    def end(self, billing: Billing) -> None:
        if self.sent:
            return          # held before the charge; its body follows the settle (after_charge)
        audio, self.parts = b"".join(self.parts), []
        self.sent = True
        if self.before_charge:
            self.hold_back({**billing.headers(), **self.extra}, audio)
            return
        self.out.send(Response(200, audio, {**billing.headers(), **self.extra}))


class RawAudio:
    needs_balance = False
    before_charge = False

    def __init__(self, out: Output, extra_headers: dict[str, str]) -> None:
        self.out, self.extra = out, extra_headers

    def begin(self, billing: Billing) -> None:
        self.out.start(200, {**billing.headers(balance=False), **self.extra})

    def audio(self, chunk: bytes) -> None:
        self.out.write(chunk)

    def end(self, billing: Billing) -> None:
        pass        # kyma.edge.web_app writes the last chunk when the route returns

    def after_charge(self) -> None:
        pass        # streamed: every byte went out before the charge


class Events:
    needs_balance = True
    before_charge = False

    def after_charge(self) -> None:
        pass        # streamed: every event but the done event went out before the charge

    def __init__(self, out: Output, extra_headers: dict[str, str]) -> None:
        self.out, self.extra = out, extra_headers

    def begin(self, billing: Billing) -> None:
        headers = {**billing.headers(balance=False), **SSE_HEADERS, **self.extra}
        self.out.start(200, headers, last_word=error_event)

    def audio(self, chunk: bytes) -> None:
        self.out.write(event({"type": "speech.audio.delta", "audio": base64.b64encode(chunk).decode("ascii")}))

    def end(self, billing: Billing) -> None:
        self.out.write(event({"type": "speech.audio.done", "usage": usage(billing)}))


def for_request(delivery: str, out: Output, *, replayed: bool = False, replayable: bool = True) -> Delivery:
    """`replayable`: an Idempotency-Key keeps the audio, so a whole file may be charged before it is
    sent (a replay resends it); without one it is sent first, and charged only once sent."""
    extra = {"Idempotent-Replayed": "true"} if replayed else {}
    if delivery == BUFFERED:
        return Buffered(out, extra, before_charge=not replayable and not replayed)
    kinds: dict[str, type[RawAudio] | type[Events]] = {AUDIO: RawAudio, SSE: Events}
    return kinds[delivery](out, extra)


def event(payload: dict) -> bytes:
    return b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"


def error_event(error: ApiError) -> bytes:
    return event({"type": "error", **error.envelope()})


def usage(billing: Billing) -> dict:
    return {"input_tokens": billing.chars, "output_tokens": 0, "total_tokens": billing.chars,
            "characters_billed": billing.chars, "cost_usd": micros_to_json(billing.cost_micros),
            "balance_usd": None if billing.balance_micros is None else micros_to_json(billing.balance_micros)}


def replay(record: dict, delivery: Delivery, audio_store: AudioStore) -> None:
    """An Idempotency-Key replay: the first request's audio (kept in S3 before its charge
    settled) and billing facts, delivered in the form this request asks for."""
    audio = audio_store.get(record["audio_key"]) if record.get("audio_key") else None
    if audio is None:
        raise errors.IdempotencyExpired("The audio of this Idempotency-Key has expired; send a new request.")
    billing = Billing.from_record(record)
    delivery.begin(billing)
    for start in range(0, len(audio), REPLAY_CHUNK_BYTES):
        delivery.audio(audio[start:start + REPLAY_CHUNK_BYTES])
    delivery.end(billing)
