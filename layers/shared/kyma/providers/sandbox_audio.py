"""Real, playable audio for the sandbox provider (and the fake MiniMax in tests).

What it sounds like: a soft two-tone hum (two sine waves; their pitches are
derived from the request, so different text sounds different), as long as the
text is: 300 ms lead-in plus 60 ms per character.  MP3 via lameenc (a
development dependency: the sandbox only runs in the local stack), WAV and
raw PCM as 16-bit little-endian, FLAC as a valid uncompressed stream.
"""

from __future__ import annotations

import array
import functools
import hashlib
import io
import math
import struct
import sys
import wave

from kyma.providers import SynthesisRequest

LEAD_IN_MS = 300
MS_PER_CHAR = 60


def render(request: SynthesisRequest) -> bytes:
    """The sandbox's answer to a synthesis request."""
    seed = int.from_bytes(hashlib.sha256(f"{request.voice_id}|{request.text}".encode()).digest()[:8], "big")
    duration_ms = LEAD_IN_MS + MS_PER_CHAR * len(request.text)
    audio, _ = render_audio(request.audio_format, request.sample_rate, request.channel, request.bitrate,
                            seed, duration_ms)
    return audio


_CLIP_SECONDS = 0.5


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
    except Exception:
        pass
    # Fallback: MPEG-1 Layer III frame headers (128 kbit/s, 44.1 kHz) with
    # empty payloads -- starts like an MP3, decodes as silence.
    frame = b"\xff\xfb\x90\x64" + bytes(413)
    return frame * max(1, int(_CLIP_SECONDS * 44100 / 1152))


_ID3 = b"ID3\x04\x00\x00\x00\x00\x00\x00"   # empty ID3v2.4 tag, as MiniMax's MP3s start


def _mp3(seed: int, rate: int, channels: int, bitrate: int, duration_ms: int,
         min_size: int | None) -> tuple[bytes, int]:
    clip = _mp3_clip(seed, rate, channels, bitrate)
    clip_ms = int(_CLIP_SECONDS * 1000)
    reps = max(1, math.ceil(duration_ms / clip_ms))
    if min_size is not None:
        reps = max(1, math.ceil((min_size - len(_ID3)) / len(clip)))
    return _ID3 + clip * reps, reps * clip_ms


# --- FLAC (verbatim subframes, fixed block size = one 0.5 s clip) ----------

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


def _crc8(data: bytes) -> int:
    crc = 0
    for b in data:
        crc = _CRC8[crc ^ b]
    return crc


def _crc16(data: bytes) -> int:
    crc, table = 0, _CRC16
    for b in data:
        crc = ((crc << 8) & 0xFFFF) ^ table[(crc >> 8) ^ b]
    return crc


def _utf8_number(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    for nbytes, limit in ((2, 0x800), (3, 0x10000), (4, 0x200000), (5, 0x4000000),
                          (6, 0x80000000), (7, 0x1000000000)):
        if n < limit:
            break
    tail = []
    for _ in range(nbytes - 1):
        tail.append(0x80 | (n & 0x3F))
        n >>= 6
    return bytes([((0xFF00 >> nbytes) & 0xFF) | n] + tail[::-1])


_FLAC_RATE_CODES = {8000: 0b0100, 16000: 0b0101, 22050: 0b0110, 24000: 0b0111,
                    32000: 0b1000, 44100: 0b1001}


def _flac(pcm: bytes, rate: int, channels: int) -> bytes:
    frame_bytes = 2 * channels
    total_samples = len(pcm) // frame_bytes
    block = int(rate * _CLIP_SECONDS)
    samples = array.array("h")
    samples.frombytes(pcm[:total_samples * frame_bytes])
    if sys.byteorder == "big":
        samples.byteswap()
    streaminfo = (struct.pack(">HH", block, block) + bytes(6)
                  + ((rate << 44) | ((channels - 1) << 41) | (15 << 36) | total_samples)
                  .to_bytes(8, "big")
                  + hashlib.md5(pcm[:total_samples * frame_bytes]).digest())
    out = bytearray(b"fLaC")
    out += bytes([0x80]) + len(streaminfo).to_bytes(3, "big") + streaminfo  # last block
    for number, start in enumerate(range(0, total_samples, block)):
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
    return bytes(out)


def render_audio(fmt: str, rate: int, channels: int, bitrate: int, seed: int, duration_ms: int,
                 size: int | None = None) -> tuple[bytes, int]:
    """Audio bytes for one request and their duration in ms.

    With `size`, the result is exactly `size` bytes: PCM/WAV are generated at
    that length; MP3/FLAC are generated long enough and cut (decoders cope
    with a truncated last frame).
    """
    frame_bytes = 2 * channels
    if fmt == "mp3":
        audio, duration_ms = _mp3(seed, rate, channels, bitrate, duration_ms, size)
    elif fmt in ("pcm", "wav"):
        if size is not None:
            nbytes = max(0, size - (44 if fmt == "wav" else 0))
        else:
            nbytes = rate * duration_ms // 1000 * frame_bytes
        pcm = _pcm(seed, rate, channels, nbytes)
        duration_ms = len(pcm) // frame_bytes * 1000 // rate
        audio = _wav(pcm, rate, channels) if fmt == "wav" else pcm
    elif fmt == "flac":
        if size is not None:
            duration_ms = max(duration_ms, math.ceil(size / (rate * frame_bytes) * 1000) + 500)
        pcm = _pcm(seed, rate, channels, rate * duration_ms // 1000 * frame_bytes)
        audio = _flac(pcm, rate, channels)
    else:
        raise ValueError(fmt)
    if size is not None:
        audio = audio[:size]
    return audio, duration_ms
