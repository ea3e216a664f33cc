"""A job's subtitles: each part's sentence cues (MiniMax's subtitle JSON: `text`, `time_begin`,
`time_end` in ms) shifted by where the part starts in the joined audio, written three ways:
MiniMax's JSON shape, SubRip (.srt) and WebVTT (.vtt), the last two by webvtt-py (a maintained
library: its own escaping, timestamp formats and cue numbering).

A part starts where the parts before it end: the sum of their durations, counted from their
frames or samples (`kyma.audio.join`), the same sum that gives the joined file's duration, so
the last cue ends where the audio does.
"""

from __future__ import annotations

import io
from collections.abc import Sequence


def merged(parts: Sequence[tuple[float, list[dict]]]) -> list[dict]:
    """[(part seconds, its cues)] in order → every cue on the joined timeline (ms, integers)."""
    out: list[dict] = []
    offset = 0.0
    for seconds, cues in parts:
        base = round(offset * 1000)
        for cue in cues:
            begin, end = cue.get("time_begin"), cue.get("time_end")
            text = cue.get("text")
            if not isinstance(begin, (int, float)) or not isinstance(end, (int, float)) or not isinstance(text, str):
                continue            # a cue of a shape we do not know is left out, never guessed
            if not text.strip() or end < begin:
                continue
            out.append({"text": text.strip(), "time_begin": base + round(begin), "time_end": base + round(end)})
        offset += seconds
    return out


def _timestamp(ms: int) -> str:
    hours, rest = divmod(int(ms), 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    seconds, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{seconds:02d}.{millis:03d}"


def documents(cues: list[dict]) -> tuple[str, str]:
    """(SRT, WebVTT) text of the cues."""
    import webvtt

    vtt = webvtt.WebVTT(captions=[webvtt.Caption(_timestamp(c["time_begin"]), _timestamp(c["time_end"]),
                                                 c["text"]) for c in cues])
    srt = io.StringIO()
    vtt.write(srt, format="srt")
    return srt.getvalue(), vtt.content
