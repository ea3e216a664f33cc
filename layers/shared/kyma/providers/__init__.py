"""The voice provider: MiniMax, through `kyma.providers.minimax.MiniMaxClient`.

There is one implementation: locally the same client talks to the MiniMax
sandbox (an HTTP server in `tools/kyma_local/sandbox`, never shipped in the
layer).  `kyma.providers.select.provider()` builds it from configuration.
This module holds what a synthesis is, in MiniMax's terms, and what it returns.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class SynthesisRequest:
    """One text-to-speech call, already in MiniMax's terms."""

    model: str                 # MiniMax model id, e.g. "speech-2.8-hd"
    text: str
    voice_id: str
    audio_format: str          # "mp3" | "wav" | "flac" | "pcm"
    sample_rate: int = 32000
    bitrate: int = 128000      # only meaningful for mp3
    channel: int = 1
    speed: float = 1.0
    vol: float = 1.0
    pitch: int = 0
    emotion: str | None = None
    language_boost: str | None = None
    subtitles: str | None = None          # MiniMax's subtitle_type ("sentence" | "word"), or None: no timings
    pronunciation: tuple[str, ...] = ()   # pronunciation_dict.tone: "original/replacement" entries


@dataclass(frozen=True)
class TimedWord:
    """One word of a segment as MiniMax times it (ms from the start of the audio)."""

    word: str
    time_begin: int
    time_end: int
    word_begin: int | None = None     # where MiniMax says the word is in the text (unconfirmed units)
    word_end: int | None = None


@dataclass(frozen=True)
class Segment:
    """One subtitle segment (a sentence, for MiniMax) with its timing and, at word level, its words."""

    text: str
    time_begin: int
    time_end: int
    text_begin: int | None = None
    text_end: int | None = None
    words: tuple[TimedWord, ...] = ()


@dataclass(frozen=True)
class SynthesisResult:
    audio: bytes
    audio_format: str
    trace_id: str | None = None
    extra_info: dict = field(default_factory=dict)
    segments: tuple[Segment, ...] = ()    # the subtitles, when the request asked for them
