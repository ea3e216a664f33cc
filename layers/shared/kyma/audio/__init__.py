"""Reference-audio checks for voice cloning: what format is it, how long is it?

`inspect_audio` sniffs MP3, WAV or M4A from the bytes alone (never from a file
name or a declared content type) and reads the duration from the audio.  This
module owns the sniffing and the result; one module per format measures:

* `kyma.audio.mp3`: every frame header is walked and the samples are counted
  exactly, so VBR files without a Xing header are right too (tools that
  extrapolate from the first frame's bitrate are not).  A Xing/Info/VBRI
  frame is metadata, not audio; the LAME tag's encoder delay and padding are
  subtracted.
* `kyma.audio.wav`: RIFF chunks are walked; PCM and IEEE float; data bytes /
  bytes per second.
* `kyma.audio.m4a`: top-level ISO-BMFF boxes (`kyma.audio.boxes`) are checked
  against the file size; codec and media duration come from mutagen;
  fragmented files sum their ``trun`` boxes.  The AAC encoder priming and
  padding the file declares (edit list, else iTunSMPB: `kyma.audio.gapless`)
  are not audio and are cut off.

Anything that is not one of the three formats raises `UnsupportedMediaType`
(415).  A recognised file whose duration cannot be trusted (truncated,
corrupt, a codec we do not read) raises `AudioUnreadable` (400).  No other
exception escapes, whatever the bytes.
"""

from __future__ import annotations

from dataclasses import dataclass

from kyma.audio import m4a, mp3, wav
from kyma.edge.errors import UnsupportedMediaType

__all__ = ["UNSUPPORTED_FORMAT", "AudioInfo", "inspect_audio"]

UNSUPPORTED_FORMAT = "Audio format not supported: send MP3, WAV or M4A."


@dataclass(frozen=True)
class AudioInfo:
    format: str            # "mp3" | "wav" | "m4a"
    duration_seconds: float
    mime_type: str         # "audio/mpeg" | "audio/wav" | "audio/mp4"


def inspect_audio(data: bytes, *, stop_after_seconds: float | None = None) -> AudioInfo:
    """Identify MP3/WAV/M4A from ``data`` and measure its duration.

    ``stop_after_seconds`` lets the MP3 frame walk stop once the running
    duration (encoder delay and padding already subtracted) exceeds it; the
    duration returned is then the length reached so far, larger than the limit
    and no larger than the whole file's, and the rest of the file is not
    checked.  NaN and infinity mean no limit.
    """
    if not isinstance(data, bytes):
        data = bytes(data)
    if data[:4] == b"RIFF" and data[8:12] == b"WAVE":
        return AudioInfo("wav", wav.duration(data), "audio/wav")
    if data[4:8] == b"ftyp":
        seconds = m4a.duration(data)
        if seconds is None:     # an ISO-BMFF file, but not audio (a video, a QuickTime brand...)
            raise UnsupportedMediaType(UNSUPPORTED_FORMAT)
        return AudioInfo("m4a", seconds, "audio/mp4")
    seconds = mp3.duration(data, stop_after_seconds)
    if seconds is None:
        raise UnsupportedMediaType(UNSUPPORTED_FORMAT)
    return AudioInfo("mp3", seconds, "audio/mpeg")
