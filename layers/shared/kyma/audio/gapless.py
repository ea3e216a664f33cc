"""AAC encoder priming and padding in an M4A: how much of the media is presented.

An AAC encoder emits priming samples before the audio (1024 for FFmpeg's and
Apple's encoders, 2112 with the decoder delay counted) and pads the last frame;
the media duration in ``mdhd`` counts both.  A 300.000 s clip encoded at
44.1 kHz is 300.023 s of media.  Files declare the audio actually presented
in one of two ways, read here in this order:

1. The edit list (``moov/trak/edts/elst``, ISO/IEC 14496-12 §8.6.6): each
   edit presents ``segment_duration`` (movie timescale, ``mvhd``) of the media
   from ``media_time`` (media timescale, ``mdhd``) on; ``media_time`` skips
   the priming.  An edit that reaches the end of the media (to within one
   movie tick, the rounding of ``segment_duration``) presents the rest of it,
   counted in samples; ``segment_duration`` 0 means the same (fragmented
   files).  Empty edits (``media_time`` -1) insert a pause, not audio, and
   are not counted.  FFmpeg (PyAV) writes one such edit and also shortens the
   last sample's ``stts`` duration by the padding.
2. iTunes' ``iTunSMPB`` tag (``moov/udta/meta/ilst/----``, mean
   ``com.apple.iTunes``): space-separated hex fields ``0 priming padding
   samples ...``; the duration is ``samples`` / media timescale.  Used only
   if the track has no usable edit list and the tag agrees with the media:
   priming + samples <= media duration <= priming + samples + padding.

`presented_seconds` returns None when the file declares neither usably; the
caller then keeps the media duration.  A damaged declaration is ignored (it
never makes good audio unreadable); damaged box structure still raises
`AudioUnreadable` through `kyma.audio.boxes`.
"""

from __future__ import annotations

import re
import struct

from kyma.audio.boxes import Span, child, iter_boxes
from kyma.edge.errors import AudioUnreadable

_MAX_EDITS = 1_000                    # real files have one or two
_EDIT_ENTRY = {0: ">IiI", 1: ">QqI"}  # segment_duration, media_time, media rate (16.16)
_ITUNES_MEAN = b"com.apple.iTunes"
_ITUNSMPB = b"iTunSMPB"
_HEX_FIELD = re.compile(r"[0-9A-Fa-f]{1,16}")


def presented_seconds(data: bytes, moov: Span, trak: Span, media_timescale: int,
                      media_duration: int) -> float | None:
    """Seconds of audio the track presents once priming and padding are cut off.

    ``media_duration`` is the track's media length in ``media_timescale``
    units (``mdhd``, or the sum of the fragments).  None: no usable edit list
    and no usable iTunSMPB tag.
    """
    if media_timescale <= 0 or media_duration <= 0:
        return None
    for read in (_edit_list_seconds, _itunsmpb_seconds):
        try:
            seconds = read(data, moov, trak, media_timescale, media_duration)
        except AudioUnreadable:     # a damaged declaration is ignored: it never rejects good audio
            seconds = None
        if seconds is not None:
            return seconds
    return None


def _edit_list_seconds(data: bytes, moov: Span, trak: Span, media_timescale: int,
                       media_duration: int) -> float | None:
    edits = _edit_list(data, trak)
    movie_timescale = _movie_timescale(data, moov)
    if not edits or not movie_timescale:
        return None
    return _edited_seconds(edits, movie_timescale, media_timescale, media_duration)


def _itunsmpb_seconds(data: bytes, moov: Span, _trak: Span, media_timescale: int,
                      media_duration: int) -> float | None:
    smpb = _itunsmpb(data, moov)
    if smpb is None:
        return None
    priming, padding, samples = smpb
    if samples and priming + samples <= media_duration <= priming + samples + padding:
        return samples / media_timescale
    return None


def _edited_seconds(edits: list[tuple[int, int]], movie_timescale: int, media_timescale: int,
                    media_duration: int) -> float | None:
    """The presented length of the edits, or None if they present no media or point outside it."""
    # Sum exactly in units of 1 / (movie_timescale * media_timescale) seconds.
    total = 0
    presented = False
    for segment, media_time in edits:
        if media_time < 0:                      # an empty edit: a pause, not audio
            continue
        if media_time >= media_duration:        # starts beyond the media: the list is wrong
            return None
        rest = media_duration - media_time      # media units left from media_time on
        if segment == 0 or (segment + 1) * media_timescale > rest * movie_timescale:
            total += rest * movie_timescale     # to the end of the media: exact, in samples
        else:
            total += segment * media_timescale
        presented = True
    return total / (movie_timescale * media_timescale) if presented else None


def _edit_list(data: bytes, trak: Span) -> list[tuple[int, int]] | None:
    """[(segment_duration, media_time)] of the track's edit list; None if absent or malformed."""
    edts = child(data, *trak, b"edts")
    elst = child(data, *edts, b"elst") if edts else None
    if elst is None or elst[0] + 8 > elst[1]:
        return None
    payload, end = elst
    entry = _EDIT_ENTRY.get(_version(data, elst))
    (count,) = struct.unpack_from(">I", data, payload + 4)
    if entry is None or not 0 < count <= _MAX_EDITS:
        return None
    size = struct.calcsize(entry)
    if payload + 8 + count * size > end:
        return None
    return [(segment, media_time) for segment, media_time, _rate
            in struct.iter_unpack(entry, data[payload + 8:payload + 8 + count * size])]


def _movie_timescale(data: bytes, moov: Span) -> int:
    """The ``mvhd`` timescale (edit list units); 0 if missing or short."""
    mvhd = child(data, *moov, b"mvhd")
    if mvhd is None:
        return 0
    offset = mvhd[0] + (20 if _version(data, mvhd) == 1 else 12)
    return int.from_bytes(data[offset:offset + 4], "big") if offset + 4 <= mvhd[1] else 0


def _version(data: bytes, box: Span) -> int:
    """A full box's version byte; -1 for a box too short to have one (never an IndexError)."""
    payload, end = box
    return data[payload] if payload < end else -1


def _itunsmpb(data: bytes, moov: Span) -> tuple[int, int, int] | None:
    """(priming, padding, samples) from the iTunSMPB tag; None if absent or malformed."""
    value = _itunes_tag(data, moov, _ITUNSMPB)
    if value is None:
        return None
    fields = value.decode("latin-1").split()
    if len(fields) < 4 or not all(_HEX_FIELD.fullmatch(field) for field in fields[:4]):
        return None
    _, priming, padding, samples = (int(field, 16) for field in fields[:4])
    return priming, padding, samples


def _itunes_tag(data: bytes, moov: Span, name: bytes) -> bytes | None:
    """The value of the freeform ``com.apple.iTunes`` tag ``name`` in ``moov/udta/meta/ilst``."""
    udta = child(data, *moov, b"udta")
    meta = child(data, *udta, b"meta") if udta else None
    if meta is None:
        return None
    start, end = meta
    if data[start + 4:start + 8] != b"hdlr":    # ISO meta is a full box; QuickTime's is not
        start += 4
    ilst = child(data, start, end, b"ilst")
    for box_type, item, item_end in iter_boxes(data, *ilst) if ilst else ():
        if box_type != b"----":
            continue
        fields = {kind: data[payload + 4:box_end]       # mean/name/data are full boxes
                  for kind, payload, box_end in iter_boxes(data, item, item_end)}
        if fields.get(b"mean") == _ITUNES_MEAN and fields.get(b"name") == name and b"data" in fields:
            return fields[b"data"][4:]                  # after the data box's locale
    return None
