"""WAV (RIFF/WAVE) durations: walk the chunks to ``fmt `` and ``data``.

PCM and IEEE float (also inside WAVE_FORMAT_EXTENSIBLE) are read; the
duration is whole sample frames in the data chunk / sample rate.  Other codecs
(ADPCM, MP3-in-WAV...), a damaged ``fmt `` chunk or a data chunk that declares
more bytes than the file has raise `AudioUnreadable`.

Hand-written rather than mutagen's WAVE reader (mutagen reads the other formats here): for a
1-second 16 kHz PCM file, mutagen also says 1.0 s with its data cut in half and with its codec
changed to ADPCM; a clip of the wrong codec or cut short must be refused before it is charged and
sent upstream.  The stdlib `wave` module refuses IEEE float files, which are valid here.
"""

from __future__ import annotations

import struct

from kyma.edge.errors import AudioUnreadable

WAVE_FORMAT_PCM = 0x0001
WAVE_FORMAT_IEEE_FLOAT = 0x0003
WAVE_FORMAT_EXTENSIBLE = 0xFFFE
_WAV_CODECS = {WAVE_FORMAT_PCM, WAVE_FORMAT_IEEE_FLOAT}
_RIFF_HEADER = 12      # "RIFF", size, "WAVE"
_CHUNK_HEADER = 8      # id, little-endian size
_FMT_MIN_SIZE = 16     # WAVEFORMAT without cbSize
_FMT_EXTENSIBLE_SIZE = 40
_MAX_WAV_CHUNKS = 10_000   # real files have a handful; bounds the walk on junk


def duration(data: bytes) -> float:
    """Seconds of audio in the RIFF/WAVE file ``data``: whole frames in ``data`` / sample rate."""
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
    return frames / sample_rate


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
