"""Property-based tests (Hypothesis) of kyma.audio.inspect_audio.

Properties:
* whatever the bytes, `inspect_audio` returns an `AudioInfo` or raises
  `AudioUnreadable` / `UnsupportedMediaType`, never anything else;
* a result is sane: a known format with its MIME type, a finite duration >= 0;
* ``stop_after_seconds`` only ever stops the walk early: the result is the
  full one, or longer than the limit.

Inputs are random bytes (also behind each format's magic), and valid MP3, WAV
and M4A fixtures mutated: truncated at random points, bytes flipped, boxes
and chunks given random sizes or contents, boxes deleted or duplicated,
random ID3v2/ID3v1/APE/Lyrics3 tags.  The runs are derandomized (the same
examples every run, replayable) and bounded (``PROPERTY``); a failure prints
the example and a reproduction blob.
"""

from __future__ import annotations

import math
import struct

import audio_fixtures as fx
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from kyma.audio import AudioInfo, inspect_audio
from kyma.edge.errors import AudioUnreadable, UnsupportedMediaType

PROPERTY = settings(max_examples=500, deadline=None, derandomize=True, database=None, print_blob=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
MIME = {"mp3": "audio/mpeg", "wav": "audio/wav", "m4a": "audio/mp4"}


def inspect_or_refuse(data: bytes, stop_after_seconds: float | None = None) -> AudioInfo | None:
    """inspect_audio, holding it to the properties; None when it refused the bytes."""
    try:
        info = inspect_audio(data, stop_after_seconds=stop_after_seconds)
    except (AudioUnreadable, UnsupportedMediaType) as error:   # anything else fails the test
        event(f"refused: {type(error).__name__}")
        return None
    event(f"read: {info.format}")
    assert MIME[info.format] == info.mime_type
    assert isinstance(info.duration_seconds, float)
    assert math.isfinite(info.duration_seconds) and info.duration_seconds >= 0
    return info


# ---------------------------------------------------------------------------
# Valid files to start from
# ---------------------------------------------------------------------------

MP3_SEEDS = {
    "mp3 cbr + Info": lambda: fx.mp3_cbr(1.0),
    "mp3 vbr + Xing": lambda: fx.mp3_vbr(1.0),
    "mp3 raw vbr": lambda: fx.mp3_vbr(1.0, xing=False),
    "mp3 44.1k stereo": lambda: fx.mp3_cbr(0.5, 44100, 64, channels=2),
    "mp2": lambda: fx.mp2(1.0),
    "mp3 concatenated": lambda: fx.mp3_cbr_raw(0.5) + fx.id3v2(40) + fx.mp3_cbr_raw(0.5, 44100, 64),
    "mp3 VBRI": lambda: fx.mp3_cbr_raw(0.5)[:36] + b"VBRI" + fx.mp3_cbr_raw(0.5)[40:],
}
WAV_SEEDS = {
    "wav pcm16": lambda: fx.wav(0.1),
    "wav 8-bit stereo": lambda: fx.wav(0.1, 8000, 2, 1),
    "wav float": lambda: fx.wav_float(0.1),
    "wav extensible": lambda: fx.wav_extensible(0.1),
}
M4A_SEEDS = {
    "m4a faststart": lambda: fx.m4a_aac(1.0),
    "m4a moov at end": lambda: fx.m4a_aac(1.0, faststart=False),
    "m4a fragmented": lambda: fx.mp4_fragmented(2.0),
    "m4a iTunSMPB only": lambda: fx.with_itunsmpb(fx.without_edit_list(fx.m4a_aac(1.0)),
                                                  fx.itunsmpb_text(1024, 0, 22050)),
    "m4a neither": lambda: fx.without_edit_list(fx.m4a_aac(1.0, faststart=False)),
    "m4a fragmented + edit list": lambda: fx.with_edit_list(fx.mp4_fragmented(2.0), fx.elst([(0, 1024)])),
    "m4a version-1 boxes": lambda: fx.with_version_1_headers(fx.m4a_aac(1.0)),
}



# ---------------------------------------------------------------------------
# Mutations
# ---------------------------------------------------------------------------

INTERESTING_U32 = [0, 1, 2, 7, 8, 9, 12, 16, 0x7F, 0x80, 0xFF, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFE, 0xFFFFFFFF]
u32s = st.sampled_from(INTERESTING_U32) | st.integers(0, 0xFFFFFFFF)


@st.composite
def truncate(draw: st.DrawFn, data: bytes) -> bytes:
    return data[:draw(st.integers(0, len(data)))]


@st.composite
def flip(draw: st.DrawFn, data: bytes) -> bytes:
    out = bytearray(data)
    for _ in range(draw(st.integers(1, 8))):
        if out:
            out[draw(st.integers(0, len(out) - 1))] = draw(st.integers(0, 255))
    return bytes(out)


@st.composite
def flip_near_start(draw: st.DrawFn, data: bytes) -> bytes:
    """Flip bytes among the first 4 KB: headers, tags, the index of a faststart M4A."""
    out = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
        if out:
            out[draw(st.integers(0, min(len(out), 4096) - 1))] = draw(st.integers(0, 255))
    return bytes(out)


@st.composite
def splice(draw: st.DrawFn, data: bytes) -> bytes:
    at = draw(st.integers(0, len(data)))
    if draw(st.booleans()):
        return data[:at] + draw(st.binary(min_size=1, max_size=64)) + data[at:]
    return data[:at] + data[at + draw(st.integers(1, 600)):]


def mp4_boxes_deep(data: bytes) -> list[tuple[bytes, int, int, tuple[int, ...]]]:
    """Every box as (type, start, end, starts of its ancestors), containers walked."""
    found: list[tuple[bytes, int, int, tuple[int, ...]]] = []

    def walk(start: int, end: int, ancestors: tuple[int, ...]) -> None:
        pos = start
        while pos + 8 <= end:
            size, kind = struct.unpack_from(">I4s", data, pos)
            if size < 8 or pos + size > end:
                return
            found.append((kind, pos, pos + size, ancestors))
            if kind in fx._MP4_CONTAINERS or kind == b"----":
                walk(pos + 8 + (4 if kind == b"meta" else 0), pos + size, (*ancestors, pos))
            pos += size

    walk(0, len(data), ())
    return found


def _resize_ancestors(out: bytearray, ancestors: tuple[int, ...], delta: int) -> None:
    for start in ancestors:
        (size,) = struct.unpack_from(">I", out, start)
        struct.pack_into(">I", out, start, (size + delta) & 0xFFFFFFFF)


# The boxes the inspector reads, drawn more often than the rest
READ_BOXES = {b"ftyp", b"moov", b"mdat", b"moof", b"mvhd", b"trak", b"tkhd", b"edts", b"elst", b"mdia", b"mdhd",
              b"hdlr", b"stsd", b"mvex", b"trex", b"traf", b"tfhd", b"trun", b"udta", b"meta", b"ilst", b"----",
              b"mean", b"name", b"data"}


@st.composite
def mutate_box(draw: st.DrawFn, data: bytes) -> bytes:
    """A random box gets a random size, random content or fields (its ancestors' sizes kept
    consistent), is deleted, duplicated, or moved to the end of its container."""
    boxes = mp4_boxes_deep(data)
    if not boxes:
        return data
    read = [box for box in boxes if box[0] in READ_BOXES]
    kind, start, end, ancestors = draw(st.sampled_from(read) if read and draw(st.booleans())
                                       else st.sampled_from(boxes))
    out = bytearray(data)
    operation = draw(st.sampled_from(["size", "content", "fields", "delete", "duplicate", "move"]))
    event(f"box {operation}")
    if operation == "move":         # the same box, last in its container
        container_end = next((box_end for _, box_start, box_end, _ in boxes
                              if ancestors and box_start == ancestors[-1]), len(data))
        moved = data[start:end]
        return data[:start] + data[end:container_end] + moved + data[container_end:]
    if operation == "size":
        struct.pack_into(">I", out, start, draw(u32s))
        return bytes(out)
    if operation == "fields":       # a few 32-bit fields of the payload: versions, counts, timescales
        for _ in range(draw(st.integers(1, 3))):
            if end - start >= 12:
                at = draw(st.integers(start + 8, end - 4))
                struct.pack_into(">I", out, at, draw(u32s))
        return bytes(out)
    if operation == "content":
        new = struct.pack(">I4s", 0, kind) + draw(st.binary(max_size=64))
        new = struct.pack(">I", len(new)) + new[4:]
    elif operation == "delete":
        new = b""
    else:
        new = data[start:end] * 2
    _resize_ancestors(out, ancestors, len(new) - (end - start))
    out[start:end] = new
    return bytes(out)


hex_fields = st.one_of(st.integers(0, 0xFFFFFFFF).map("{:08X}".format),
                       st.integers(0, 2**64 - 1).map("{:016X}".format),
                       st.sampled_from(["0", "", "-1", "0x10", "zz", "FFFFFFFFFFFFFFFFF"]))


@st.composite
def redeclare_priming(draw: st.DrawFn, data: bytes) -> bytes:
    """A random edit list or a random iTunSMPB tag (both made well-formed as boxes)."""
    try:
        if draw(st.booleans()):
            edits = draw(st.lists(st.tuples(st.sampled_from([0, 1, 1000, 12_000]) | st.integers(0, 2**32 - 1),
                                            st.sampled_from([-1, 0, 1024, 2112]) | st.integers(-2**31, 2**31 - 1)),
                                  max_size=4))
            return fx.with_edit_list(data, fx.elst(edits, draw(st.sampled_from([0, 1, 2]))))
        return fx.with_itunsmpb(data, " " + " ".join(draw(st.lists(hex_fields, max_size=12))))
    except Exception:
        return data


def riff_chunks(data: bytes) -> list[tuple[bytes, int, int]]:
    """RIFF chunks after the 12-byte header as (id, start, end)."""
    chunks, pos = [], 12
    while pos + 8 <= len(data):
        (size,) = struct.unpack_from("<I", data, pos + 4)
        chunks.append((data[pos:pos + 4], pos, min(len(data), pos + 8 + size + (size & 1))))
        pos += 8 + size + (size & 1)
    return chunks


@st.composite
def mutate_chunk(draw: st.DrawFn, data: bytes) -> bytes:
    """A random RIFF chunk gets a random size or fmt fields, or a random chunk is inserted."""
    chunks = riff_chunks(data)
    out = bytearray(data)
    operation = draw(st.sampled_from(["size", "riff size", "fields", "insert"]))
    if operation == "riff size":
        if len(out) >= 8:
            struct.pack_into("<I", out, 4, draw(u32s))
    elif operation == "insert" or not chunks:
        at = draw(st.sampled_from([start for _, start, _ in chunks] or [12]))
        chunk_id = draw(st.sampled_from([b"LIST", b"fact", b"fmt ", b"data", b"junk"]))
        payload = draw(st.binary(max_size=48))
        out[at:at] = chunk_id + struct.pack("<I", draw(st.sampled_from([len(payload)]) | u32s)) + payload
    else:
        chunk_id, start, end = draw(st.sampled_from(chunks))
        if operation == "size":
            struct.pack_into("<I", out, start + 4, draw(u32s))
        else:   # format tag, channels, rate, byte rate, block align, bits, cbSize, SubFormat
            for _ in range(draw(st.integers(1, 3))):
                if end - start >= 10:
                    at = draw(st.integers(start + 8, end - 2))
                    struct.pack_into("<H", out, at, draw(st.sampled_from([0, 1, 3, 0xFFFE, 0xFFFF])
                                                         | st.integers(0, 0xFFFF)))
    return bytes(out)


@st.composite
def id3v2_tags(draw: st.DrawFn) -> bytes:
    """An ID3v2 tag: random version, flags (footer too), payload and (honest or not) size."""
    payload = draw(st.binary(max_size=64))
    size = draw(st.sampled_from([len(payload)]) | st.integers(0, 0x0FFFFFFF))
    synchsafe = bytes((size >> shift) & 0x7F for shift in (21, 14, 7, 0))
    if draw(st.booleans()):       # sometimes not synchsafe at all
        synchsafe = draw(st.binary(min_size=4, max_size=4))
    flags = draw(st.sampled_from([0, 0x10, 0x40, 0x80]) | st.integers(0, 255))
    tag = b"ID3" + bytes([draw(st.integers(2, 4)), 0, flags]) + synchsafe + payload
    if flags & 0x10 and draw(st.booleans()):
        tag += b"3DI" + tag[3:10]
    return tag


@st.composite
def trailing_tags(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["id3v1", "ape", "ape+id3v1", "lyrics3", "id3v2"]))
    if kind == "id3v2":
        return draw(id3v2_tags())
    id3v1 = b"TAG" + draw(st.binary(min_size=125, max_size=125))
    if kind == "id3v1":
        return id3v1
    if kind == "lyrics3":
        return b"LYRICSBEGIN" + draw(st.binary(max_size=40)) + b"LYRICS200" + id3v1
    items = draw(st.binary(max_size=48))
    size = draw(st.sampled_from([len(items) + 32]) | u32s)
    flags = draw(st.sampled_from([0, 1 << 31, 1 << 31 | 1 << 29]) | u32s)
    footer = b"APETAGEX" + struct.pack("<IIII", 2000, size, 1, flags) + bytes(8)
    header = footer if flags & (1 << 31) and draw(st.booleans()) else b""
    return header + items + footer + (id3v1 if kind == "ape+id3v1" else b"")


@st.composite
def mutate_tags(draw: st.DrawFn, data: bytes) -> bytes:
    """ID3v2 tags in front or between frames, tags at (or before) the end."""
    where = draw(st.sampled_from(["front", "middle", "end"]))
    if where == "front":
        return draw(id3v2_tags()) + draw(st.sampled_from([b"", b"\0" * 16])) + data
    if where == "end":
        return data + draw(trailing_tags())
    at = draw(st.integers(0, len(data)))
    return data[:at] + draw(id3v2_tags() | trailing_tags()) + data[at:]


@st.composite
def mutate_frame_header(draw: st.DrawFn, data: bytes) -> bytes:
    """Rewrite one MPEG frame header byte (version, layer, bitrate, rate, padding, mode)."""
    headers = [pos for pos in range(min(len(data), 20_000) - 3) if data[pos] == 0xFF and data[pos + 1] >= 0xE0]
    if not headers:
        return data
    at = draw(st.sampled_from(headers)) + draw(st.integers(1, 3))
    out = bytearray(data)
    out[at] = draw(st.integers(0, 255))
    return bytes(out)


def mutated(seeds: dict, *specific) -> st.SearchStrategy[bytes]:
    generic = [truncate, flip, flip_near_start, splice]

    @st.composite
    def build(draw: st.DrawFn) -> bytes:
        name = draw(st.sampled_from(sorted(seeds)))
        data = seeds[name]()
        for _ in range(draw(st.integers(1, 3))):
            data = draw(draw(st.sampled_from([*specific, *specific, *generic]))(data))
        return data

    return build()


# ---------------------------------------------------------------------------
# The properties
# ---------------------------------------------------------------------------

MAGIC = [b"", b"RIFF", b"RIFF\x00\x00\x00\x00WAVE", b"RIFF\xff\xff\xff\xffWAVEfmt ", b"\x00\x00\x00\x10ftyp",
         b"\x00\x00\x00\x14ftypM4A \x00\x00\x00\x00M4A ", b"ID3", b"ID3\x04\x00\x00\x00\x00\x00\x00",
         b"\xff\xfb", b"\xff\xfb\x90\x64", b"\xff\xf3\x14\xc4" + bytes(20)]


@PROPERTY
@given(st.sampled_from(MAGIC), st.binary(max_size=2048))
def test_random_bytes_are_refused_or_read_sanely(magic, data):
    inspect_or_refuse(magic + data)


@PROPERTY
@given(mutated(MP3_SEEDS, mutate_tags, mutate_frame_header))
def test_mutated_mp3_is_refused_or_read_sanely(data):
    inspect_or_refuse(data)


@PROPERTY
@given(mutated(WAV_SEEDS, mutate_chunk))
def test_mutated_wav_is_refused_or_read_sanely(data):
    inspect_or_refuse(data)


@PROPERTY
@given(mutated(M4A_SEEDS, mutate_box, redeclare_priming))
def test_mutated_m4a_is_refused_or_read_sanely(data):
    inspect_or_refuse(data)


def test_an_empty_box_at_the_very_end_of_the_file_is_no_index_error():
    # Given an M4A with moov last and, last in moov, an mvhd box with no payload at all
    original = fx.m4a_aac(1.0, faststart=False)
    moov, moov_end = fx.mp4_find(original, (b"moov",))
    mvhd, mvhd_end = fx.mp4_find(original, (b"moov", b"mvhd"))
    assert moov_end == len(original)
    children = original[moov + 8:mvhd] + original[mvhd_end:moov_end] + fx.mp4_box(b"mvhd", b"")
    data = original[:moov] + fx.mp4_box(b"moov", children)

    # Then the edit list has no movie timescale and is not used: the media duration is (no IndexError)
    assert inspect_audio(data).duration_seconds == (1024 + 22050) / 22050


@PROPERTY
@given(mutated(MP3_SEEDS, mutate_tags, mutate_frame_header),
       st.sampled_from([0.0, 0.1, 0.5, 1.0, 2.0]) | st.floats(allow_nan=True, allow_infinity=True))
def test_stop_after_seconds_only_stops_the_walk_early(data, limit):
    limited = inspect_or_refuse(data, stop_after_seconds=limit)
    full = inspect_or_refuse(data)
    if limited is not None and full != limited:
        # Stopped early: only at a limit (NaN and +inf mean none), past it, and the whole file is
        # longer still (or breaks off after the point where the walk stopped)
        assert not math.isnan(limit) and limit != math.inf
        assert limited.duration_seconds > limit
        assert full is None or full.duration_seconds >= limited.duration_seconds


@pytest.mark.parametrize("make, length", [
    (lambda: fx.mp3_cbr(1.0), 1.0),
    (lambda: fx.mp3_vbr(12.0), 12.0),
    (lambda: fx.mp3_cbr(300.0, 8000, 16), 300.0),
], ids=["cbr-1s", "vbr-12s", "cbr-300s-8kHz"])
def test_a_walk_limited_to_the_files_own_length_reports_that_length(make, length):
    # Given an MP3 whose LAME tag trims the encoder delay and padding: exactly `length` seconds
    data = make()
    assert inspect_audio(data).duration_seconds == length

    # When the walk may stop once past exactly that length
    limited = inspect_audio(data, stop_after_seconds=length)

    # Then it is never past it: the delay and padding are not counted before deciding to stop
    assert limited.duration_seconds == length


def test_a_limit_reached_exactly_after_rounding_is_walked_past():
    # Given a limit that is exactly the trimmed length of the first 13 frames: the float frame
    # count needed to pass it rounds down, so the first stretch of the walk only reaches it
    data = fx.mp3_cbr(12.0)
    lame = data.index(b"Lav", data.index(b"Info")) + 21   # the LAME tag's 12+12-bit delay and padding
    delay, padding = data[lame] << 4 | data[lame + 1] >> 4, (data[lame + 1] & 0x0F) << 8 | data[lame + 2]
    limit = (13 * 576 - delay - padding) / 22050

    info = inspect_audio(data, stop_after_seconds=limit)

    # Then the walk goes on to pass it, by at most one frame
    assert limit < info.duration_seconds <= limit + 576 / 22050
