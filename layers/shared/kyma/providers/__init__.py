"""The voice provider: MiniMax, through `kyma.providers.minimax.MiniMaxClient`.

There is one implementation: locally the same client talks to the MiniMax
sandbox (an HTTP server in `tools/kyma_local/sandbox`, never shipped in the
layer).  `kyma.providers.select.provider()` builds it from configuration.

`VoiceProvider` only remains because `kyma.speech` and `kyma.voice_clone`
annotate their `provider` parameter with it; `MiniMaxClient` satisfies it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol


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


@dataclass(frozen=True)
class SynthesisResult:
    audio: bytes
    audio_format: str
    trace_id: str | None = None
    extra_info: dict = field(default_factory=dict)


class StreamedSynthesis(Protocol):
    """The part of `kyma.providers.minimax.SpeechStream` that `kyma.speech` uses."""

    trace_id: str | None
    chunks_received: int

    def __iter__(self) -> Iterator[bytes]: ...

    def __enter__(self) -> StreamedSynthesis: ...

    def __exit__(self, *exc: object) -> None: ...

    def close(self) -> None: ...


class VoiceProvider(Protocol):
    """The part of `MiniMaxClient` that `kyma.speech` and `kyma.voice_clone` use."""

    name: str

    def clone_voice(self, audio: bytes, filename: str, voice_id: str, *, deadline: float) -> None:
        """Upload `audio` as a clone reference and register it under `voice_id`.

        `deadline` is a `time.monotonic()` instant; failures raise a
        `kyma.errors.UpstreamError` subclass.
        """

    def synthesize(self, request: SynthesisRequest, *, deadline: float) -> SynthesisResult:
        """Render `request` to audio bytes, or raise a `kyma.errors.UpstreamError` subclass."""

    def synthesize_stream(self, request: SynthesisRequest, *, deadline: float,
                          start_by: float | None = None) -> StreamedSynthesis:
        """Start a streamed synthesis; returns once the first audio chunk has arrived (by
        `start_by`; a failure before it raises here), then yields the audio chunk by chunk."""

    def check_key(self) -> None:
        """Look the API key up now (before anything is charged), or raise an UpstreamError."""
