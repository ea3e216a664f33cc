"""Captions (SRT, WebVTT) from the timings of a speech, written by webvtt-py.

Cues follow the sentences: a sentence that fits two lines of at most `LINE_CHARS` characters is
one cue; a longer one is cut at word boundaries into cues of two such lines, each timed by its
own words (by its share of the sentence's characters at sentence level).  A word longer than a
line is cut.  The file format (timestamps, numbering, the WebVTT header) is the library's:
webvtt-py writes both WebVTT and SRT (`srt` has only a source distribution, and the layer
installs wheels only).
"""

from __future__ import annotations

import io
import re
from collections.abc import Sequence

LINE_CHARS = 42           # the usual broadcast line (BBC, Netflix: 42 characters)
LINES_PER_CUE = 2
SRT, VTT = "srt", "vtt"
_TOKEN = re.compile(r"\S+")


def build(text: str, sentences: Sequence[dict], words: Sequence[dict] | None, fmt: str) -> str:
    """The captions of `text` as `fmt` ("srt" or "vtt"): `sentences` and `words` are the answer's
    timings (`char_start`/`char_end` into `text`, `start_ms`/`end_ms`)."""
    import webvtt  # on first use: about 20 ms of imports the speech function's cold start does not need

    cues = []
    for sentence in sentences:
        for start, end, lines in _cues(text, sentence["char_start"], sentence["char_end"]):
            start_ms, end_ms = _timing(sentence, words, start, end)
            body = "\n".join(lines)
            cues.append(webvtt.Caption(_stamp(start_ms), _stamp(max(end_ms, start_ms + 1)),
                                       _escape(body) if fmt == VTT else body))
    document = webvtt.WebVTT(captions=cues)
    if fmt == VTT:
        return document.content
    out = io.StringIO()
    document.write(out, format="srt")
    return out.getvalue() + "\n"


def _cues(text: str, begin: int, end: int) -> list[tuple[int, int, list[str]]]:
    """The sentence text[begin:end] as cues: (char_start, char_end, lines)."""
    pieces = [(cut, min(cut + LINE_CHARS, token.end())) for token in _TOKEN.finditer(text, begin, end)
              for cut in range(token.start(), token.end(), LINE_CHARS)]     # a word longer than a line is cut
    lines: list[list[tuple[int, int]]] = []
    for piece in pieces:
        if lines and _length(lines[-1]) + 1 + piece[1] - piece[0] <= LINE_CHARS:
            lines[-1].append(piece)
        else:
            lines.append([piece])
    cues = []
    for n in range(0, len(lines), LINES_PER_CUE):
        group = lines[n:n + LINES_PER_CUE]
        cues.append((group[0][0][0], group[-1][-1][1], [" ".join(text[a:b] for a, b in line) for line in group]))
    return cues


def _length(line: list[tuple[int, int]]) -> int:
    """A line's length as written: its pieces joined by single spaces."""
    return sum(b - a for a, b in line) + len(line) - 1


def _timing(sentence: dict, words: Sequence[dict] | None, start: int, end: int) -> tuple[int, int]:
    inside = [w for w in words or () if w["char_start"] < end and w["char_end"] > start]
    if inside:
        return inside[0]["start_ms"], inside[-1]["end_ms"]
    span = max(1, sentence["char_end"] - sentence["char_start"])
    duration = sentence["end_ms"] - sentence["start_ms"]
    return (sentence["start_ms"] + duration * (start - sentence["char_start"]) // span,
            sentence["start_ms"] + duration * (end - sentence["char_start"]) // span)


def _stamp(ms: int) -> str:
    hours, rest = divmod(int(ms), 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    seconds, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{seconds:02d}.{millis:03d}"


def _escape(line: str) -> str:
    """WebVTT cue text: & and < start markup, so they are written as character references."""
    return line.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
