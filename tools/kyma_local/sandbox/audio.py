"""Real, playable audio for the MiniMax sandbox, and how it is cut into stream chunks.

What it sounds like: a soft two-tone hum (two sine waves; their pitches are
derived from the request, so different text sounds different), as long as the
text is: 300 ms lead-in plus 60 ms per character.  MP3 via lameenc (a
development dependency: the sandbox only runs locally and in tests), WAV and
raw PCM as 16-bit little-endian, FLAC as a valid uncompressed stream.

Streaming (`chunks`): the whole answer is rendered first, then cut at
boundaries a decoder can start from -- whole MP3 frames, whole FLAC frames,
whole PCM sample frames -- into pieces of about `chunk_ms` of audio each.  The
concatenated chunks are therefore byte for byte the non-stream answer for the
same request (MP3, PCM and FLAC alike).  MiniMax documents no such guarantee:
a real streaming encoder may write different container headers (an MP3's ID3
tag, FLAC's STREAMINFO totals and MD5 are only known at the end), so a client
can rely on "the chunks, concatenated in order, are one playable file of the
requested format", not on equality with a non-stream answer.  WAV is not
streamed (MiniMax refuses it: its RIFF header needs the final length).
"""

from __future__ import annotations

import array
import functools
import hashlib
import io
import itertools
import math
import struct
import sys
import wave
from dataclasses import dataclass

LEAD_IN_MS = 300
MS_PER_CHAR = 60

_CLIP_SECONDS = 0.5
# FLAC frames of 100 ms: a stream chunk of 100-200 ms is one or two whole frames.
_FLAC_FRAME_SECONDS = 0.1


@dataclass(frozen=True)
class Rendered:
    """One answer: its bytes, its duration, and where its decodable units start."""

    audio: bytes
    duration_ms: int
    fmt: str
    sample_rate: int
    channels: int
    # Byte offsets at which an MP3/FLAC frame starts (the first one follows any header);
    # empty for PCM/WAV, whose units are sample frames.
    unit_starts: tuple[int, ...] = ()
    unit_ms: float = 0.0


@functools.lru_cache(maxsize=32)
def _clip_pcm(seed: int, rate: int, channels: int) -> bytes:
    """0.5 s of 16-bit little-endian interleaved PCM; seamless when tiled.

    Two tones with even frequencies complete whole cycles in 0.5 s, so the
    tiled signal has no clicks.
    """
    f1 = 180 + 2 * (seed % 160)
    f2 = 2 * f1 + 2 * ((seed >> 8) % 40)
    n = int(rate * _CLIP_SECONDS)
    k1, k2 = 2 * math.pi * f1 / rate, 2 * math.pi * f2 / rate
    mono = array.array("h", (int(7000 * math.sin(k1 * i) + 2500 * math.sin(k2 * i))
                             for i in range(n)))
    if channels == 2:
        stereo = array.array("h", bytes(4 * n))
        stereo[0::2] = mono
        stereo[1::2] = mono
        mono = stereo
    if sys.byteorder == "big":
        mono.byteswap()
    return mono.tobytes()


def _pcm(seed: int, rate: int, channels: int, nbytes: int) -> bytes:
    clip = _clip_pcm(seed, rate, channels)
    reps = nbytes // len(clip) + 1
    return (clip * reps)[:nbytes]


def _wav(pcm: bytes, rate: int, channels: int) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm)
    return out.getvalue()


# --- MP3 -------------------------------------------------------------------

@functools.lru_cache(maxsize=32)
def _mp3_clip(seed: int, rate: int, channels: int, bitrate: int) -> bytes:
    pcm = _clip_pcm(seed, rate, channels)
    try:
        import lameenc  # optional (dev dependency)

        enc = lameenc.Encoder()
        enc.set_bit_rate(bitrate // 1000)
        enc.set_in_sample_rate(rate)
        enc.set_channels(channels)
        enc.set_quality(7)
        data = bytes(enc.encode(pcm)) + bytes(enc.flush())
        if data:
            return data
    except Exception:  # noqa: S110 -- no encoder: fall back to silent frames below
        pass
    # Fallback: MPEG-1 Layer III frame headers (128 kbit/s, 44.1 kHz) with
    # empty payloads -- starts like an MP3, decodes as silence.
    frame = b"\xff\xfb\x90\x64" + bytes(413)
    return frame * max(1, int(_CLIP_SECONDS * 44100 / 1152))


_ID3 = b"ID3\x04\x00\x00\x00\x00\x00\x00"   # empty ID3v2.4 tag, as MiniMax's MP3s start

# MPEG audio frame header tables (Layer III).
_MP3_BITRATES = {  # kbit/s by (MPEG-1?, index)
    True: (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    False: (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
}
_MP3_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}


def _mp3_frame(data: bytes, pos: int) -> tuple[int, int] | None:
    """(length in bytes, samples) of the Layer III frame at `pos`, or None."""
    if pos + 4 > len(data) or data[pos] != 0xFF or data[pos + 1] & 0xE0 != 0xE0:
        return None
    version = (data[pos + 1] >> 3) & 0x3          # 3 = MPEG-1, 2 = MPEG-2, 0 = MPEG-2.5
    layer = (data[pos + 1] >> 1) & 0x3            # 1 = Layer III
    bitrate_index = data[pos + 2] >> 4
    rate_index = (data[pos + 2] >> 2) & 0x3
    padding = (data[pos + 2] >> 1) & 0x1
    if version == 1 or layer != 1 or bitrate_index in (0, 15) or rate_index == 3:
        return None
    mpeg1 = version == 3
    bitrate = _MP3_BITRATES[mpeg1][bitrate_index] * 1000
    rate = _MP3_RATES[version][rate_index]
    samples = 1152 if mpeg1 else 576
    return samples // 8 * bitrate // rate + padding, samples


@functools.lru_cache(maxsize=32)
def _mp3_frame_starts(clip: bytes) -> tuple[tuple[int, ...], int]:
    """Offsets of the frames in `clip` and the samples per frame."""
    starts, pos, samples = [], 0, 1152
    while pos < len(clip):
        frame = _mp3_frame(clip, pos)
        if frame is None:
            break
        starts.append(pos)
        pos += frame[0]
        samples = frame[1]
    return tuple(starts), samples


def _mp3(seed: int, rate: int, channels: int, bitrate: int, duration_ms: int,
         min_size: int | None) -> Rendered:
    clip = _mp3_clip(seed, rate, channels, bitrate)
    clip_ms = int(_CLIP_SECONDS * 1000)
    reps = max(1, math.ceil(duration_ms / clip_ms))
    if min_size is not None:
        reps = max(1, math.ceil((min_size - len(_ID3)) / len(clip)))
    starts, samples = _mp3_frame_starts(clip)
    unit_starts = tuple(len(_ID3) + r * len(clip) + s for r in range(reps) for s in starts)
    frame_rate = rate if starts else 44100         # the fallback frames are 44.1 kHz
    return Rendered(_ID3 + clip * reps, reps * clip_ms, "mp3", rate, channels, unit_starts,
                    samples * 1000 / frame_rate)


# --- FLAC (verbatim subframes, fixed 100 ms frames) ------------------------

def _crc_table(poly: int, width: int) -> list[int]:
    top, mask = 1 << (width - 1), (1 << width) - 1
    table = []
    for byte in range(256):
        crc = byte << (width - 8)
        for _ in range(8):
            crc = ((crc << 1) ^ poly) & mask if crc & top else (crc << 1) & mask
        table.append(crc)
    return table


_CRC8 = _crc_table(0x07, 8)
_CRC16 = _crc_table(0x8005, 16)


def _crc8(data: bytes | bytearray) -> int:
    crc = 0
    for b in data:
        crc = _CRC8[crc ^ b]
    return crc


def _crc16(data: bytes | bytearray) -> int:
    crc, table = 0, _CRC16
    for b in data:
        crc = ((crc << 8) & 0xFFFF) ^ table[(crc >> 8) ^ b]
    return crc


def _utf8_number(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    nbytes = 7
    for count, limit in ((2, 0x800), (3, 0x10000), (4, 0x200000), (5, 0x4000000),
                         (6, 0x80000000)):
        if n < limit:
            nbytes = count
            break
    tail = []
    for _ in range(nbytes - 1):
        tail.append(0x80 | (n & 0x3F))
        n >>= 6
    return bytes([((0xFF00 >> nbytes) & 0xFF) | n] + tail[::-1])


_FLAC_RATE_CODES = {8000: 0b0100, 16000: 0b0101, 22050: 0b0110, 24000: 0b0111,
                    32000: 0b1000, 44100: 0b1001}


def _flac(pcm: bytes, rate: int, channels: int) -> tuple[bytes, tuple[int, ...]]:
    """A FLAC stream of `pcm` and the byte offsets of its frames."""
    frame_bytes = 2 * channels
    total_samples = len(pcm) // frame_bytes
    block = int(rate * _FLAC_FRAME_SECONDS)
    samples = array.array("h")
    samples.frombytes(pcm[:total_samples * frame_bytes])
    if sys.byteorder == "big":
        samples.byteswap()
    streaminfo = (struct.pack(">HH", block, block) + bytes(6)
                  + ((rate << 44) | ((channels - 1) << 41) | (15 << 36) | total_samples)
                  .to_bytes(8, "big")
                  + hashlib.md5(pcm[:total_samples * frame_bytes]).digest())  # noqa: S324 -- FLAC's checksum
    out = bytearray(b"fLaC")
    out += bytes([0x80]) + len(streaminfo).to_bytes(3, "big") + streaminfo  # last block
    starts = []
    for number, start in enumerate(range(0, total_samples, block)):
        starts.append(len(out))
        size = min(block, total_samples - start)
        header = bytearray(b"\xff\xf8")
        header.append((0b0111 << 4) | _FLAC_RATE_CODES[rate])
        header.append(((channels - 1) << 4) | (0b100 << 1))
        header += _utf8_number(number)
        header += struct.pack(">H", size - 1)
        header.append(_crc8(header))
        frame = bytearray(header)
        chunk = samples[start * channels:(start + size) * channels]
        for ch in range(channels):
            channel = array.array("h", chunk[ch::channels])
            if sys.byteorder == "little":
                channel.byteswap()
            frame.append(0x02)                  # VERBATIM subframe, no wasted bits
            frame += channel.tobytes()          # 16-bit big-endian samples
        frame += struct.pack(">H", _crc16(frame))
        out += frame
    return bytes(out), tuple(starts)


# --- one answer --------------------------------------------------------------

def render(fmt: str, rate: int, channels: int, bitrate: int, seed: int, duration_ms: int,
           size: int | None = None) -> Rendered:
    """The audio for one request.

    With `size`, the result is exactly `size` bytes: PCM/WAV are generated at
    that length; MP3/FLAC are generated long enough and cut (decoders cope
    with a truncated last frame).
    """
    frame_bytes = 2 * channels
    if fmt == "mp3":
        rendered = _mp3(seed, rate, channels, bitrate, duration_ms, size)
    elif fmt in ("pcm", "wav"):
        if size is not None:
            nbytes = max(0, size - (44 if fmt == "wav" else 0))
        else:
            nbytes = rate * duration_ms // 1000 * frame_bytes
        pcm = _pcm(seed, rate, channels, nbytes)
        duration_ms = len(pcm) // frame_bytes * 1000 // rate
        audio = _wav(pcm, rate, channels) if fmt == "wav" else pcm
        rendered = Rendered(audio, duration_ms, fmt, rate, channels)
    elif fmt == "flac":
        if size is not None:
            duration_ms = max(duration_ms, math.ceil(size / (rate * frame_bytes) * 1000) + 500)
        pcm = _pcm(seed, rate, channels, rate * duration_ms // 1000 * frame_bytes)
        audio, starts = _flac(pcm, rate, channels)
        rendered = Rendered(audio, duration_ms, fmt, rate, channels, starts, _FLAC_FRAME_SECONDS * 1000)
    else:
        raise ValueError(fmt)
    if size is not None:
        audio = rendered.audio[:size]
        rendered = Rendered(audio, rendered.duration_ms, fmt, rate, channels,
                            tuple(s for s in rendered.unit_starts if s < len(audio)), rendered.unit_ms)
    return rendered


def render_audio(fmt: str, rate: int, channels: int, bitrate: int, seed: int, duration_ms: int,
                 size: int | None = None) -> tuple[bytes, int]:
    """Audio bytes for one request and their duration in ms (see `render`)."""
    rendered = render(fmt, rate, channels, bitrate, seed, duration_ms, size)
    return rendered.audio, rendered.duration_ms


def chunks(rendered: Rendered, chunk_ms: float) -> list[bytes]:
    """`rendered` cut into stream chunks of about `chunk_ms` of audio each (whole units).

    Concatenated, the chunks are exactly `rendered.audio`.  The first chunk
    also carries the container header (ID3 tag, FLAC STREAMINFO).
    """
    audio = rendered.audio
    if not audio:
        return []
    if rendered.fmt in ("pcm", "wav"):
        frame_bytes = 2 * rendered.channels
        step = max(1, round(rendered.sample_rate * chunk_ms / 1000)) * frame_bytes
        cuts = list(range(step, len(audio), step))
    elif rendered.unit_starts and rendered.unit_ms > 0:
        per = max(1, math.ceil(chunk_ms / rendered.unit_ms - 1e-9))
        cuts = [s for s in rendered.unit_starts[per::per] if 0 < s < len(audio)]
    else:                                   # no frame structure found: cut by size
        step = max(1, len(audio) * int(chunk_ms) // max(1, rendered.duration_ms))
        cuts = list(range(step, len(audio), step))
    bounds = [0, *cuts, len(audio)]
    return [audio[a:b] for a, b in itertools.pairwise(bounds)]
