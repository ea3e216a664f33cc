"""M4A durations (AAC or ALAC in an ISO-BMFF file: M4A, MP4, fragmented MP4).

Owns the M4A-level checks: every top-level box fits the file, a brand we
accept, an index (``moov``) and audio data (``mdat``), the first sound track
and its codec (read by mutagen).  The media duration is the sound track's
``mdhd`` duration; a fragmented file, whose ``moov`` says 0, sums the sample
durations of its ``trun`` boxes instead.  Of that media, the part the file
declares presented (encoder priming and padding cut off: edit list or
iTunSMPB, `kyma.audio.gapless`) is the duration; without a usable declaration
the whole media duration is.  `duration` returns None for an ISO-BMFF file
that is not audio (another brand, no sound track).
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass

from kyma.audio import gapless
from kyma.audio.boxes import BOX_HEADER, UNPARSABLE_MOOV, Box, Span, child, full_box_u32, iter_boxes, u32
from kyma.edge.errors import AudioUnreadable

_AUDIO_BRANDS = frozenset({
    b"M4A ", b"M4B ", b"M4P ", b"mp41", b"mp42", b"isom",
    b"iso2", b"iso3", b"iso4", b"iso5", b"iso6", b"dash",
})
_AUDIO_CODECS = ("mp4a", "alac")           # AAC (and other MPEG-4 audio), Apple Lossless
_MAX_TOP_LEVEL_BOXES = 100_000              # ~2 per fragment: far beyond any real 10 MB file
_TFHD_OPTIONAL = ((0x01, 8), (0x02, 4))     # base data offset, sample description index
_TFHD_DEFAULT_DURATION = 0x08
_TRUN_DATA_OFFSET, _TRUN_FIRST_FLAGS, _TRUN_DURATIONS = 0x001, 0x004, 0x100
_TRUN_SAMPLE_FIELDS = (0x100, 0x200, 0x400, 0x800)   # duration, size, flags, composition offset


@dataclass(frozen=True)
class _Track:
    """The first sound track."""
    track_id: int
    timescale: int       # media timescale (mdhd); 0 if there is no mdhd
    duration: int        # media duration in timescale units (mdhd); 0 for fragmented files
    trak: Span


def duration(data: bytes) -> float | None:
    """Seconds of audio in the M4A ``data``; None if it is an ISO-BMFF file but not audio.

    Checks the top-level boxes and the brands, then reads duration and codec.
    """
    top: list[Box] = []
    for box in iter_boxes(data, 0, len(data)):
        top.append(box)
        if len(top) > _MAX_TOP_LEVEL_BOXES:
            raise AudioUnreadable("The M4A file is corrupt: it has far too many boxes.")
    _, ftyp, ftyp_end = top[0]
    compatible = range(ftyp + 8, ftyp_end - 3, 4)     # after major brand and minor version
    brands = {data[ftyp:ftyp + 4]} | {data[p:p + 4] for p in compatible}
    if not brands & _AUDIO_BRANDS:
        return None
    names = {box_type for box_type, _, _ in top}
    if b"moov" not in names:
        raise AudioUnreadable("The M4A file has no index (moov box): it is truncated or incomplete.")
    if b"mdat" not in names:
        raise AudioUnreadable("The M4A file contains no audio data (mdat box).")
    moov: Span = next((payload, end) for box_type, payload, end in top if box_type == b"moov")
    track = _sound_track(data, *moov)
    if track is None:   # e.g. a video-only MP4
        return None

    length, codec = _mutagen_mp4_info(data, *moov)
    if not codec.startswith(_AUDIO_CODECS):
        raise AudioUnreadable(f"The M4A file's audio codec ({codec or 'unknown'}) is not supported: "
                              "send AAC or ALAC.")
    media_duration = track.duration
    if not length and b"moof" in names:
        media_duration = _fragmented_duration(data, top, moov, track)
        length = media_duration / track.timescale
    presented = gapless.presented_seconds(data, moov, track.trak, track.timescale, media_duration)
    return length if presented is None else presented


def _mutagen_mp4_info(data: bytes, moov: int, moov_end: int) -> tuple[float, str]:
    """(duration, codec) of the first sound track, read by mutagen from the moov box."""
    import mutagen.mp4  # lazy: keeps the module's import (Lambda cold start) light

    # mutagen only needs moov: give it a copy of that box alone (small; the
    # audio is not copied, and mutagen does not re-walk every top-level box).
    fileobj = io.BytesIO(struct.pack(">I4s", BOX_HEADER + moov_end - moov, b"moov") + data[moov:moov_end])
    try:
        # Stream info only: damaged metadata (an ilst tag) must not reject good audio.
        info = mutagen.mp4.MP4Info(mutagen.mp4.Atoms(fileobj), fileobj)
    except Exception as exc:   # mutagen raises many types (AtomError, struct.error, RecursionError...)
        raise AudioUnreadable(UNPARSABLE_MOOV) from exc
    return float(info.length), str(info.codec)


def _sound_track(data: bytes, moov: int, moov_end: int) -> _Track | None:
    """The first ``soun`` track, or None."""
    for box_type, trak, trak_end in iter_boxes(data, moov, moov_end):
        if box_type != b"trak":
            continue
        tkhd = child(data, trak, trak_end, b"tkhd")
        mdia = child(data, trak, trak_end, b"mdia")
        if tkhd is None or mdia is None:
            continue
        hdlr = child(data, *mdia, b"hdlr")   # version/flags, pre_defined, handler type
        if hdlr is None or hdlr[0] + 12 > hdlr[1] or data[hdlr[0] + 8:hdlr[0] + 12] != b"soun":
            continue
        mdhd = child(data, *mdia, b"mdhd")
        track_id = full_box_u32(data, tkhd, 12, 20)
        timescale = full_box_u32(data, mdhd, 12, 20) if mdhd else 0
        return _Track(track_id, timescale, _mdhd_duration(data, mdhd) if mdhd else 0, (trak, trak_end))
    return None


def _mdhd_duration(data: bytes, mdhd: Span) -> int:
    """The media duration field of ``mdhd`` (32 bits in version 0, 64 in version 1)."""
    payload, end = mdhd
    if data[payload:payload + 1] != b"\x01":
        return u32(data, payload + 16, end)
    if payload + 32 > end:
        raise AudioUnreadable(UNPARSABLE_MOOV)
    return int(struct.unpack_from(">Q", data, payload + 24)[0])


def _fragmented_duration(data: bytes, top: list[Box], moov: Span, track: _Track) -> int:
    """Sum the sample durations (media timescale units) of the sound track over all movie fragments."""
    track_id, timescale = track.track_id, track.timescale
    if not timescale:
        raise AudioUnreadable(UNPARSABLE_MOOV)
    default_duration = 0
    mvex = child(data, *moov, b"mvex")
    for box_type, trex, trex_end in iter_boxes(data, *mvex) if mvex else ():
        if box_type == b"trex" and u32(data, trex + 4, trex_end) == track_id:
            default_duration = u32(data, trex + 12, trex_end)
    total = 0
    for box_type, moof, moof_end in top:
        if box_type != b"moof":
            continue
        for traf_type, traf, traf_end in iter_boxes(data, moof, moof_end):
            if traf_type == b"traf":
                total += _traf_duration(data, traf, traf_end, track_id, default_duration)
    return total


def _traf_duration(data: bytes, traf: int, traf_end: int, track_id: int, default_duration: int) -> int:
    tfhd = child(data, traf, traf_end, b"tfhd")
    if tfhd is None or u32(data, tfhd[0] + 4, tfhd[1]) != track_id:
        return 0
    flags = u32(data, tfhd[0], tfhd[1]) & 0xFFFFFF
    field = tfhd[0] + 8 + sum(size for flag, size in _TFHD_OPTIONAL if flags & flag)
    if flags & _TFHD_DEFAULT_DURATION:
        default_duration = u32(data, field, tfhd[1])
    total = 0
    for box_type, trun, trun_end in iter_boxes(data, traf, traf_end):
        if box_type != b"trun":
            continue
        flags = u32(data, trun, trun_end) & 0xFFFFFF
        count = u32(data, trun + 4, trun_end)
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
