"""Real, playable audio for the MiniMax sandbox, and how it is cut into stream chunks.

What it sounds like: a soft two-tone hum (two sine waves; their pitches are
derived from the request, so different text sounds different), as long as the
text is: 300 ms lead-in plus 60 ms per character.  MP3 and FLAC via PyAV
(FFmpeg's libmp3lame and flac; a development dependency: the sandbox only runs
locally and in tests), WAV and raw PCM as 16-bit little-endian.

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
import io
import itertools
import math
import sys
import wave
from dataclasses import dataclass
from typing import Any

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


# --- MP3 and FLAC, encoded by PyAV (FFmpeg's libmp3lame and flac) -------------

def _frame(pcm: bytes, rate: int, channels: int, fmt: str) -> Any:
    import av  # a development dependency, as the sandbox is: imported on first use

    layout = "stereo" if channels == 2 else "mono"
    samples = len(pcm) // (2 * channels)
    frame = av.AudioFrame(format=fmt, layout=layout, samples=samples)
    frame.sample_rate = rate
    if fmt.endswith("p") and channels == 2:            # planar: one plane per channel
        interleaved = array.array("h", pcm)
        frame.planes[0].update(interleaved[0::2].tobytes())
        frame.planes[1].update(interleaved[1::2].tobytes())
    else:
        frame.planes[0].update(pcm)
    return frame


@functools.lru_cache(maxsize=32)
def _mp3_clip(seed: int, rate: int, channels: int, bitrate: int) -> tuple[bytes, tuple[int, ...], int]:
    """The 0.5 s clip as raw MP3 frames (no tag frame), the offsets of its frames and the samples
    per frame.  FFmpeg's encoder hands out one frame per packet, so the packets are the frames."""
    import av

    pcm = _clip_pcm(seed, rate, channels)
    codec = av.CodecContext.create("libmp3lame", "w")
    codec.sample_rate, codec.layout, codec.format = rate, "stereo" if channels == 2 else "mono", "s16p"
    codec.bit_rate = bitrate
    packets = [bytes(p) for p in [*codec.encode(_frame(pcm, rate, channels, "s16p")), *codec.encode(None)]]
    starts = tuple(itertools.accumulate((len(p) for p in packets[:-1]), initial=0))
    return b"".join(packets), starts, codec.frame_size


_ID3 = b"ID3\x04\x00\x00\x00\x00\x00\x00"   # empty ID3v2.4 tag, as MiniMax's MP3s start


def _mp3(seed: int, rate: int, channels: int, bitrate: int, duration_ms: int,
         min_size: int | None) -> Rendered:
    clip, starts, samples = _mp3_clip(seed, rate, channels, bitrate)
    clip_ms = int(_CLIP_SECONDS * 1000)
    reps = max(1, math.ceil(duration_ms / clip_ms))
    if min_size is not None:
        reps = max(1, math.ceil((min_size - len(_ID3)) / len(clip)))
    unit_starts = tuple(len(_ID3) + r * len(clip) + s for r in range(reps) for s in starts)
    return Rendered(_ID3 + clip * reps, reps * clip_ms, "mp3", rate, channels, unit_starts,
                    samples * 1000 / rate)


def _flac(pcm: bytes, rate: int, channels: int) -> tuple[bytes, tuple[int, ...]]:
    """A FLAC stream of `pcm` (frames of `_FLAC_FRAME_SECONDS`) and the byte offsets of its frames:
    the muxer writes STREAMINFO (its totals and MD5 once the last frame is in) before the frames."""
    import av

    out = io.BytesIO()
    sizes = []
    with av.open(out, "w", format="flac", options={"metadata_header_padding": "0"}) as container:
        stream = container.add_stream("flac", rate=rate,
                                      options={"frame_size": str(int(rate * _FLAC_FRAME_SECONDS))})
        stream.codec_context.layout = "stereo" if channels == 2 else "mono"
        stream.codec_context.format = "s16"
        for packet in [*stream.encode(_frame(pcm, rate, channels, "s16")), *stream.encode(None)]:
            if packet.size:         # the encoder's last packet is empty: new STREAMINFO only
                sizes.append(packet.size)
            container.mux(packet)
    audio = out.getvalue()
    header = len(audio) - sum(sizes)
    return audio, tuple(itertools.accumulate(sizes[:-1], initial=header))


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
        pcm = _pcm(seed, rate, channels, rate * duration_ms // 1000 * frame_bytes)
        audio, starts = _flac(pcm, rate, channels)
        while size is not None and len(audio) < size:     # compressed: longer, by the ratio seen
            duration_ms = math.ceil(duration_ms * size / max(1, len(audio)) * 1.05) + 100
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
