"""Timings of a speech: MiniMax's subtitle segments placed on the caller's own text, and the two
deliveries that carry them (shared/reference/timestamps.md).

- `Aligner` turns each segment (`kyma.providers.Segment`) into words and a sentence indexed into
  the request's `input` in code points: ``input[char_start:char_end]`` is the word, always.  A
  word is found in the input where the previous one ended (MiniMax's own offsets are used only
  if the word is not there); a segment that cannot be placed, or times running backwards, is a
  `ProviderError`: the paid call releases its hold, nothing is charged.
- `WithTimestamps` (POST /v1/audio/speech/with-timestamps): keeps the audio, then answers one
  JSON document after the settle: ``audio_base64``, ``content_type``, ``duration_ms`` (measured
  from the audio), ``words`` (word level), ``sentences``, ``captions`` (if asked) and the billing
  facts, with the speech billing headers.
- `TimedEvents` (SSE with ``timestamps``): `kyma.speech.delivery.Events` plus a
  ``{"type": "speech.timestamps", "words": [...], "sentences": [...]}`` event after the audio of
  each segment MiniMax reports; ``speech.audio.done`` stays last.

`kyma.speech.synthesis` calls ``timestamps(segments)`` after each chunk and ``seal()`` after the
last one, before the replay copy and the settle: everything that can fail fails while the hold
can still be released.  Without an Idempotency-Key the JSON answer goes out before the settle
(as a whole file does, `kyma.speech.delivery.Buffered`): a client that left is never charged.
`seal()` returns the document an Idempotency-Key replay needs (kept in S3 next to the audio:
`timings_key`).
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from kyma.audio import inspect_audio
from kyma.billing.money import micros_to_json
from kyma.edge import errors
from kyma.edge.http import Response
from kyma.providers import Segment
from kyma.speech import captions as caption_files
from kyma.speech.delivery import REPLAY_CHUNK_BYTES, Billing, Events, HeldBody, event
from kyma.speech.request import TIMED

if TYPE_CHECKING:
    from kyma.edge.web_app import Output
    from kyma.speech.audio_store import AudioStore
    from kyma.speech.request import SpeechInput

JSON_HEADERS = {"Content-Type": "application/json"}
TIMESTAMPS_EVENT = "speech.timestamps"


def timings_key(audio_key: str) -> str:
    return audio_key + ".timings.json"


class Aligner:
    """MiniMax's segments, in order, placed on `text` (code points)."""

    def __init__(self, text: str, *, words: bool) -> None:
        self.text = text
        self.with_words = words
        self.words: list[dict] = []
        self.sentences: list[dict] = []
        self._cursor = 0            # where the next word is looked for
        self._last_ms = 0

    def add(self, segment: Segment) -> tuple[list[dict], dict | None]:
        """The segment's words and sentence (None for a segment without text)."""
        placed = [self._word(w.word, w.word_begin, w.word_end, w.time_begin, w.time_end) for w in segment.words] \
            if self.with_words else []
        sentence = self._sentence(segment, placed)
        self.words.extend(placed)
        if sentence is not None:
            self.sentences.append(sentence)
        return placed, sentence

    def _word(self, word: str, begin: int | None, end: int | None, start_ms: int, end_ms: int) -> dict:
        found = self.text.find(word, self._cursor)
        if found < 0 or _PAUSE.sub("", self.text[self._cursor:found]).strip(_BETWEEN_WORDS):
            if begin is not None and end is not None and self._cursor <= begin < end <= len(self.text):
                found, length = begin, end - begin          # MiniMax's offsets (say, a replaced word)
            else:
                raise _unplaceable(f"the word {word[:40]!r} is not in the input where it should be")
        else:
            length = len(word)
        if start_ms < self._last_ms:
            raise _unplaceable("word times run backwards")
        self._cursor, self._last_ms = found + length, start_ms
        return {"text": self.text[found:found + length], "start_ms": start_ms, "end_ms": end_ms,
                "char_start": found, "char_end": found + length}

    def _sentence(self, segment: Segment, words: list[dict]) -> dict | None:
        wanted = segment.text.strip()
        if not wanted:
            return None
        previous_end = self.sentences[-1]["char_end"] if self.sentences else 0
        start = words[0]["char_start"] if words else self.text.find(wanted, previous_end)
        if not words and start < 0 and segment.text_begin is not None and segment.text_end is not None \
                and previous_end <= segment.text_begin < segment.text_end <= len(self.text):
            start = segment.text_begin
            wanted = self.text[segment.text_begin:segment.text_end]
        if start < 0:
            raise _unplaceable(f"the sentence {wanted[:40]!r} is not in the input")
        end = max(start + len(wanted) if self.text.startswith(wanted, start) else start,
                  words[-1]["char_end"] if words else 0)
        if end <= start:
            raise _unplaceable(f"the sentence {wanted[:40]!r} is not in the input")
        if not words:
            if segment.time_begin < self._last_ms:
                raise _unplaceable("sentence times run backwards")
            self._last_ms = segment.time_begin
        return {"text": self.text[start:end], "start_ms": segment.time_begin, "end_ms": segment.time_end,
                "char_start": start, "char_end": end}

    def document(self) -> dict:
        return {"words": self.words, "sentences": self.sentences} if self.with_words else {"sentences": self.sentences}


# What may lie between two words MiniMax reports: blanks, punctuation, and its pause markers (<#0.5#>).
_PAUSE = re.compile(r"<#\d+(?:\.\d+)?#>")
_BETWEEN_WORDS = " \t\r\n\u3000\u00a0.,;:!?\"'()[]{}-–—…。，、！？；：「」『』《》“”‘’"


def _unplaceable(detail: str) -> errors.ProviderError:
    return errors.ProviderError(f"MiniMax's timings do not match the input ({detail}); nothing was charged.")


def duration_ms(audio: bytes, audio_format: str, sample_rate: int, fallback: int) -> int:
    """The audio's duration, measured from its bytes (MP3 frames, the WAV header, PCM samples,
    FLAC's STREAMINFO); `fallback` (the last timing) when the bytes do not say."""
    try:
        if audio_format in ("mp3", "wav"):
            return round(inspect_audio(audio).duration_seconds * 1000)
        if audio_format == "pcm":
            return len(audio) * 1000 // (2 * sample_rate)        # 16-bit mono, as requested upstream
        if audio_format == "flac" and audio[:4] == b"fLaC" and len(audio) >= 26:
            packed = int.from_bytes(audio[18:26], "big")
            rate, samples = packed >> 44, packed & ((1 << 36) - 1)
            if rate and samples:
                return samples * 1000 // rate
    except errors.ApiError:
        pass
    return fallback


class _Timed:
    """What both timed deliveries share: the aligner, fed by synthesis."""

    def __init__(self, inp: SpeechInput) -> None:
        self.inp = inp
        self.aligner = Aligner(inp.text, words=inp.timestamps == "word")

    def timestamps(self, segments: Sequence[Segment]) -> None:
        for segment in segments:
            words, sentence = self.aligner.add(segment)
            self.report(words, sentence)

    def report(self, words: list[dict], sentence: dict | None) -> None:
        pass

    def check(self) -> None:
        if not self.aligner.sentences:
            raise errors.ProviderError("MiniMax returned no timings for this speech; nothing was charged.")


class WithTimestamps(_Timed, HeldBody):
    """The JSON answer.  Like `kyma.speech.delivery.Buffered`: without an Idempotency-Key
    (`before_charge`) its headers go before the settle and its body after it (HeldBody), so a client
    gone before is released, never charged, and a failed settle gives nothing away; with one, after
    the settle (audio and timings are kept for replays first), with Content-Length."""

    needs_balance = True

    def __init__(self, out: Output, extra_headers: dict[str, str], inp: SpeechInput, *,
                 before_charge: bool = False) -> None:
        super().__init__(inp)
        self.out, self.extra = out, extra_headers
        self.before_charge = before_charge
        self.parts = []
        self.doc: dict[str, Any] = {}
        self.sent = False

    def seal(self) -> dict:
        """After the last chunk, before the settle: the timings, duration and captions (or a
        `ProviderError` if MiniMax's timings are unusable)."""
        self.check()
        audio = b"".join(self.parts)
        self.parts = [audio]
        doc = self.aligner.document()
        last = max([s["end_ms"] for s in doc["sentences"]] + [w["end_ms"] for w in doc.get("words", [])])
        doc["duration_ms"] = duration_ms(audio, self.inp.audio_format, self.inp.sample_rate, last)
        if self.inp.captions:
            doc["captions"] = caption_files.build(self.inp.text, doc["sentences"], doc.get("words"),
                                                  self.inp.captions)
        self.doc = doc
        return doc

    def end(self, billing: Billing) -> None:
        if self.sent:
            return
        audio, self.parts = b"".join(self.parts), []
        self.sent = True
        response = answer(audio, self.doc, billing, self.extra)
        if self.before_charge:
            self.hold_back(response.headers,
                           response.body.encode() if isinstance(response.body, str) else response.body)
            return
        self.out.send(response)


class TimedEvents(Events, _Timed):
    """Server-Sent Events with ``speech.timestamps`` events as MiniMax reports its segments."""

    before_charge = False

    def __init__(self, out: Output, extra_headers: dict[str, str], inp: SpeechInput) -> None:
        Events.__init__(self, out, extra_headers)
        _Timed.__init__(self, inp)

    def report(self, words: list[dict], sentence: dict | None) -> None:
        self.out.write(timestamps_event(words, sentence, with_words=self.aligner.with_words))

    def seal(self) -> dict:
        self.check()
        return self.aligner.document()


def timestamps_event(words: list[dict], sentence: dict | None, *, with_words: bool) -> bytes:
    payload: dict[str, Any] = {"type": TIMESTAMPS_EVENT}
    if with_words:
        payload["words"] = words
    payload["sentences"] = [sentence] if sentence is not None else []
    return event(payload)


def answer(audio: bytes, doc: dict, billing: Billing, extra_headers: dict[str, str]) -> Response:
    """The with-timestamps JSON answer (the billing headers too, as for speech)."""
    body = {"audio_base64": base64.b64encode(audio).decode("ascii"), "content_type": billing.content_type,
            "duration_ms": doc["duration_ms"], **({"words": doc["words"]} if "words" in doc else {}),
            "sentences": doc["sentences"], **({"captions": doc["captions"]} if "captions" in doc else {}),
            "characters_billed": billing.chars, "cost_usd": micros_to_json(billing.cost_micros),
            "balance_usd": None if billing.balance_micros is None else micros_to_json(billing.balance_micros)}
    return Response(200, json.dumps(body, ensure_ascii=False, separators=(",", ":")),
                    {**billing.headers(), **JSON_HEADERS, **extra_headers})


def for_request(inp: SpeechInput, out: Output, *, replayed: bool = False,
                replayable: bool = True) -> WithTimestamps | TimedEvents:
    """`replayable`: an Idempotency-Key keeps audio and timings, so the JSON answer may be sent after
    the charge; without one it is sent first, and charged only once sent."""
    extra = {"Idempotent-Replayed": "true"} if replayed else {}
    if inp.delivery == TIMED:
        return WithTimestamps(out, extra, inp, before_charge=not replayable and not replayed)
    return TimedEvents(out, extra, inp)


def replay(record: dict, inp: SpeechInput, out: Output, audio_store: AudioStore) -> None:
    """An Idempotency-Key replay of a timed request: the first request's audio and timings (both
    kept in S3 before its charge settled) and billing facts."""
    audio = audio_store.get(record["audio_key"]) if record.get("audio_key") else None
    raw = audio_store.get(record["timings_key"]) if record.get("timings_key") else None
    if audio is None or raw is None:
        raise errors.IdempotencyExpired("The audio of this Idempotency-Key has expired; send a new request.")
    doc, billing = json.loads(raw), Billing.from_record(record)
    delivery = for_request(inp, out, replayed=True)
    if isinstance(delivery, WithTimestamps):
        out.send(answer(audio, doc, billing, delivery.extra))
        return
    delivery.begin(billing)
    for start in range(0, len(audio), REPLAY_CHUNK_BYTES):
        delivery.audio(audio[start:start + REPLAY_CHUNK_BYTES])
    out.write(event({"type": TIMESTAMPS_EVENT, **({"words": doc["words"]} if "words" in doc else {}),
                     "sentences": doc["sentences"]}))
    delivery.end(billing)
