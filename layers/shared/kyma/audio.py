"""Reference-audio checks for voice cloning: what format is it, how long is it?

`inspect_audio` sniffs MP3, WAV or M4A from the bytes alone (never from a file
name or a declared content type) and reads the duration from the audio:

* MP3: every frame header is walked and the samples are counted exactly, so
  VBR files without a Xing header are right too (tools that extrapolate from
  the first frame's bitrate are not).  A Xing/Info/VBRI frame is metadata,
  not audio; the LAME tag's encoder delay and padding are subtracted.
* WAV: RIFF chunks are walked; PCM and IEEE float; data bytes / bytes per second.
* M4A: top-level ISO-BMFF boxes are checked against the file size; duration
  and codec come from mutagen; fragmented files sum their ``trun`` boxes.

Anything that is not one of the three formats raises `UnsupportedMediaType`
(415).  A recognised file whose duration cannot be trusted (truncated,
corrupt, a codec we do not read) raises `AudioUnreadable` (400).  No other
exception escapes, whatever the bytes.
"""

from __future__ import annotations

import functools
import io
import math
import struct
from dataclasses import dataclass

from kyma.errors import AudioUnreadable, UnsupportedMediaType

UNSUPPORTED_FORMAT = "Audio format not supported: send MP3, WAV or M4A."


@dataclass(frozen=True)
class AudioInfo:
    format: str            # "mp3" | "wav" | "m4a"
    duration_seconds: float
    mime_type: str         # "audio/mpeg" | "audio/wav" | "audio/mp4"


def inspect_audio(data: bytes, *, stop_after_seconds: float | None = None) -> AudioInfo:
    """Identify MP3/WAV/M4A from ``data`` and measure its duration.

    ``stop_after_seconds`` lets the MP3 frame walk stop once the running
    duration exceeds it; the duration returned is then the (larger) length
    reached so far, and the rest of the file is not checked.
    """
    if not isinstance(data, bytes):
        data = bytes(data)
    if data[:4] == b"RIFF" and data[8:12] == b"WAVE":
        return _inspect_wav(data)
    if data[4:8] == b"ftyp":
        return _inspect_m4a(data)
    info = _inspect_mp3(data, stop_after_seconds)
    if info is None:
        raise UnsupportedMediaType(UNSUPPORTED_FORMAT)
    return info


# ---------------------------------------------------------------------------
# WAV
# ---------------------------------------------------------------------------

WAVE_FORMAT_PCM = 0x0001
WAVE_FORMAT_IEEE_FLOAT = 0x0003
WAVE_FORMAT_EXTENSIBLE = 0xFFFE
_WAV_CODECS = {WAVE_FORMAT_PCM, WAVE_FORMAT_IEEE_FLOAT}
_RIFF_HEADER = 12      # "RIFF", size, "WAVE"
_CHUNK_HEADER = 8      # id, little-endian size
_FMT_MIN_SIZE = 16     # WAVEFORMAT without cbSize
_FMT_EXTENSIBLE_SIZE = 40
_MAX_WAV_CHUNKS = 10_000   # real files have a handful; bounds the walk on junk


def _inspect_wav(data: bytes) -> AudioInfo:
    """Walk the RIFF chunks to ``fmt `` and ``data``; duration = data bytes / byte rate."""
    end = len(data)
    pos = _RIFF_HEADER
    fmt = None
    data_size = None
    chunks = 0
    while pos + _CHUNK_HEADER <= end and (fmt is None or data_size is None):
        chunks += 1
        if chunks > _MAX_WAV_CHUNKS:
            raise AudioUnreadable("The WAV file is corrupt: it has far too many chunks.")
        chunk_id = data[pos:pos + 4]
        (size,) = struct.unpack_from("<I", data, pos + 4)
        body = pos + _CHUNK_HEADER
        if chunk_id == b"fmt ":
            if size < _FMT_MIN_SIZE or body + size > end:
                raise AudioUnreadable("The WAV file's format (fmt) chunk is damaged.")
            fmt = _wav_format(data, body, size)
        elif chunk_id == b"data":
            if body + size > end:
                raise AudioUnreadable(
                    f"The WAV file is truncated: its data chunk declares {size} bytes "
                    f"but only {end - body} are present.")
            data_size = size
        pos = body + size + (size & 1)   # chunks are padded to an even length
    if fmt is None:
        raise AudioUnreadable("The WAV file has no format (fmt) chunk: it is truncated or corrupt.")
    if data_size is None:
        raise AudioUnreadable("The WAV file has no complete data chunk: it is truncated or corrupt.")
    sample_rate, block_align = fmt
    frames = data_size // block_align
    return AudioInfo("wav", frames / sample_rate, "audio/wav")


def _wav_format(data: bytes, body: int, size: int) -> tuple[int, int]:
    """Check a ``fmt `` chunk; return (sample rate, bytes per sample frame)."""
    codec, channels, sample_rate, _byte_rate, block_align, bits = struct.unpack_from("<HHIIHH", data, body)
    if codec == WAVE_FORMAT_EXTENSIBLE and size >= _FMT_EXTENSIBLE_SIZE:
        (codec,) = struct.unpack_from("<H", data, body + 24)   # first field of the SubFormat GUID
    if codec not in _WAV_CODECS:
        raise AudioUnreadable(
            f"The WAV file's codec (format 0x{codec:04X}) is not supported: send PCM WAV.")
    if not channels or not sample_rate or not bits or block_align < channels * ((bits + 7) // 8):
        raise AudioUnreadable("The WAV file's format (fmt) chunk is damaged.")
    return sample_rate, block_align


# ---------------------------------------------------------------------------
# MP3 (MPEG-1/2/2.5 Layer III, also Layer II)
# ---------------------------------------------------------------------------

# Second header byte: 111VVLLP (sync, version, layer, no-CRC flag).
_MPEG25, _MPEG2, _MPEG1 = 0b00, 0b10, 0b11
_LAYER3, _LAYER2 = 0b01, 0b10
_SAMPLE_RATES = {
    _MPEG1: (44100, 48000, 32000),
    _MPEG2: (22050, 24000, 16000),
    _MPEG25: (11025, 12000, 8000),
}
# Bitrate index 1..14 in kbit/s (0 is "free format", 15 is invalid).
_KBPS_MPEG1_LAYER3 = (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 0)
_KBPS_MPEG1_LAYER2 = (0, 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384, 0)
_KBPS_MPEG2_LOW = (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160, 0)
_ID3V2_HEADER = 10
_ID3V2_FOOTER_FLAG = 0x10
_TRAILING_TAGS = (b"TAG", b"APETAGEX", b"LYRICSBEGIN")   # ID3v1, APEv2 header, Lyrics3
_ID3V1_SIZE = 128
_APE_FOOTER_SIZE = 32
_APE_HAS_HEADER = 1 << 31
_VBR_TAGS = (b"Xing", b"Info")
_VBRI_OFFSET = 4 + 32
_LAME_ENCODERS = (b"LAME", b"Lavf", b"Lavc")
_XING_FIELD_SIZES = ((0x1, 4), (0x2, 4), (0x4, 100), (0x8, 4))   # frames, bytes, TOC, quality
_LAME_DELAY_OFFSET = 21   # from the encoder string to the 12+12-bit delay/padding field
_MONO = 0b11


@dataclass(frozen=True)
class _Mp3Stream:
    """What every frame of one MPEG audio stream shares."""
    sync: int                    # second header byte with the no-CRC bit set
    lengths: tuple[int, ...]     # frame length by third header byte; 0 = not this stream
    sample_rate: int
    samples_per_frame: int
    xing_offset: int             # where a Xing/Info tag would start in the frame; 0 = none


@functools.lru_cache(maxsize=32)
def _frame_lengths(version: int, layer: int, rate_index: int) -> tuple[int, ...]:
    """Frame length in bytes for each value of the third header byte (bitrate, rate, padding).

    0 marks a byte that is invalid or belongs to another sample rate.
    """
    sample_rate = _SAMPLE_RATES[version][rate_index]
    if layer == _LAYER2:
        kbps, bytes_per_kbit = (_KBPS_MPEG1_LAYER2 if version == _MPEG1 else _KBPS_MPEG2_LOW), 144_000
    elif version == _MPEG1:
        kbps, bytes_per_kbit = _KBPS_MPEG1_LAYER3, 144_000
    else:
        kbps, bytes_per_kbit = _KBPS_MPEG2_LOW, 72_000
    return tuple(
        bytes_per_kbit * kbps[b >> 4] // sample_rate + ((b >> 1) & 1)
        if kbps[b >> 4] and (b >> 2) & 0b11 == rate_index else 0
        for b in range(256))


def _stream_at(data: bytes, pos: int) -> _Mp3Stream | None:
    """The stream described by a valid Layer II/III frame header at ``pos``, else None."""
    if pos + 4 > len(data) or data[pos] != 0xFF or data[pos + 1] < 0xE0:
        return None
    byte1, byte2, byte3 = data[pos + 1], data[pos + 2], data[pos + 3]
    version, layer, rate_index = (byte1 >> 3) & 0b11, (byte1 >> 1) & 0b11, (byte2 >> 2) & 0b11
    if version not in _SAMPLE_RATES or layer not in (_LAYER3, _LAYER2) or rate_index == 3:
        return None
    lengths = _frame_lengths(version, layer, rate_index)
    if not lengths[byte2]:
        return None
    mono = (byte3 >> 6) == _MONO
    if layer == _LAYER2:
        samples, side_info = 1152, 0
    elif version == _MPEG1:
        samples, side_info = 1152, (17 if mono else 32)
    else:
        samples, side_info = 576, (9 if mono else 17)
    return _Mp3Stream(byte1 | 1, lengths, _SAMPLE_RATES[version][rate_index], samples,
                      4 + side_info if side_info else 0)


def _id3v2_end(data: bytes, pos: int) -> int:
    """End offset of the ID3v2 tag at ``pos``; beyond ``len(data)`` if it is cut off."""
    if pos + _ID3V2_HEADER > len(data):
        return len(data) + 1
    size = 0
    for byte in data[pos + 6:pos + 10]:
        size = (size << 7) | (byte & 0x7F)     # "synchsafe": 4 x 7 bits
    footer = _ID3V2_HEADER if data[pos + 5] & _ID3V2_FOOTER_FLAG else 0
    return pos + _ID3V2_HEADER + size + footer


def _inspect_mp3(data: bytes, stop_after_seconds: float | None) -> AudioInfo | None:
    """Walk the MPEG frames; None when the bytes are not MP3 at all."""
    end = len(data)
    pos = 0
    tagged = data.startswith(b"ID3")
    while data.startswith(b"ID3", pos):
        pos = _id3v2_end(data, pos)
    if tagged:
        if pos > end:
            raise AudioUnreadable("The MP3 file is truncated: it ends inside its ID3 tag.")
        while pos < end and data[pos] == 0:    # padding some taggers leave after the tag
            pos += 1
        if pos == end:
            raise AudioUnreadable("The MP3 file has an ID3 tag but no audio.")
    stream = _stream_at(data, pos)
    if stream is None:
        return None
    second = pos + stream.lengths[data[pos + 2]]
    if second + 3 > end or data[second] != 0xFF or data[second + 1] | 1 != stream.sync \
            or not stream.lengths[data[second + 2]]:
        if tagged and second > end:
            raise AudioUnreadable("The MP3 file is truncated: its first frame is cut off.")
        return None   # one header alone is not enough: random bytes can look like one

    limit = None   # NaN and infinity mean "no limit"
    if stop_after_seconds is not None and stop_after_seconds < math.inf:
        limit = max(0.0, stop_after_seconds)
    seconds = _walk_mp3(data, pos, stream, limit)
    return AudioInfo("mp3", seconds, "audio/mpeg")


def _walk_mp3(data: bytes, pos: int, stream: _Mp3Stream, limit: float | None) -> float:
    """Count the frames to the end of the file and return the duration in seconds.

    The encoder delay and padding of a LAME tag are not audio and are
    subtracted.  Once ``limit`` seconds are exceeded the walk stops and
    returns the (untrimmed) duration so far.
    """
    end = len(data)
    seconds = 0.0
    tag_frames, trim_samples = _vbr_tag(data, pos, stream)
    while True:
        max_frames = end   # frames are longer than a byte: no limit
        if limit is not None:
            frames_needed = (limit - seconds) * stream.sample_rate / stream.samples_per_frame
            max_frames = tag_frames + int(min(frames_needed, end)) + 1
        frames, pos = _count_frames(data, pos, stream.sync, stream.lengths, max_frames)
        samples = (frames - tag_frames) * stream.samples_per_frame
        if 0 < trim_samples < samples:
            samples -= trim_samples
        if pos > end:
            raise AudioUnreadable("The MP3 file is truncated: its last frame is cut off.")
        if frames >= max_frames:
            return seconds + (frames - tag_frames) * stream.samples_per_frame / stream.sample_rate
        seconds += samples / stream.sample_rate
        if pos == end or data.startswith(_TRAILING_TAGS, pos) or pos == _footer_only_ape_tag(data):
            return seconds
        if not data.startswith(b"ID3", pos):
            break
        pos = _id3v2_end(data, pos)              # a tag between two concatenated streams
        if pos >= end:
            return seconds
        stream = _stream_at(data, pos)
        if stream is None:
            break
        tag_frames = trim_samples = 0
    raise AudioUnreadable(f"The MP3 file is corrupt: its frames break off at byte {pos}.")


def _footer_only_ape_tag(data: bytes) -> int:
    """Start of an APEv2 tag that has a footer but no header (before an optional ID3v1), or -1."""
    end = len(data)
    if end >= _ID3V1_SIZE and data.startswith(b"TAG", end - _ID3V1_SIZE):
        end -= _ID3V1_SIZE
    footer = end - _APE_FOOTER_SIZE
    if footer < 0 or not data.startswith(b"APETAGEX", footer):
        return -1
    size, flags = struct.unpack_from("<I4xI", data, footer + 12)   # size counts items + footer
    return end - size - (_APE_FOOTER_SIZE if flags & _APE_HAS_HEADER else 0)


def _count_frames(data: bytes, pos: int, sync: int, lengths: tuple[int, ...],
                  max_frames: int) -> tuple[int, int]:
    """The hot loop: hop from header to header while they belong to the stream.

    Returns (frames, position after the last frame); the position is past the
    end of ``data`` when the last frame is cut off.
    """
    last = len(data) - 3
    frames = 0
    while pos <= last and frames < max_frames:
        if data[pos] != 0xFF or data[pos + 1] | 1 != sync:
            break
        length = lengths[data[pos + 2]]
        if not length:
            break
        pos += length
        frames += 1
    return frames, pos


def _vbr_tag(data: bytes, pos: int, stream: _Mp3Stream) -> tuple[int, int]:
    """(1, encoder delay + padding in samples) if the frame at ``pos`` is a
    Xing/Info/VBRI tag frame (metadata, no audio), else (0, 0)."""
    if not stream.xing_offset:
        return 0, 0
    frame_end = pos + stream.lengths[data[pos + 2]]
    xing = pos + stream.xing_offset
    if xing + 8 <= frame_end and data[xing:xing + 4] in _VBR_TAGS:
        (flags,) = struct.unpack_from(">I", data, xing + 4)
        encoder = xing + 8 + sum(size for flag, size in _XING_FIELD_SIZES if flags & flag)
        field = encoder + _LAME_DELAY_OFFSET
        if field + 3 <= frame_end and data[encoder:encoder + 4] in _LAME_ENCODERS:
            delay = (data[field] << 4) | (data[field + 1] >> 4)
            padding = ((data[field + 1] & 0x0F) << 8) | data[field + 2]
            return 1, delay + padding
        return 1, 0
    if data[pos + _VBRI_OFFSET:pos + _VBRI_OFFSET + 4] == b"VBRI":
        return 1, 0
    return 0, 0


# ---------------------------------------------------------------------------
# M4A (ISO base media file format)
# ---------------------------------------------------------------------------

_AUDIO_BRANDS = frozenset({
    b"M4A ", b"M4B ", b"M4P ", b"mp41", b"mp42", b"isom",
    b"iso2", b"iso3", b"iso4", b"iso5", b"iso6", b"dash",
})
_AUDIO_CODECS = ("mp4a", "alac")           # AAC (and other MPEG-4 audio), Apple Lossless
_BOX_HEADER = 8
_LARGE_BOX_HEADER = 16
_MAX_TOP_LEVEL_BOXES = 100_000              # ~2 per fragment: far beyond any real 10 MB file
_TFHD_OPTIONAL = ((0x01, 8), (0x02, 4))     # base data offset, sample description index
_TFHD_DEFAULT_DURATION = 0x08
_TRUN_DATA_OFFSET, _TRUN_FIRST_FLAGS, _TRUN_DURATIONS = 0x001, 0x004, 0x100
_TRUN_SAMPLE_FIELDS = (0x100, 0x200, 0x400, 0x800)   # duration, size, flags, composition offset
_UNPARSABLE_MOOV = "The M4A file's index (moov box) cannot be parsed."


def _boxes(data: bytes, start: int, end: int):
    """Yield (type, payload start, box end) for the boxes in ``data[start:end]``.

    Raises AudioUnreadable when a box claims more bytes than its container has.
    """
    pos = start
    while pos + _BOX_HEADER <= end:
        size, box_type = struct.unpack_from(">I4s", data, pos)
        header = _BOX_HEADER
        if size == 1:
            if pos + _LARGE_BOX_HEADER > end:
                raise AudioUnreadable("The M4A file is truncated inside a box header.")
            (size,) = struct.unpack_from(">Q", data, pos + 8)
            header = _LARGE_BOX_HEADER
        elif size == 0:
            size = end - pos                # "to the end of the file"
        if size < header:
            raise AudioUnreadable("The M4A file is corrupt: a box has an impossible size.")
        if pos + size > end:
            name = box_type.decode("latin-1")
            raise AudioUnreadable(
                f"The M4A file is truncated: its '{name}' box declares {size} bytes "
                f"but only {end - pos} are present.")
        yield box_type, pos + header, pos + size
        pos += size


def _child(data: bytes, start: int, end: int, box_type: bytes) -> tuple[int, int] | None:
    """(payload start, end) of the first ``box_type`` box in ``data[start:end]``."""
    for found, payload, box_end in _boxes(data, start, end):
        if found == box_type:
            return payload, box_end
    return None


def _inspect_m4a(data: bytes) -> AudioInfo:
    """Check the top-level boxes and the brands, then read duration and codec."""
    top = []
    for box in _boxes(data, 0, len(data)):
        top.append(box)
        if len(top) > _MAX_TOP_LEVEL_BOXES:
            raise AudioUnreadable("The M4A file is corrupt: it has far too many boxes.")
    _, ftyp, ftyp_end = top[0]
    compatible = range(ftyp + 8, ftyp_end - 3, 4)     # after major brand and minor version
    brands = {data[ftyp:ftyp + 4]} | {data[p:p + 4] for p in compatible}
    if not brands & _AUDIO_BRANDS:
        raise UnsupportedMediaType(UNSUPPORTED_FORMAT)
    names = {box_type for box_type, _, _ in top}
    if b"moov" not in names:
        raise AudioUnreadable("The M4A file has no index (moov box): it is truncated or incomplete.")
    if b"mdat" not in names:
        raise AudioUnreadable("The M4A file contains no audio data (mdat box).")
    moov = next((payload, end) for box_type, payload, end in top if box_type == b"moov")
    track = _sound_track(data, *moov)
    if track is None:   # e.g. a video-only MP4
        raise UnsupportedMediaType(UNSUPPORTED_FORMAT)

    length, codec = _mutagen_mp4_info(data, *moov)
    if not codec.startswith(_AUDIO_CODECS):
        raise AudioUnreadable(f"The M4A file's audio codec ({codec or 'unknown'}) is not supported: "
                              "send AAC or ALAC.")
    if not length and b"moof" in names:
        length = _fragmented_duration(data, top, moov, track)
    return AudioInfo("m4a", length, "audio/mp4")


def _mutagen_mp4_info(data: bytes, moov: int, moov_end: int) -> tuple[float, str]:
    """(duration, codec) of the first sound track, read by mutagen from the moov box."""
    import mutagen.mp4  # lazy: keeps the module's import (Lambda cold start) light

    # mutagen only needs moov: give it a copy of that box alone (small; the
    # audio is not copied, and mutagen does not re-walk every top-level box).
    fileobj = io.BytesIO(struct.pack(">I4s", _BOX_HEADER + moov_end - moov, b"moov") + data[moov:moov_end])
    try:
        # Stream info only: damaged metadata (an ilst tag) must not reject good audio.
        info = mutagen.mp4.MP4Info(mutagen.mp4.Atoms(fileobj), fileobj)
    except Exception as exc:   # mutagen raises many types (AtomError, struct.error, RecursionError...)
        raise AudioUnreadable(_UNPARSABLE_MOOV) from exc
    return float(info.length), str(info.codec)


def _sound_track(data: bytes, moov: int, moov_end: int) -> tuple[int, int] | None:
    """(track id, media timescale) of the first ``soun`` track, or None."""
    for box_type, trak, trak_end in _boxes(data, moov, moov_end):
        if box_type != b"trak":
            continue
        tkhd = _child(data, trak, trak_end, b"tkhd")
        mdia = _child(data, trak, trak_end, b"mdia")
        if tkhd is None or mdia is None:
            continue
        hdlr = _child(data, *mdia, b"hdlr")   # version/flags, pre_defined, handler type
        if hdlr is None or hdlr[0] + 12 > hdlr[1] or data[hdlr[0] + 8:hdlr[0] + 12] != b"soun":
            continue
        mdhd = _child(data, *mdia, b"mdhd")
        track_id = _full_box_u32(data, tkhd, 12, 20)
        timescale = _full_box_u32(data, mdhd, 12, 20) if mdhd else 0
        return track_id, timescale
    return None


def _full_box_u32(data: bytes, box: tuple[int, int], offset_v0: int, offset_v1: int) -> int:
    """A 32-bit field of a full box whose offset depends on the box version (0 or 1)."""
    payload, end = box
    version1 = data[payload:payload + 1] == b"\x01"
    return _u32(data, payload + (offset_v1 if version1 else offset_v0), end)


def _u32(data: bytes, pos: int, end: int) -> int:
    if pos + 4 > end:
        raise AudioUnreadable(_UNPARSABLE_MOOV)
    return struct.unpack_from(">I", data, pos)[0]


def _fragmented_duration(data: bytes, top, moov: tuple[int, int], track: tuple[int, int]) -> float:
    """Sum the sample durations of the sound track over all movie fragments."""
    track_id, timescale = track
    if not timescale:
        raise AudioUnreadable(_UNPARSABLE_MOOV)
    default_duration = 0
    mvex = _child(data, *moov, b"mvex")
    for box_type, trex, trex_end in _boxes(data, *mvex) if mvex else ():
        if box_type == b"trex" and _u32(data, trex + 4, trex_end) == track_id:
            default_duration = _u32(data, trex + 12, trex_end)
    total = 0
    for box_type, moof, moof_end in top:
        if box_type != b"moof":
            continue
        for traf_type, traf, traf_end in _boxes(data, moof, moof_end):
            if traf_type == b"traf":
                total += _traf_duration(data, traf, traf_end, track_id, default_duration)
    return total / timescale


def _traf_duration(data: bytes, traf: int, traf_end: int, track_id: int, default_duration: int) -> int:
    tfhd = _child(data, traf, traf_end, b"tfhd")
    if tfhd is None or _u32(data, tfhd[0] + 4, tfhd[1]) != track_id:
        return 0
    flags = _u32(data, tfhd[0], tfhd[1]) & 0xFFFFFF
    field = tfhd[0] + 8 + sum(size for flag, size in _TFHD_OPTIONAL if flags & flag)
    if flags & _TFHD_DEFAULT_DURATION:
        default_duration = _u32(data, field, tfhd[1])
    total = 0
    for box_type, trun, trun_end in _boxes(data, traf, traf_end):
        if box_type != b"trun":
            continue
        flags = _u32(data, trun, trun_end) & 0xFFFFFF
        count = _u32(data, trun + 4, trun_end)
        record = 4 * sum(1 for flag in _TRUN_SAMPLE_FIELDS if flags & flag)
        first = trun + 8 + 4 * bool(flags & _TRUN_DATA_OFFSET) + 4 * bool(flags & _TRUN_FIRST_FLAGS)
        if first + count * record > trun_end:
            raise AudioUnreadable("The M4A file is corrupt: a fragment lists more samples than it holds.")
        if flags & _TRUN_DURATIONS:   # the duration is the first field of each sample record
            records = memoryview(data)[first:first + count * record]
            total += sum(duration for duration, in struct.iter_unpack(f">I{record - 4}x", records))
        else:
            total += count * default_duration
    return total
