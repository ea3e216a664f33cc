"""ISO base media file format (MP4/M4A) boxes: the reading primitives.

A box is a 32-bit big-endian size (1: a 64-bit size follows; 0: to the end of
its container), a four-character type and a payload; full boxes start their
payload with a version byte and 24 bits of flags.  Every read here is checked
against the box (or container) it belongs to: a box that claims more bytes
than its container has, or a field beyond its box, raises `AudioUnreadable`.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

from kyma.edge.errors import AudioUnreadable

BOX_HEADER = 8
LARGE_BOX_HEADER = 16
UNPARSABLE_MOOV = "The M4A file's index (moov box) cannot be parsed."

Box = tuple[bytes, int, int]     # (type, payload start, box end)
Span = tuple[int, int]           # (payload start, box end)


def iter_boxes(data: bytes, start: int, end: int) -> Iterator[Box]:
    """Yield (type, payload start, box end) for the boxes in ``data[start:end]``.

    Raises AudioUnreadable when a box claims more bytes than its container has.
    """
    pos = start
    while pos + BOX_HEADER <= end:
        size, box_type = struct.unpack_from(">I4s", data, pos)
        header = BOX_HEADER
        if size == 1:
            if pos + LARGE_BOX_HEADER > end:
                raise AudioUnreadable("The M4A file is truncated inside a box header.")
            (size,) = struct.unpack_from(">Q", data, pos + 8)
            header = LARGE_BOX_HEADER
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


def child(data: bytes, start: int, end: int, box_type: bytes) -> Span | None:
    """(payload start, end) of the first ``box_type`` box in ``data[start:end]``."""
    for found, payload, box_end in iter_boxes(data, start, end):
        if found == box_type:
            return payload, box_end
    return None


def full_box_u32(data: bytes, box: Span, offset_v0: int, offset_v1: int) -> int:
    """A 32-bit field of a full box whose offset depends on the box version (0 or 1)."""
    payload, end = box
    version1 = data[payload:payload + 1] == b"\x01"
    return u32(data, payload + (offset_v1 if version1 else offset_v0), end)


def u32(data: bytes, pos: int, end: int) -> int:
    """The big-endian 32-bit field at ``pos``, which must end by ``end``."""
    if pos + 4 > end:
        raise AudioUnreadable(UNPARSABLE_MOOV)
    return int(struct.unpack_from(">I", data, pos)[0])
