"""kyma.audio: format sniffing, durations, truncation and robustness.

Durations are checked against two references: the length the clip was made
with, and what FFmpeg's decoder actually outputs (`decoded_seconds`).  The
tolerance is one codec frame or 50 ms, whichever is larger.
"""

from __future__ import annotations

import io
import math
import random
import struct

import audio_fixtures as fx
import pytest

from kyma.audio import AudioInfo, inspect_audio
from kyma.edge.errors import ApiError, AudioUnreadable, UnsupportedMediaType

MP3_FRAME_SAMPLES = {8000: 576, 11025: 576, 16000: 576, 22050: 576, 24000: 576,
                     32000: 1152, 44100: 1152, 48000: 1152}
AAC_FRAME_SAMPLES = 1024


def tolerance(rate: int, frame_samples: int) -> float:
    """One frame or 50 ms, whichever is larger."""
    return max(frame_samples / rate, 0.05)


def assert_unreadable(data: bytes, *words: str) -> AudioUnreadable:
    with pytest.raises(AudioUnreadable) as caught:
        inspect_audio(data)
    error = caught.value
    assert (error.status, error.code) == (400, "audio_unreadable")
    for word in words:
        assert word in error.message.lower()
    return error


def assert_unsupported(data: bytes) -> None:
    with pytest.raises(UnsupportedMediaType) as caught:
        inspect_audio(data)
    assert (caught.value.status, caught.value.code) == (415, "invalid_request")
    assert caught.value.message == "Audio format not supported: send MP3, WAV or M4A."


# ---------------------------------------------------------------------------
# Format detection
# ---------------------------------------------------------------------------

DETECTED = {
    "mp3 cbr with Info tag": (lambda: fx.mp3_cbr(2.0), "mp3", "audio/mpeg"),
    "mp3 cbr, raw frames": (lambda: fx.mp3_cbr_raw(2.0), "mp3", "audio/mpeg"),
    "mp3 vbr with Xing": (lambda: fx.mp3_vbr(2.0), "mp3", "audio/mpeg"),
    "mp3 vbr, no Xing": (lambda: fx.mp3_vbr(2.0, xing=False), "mp3", "audio/mpeg"),
    "mpeg layer II": (lambda: fx.mp2(2.0), "mp3", "audio/mpeg"),
    "wav pcm16": (lambda: fx.wav(2.0), "wav", "audio/wav"),
    "wav float": (lambda: fx.wav_float(2.0), "wav", "audio/wav"),
    "wav extensible": (lambda: fx.wav_extensible(2.0), "wav", "audio/wav"),
    "m4a faststart": (lambda: fx.m4a_aac(2.0), "m4a", "audio/mp4"),
    "m4a moov at end": (lambda: fx.m4a_aac(2.0, faststart=False), "m4a", "audio/mp4"),
    "fragmented mp4": (lambda: fx.mp4_fragmented(2.0), "m4a", "audio/mp4"),
}


@pytest.mark.parametrize("make, expected_format, expected_mime", DETECTED.values(), ids=DETECTED.keys())
def test_each_format_is_detected_from_the_bytes(make, expected_format, expected_mime):
    info = inspect_audio(make())

    assert isinstance(info, AudioInfo)
    assert (info.format, info.mime_type) == (expected_format, expected_mime)
    assert info.duration_seconds == pytest.approx(2.0, abs=0.1)


def test_audio_info_is_immutable():
    info = inspect_audio(fx.wav(1.0))
    with pytest.raises(AttributeError):
        info.format = "wav"  # type: ignore[misc]


def test_mp3_bytes_are_mp3_whatever_they_claim_to_be():
    # Given an MP3 whose ID3 tag text mentions other formats' magic bytes
    mp3 = fx.mp3_cbr_raw(2.0)
    misleading_tag = b"ID3\x03\x00\x00\x00\x00\x00\x20" + b"RIFF....WAVEftypM4A \x89PNG".ljust(32, b"\0")

    # When the bytes are inspected (a file name or content type is never an input)
    info = inspect_audio(misleading_tag + mp3)

    # Then the bytes decide: it is an MP3
    assert info.format == "mp3"


@pytest.mark.parametrize("wrap", [bytes, bytearray, memoryview], ids=["bytes", "bytearray", "memoryview"])
def test_any_bytes_like_input_is_accepted(wrap):
    assert inspect_audio(wrap(fx.wav(1.0))).format == "wav"


NOT_AUDIO = {
    "png": lambda: fx.png(),
    "text": lambda: b"Hello, this is not audio at all.\n" * 10,
    "json": lambda: b'{"file": "voice.mp3", "format": "mp3"}',
    "random bytes": lambda: fx.random_bytes(4096),
    "empty": lambda: b"",
    "ogg": lambda: b"OggS\x00\x02" + bytes(20) + fx.random_bytes(500),
    "flac": lambda: b"fLaC\x00\x00\x00\x22" + fx.random_bytes(500),
    "avi (riff but not wave)": lambda: b"RIFF\x00\x10\x00\x00AVI LIST" + fx.random_bytes(500),
    "quicktime brand": lambda: b"\x00\x00\x00\x14ftypqt  \x00\x00\x00\x00qt  " + b"\x00\x00\x00\x08mdat",
    "video-only mp4": lambda: fx.mp4_video_only(),
    "id3 tag then flac": lambda: fx.id3v2(32) + b"fLaC\x00\x00\x00\x22" + fx.random_bytes(500),
    "single mp3 header": lambda: b"\xff\xfb\x90\x64" + bytes(8),
    "layer I frames": lambda: (b"\xff\xff\x90\x00" + bytes(412)) * 4,
}


@pytest.mark.parametrize("make", NOT_AUDIO.values(), ids=NOT_AUDIO.keys())
def test_anything_else_is_unsupported_media_type(make):
    assert_unsupported(make())


# ---------------------------------------------------------------------------
# Durations
# ---------------------------------------------------------------------------

MP3_CASES = [
    # (kind, seconds, rate, extra keyword arguments)
    ("cbr", 9.0, 22050, {}),
    ("cbr", 12.0, 44100, {"kbps": 128}),
    ("cbr", 9.0, 22050, {"channels": 2}),
    ("cbr", 9.0, 44100, {"kbps": 128, "channels": 2}),
    ("cbr", 301.0, 8000, {"kbps": 16}),
    ("cbr_raw", 12.0, 22050, {}),
    ("vbr", 9.0, 22050, {}),
    ("vbr", 12.0, 44100, {}),
    ("vbr", 9.0, 22050, {"channels": 2}),
    ("vbr", 301.0, 8000, {}),
    ("vbr_no_xing", 9.0, 22050, {}),
    ("vbr_no_xing", 12.0, 44100, {}),
    ("vbr_no_xing", 9.0, 44100, {"channels": 2}),
    ("vbr_no_xing", 301.0, 8000, {}),
    ("layer2", 12.0, 22050, {}),
]


def make_mp3(kind: str, seconds: float, rate: int, extra: dict) -> bytes:
    if kind == "cbr":
        return fx.mp3_cbr(seconds, rate, **extra)
    if kind == "cbr_raw":
        return fx.mp3_cbr_raw(seconds, rate, **extra)
    if kind == "vbr":
        return fx.mp3_vbr(seconds, rate, **extra)
    if kind == "vbr_no_xing":
        return fx.mp3_vbr(seconds, rate, xing=False, **extra)
    return fx.mp2(seconds, rate)


@pytest.mark.parametrize("kind, seconds, rate, extra", MP3_CASES,
                         ids=[f"{k}-{s:g}s-{r}Hz-{'-'.join(map(str, e.values())) or 'mono'}"
                              for k, s, r, e in MP3_CASES])
def test_mp3_duration_is_exact(kind, seconds, rate, extra):
    data = make_mp3(kind, seconds, rate, extra)
    frame = 1152 if kind == "layer2" else MP3_FRAME_SAMPLES[rate]

    info = inspect_audio(data)

    assert info.format == "mp3"
    assert info.duration_seconds == pytest.approx(fx.decoded_seconds(data), abs=tolerance(rate, frame))
    # Without a LAME tag the encoder delay and padding cannot be trimmed: at most ~2 frames more.
    assert seconds - 1e-9 <= info.duration_seconds < seconds + 2 * frame / rate + 0.05


def test_vbr_mp3_without_xing_header_is_measured_not_extrapolated():
    # Given a 12 s VBR MP3 that has no Xing/Info/VBRI header
    data = fx.mp3_vbr(12.0, 22050, xing=False)
    assert b"Xing" not in data and b"Info" not in data[:4096] and b"VBRI" not in data[:4096]

    # When mutagen reads it, it extrapolates from the first frame's bitrate and is far off...
    import mutagen.mp3
    assert abs(mutagen.mp3.MP3(io.BytesIO(data)).info.length - 12.0) > 1.0

    # ...but inspect_audio counts every frame and gets the real length
    assert inspect_audio(data).duration_seconds == pytest.approx(12.0, abs=tolerance(22050, 576) + 0.05)


def test_xing_tag_frame_is_not_counted_and_lame_gapless_info_is_applied():
    # Given VBR and CBR MP3s written by FFmpeg, whose first frame is a Xing/Info tag
    for data in (fx.mp3_vbr(12.0), fx.mp3_cbr(12.0)):
        assert b"Xing" in data[:2000] or b"Info" in data[:2000]

        # Then the tag frame is no audio, and the encoder delay/padding are trimmed: exactly 12 s
        assert inspect_audio(data).duration_seconds == pytest.approx(12.0, abs=1e-6)


def test_a_vbri_tag_frame_is_not_counted_as_audio():
    # Given raw CBR frames (MPEG-2, 104 bytes each), then the same with a VBRI header in frame one
    raw = fx.mp3_cbr_raw(12.0)
    with_vbri = bytearray(raw)
    with_vbri[36:40] = b"VBRI"

    # Then the VBRI frame is metadata: exactly one frame (576 samples) less audio
    expected = inspect_audio(raw).duration_seconds - 576 / 22050
    assert inspect_audio(bytes(with_vbri)).duration_seconds == pytest.approx(expected)


WAV_CASES = [
    # (seconds, rate, channels, sample width in bytes)
    (9.0, 8000, 1, 2),
    (12.0, 8000, 1, 1),
    (12.0, 11025, 2, 1),
    (12.0, 16000, 2, 2),
    (9.0, 22050, 1, 3),
    (12.0, 44100, 2, 3),
    (12.0, 48000, 1, 4),
    (301.0, 8000, 1, 2),
    (9.99, 44100, 1, 2),
]


@pytest.mark.parametrize("seconds, rate, channels, sampwidth", WAV_CASES,
                         ids=[f"{s:g}s-{r}Hz-{c}ch-{8 * w}bit" for s, r, c, w in WAV_CASES])
def test_wav_pcm_duration(seconds, rate, channels, sampwidth):
    info = inspect_audio(fx.wav(seconds, rate, channels, sampwidth))

    assert info.format == "wav"
    assert info.duration_seconds == pytest.approx(seconds, abs=1 / rate)


def test_wav_float_and_extensible_durations():
    assert inspect_audio(fx.wav_float(12.0, 16000, 2)).duration_seconds == pytest.approx(12.0)
    assert inspect_audio(fx.wav_extensible(301.0, 8000, 2)).duration_seconds == pytest.approx(301.0)


def test_wav_with_chunks_around_the_data_and_odd_sized_data():
    # Given a WAV with a LIST chunk before and after an odd-length 8-bit data chunk
    listing = fx.chunk(b"LIST", b"INFOINAM\x05\x00\x00\x00kyma\x00")
    data = fx.riff_wav(fx.fmt_payload(1, 1, 8000, 8), bytes(80001), before_data=listing, after_data=listing)

    # Then the data chunk alone decides the duration
    assert inspect_audio(data).duration_seconds == pytest.approx(80001 / 8000)


M4A_CASES = [
    # (seconds, rate, faststart)
    (9.0, 22050, True),
    (12.0, 22050, True),
    (12.0, 22050, False),
    (12.0, 44100, False),
    (301.0, 8000, True),
    (301.0, 8000, False),
]


@pytest.mark.parametrize("seconds, rate, faststart", M4A_CASES,
                         ids=[f"{s:g}s-{r}Hz-{'faststart' if f else 'moov-at-end'}" for s, r, f in M4A_CASES])
def test_m4a_aac_duration(seconds, rate, faststart):
    data = fx.m4a_aac(seconds, rate, faststart=faststart)
    moov_first = [kind for kind, _, _ in fx.mp4_boxes(data)].index(b"moov") == 1
    assert moov_first == faststart

    info = inspect_audio(data)

    one_frame = tolerance(rate, AAC_FRAME_SAMPLES)
    assert info.format == "m4a"
    assert info.duration_seconds == pytest.approx(seconds, abs=one_frame)
    assert info.duration_seconds == pytest.approx(fx.decoded_seconds(data), abs=one_frame)


def test_fragmented_mp4_sums_its_fragments():
    # Given a fragmented MP4 (what browsers record): the moov says duration 0
    data = fx.mp4_fragmented(12.0)
    assert [kind for kind, _, _ in fx.mp4_boxes(data)].count(b"moof") > 5

    # Then the duration comes from the fragments' sample tables
    one_frame = tolerance(22050, AAC_FRAME_SAMPLES)
    assert inspect_audio(data).duration_seconds == pytest.approx(12.0, abs=one_frame)


def test_m4a_with_damaged_metadata_still_reads():
    # Given an M4A whose metadata (ilst) is garbage but whose audio index is fine
    data = bytearray(fx.m4a_aac(12.0))
    meta = data.find(b"ilst")
    assert meta > 0
    data[meta + 4:meta + 12] = b"\xff" * 8

    # Then the stream info is still read (the edit list cuts off the encoder priming: exactly 12 s)
    assert inspect_audio(bytes(data)).duration_seconds == 12.0


# ---------------------------------------------------------------------------
# Truncated, corrupt, unsupported codec -> AudioUnreadable
# ---------------------------------------------------------------------------

def test_truncated_wav_is_unreadable():
    # Given a WAV cut short: its data chunk declares more bytes than the file has
    data = fx.wav(12.0)[:-1000]

    # Then its duration cannot be trusted
    assert_unreadable(data, "truncated", "data chunk")


@pytest.mark.parametrize("declared", [0xFFFFFFFF, 0x7FFFFFFF, 12 * 16000 + 2])
def test_wav_declaring_more_data_than_present_is_unreadable(declared):
    data = fx.riff_wav(fx.fmt_payload(1, 1, 8000, 16), bytes(12 * 16000), data_size=declared)
    assert_unreadable(data, "truncated")


@pytest.mark.parametrize("make, words", [
    (lambda: fx.wav_adpcm(), ("codec", "0x0011")),
    (lambda: fx.riff_wav(fx.fmt_payload(0x55, 1, 8000, 0), bytes(1000)), ("codec",)),   # MP3 in WAV
    (lambda: fx.riff_wav(fx.fmt_payload(1, 0, 8000, 16), bytes(1000)), ("format",)),    # 0 channels
    (lambda: fx.riff_wav(fx.fmt_payload(1, 1, 0, 16), bytes(1000)), ("format",)),       # 0 Hz
    (lambda: b"RIFF\x24\x00\x00\x00WAVEdata\x10\x00\x00\x00" + bytes(16), ("fmt",)),    # no fmt
    (lambda: b"RIFF\x04\x00\x00\x00WAVE", ("fmt",)),                                      # header only
    (lambda: b"RIFF\x24\x00\x00\x00WAVEfmt \xff\xff\xff\x7f" + bytes(16), ("format",)),  # huge fmt
    (lambda: fx.wav(1.0)[:44 - 8], ("data",)),                                            # no data chunk
], ids=["adpcm", "mp3-in-wav", "zero-channels", "zero-rate", "no-fmt", "header-only", "huge-fmt", "no-data"])
def test_wav_with_unsupported_codec_or_broken_header_is_unreadable(make, words):
    assert_unreadable(make(), *words)


def test_riff_wave_header_followed_by_garbage_is_unreadable():
    assert_unreadable(b"RIFF\xff\xff\xff\xffWAVE" + fx.random_bytes(2000), "wav")


MP3_KINDS = {
    "cbr with info": lambda: fx.mp3_cbr(12.0),
    "cbr raw": lambda: fx.mp3_cbr_raw(12.0),
    "vbr with xing": lambda: fx.mp3_vbr(12.0),
    "vbr without xing": lambda: fx.mp3_vbr(12.0, xing=False),
    "layer II": lambda: fx.mp2(12.0),
}


@pytest.mark.parametrize("make", MP3_KINDS.values(), ids=MP3_KINDS.keys())
def test_mp3_whose_last_frame_is_cut_off_is_unreadable(make):
    data = make()
    for cut in (7, 1, 100):
        assert_unreadable(data[:-cut], "truncated")


@pytest.mark.parametrize("make", MP3_KINDS.values(), ids=MP3_KINDS.keys())
def test_mp3_that_loses_frame_sync_mid_stream_is_unreadable(make):
    # Given an MP3 with a run of zeros in the middle of its frames
    data = bytearray(make())
    middle = len(data) // 2
    data[middle:middle + 2000] = bytes(2000)

    # Then it is corrupt, not shorter
    assert_unreadable(bytes(data), "corrupt")


def _ape_tag(*, header: bool) -> bytes:
    item = struct.pack("<II", 4, 0) + b"Artist\x00kyma"
    flags = (1 << 31 | 1 << 29) if header else 0           # has header / this is the header
    size = len(item) + 32

    def block(extra_flags: int) -> bytes:
        return b"APETAGEX" + struct.pack("<IIII", 2000, size, 1, flags | extra_flags) + bytes(8)

    return (block(0) if header else b"") + item + block(0)


@pytest.mark.parametrize("trailer", [
    fx.id3v1(),
    _ape_tag(header=True),
    _ape_tag(header=False),
    _ape_tag(header=False) + fx.id3v1(),
    b"LYRICSBEGIN" + b"IND00002" + b"10" + b"000021" + b"LYRICS200" + fx.id3v1(),
    fx.id3v2(40),
], ids=["id3v1", "apev2", "apev2-footer-only", "apev2-footer-only+id3v1", "lyrics3+id3v1", "appended-id3v2"])
def test_trailing_tags_after_the_frames_are_not_corruption(trailer):
    mp3 = fx.mp3_vbr(12.0, xing=False)
    expected = inspect_audio(mp3).duration_seconds

    assert inspect_audio(mp3 + trailer).duration_seconds == pytest.approx(expected)


def test_id3v2_tag_with_padding_before_the_frames_is_skipped():
    mp3 = fx.mp3_cbr_raw(12.0)
    tagged = fx.id3v2(300) + bytes(500) + mp3

    assert inspect_audio(tagged).duration_seconds == pytest.approx(inspect_audio(mp3).duration_seconds)


def test_concatenated_mp3s_with_an_id3_tag_between_them_add_up():
    first, second = fx.mp3_cbr_raw(12.0), fx.mp3_cbr_raw(9.0, 44100, 64)
    total = inspect_audio(first).duration_seconds + inspect_audio(second).duration_seconds

    assert inspect_audio(first + fx.id3v2(40) + second).duration_seconds == pytest.approx(total)


@pytest.mark.parametrize("data, words", [
    (b"ID3", ("id3",)),
    (b"ID3\x04\x00\x00", ("id3",)),
    (fx.id3v2(0), ("no audio",)),
    (fx.id3v2(64) + bytes(100), ("no audio",)),
    (fx.id3v2(64, declared_size=0x0FFFFFFF), ("id3",)),
    (fx.id3v2(64) + b"\xff\xfb\x90\x64" + bytes(100), ("truncated",)),
], ids=["lone-magic", "partial-header", "empty-tag", "tag-and-zeros", "huge-tag", "first-frame-cut"])
def test_id3_tag_without_audio_is_unreadable(data, words):
    assert_unreadable(data, *words)


def test_truncated_m4a_faststart_is_unreadable():
    # Given an M4A with moov first, cut anywhere inside mdat
    data = fx.m4a_aac(12.0)
    for cut in (len(data) - 1, len(data) // 2, len(data) - 5000):
        # Then the mdat box declares more bytes than are present
        assert_unreadable(data[:cut], "truncated", "mdat")


def test_truncated_m4a_moov_at_end_is_unreadable():
    data = fx.m4a_aac(12.0, faststart=False)
    boxes = {kind: (start, end) for kind, start, end in fx.mp4_boxes(data)}
    moov_start, moov_end = boxes[b"moov"]

    # Given the file cut inside moov, then moov is incomplete
    assert_unreadable(data[:moov_end - 10], "truncated", "moov")
    # Given the file cut right where moov begins, then there is no index at all
    assert_unreadable(data[:moov_start], "moov")
    # Given the file cut inside mdat, then mdat is incomplete
    assert_unreadable(data[:boxes[b"mdat"][0] + 1000], "truncated", "mdat")


def test_m4a_cut_right_after_moov_has_no_audio_data():
    data = fx.m4a_aac(12.0)
    moov_end = next(end for kind, _, end in fx.mp4_boxes(data) if kind == b"moov")

    assert_unreadable(data[:moov_end], "mdat")


def test_m4a_whose_moov_cannot_be_parsed_is_unreadable():
    # Given a faststart M4A whose moov content is overwritten with 0xFF
    data = bytearray(fx.m4a_aac(12.0))
    moov_start = next(start for kind, start, _ in fx.mp4_boxes(data) if kind == b"moov")
    data[moov_start + 8:moov_start + 40] = b"\xff" * 32

    assert_unreadable(bytes(data))


def test_m4a_with_unsupported_audio_codec_is_unreadable():
    # Given an M4A whose audio sample entry says AC-3 instead of AAC
    data = fx.m4a_aac(12.0).replace(b"mp4a", b"ac-3", 1)

    assert_unreadable(data, "codec", "ac-3")


def test_mp4_without_a_sound_track_is_415():
    # Given an M4A whose only track is relabelled as video
    data = fx.m4a_aac(12.0).replace(b"soun", b"vide", 1)

    assert_unsupported(data)


@pytest.mark.parametrize("data", [
    b"\x00\x00\x00\x01ftyp" + b"\xff" * 8 + b"M4A \x00\x00\x00\x00",          # 64-bit size 2^64-1
    b"\x00\x00\x00\x18ftypM4A \x00\x00\x00\x00M4A isom" + b"\x7f\xff\xff\xffmoov",
    b"\x00\x00\x00\x18ftypM4A \x00\x00\x00\x00M4A isom" + b"\x00\x00\x00\x04mdat",
    b"\x00\x00\x00\x18ftypM4A ",
    b"\x00\x00\x00\x18ftypM4A \x00\x00\x00\x00M4A isom",
    b"\x00\x00\x00\x01ftypM4A ",
], ids=["huge-64bit-ftyp", "huge-moov", "tiny-box", "cut-ftyp", "ftyp-only", "cut-largesize"])
def test_m4a_with_impossible_box_sizes_is_unreadable(data):
    assert_unreadable(data)


# ---------------------------------------------------------------------------
# stop_after_seconds
# ---------------------------------------------------------------------------

def test_stop_after_seconds_bounds_the_frame_walk():
    # Given a 301 s MP3 whose end is corrupt
    data = fx.mp3_vbr(301.0, 8000, xing=False)
    corrupt = data[:-3000] + bytes(3000)
    assert_unreadable(corrupt, "corrupt")

    # When the walk may stop after 20 s
    info = inspect_audio(corrupt, stop_after_seconds=20.0)

    # Then it stops just past 20 s, long before the damage
    assert 20.0 < info.duration_seconds <= 20.0 + 576 / 8000 + 1e-9


def test_stop_after_seconds_longer_than_the_file_changes_nothing():
    data = fx.mp3_vbr(12.0)
    assert inspect_audio(data, stop_after_seconds=300.0) == inspect_audio(data)


def test_stop_after_seconds_with_a_xing_file_still_exceeds_the_limit():
    info = inspect_audio(fx.mp3_vbr(12.0), stop_after_seconds=10.0)
    assert 10.0 < info.duration_seconds < 10.1


@pytest.mark.parametrize("limit", [0.0, -5.0, math.nan, math.inf, 1e308])
def test_odd_stop_after_seconds_values_are_safe(limit):
    info = inspect_audio(fx.mp3_cbr_raw(2.0), stop_after_seconds=limit)
    assert info.format == "mp3" and info.duration_seconds > 0


def test_pathological_mp3_of_tiny_frames_is_bounded():
    # Given 10 MB of the smallest valid frames (MPEG-2, 8 kbit/s, 24 kHz: 24 bytes, 24 ms each)
    frame = b"\xff\xf3\x14\xc4" + bytes(20)
    data = frame * (10_000_000 // len(frame))

    # When the walk may stop after 300 s
    info = inspect_audio(data, stop_after_seconds=300.0)

    # Then it stops after ~12,500 frames (300 s), not 400,000
    assert 300.0 < info.duration_seconds < 300.1
    assert inspect_audio(data).duration_seconds == pytest.approx(len(data) / 24 * 0.024)


# ---------------------------------------------------------------------------
# Robustness: only ApiError subclasses ever escape
# ---------------------------------------------------------------------------

FUZZ_SEEDS = {
    "mp3 cbr": lambda: fx.mp3_cbr(1.0),
    "mp3 vbr": lambda: fx.mp3_vbr(1.0),
    "mp3 raw": lambda: fx.mp3_vbr(1.0, xing=False),
    "mp2": lambda: fx.mp2(1.0),
    "m4a": lambda: fx.m4a_aac(1.0),
    "m4a moov at end": lambda: fx.m4a_aac(1.0, faststart=False),
    "fragmented": lambda: fx.mp4_fragmented(2.0),
    "wav": lambda: fx.wav(0.2),
    "wav float": lambda: fx.wav_float(0.2),
    "wav extensible": lambda: fx.wav_extensible(0.2),
    "png": lambda: fx.png(),
}
_INTERESTING = [b"\xff\xff\xff\xff", b"\x00\x00\x00\x00", b"\x00\x00\x00\x01", b"\x7f\xff\xff\xff",
                b"ID3\x04", b"TAG\x00", b"moov", b"mdat", b"moof", b"trak", b"data", b"fmt ", b"\xff\xfb\x90\x64"]


def _mutate(data: bytes, rng: random.Random) -> bytes:
    out = bytearray(data)
    operation = rng.randrange(6)
    if operation == 0:                                   # truncate anywhere
        del out[rng.randrange(len(out) + 1):]
    elif operation == 1:                                 # flip random bytes
        for _ in range(rng.randrange(1, 20)):
            out[rng.randrange(len(out))] = rng.randrange(256)
    elif operation == 2:                                 # overwrite a word in the header area
        at = rng.randrange(min(len(out), 3000))
        out[at:at + 4] = rng.choice(_INTERESTING)
    elif operation == 3:                                 # insert junk
        at = rng.randrange(len(out))
        out[at:at] = rng.randbytes(rng.randrange(1, 64))
    elif operation == 4:                                 # delete a slice
        at = rng.randrange(len(out))
        del out[at:at + rng.randrange(1, 600)]
    else:                                                # truncate and flip bits
        del out[rng.randrange(len(out) + 1):]
        for _ in range(rng.randrange(1, 5)):
            if out:
                out[rng.randrange(len(out))] ^= 1 << rng.randrange(8)
    return bytes(out)


@pytest.mark.parametrize("make", FUZZ_SEEDS.values(), ids=FUZZ_SEEDS.keys())
def test_fuzzed_inputs_raise_only_api_errors(make):
    seed = make()
    rng = random.Random(f"kyma-audio-{len(seed)}")
    outcomes = set()
    for _ in range(400):
        data = _mutate(seed, rng)
        try:
            info = inspect_audio(data)
        except (AudioUnreadable, UnsupportedMediaType) as error:   # any other exception fails the test
            outcomes.add(type(error).__name__)
        else:
            assert info.format in {"mp3", "wav", "m4a"}
            assert math.isfinite(info.duration_seconds) and info.duration_seconds >= 0
            outcomes.add("ok")
    if seed != fx.png():   # the mutations really exercised both the happy and the error paths
        assert {"ok", "AudioUnreadable"} <= outcomes


@pytest.mark.parametrize("size", [0, 1, 2, 3, 4, 7, 8, 11, 12, 16, 100, 4096, 100_000])
def test_random_bytes_of_any_size_raise_only_api_errors(size):
    for seed in range(20):
        data = fx.random_bytes(size, seed)
        for prefix in (b"", b"RIFF", b"RIFF\x00\x00\x00\x00WAVE", b"\x00\x00\x00\x10ftyp", b"ID3", b"\xff\xfb"):
            with pytest.raises(ApiError):
                inspect_audio(prefix + data)


def test_deeply_nested_boxes_do_not_crash():
    # Given an M4A whose moov nests 'trak' boxes thousands deep
    depth = 5000
    nested = b"".join(struct.pack(">I4s", 8 * (depth - i), b"trak") for i in range(depth))
    moov = struct.pack(">I4s", 8 + len(nested), b"moov") + nested
    data = b"\x00\x00\x00\x14ftypM4A \x00\x00\x00\x00M4A " + moov + b"\x00\x00\x00\x08mdat"

    with pytest.raises(ApiError):
        inspect_audio(data)
