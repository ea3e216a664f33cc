"""Deterministic audio fixtures for the tests: real MP3, WAV and M4A bytes.

Every generator returns ``bytes`` and is cached, so many tests can ask for
the same clip for free.  The signal is a 0.25 s-segment pattern of tones,
a chirp, noise and silence: not trivial, so VBR encoders really vary the
bitrate, and cheap to build without numpy (a few blocks, tiled).

MP3 and M4A are encoded with PyAV (FFmpeg: libmp3lame, aac); MP3 without a
Xing header comes from ``lameenc``, which writes raw LAME frames only.
"""

from __future__ import annotations

import array
import functools
import io
import math
import os
import random
import struct
import sys
import tempfile
import wave
import zlib

SEGMENT_SECONDS = 0.25
_FF_QP2LAMBDA = 118  # FFmpeg's scale for global_quality: -q:a 4 == 4 * 118
# Speed over quality: the fixtures only need real, well-formed streams.
_FAST_ENCODER_OPTIONS = {"libmp3lame": {"compression_level": "7"}, "aac": {"aac_coder": "fast"}}
_AMPLITUDE = 12000


# --------------------------------------------------------------------------
# The signal
# --------------------------------------------------------------------------

@functools.cache
def _blocks(rate: int) -> tuple[array.array, ...]:
    """A few 0.25 s blocks of 16-bit mono samples with different characters."""
    n = int(rate * SEGMENT_SECONDS)
    two_pi = 2 * math.pi
    noise = random.Random(1234)

    def tone(freqs: tuple[float, ...], level: float) -> array.array:
        return array.array("h", (
            int(level * _AMPLITUDE / len(freqs)
                * sum(math.sin(two_pi * f * i / rate) for f in freqs))
            for i in range(n)))

    chirp = array.array("h", (
        int(_AMPLITUDE * math.sin(two_pi * (200 + 1800 * i / n) * i / rate))
        for i in range(n)))
    hiss = array.array("h", (int(noise.uniform(-0.6, 0.6) * _AMPLITUDE) for _ in range(n)))
    silence = array.array("h", bytes(2 * n))
    return (
        tone((220.0,), 1.0),
        tone((440.0, 660.0, 1320.0), 0.9),
        chirp,
        hiss,
        silence,
        tone((880.0, 3100.0), 0.5),
    )


def _pattern(segments: int) -> list[int]:
    """Which block plays in each segment: deterministic and irregular."""
    return [(i * 7 + i // 3 + (i * i) % 5) % 6 for i in range(segments)]


def _mono(seconds: float, rate: int) -> array.array:
    """``seconds`` of 16-bit mono signal at ``rate`` Hz."""
    blocks = _blocks(rate)
    total = round(seconds * rate)
    per_block = len(blocks[0])
    out = array.array("h")
    for index in _pattern(-(-total // per_block)):
        out.extend(blocks[index])
    del out[total:]
    return out


@functools.lru_cache(maxsize=32)
def pcm_s16(seconds: float, rate: int, channels: int = 1) -> bytes:
    """Interleaved little-endian signed 16-bit PCM (the second channel is delayed)."""
    mono = _mono(seconds, rate)
    if channels == 1:
        samples = mono
    else:
        samples = array.array("h", bytes(2 * len(mono) * channels))
        shift = rate // 10
        delayed = mono[-shift:] + mono[:-shift] if shift else mono
        samples[0::channels] = mono
        for channel in range(1, channels):
            samples[channel::channels] = delayed
    if sys.byteorder != "little":
        samples = array.array("h", samples)
        samples.byteswap()
    return samples.tobytes()


def _convert_width(pcm16: bytes, sampwidth: int) -> bytes:
    """16-bit PCM to another WAV sample width: 8-bit unsigned, 24 or 32-bit signed."""
    if sampwidth == 2:
        return pcm16
    high = pcm16[1::2]
    if sampwidth == 1:
        return high.translate(bytes((b + 128) & 0xFF for b in range(256)))
    out = bytearray(len(high) * sampwidth)     # low bytes stay zero
    out[sampwidth - 2::sampwidth] = pcm16[0::2]
    out[sampwidth - 1::sampwidth] = high
    return bytes(out)


# --------------------------------------------------------------------------
# WAV
# --------------------------------------------------------------------------

@functools.lru_cache(maxsize=32)
def wav(seconds: float, rate: int = 8000, channels: int = 1, sampwidth: int = 2) -> bytes:
    """A PCM WAV (stdlib ``wave``): 8/16/24/32-bit, any rate and channel count."""
    frames = _convert_width(pcm_s16(seconds, rate, channels), sampwidth)
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as writer:
        writer.setnchannels(channels)
        writer.setsampwidth(sampwidth)
        writer.setframerate(rate)
        writer.writeframes(frames)
    return buffer.getvalue()


def riff_wav(fmt: bytes, data: bytes, *, before_data: bytes = b"", after_data: bytes = b"",
             data_size: int | None = None) -> bytes:
    """Assemble a RIFF/WAVE file by hand from a fmt payload and sample bytes.

    ``before_data``/``after_data`` are extra, already-encoded chunks;
    ``data_size`` overrides the data chunk's declared size (to lie about it).
    """
    declared = len(data) if data_size is None else data_size
    body = (b"WAVE" + chunk(b"fmt ", fmt) + before_data
            + b"data" + struct.pack("<I", declared) + data + (b"\0" if len(data) % 2 else b"")
            + after_data)
    return b"RIFF" + struct.pack("<I", len(body)) + body


def chunk(chunk_id: bytes, payload: bytes) -> bytes:
    """One RIFF chunk, padded to an even length."""
    return chunk_id + struct.pack("<I", len(payload)) + payload + (b"\0" if len(payload) % 2 else b"")


def fmt_payload(format_tag: int, channels: int, rate: int, bits: int, extra: bytes | None = None) -> bytes:
    """A WAVEFORMATEX payload (with a cbSize + extra bytes when ``extra`` is given)."""
    block_align = channels * bits // 8
    payload = struct.pack("<HHIIHH", format_tag, channels, rate, rate * block_align, block_align, bits)
    if extra is not None:
        payload += struct.pack("<H", len(extra)) + extra
    return payload


@functools.lru_cache(maxsize=8)
def wav_float(seconds: float, rate: int = 16000, channels: int = 1) -> bytes:
    """An IEEE-float (format tag 3) 32-bit WAV with a ``fact`` chunk."""
    pcm = array.array("h", pcm_s16(seconds, rate, channels))
    floats = array.array("f", (s / 32768.0 for s in pcm))
    if sys.byteorder != "little":
        floats.byteswap()
    frames = len(pcm) // channels
    return riff_wav(fmt_payload(3, channels, rate, 32, extra=b""), floats.tobytes(),
                    before_data=chunk(b"fact", struct.pack("<I", frames)))


@functools.lru_cache(maxsize=8)
def wav_extensible(seconds: float, rate: int = 16000, channels: int = 2) -> bytes:
    """A WAVE_FORMAT_EXTENSIBLE 16-bit PCM WAV with a LIST chunk before the data."""
    pcm_subformat = struct.pack("<IHH", 1, 0x0000, 0x0010) + bytes.fromhex("800000aa00389b71")
    extra = struct.pack("<HI", 16, 0x3) + pcm_subformat
    return riff_wav(fmt_payload(0xFFFE, channels, rate, 16, extra=extra), pcm_s16(seconds, rate, channels),
                    before_data=chunk(b"LIST", b"INFOISFT" + struct.pack("<I", 6) + b"kyma\0\0"))


def wav_adpcm(seconds: float = 12.0, rate: int = 8000) -> bytes:
    """An IMA-ADPCM (format tag 0x11) WAV header with plausible (not decodable) data."""
    block_align, samples_per_block = 256, 505
    blocks = int(seconds * rate / samples_per_block) + 1
    extra = struct.pack("<H", samples_per_block)
    fmt = struct.pack("<HHIIHH", 0x11, 1, rate, rate * block_align // samples_per_block, block_align, 4) \
        + struct.pack("<H", len(extra)) + extra
    return riff_wav(fmt, bytes(range(256)) * blocks,
                    before_data=chunk(b"fact", struct.pack("<I", blocks * samples_per_block)))


# --------------------------------------------------------------------------
# MP3 and M4A through PyAV / lameenc
# --------------------------------------------------------------------------

_LAYOUTS = {1: "mono", 2: "stereo"}


def _encode(container_format: str, codec: str, seconds: float, rate: int, *, channels: int = 1,
            bit_rate: int | None = None, vbr_quality: int | None = None,
            options: dict[str, str] | None = None) -> bytes:
    """Encode the test signal with PyAV.

    The output goes to a real temporary file: the MP3 muxer seeks back to
    write its Xing/Info frame and ``+faststart`` reopens the file to move moov.
    """
    import av  # imported lazily: only tests that need encoded audio pay for it

    layout = _LAYOUTS[channels]
    pcm = pcm_s16(seconds, rate, channels)
    frame_bytes = 2 * channels
    with tempfile.TemporaryDirectory(prefix="kyma-audio-") as directory:
        path = os.path.join(directory, "clip." + container_format)
        with av.open(path, "w", format=container_format, options=options or {}) as container:
            stream = container.add_stream(codec, rate=rate, layout=layout)
            context = stream.codec_context
            context.options = _FAST_ENCODER_OPTIONS.get(codec, {})
            if bit_rate is not None:
                context.bit_rate = bit_rate
            if vbr_quality is not None:
                context.qscale = True
                context.global_quality = vbr_quality * _FF_QP2LAMBDA
            resampler = av.AudioResampler(format=context.format, layout=layout, rate=rate,
                                          frame_size=context.frame_size or None)
            step = rate * frame_bytes       # feed one second at a time
            for start in range(0, len(pcm), step):
                piece = pcm[start:start + step]
                frame = av.AudioFrame(format="s16", layout=layout, samples=len(piece) // frame_bytes)
                frame.planes[0].update(piece)
                frame.sample_rate = rate
                frame.pts = start // frame_bytes
                for converted in resampler.resample(frame):
                    container.mux(stream.encode(converted))
            for converted in resampler.resample(None):
                container.mux(stream.encode(converted))
            container.mux(stream.encode(None))
        with open(path, "rb") as handle:
            return handle.read()


def _lameenc(seconds: float, rate: int, channels: int, *, kbps: int | None = None) -> bytes:
    """Raw LAME frames from ``lameenc``: no Xing/Info tag frame.  VBR unless ``kbps``."""
    import lameenc

    encoder = lameenc.Encoder()
    encoder.set_channels(channels)
    encoder.set_in_sample_rate(rate)
    encoder.set_out_sample_rate(rate)
    if kbps is None:
        encoder.set_vbr(4)
        encoder.set_vbr_quality(4)
    else:
        encoder.set_bit_rate(kbps)
    encoder.set_quality(5)
    data = bytes(encoder.encode(pcm_s16(seconds, rate, channels)) + encoder.flush())
    head = data[:200]
    assert b"Xing" not in head and b"Info" not in head and b"VBRI" not in head, "lameenc wrote a tag frame"
    return data


@functools.lru_cache(maxsize=16)
def mp3_cbr(seconds: float, rate: int = 22050, kbps: int = 32, *, channels: int = 1) -> bytes:
    """A constant-bitrate MP3 (libmp3lame) with the muxer's Info tag frame and ID3v2 tag."""
    return _encode("mp3", "libmp3lame", seconds, rate, channels=channels, bit_rate=kbps * 1000)


@functools.lru_cache(maxsize=16)
def mp3_cbr_raw(seconds: float, rate: int = 22050, kbps: int = 32, *, channels: int = 1) -> bytes:
    """A constant-bitrate MP3 from ``lameenc``: frames only, no tags at all."""
    return _lameenc(seconds, rate, channels, kbps=kbps)


@functools.lru_cache(maxsize=16)
def mp3_vbr(seconds: float, rate: int = 22050, xing: bool = True, *, channels: int = 1) -> bytes:
    """A variable-bitrate MP3.

    ``xing=True``: PyAV/libmp3lame (``-q:a 4``); the muxer writes a Xing tag
    frame with the frame count and the LAME delay/padding.  ``xing=False``: raw
    ``lameenc`` frames with no tag, where tools that extrapolate from the first
    frame's bitrate get the duration wrong.
    """
    if xing:
        return _encode("mp3", "libmp3lame", seconds, rate, channels=channels, vbr_quality=4)
    return _lameenc(seconds, rate, channels)


@functools.lru_cache(maxsize=4)
def mp2(seconds: float, rate: int = 22050) -> bytes:
    """MPEG audio Layer II (FFmpeg's mp2 encoder)."""
    return _encode("mp2", "mp2", seconds, rate, bit_rate=64000)


@functools.lru_cache(maxsize=16)
def m4a_aac(seconds: float, rate: int = 22050, faststart: bool = True) -> bytes:
    """AAC in an M4A ("ipod" muxer): moov first with ``faststart``, else after mdat."""
    options = {"movflags": "+faststart"} if faststart else {}
    return _encode("ipod", "aac", seconds, rate, bit_rate=32000, options=options)


@functools.lru_cache(maxsize=4)
def mp4_fragmented(seconds: float, rate: int = 22050) -> bytes:
    """Fragmented MP4 audio (empty moov, then moof/mdat pairs), as browsers record."""
    return _encode("mp4", "aac", seconds, rate, bit_rate=32000,
                   options={"movflags": "frag_keyframe+empty_moov+default_base_moof",
                            "frag_duration": "1000000"})


@functools.lru_cache(maxsize=1)
def mp4_video_only(frames: int = 12) -> bytes:
    """A tiny MP4 (isom brand) with one MPEG-4 video track and no audio."""
    import av

    with tempfile.TemporaryDirectory(prefix="kyma-video-") as directory:
        path = os.path.join(directory, "clip.mp4")
        with av.open(path, "w", format="mp4") as container:
            stream = container.add_stream("mpeg4", rate=12)
            stream.width, stream.height, stream.pix_fmt = 16, 16, "yuv420p"
            for index in range(frames):
                frame = av.VideoFrame(16, 16, "yuv420p")
                for plane in frame.planes:
                    plane.update(bytes([(index * 20) % 256]) * plane.buffer_size)
                frame.pts = index
                container.mux(stream.encode(frame))
            container.mux(stream.encode(None))
        with open(path, "rb") as handle:
            return handle.read()


def decoded_seconds(data: bytes) -> float:
    """The duration an FFmpeg decoder outputs for ``data``: the oracle for durations."""
    import av

    samples, rate = 0, 1
    with av.open(io.BytesIO(data)) as container:
        for frame in container.decode(audio=0):
            samples, rate = samples + frame.samples, frame.sample_rate
    return samples / rate


def mp4_boxes(data: bytes) -> list[tuple[bytes, int, int]]:
    """Top-level ISO-BMFF boxes as (type, start, end): to cut files at box edges."""
    boxes, pos = [], 0
    while pos + 8 <= len(data):
        size, kind = struct.unpack_from(">I4s", data, pos)
        if size == 1:
            (size,) = struct.unpack_from(">Q", data, pos + 8)
        boxes.append((kind, pos, pos + size))
        pos += size
    return boxes


# --------------------------------------------------------------------------
# Hand-built ISO-BMFF (M4A) variants
# --------------------------------------------------------------------------

_MP4_CONTAINERS = frozenset({b"moov", b"trak", b"mdia", b"minf", b"stbl", b"edts", b"udta", b"meta",
                             b"ilst", b"dinf", b"mvex", b"moof", b"traf"})


def mp4_box(kind: bytes, payload: bytes) -> bytes:
    """One box: 32-bit size, type, payload."""
    return struct.pack(">I4s", 8 + len(payload), kind) + payload


def mp4_full_box(kind: bytes, version: int, payload: bytes, flags: int = 0) -> bytes:
    """A full box: version and 24-bit flags before the payload."""
    return mp4_box(kind, struct.pack(">I", version << 24 | flags) + payload)


def elst(edits: list[tuple[int, int]], version: int = 0) -> bytes:
    """An edit list box of (segment_duration, media_time) edits at media rate 1.0."""
    entry = ">IiI" if version == 0 else ">QqI"
    return mp4_full_box(b"elst", version, struct.pack(">I", len(edits)) + b"".join(
        struct.pack(entry, segment, media_time, 0x0001_0000) for segment, media_time in edits))


def mp4_find(data: bytes, path: tuple[bytes, ...]) -> tuple[int, int]:
    """(start, end) of the first box at ``path`` (e.g. moov, trak, edts), ``meta`` as a full box."""
    start, end = 0, len(data)
    for kind in path:
        pos = start
        while True:
            if pos + 8 > end:
                raise KeyError(path)
            size, found = struct.unpack_from(">I4s", data, pos)
            if size < 8:            # 64-bit, to-the-end or broken sizes: not handled here
                raise KeyError(path)
            if found == kind:
                break
            pos += size
        start, end = pos + 8 + (4 if kind == b"meta" else 0), pos + size
    return pos, end


def mp4_replace(data: bytes, path: tuple[bytes, ...], new: bytes) -> bytes:
    """Replace the box at ``path`` with ``new`` (b"" deletes it).

    The sizes of its ancestors are fixed, and so are the chunk offsets
    (``stco``/``co64``) that point past it: the audio stays where the index says.
    """
    start, end = mp4_find(data, path)
    delta = len(new) - (end - start)
    out = bytearray(data[:start] + new + data[end:])
    for depth in range(1, len(path)):
        ancestor = mp4_find(data, path[:depth])[0]
        size = struct.unpack_from(">I", out, ancestor)[0]
        struct.pack_into(">I", out, ancestor, size + delta)
    _shift_chunk_offsets(out, 0, len(out), start, delta)
    return bytes(out)


def _shift_chunk_offsets(data: bytearray, start: int, end: int, edited: int, delta: int) -> None:
    pos = start
    while pos + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, pos)
        if size < 8:
            return
        if kind in _MP4_CONTAINERS and kind != b"meta":
            _shift_chunk_offsets(data, pos + 8, pos + size, edited, delta)
        elif kind in (b"stco", b"co64"):
            entry = ">I" if kind == b"stco" else ">Q"
            width = struct.calcsize(entry)
            (count,) = struct.unpack_from(">I", data, pos + 12)
            for at in range(pos + 16, pos + 16 + count * width, width):
                (offset,) = struct.unpack_from(entry, data, at)
                if offset >= edited:
                    struct.pack_into(entry, data, at, offset + delta)
        pos += size


def without_edit_list(data: bytes) -> bytes:
    """The M4A with its sound track's edit list box (edts) deleted."""
    return mp4_replace(data, (b"moov", b"trak", b"edts"), b"")


def with_edit_list(data: bytes, box: bytes) -> bytes:
    """The M4A with the elst box ``box`` as its track's edit list (replacing any)."""
    try:
        return mp4_replace(data, (b"moov", b"trak", b"edts"), mp4_box(b"edts", box))
    except KeyError:    # no edts yet: insert one right after tkhd
        tkhd_start, tkhd_end = mp4_find(data, (b"moov", b"trak", b"tkhd"))
        return mp4_replace(data, (b"moov", b"trak", b"tkhd"), data[tkhd_start:tkhd_end] + mp4_box(b"edts", box))


def with_version_1_headers(data: bytes) -> bytes:
    """The M4A with its mdhd and edit list rewritten as version 1 (64-bit times and durations)."""
    mdhd, _ = mp4_find(data, (b"moov", b"trak", b"mdia", b"mdhd"))
    _, created, modified, timescale, duration, language = struct.unpack_from(">IIIIIi", data, mdhd + 8)
    payload = struct.pack(">QQIQi", created, modified, timescale, duration, language)
    data = mp4_replace(data, (b"moov", b"trak", b"mdia", b"mdhd"), mp4_full_box(b"mdhd", 1, payload))
    edit_list, _ = mp4_find(data, (b"moov", b"trak", b"edts", b"elst"))
    segment, media_time = struct.unpack_from(">Ii", data, edit_list + 16)
    return with_edit_list(data, elst([(segment, media_time)], version=1))


def itunsmpb_text(priming: int, padding: int, samples: int) -> str:
    """The iTunSMPB value as iTunes writes it: 12 hex fields, the sample count 64 bits wide."""
    return (f" {0:08X} {priming:08X} {padding:08X} {samples:016X}" + f" {0:08X}" * 8)


def with_itunsmpb(data: bytes, text: str) -> bytes:
    """The M4A with an iTunSMPB tag of value ``text``, written by mutagen (as taggers do)."""
    import mutagen.mp4

    buffer = io.BytesIO(data)
    tags = mutagen.mp4.MP4(buffer)
    tags["----:com.apple.iTunes:iTunSMPB"] = [mutagen.mp4.MP4FreeForm(text.encode("latin-1"))]
    tags.save(buffer)
    return buffer.getvalue()


def id3v2(payload_size: int = 64, *, declared_size: int | None = None) -> bytes:
    """An ID3v2.3 tag of ``payload_size`` zero bytes (declared size may lie)."""
    size = payload_size if declared_size is None else declared_size
    synchsafe = bytes(((size >> shift) & 0x7F) for shift in (21, 14, 7, 0))
    return b"ID3\x03\x00\x00" + synchsafe + bytes(payload_size)


def id3v1() -> bytes:
    """A 128-byte ID3v1 tag, as appended at the end of many MP3 files."""
    return b"TAG" + b"Kyma test".ljust(30, b"\0") + bytes(95)


# --------------------------------------------------------------------------
# Not audio
# --------------------------------------------------------------------------

@functools.lru_cache(maxsize=1)
def png(width: int = 4, height: int = 4) -> bytes:
    """A small valid RGB PNG."""
    def png_chunk(kind: bytes, payload: bytes) -> bytes:
        return (struct.pack(">I", len(payload)) + kind + payload
                + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF))

    rows = b"".join(
        b"\0" + b"".join(bytes((x * 60 % 256, y * 60 % 256, 128)) for x in range(width))
        for y in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header)
            + png_chunk(b"IDAT", zlib.compress(rows)) + png_chunk(b"IEND", b""))


def random_bytes(size: int, seed: int = 7) -> bytes:
    """Deterministic pseudo-random bytes."""
    return random.Random(seed).randbytes(size)
