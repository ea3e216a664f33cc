"""MP3 durations (MPEG-1/2/2.5 Layer III, also Layer II): count every frame.

Owns the MPEG audio frame walk: ID3v2 tags (also between concatenated
streams), the two-header sync check that tells MP3 from random bytes, exact
sample counting (VBR without a Xing header included), Xing/Info/VBRI tag
frames (metadata, not audio) with the LAME encoder delay and padding, and the
trailing ID3v1/APEv2/Lyrics3 tags.  `duration` returns None for bytes that
are not MPEG audio at all.
"""

from __future__ import annotations

import functools
import math
import struct
from dataclasses import dataclass

from kyma.edge.errors import AudioUnreadable

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


def duration(data: bytes, stop_after_seconds: float | None = None) -> float | None:
    """Seconds of audio in the MP3 ``data``; None when the bytes are not MPEG audio at all.

    Once the running (trimmed) duration exceeds ``stop_after_seconds`` the walk
    stops and the length reached so far is returned.
    """
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
    return _walk_mp3(data, pos, stream, limit)


def _walk_mp3(data: bytes, pos: int, stream: _Mp3Stream, limit: float | None) -> float:
    """Count the frames to the end of the file and return the duration in seconds.

    The encoder delay and padding of a LAME tag are not audio and are
    subtracted.  Once the (trimmed) duration exceeds ``limit`` seconds the walk
    stops and returns the duration so far: more than ``limit``, and never more
    than the whole file's.
    """
    end = len(data)
    seconds = 0.0
    tag_frames, trim_samples = _vbr_tag(data, pos, stream)
    while True:
        max_frames = end   # frames are longer than a byte: no limit
        if limit is not None:   # enough frames to exceed the limit once the trim is subtracted
            frames_needed = ((limit - seconds) * stream.sample_rate + trim_samples) / stream.samples_per_frame
            max_frames = tag_frames + int(min(max(frames_needed, 0.0), end)) + 1
        frames, pos = _count_frames(data, pos, stream.sync, stream.lengths, max_frames)
        samples = (frames - tag_frames) * stream.samples_per_frame
        if 0 < trim_samples < samples:
            samples -= trim_samples
        if pos > end:
            raise AudioUnreadable("The MP3 file is truncated: its last frame is cut off.")
        seconds += samples / stream.sample_rate
        if frames >= max_frames:
            if limit is not None and seconds > limit:
                return seconds
            tag_frames = trim_samples = 0   # not past it after rounding: walk on in the same stream
            continue
        if pos == end or data.startswith(_TRAILING_TAGS, pos) or pos == _footer_only_ape_tag(data):
            return seconds
        if not data.startswith(b"ID3", pos):
            break
        pos = _id3v2_end(data, pos)              # a tag between two concatenated streams
        if pos >= end:
            return seconds
        next_stream = _stream_at(data, pos)
        if next_stream is None:
            break
        stream = next_stream
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
