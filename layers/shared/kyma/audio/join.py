"""Exact joins: where each part's audio payload lies in its file, and what the joined file starts with.

- MP3: the payload is the MPEG frames, without the leading ID3v2 tag(s), without a leading
  Xing/Info/VBRI tag frame (metadata about *that* file: its frame count would be wrong for the
  whole) and without a trailing ID3v1 tag.  Concatenated payloads are one valid stream whose
  duration is the sum of the parts' (every frame counted, `kyma.audio.mp3`).
- WAV: the payload is the `data` chunk; the joined file is one RIFF header (the first part's
  format, the total data size) followed by every part's data.
- PCM: the whole file is payload.

Durations are returned in seconds (floats); a caller adds them and rounds once.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from kyma.audio import mp3
from kyma.edge.errors import AudioUnreadable


@dataclass(frozen=True)
class Payload:
    start: int
    end: int
    seconds: float
    sample_rate: int = 0
    channels: int = 1
    block_align: int = 2


def payload(data: bytes, fmt: str, *, sample_rate: int = 32000, channels: int = 1) -> Payload:
    if fmt == "mp3":
        return _mp3_payload(data)
    if fmt == "wav":
        return _wav_payload(data)
    if fmt == "pcm":
        frames = len(data) // (2 * channels)
        return Payload(0, frames * 2 * channels, frames / sample_rate, sample_rate, channels, 2 * channels)
    raise ValueError(fmt)


def _mp3_payload(data: bytes) -> Payload:
    pos = 0
    while data.startswith(b"ID3", pos):
        pos = mp3._id3v2_end(data, pos)
    while pos < len(data) and data[pos] == 0:
        pos += 1
    stream = mp3._stream_at(data, pos)
    if stream is None:
        raise AudioUnreadable("MiniMax's part is not MP3 audio.")
    is_tag, _ = mp3._vbr_tag(data, pos, stream)
    if is_tag:
        pos += stream.lengths[data[pos + 2]]
    end = len(data)
    if end - pos >= 128 and data[end - 128:end - 125] == b"TAG":
        end -= 128
    seconds = mp3.duration(data[pos:end])
    if seconds is None:
        raise AudioUnreadable("MiniMax's part is not MP3 audio.")
    return Payload(pos, end, seconds, stream.sample_rate)


def _wav_payload(data: bytes) -> Payload:
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise AudioUnreadable("MiniMax's part is not a WAV file.")
    pos, fmt, found = 12, None, None
    while pos + 8 <= len(data) and found is None:
        chunk, size = data[pos:pos + 4], struct.unpack_from("<I", data, pos + 4)[0]
        if chunk == b"fmt ":
            _codec, channels, rate, _byte_rate, block_align, _bits = struct.unpack_from("<HHIIHH", data, pos + 8)
            fmt = (rate, channels, block_align)
        elif chunk == b"data":
            found = (pos + 8, min(len(data), pos + 8 + size))
        pos += 8 + size + (size & 1)
    if fmt is None or found is None or not fmt[0] or not fmt[2]:
        raise AudioUnreadable("MiniMax's WAV part has no format or no data.")
    rate, channels, block_align = fmt
    start, end = found
    end = start + (end - start) // block_align * block_align
    return Payload(start, end, (end - start) / block_align / rate, rate, channels, block_align)


def wav_header(data_bytes: int, *, sample_rate: int, channels: int, block_align: int) -> bytes:
    """The 44-byte RIFF/WAVE header of a PCM file holding `data_bytes` of samples."""
    bits = block_align // channels * 8
    return (b"RIFF" + struct.pack("<I", 36 + data_bytes) + b"WAVE"
            + b"fmt " + struct.pack("<IHHIIHH", 16, 1, channels, sample_rate, sample_rate * block_align,
                                    block_align, bits)
            + b"data" + struct.pack("<I", data_bytes))
