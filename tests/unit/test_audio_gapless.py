"""M4A durations honour the encoder priming and padding the file declares (kyma.audio.gapless).

An AAC encoder adds 1024 priming samples before the audio and pads the last
frame.  What PyAV (FFmpeg's ``ipod``/``mp4`` muxers) writes is pinned down
first; then files made by PyAV at exact lengths are checked at the 10 s and
300 s limits, and hand-built variants (edit list only, iTunSMPB only, both,
neither, damaged declarations) check each rule.  8 kHz makes the priming
large (128 ms) and the encoding fast.
"""

from __future__ import annotations

import io
import struct

import audio_fixtures as fx
import pytest

from kyma.audio import inspect_audio
from kyma.edge.errors import ReferenceTooLong, ReferenceTooShort
from kyma.voices.clone import check_reference

PRIMING = 1024                     # what FFmpeg's AAC encoder declares
RATE = 8000
TRAK = (b"moov", b"trak")


def samples_of(seconds: float, rate: int) -> int:
    """The samples the fixture generator makes for ``seconds`` (audio_fixtures._mono)."""
    return round(seconds * rate)


def seconds(data: bytes) -> float:
    return inspect_audio(data).duration_seconds


def ffmpeg_presented_seconds(data: bytes) -> float:
    """The stream duration FFmpeg's demuxer reports: it applies the edit list."""
    import av

    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.audio[0]
        return float(stream.duration * stream.time_base)


def full_box_fields(data: bytes, path: tuple[bytes, ...], fmt: str) -> tuple[int, ...]:
    start, _ = fx.mp4_find(data, path)
    return struct.unpack_from(">" + fmt, data, start + 8)


def media_samples(data: bytes) -> int:
    """mdhd duration (version 0): the media length including the priming."""
    return full_box_fields(data, TRAK + (b"mdia", b"mdhd"), "4xIIII")[3]


# ---------------------------------------------------------------------------
# What PyAV writes
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("faststart", [True, False], ids=["faststart", "moov-at-end"])
def test_pyav_declares_the_priming_with_an_edit_list_and_no_itunsmpb(faststart):
    data = fx.m4a_aac(12.0, RATE, faststart=faststart)

    # One edit: skip the 1024 priming samples, present 12 s (movie timescale 1000)
    (movie_timescale,) = full_box_fields(data, (b"moov", b"mvhd"), "12xI")
    version, count, segment, media_time, rate = full_box_fields(data, TRAK + (b"edts", b"elst"), "BxxxIIiI")
    assert (movie_timescale, version, count) == (1000, 0, 1)
    assert (segment, media_time, rate) == (12_000, PRIMING, 0x0001_0000)
    # The media counts the priming; the padding is cut from the last sample's stts duration instead
    assert media_samples(data) == PRIMING + samples_of(12.0, RATE)
    # No iTunes gapless tag
    assert b"iTunSMPB" not in data


# ---------------------------------------------------------------------------
# PyAV files at exact lengths, and the 10 s / 300 s limits
# ---------------------------------------------------------------------------

PYAV_CASES = [
    # (seconds, sample rate)
    (300.0, 8000), (300.0, 44100), (300.0004, 8000), (300.001, 8000), (300.01, 22050),
    (9.99, 22050), (9.999, 48000), (9.9995, 8000), (10.0, 8000), (10.0, 44100), (12.0, 16000),
]


@pytest.mark.parametrize("length, rate", PYAV_CASES, ids=[f"{s}s-{r}Hz" for s, r in PYAV_CASES])
def test_m4a_duration_is_the_presented_audio_not_the_media(length, rate):
    data = fx.m4a_aac(length, rate)

    # Exactly the samples that were encoded: no priming, no padding
    assert seconds(data) == samples_of(length, rate) / rate
    # ...which is what FFmpeg's demuxer presents too, to the millisecond it reads from the edit list
    assert seconds(data) == pytest.approx(ffmpeg_presented_seconds(data), abs=0.001)


@pytest.mark.parametrize("length, rate, refused", [
    (300.0, 44100, None),              # read as 300.023 s before: refused
    (300.0, 8000, None),               # read as 300.128 s before: refused
    (300.0004, 8000, ReferenceTooLong),   # 300.000375 s: its edit list says 300.000 (ms), the samples say more
    (300.001, 8000, ReferenceTooLong),
    (300.01, 22050, ReferenceTooLong),
    (10.0, 8000, None),
    (10.0, 44100, None),
    (9.9995, 8000, ReferenceTooShort),    # edit list rounded up to 10.000 s; 79,996 samples are 9.9995 s
    (9.999, 48000, ReferenceTooShort),
    (9.99, 22050, ReferenceTooShort),     # read as 10.036 s before: accepted
], ids=lambda value: str(value) if isinstance(value, float) else getattr(value, "__name__", str(value)))
def test_m4a_at_the_duration_limits(length, rate, refused):
    data = fx.m4a_aac(length, rate)
    if refused is None:
        assert check_reference(data).duration_seconds == length
    else:
        with pytest.raises(refused):
            check_reference(data)


# ---------------------------------------------------------------------------
# Hand-built: edit list only
# ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def bare() -> bytes:
    """12 s at 8 kHz with neither an edit list nor an iTunSMPB tag: 12.128 s of media."""
    return fx.without_edit_list(fx.m4a_aac(12.0, RATE))


@pytest.fixture(scope="module")
def bare_300() -> bytes:
    return fx.without_edit_list(fx.m4a_aac(300.0, RATE, faststart=False))


def test_without_any_declaration_the_media_duration_is_kept(bare, bare_300):
    assert b"elst" not in bare and b"iTunSMPB" not in bare
    assert seconds(bare) == (PRIMING + 96_000) / RATE == ffmpeg_presented_seconds(bare)
    with pytest.raises(ReferenceTooLong):       # as before: nothing says the priming is not audio
        check_reference(bare_300)


@pytest.mark.parametrize("edits, version, expected", [
    ([(12_000, PRIMING)], 0, 12.0),                                   # what PyAV writes, rebuilt
    ([(12_000, PRIMING)], 1, 12.0),                                   # 64-bit fields
    ([(5_000, PRIMING)], 0, 5.0),                                     # cuts the media short
    ([(500, -1), (12_000, PRIMING)], 0, 12.0),                        # a leading pause is not audio
    ([(6_000, PRIMING), (6_000, PRIMING + 48_000)], 0, 12.0),         # two edits add up
    ([(0, PRIMING)], 0, 12.0),                                        # 0: to the end of the media
    ([(99_000, PRIMING)], 0, 12.0),                                   # longer than the media: the media
    ([(12_000, 0)], 0, 12.0),                                         # all 12.128 s from 0, capped at 12 s
], ids=["pyav", "version-1", "cut", "pause-first", "two-edits", "zero-segment", "overlong", "no-skip"])
def test_edit_list_alone_decides(bare, edits, version, expected):
    assert seconds(fx.with_edit_list(bare, fx.elst(edits, version))) == expected


def test_version_1_media_header_and_edit_list_are_read():
    data = fx.with_version_1_headers(fx.m4a_aac(12.0, RATE))
    assert data[fx.mp4_find(data, TRAK + (b"mdia", b"mdhd"))[0] + 8] == 1
    assert seconds(data) == 12.0 == ffmpeg_presented_seconds(data)


def test_a_cut_edit_list_agrees_with_ffmpeg(bare):
    data = fx.with_edit_list(bare, fx.elst([(5_000, PRIMING)]))
    assert seconds(data) == ffmpeg_presented_seconds(data) == 5.0


@pytest.mark.parametrize("box", [
    fx.elst([]),                                          # no edits
    fx.elst([(12_000, -1)]),                              # only a pause
    fx.elst([(6_000, 10_000_000)]),                       # starts beyond the media
    fx.elst([(12_000, PRIMING)], version=2),              # unknown version
    fx.elst([(12_000, PRIMING)])[:-4],                    # entry cut short
    fx.mp4_full_box(b"elst", 0, struct.pack(">I", 0xFFFFFFFF)),   # count far beyond the box
    fx.mp4_box(b"elst", b""),                             # no fields at all
    fx.mp4_box(b"free", b""),                             # edts without elst
], ids=["empty", "pause-only", "beyond-media", "version-2", "short-entry", "huge-count", "empty-box", "no-elst"])
def test_unusable_edit_lists_fall_back_to_the_media_duration(bare, box):
    data = fx.with_edit_list(bare, box)
    assert seconds(data) == seconds(bare)


def test_edit_list_without_a_movie_timescale_is_unusable(bare):
    data = bytearray(fx.with_edit_list(bare, fx.elst([(12_000, PRIMING)])))
    mvhd, _ = fx.mp4_find(bytes(data), (b"moov", b"mvhd"))
    struct.pack_into(">I", data, mvhd + 8 + 12, 0)     # mvhd timescale = 0
    assert seconds(bytes(data)) == seconds(bare)


# ---------------------------------------------------------------------------
# Hand-built: iTunSMPB only, and both
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("faststart", [True, False], ids=["faststart", "moov-at-end"])
@pytest.mark.parametrize("length, refused", [(300.0, None), (9.99, ReferenceTooShort), (10.0, None),
                                             (300.01, ReferenceTooLong)])
def test_itunsmpb_alone_decides_at_the_limits(faststart, length, refused):
    data = fx.without_edit_list(fx.m4a_aac(length, RATE, faststart=faststart))
    samples = samples_of(length, RATE)
    padding = -(PRIMING + samples) % 1024
    tagged = fx.with_itunsmpb(data, fx.itunsmpb_text(PRIMING, padding, samples))
    assert b"elst" not in tagged

    assert seconds(tagged) == samples / RATE
    if refused is None:
        assert check_reference(tagged).duration_seconds == length
    else:
        with pytest.raises(refused):
            check_reference(tagged)


def test_itunsmpb_as_itunes_writes_it_counts_whole_frames_of_media(bare):
    # Given a tag whose priming + samples + padding is exactly the media (iTunes' invariant)
    media = media_samples(bare)
    tagged = fx.with_itunsmpb(bare, fx.itunsmpb_text(600, 400, media - 1000))
    assert seconds(tagged) == (media - 1000) / RATE


@pytest.mark.parametrize("text", [
    fx.itunsmpb_text(PRIMING, 0, 200_000),                 # more samples than the media holds
    fx.itunsmpb_text(PRIMING, 0, 50_000),                  # far fewer, and no padding to explain it
    fx.itunsmpb_text(PRIMING, 0, 0),                       # no samples
    " 00000000 00000400 00000000",                         # too few fields
    " 00000000 0x400 00000000 0000000000017700",           # not plain hex
    " 00000000 -400 00000000 0000000000017700",
    " 00000000 00000400 00000000 00000000000177000",       # 17 hex digits
    "", "\xff\xfe junk",
], ids=["too-many-samples", "too-few-samples", "zero", "short", "0x", "negative", "wide", "empty", "junk"])
def test_itunsmpb_that_does_not_fit_the_media_is_ignored(bare, text):
    assert seconds(fx.with_itunsmpb(bare, text)) == seconds(bare)


def test_damaged_itunsmpb_box_is_ignored_not_fatal(bare):
    tagged = bytearray(fx.with_itunsmpb(bare, fx.itunsmpb_text(PRIMING, 0, 96_000)))
    name = tagged.find(b"iTunSMPB")
    struct.pack_into(">I", tagged, name + 8, 0x7FFFFFFF)   # the data box now claims 2 GB
    assert seconds(bytes(tagged)) == seconds(bare)


def test_the_edit_list_wins_over_a_conflicting_itunsmpb():
    data = fx.m4a_aac(12.0, RATE)
    both = fx.with_itunsmpb(data, fx.itunsmpb_text(PRIMING, 48_000, 48_000))   # claims 6 s
    assert b"elst" in both and b"iTunSMPB" in both
    assert seconds(both) == 12.0


def test_itunsmpb_is_used_when_the_edit_list_is_unusable(bare):
    broken = fx.with_edit_list(bare, fx.elst([(12_000, -1)]))
    assert seconds(fx.with_itunsmpb(broken, fx.itunsmpb_text(PRIMING, 0, 96_000))) == 12.0


# ---------------------------------------------------------------------------
# Fragmented files
# ---------------------------------------------------------------------------

def test_fragmented_mp4_with_an_edit_list_skips_the_priming():
    data = fx.mp4_fragmented(12.0)
    assert b"elst" not in data                     # FFmpeg's fragmented muxer declares nothing
    assert seconds(data) == (PRIMING + 12 * 22050) / 22050

    assert seconds(fx.with_edit_list(data, fx.elst([(0, PRIMING)]))) == 12.0
