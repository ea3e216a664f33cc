"""Subtitles as MiniMax documents them (``subtitle_enable``), timed on the audio the sandbox renders.

The sandbox knows when each character is spoken: after the 300 ms lead-in, the characters share
the rest of the rendered audio evenly (`char_times`; the audio's real length, whole MP3 or FLAC
frames included, so the last character ends where the audio ends).  A segment is a sentence
(it ends at ``.``, ``!``, ``?`` or their full-width forms, with what closes it); at word level
each segment lists its words (runs of non-space characters) in ``timestamped_words``.

Shape (shared/reference/timestamps.md): ``text``, ``pronounce_text``, ``time_begin``,
``time_end`` (ms), ``text_begin``, ``text_end`` (code points of the text sent),
``is_final_segment`` and ``timestamped_words`` (``word``, ``word_begin``, ``word_end``,
``time_begin``, ``time_end``).  Non-streamed answers link the list as ``data.subtitle_file``
(served by the sandbox at `FILE_PREFIX`); streamed answers carry each segment as
``data.subtitle`` on the chunk that holds its last audio (`segments_by_chunk`).

Failure injection (`failures`): ``subtitle_missing`` -- the ``subtitle_file`` URL answers
404; ``subtitle_broken`` -- the file (or a streamed segment) is not in the documented shape.
"""

from __future__ import annotations

import re

from kyma_local.sandbox.audio import LEAD_IN_MS, Rendered

FILE_PREFIX = "/files/subtitles/"
SUBTITLE_TYPES = ("sentence", "word", "word_streaming")
_SENTENCE = re.compile(r"[^.!?。！？]*(?:[.!?。！？]+[\"'”’)\]]*|$)")
_WORD = re.compile(r"\S+")


def spoken_ms(rendered: Rendered) -> float:
    """How long the audio really is: whole frames for MP3/FLAC, sample frames for PCM/WAV."""
    if rendered.unit_starts and rendered.unit_ms:
        return len(rendered.unit_starts) * rendered.unit_ms
    return float(rendered.duration_ms)


def char_times(text: str, rendered: Rendered) -> list[tuple[float, float]]:
    """(start, end) in ms of each code point of `text` in `rendered`."""
    lead = min(float(LEAD_IN_MS), spoken_ms(rendered))
    per = (spoken_ms(rendered) - lead) / max(1, len(text))
    return [(lead + i * per, lead + (i + 1) * per) for i in range(len(text))]


def segments(text: str, rendered: Rendered, *, words: bool, pronunciation: list[str] | None = None) -> list[dict]:
    times = char_times(text, rendered)
    out: list[dict] = []
    for match in _SENTENCE.finditer(text):
        raw = match.group()
        if not raw.strip():
            continue
        begin = match.start() + (len(raw) - len(raw.lstrip()))
        end = match.start() + len(raw.rstrip())
        sentence = text[begin:end]
        segment: dict = {"text": sentence, "pronounce_text": _pronounced(sentence, pronunciation or []),
                         "time_begin": round(times[begin][0]), "time_end": round(times[end - 1][1]),
                         "text_begin": begin, "text_end": end, "is_final_segment": False}
        if words:
            segment["timestamped_words"] = [
                {"word": w.group(), "word_begin": begin + w.start(), "word_end": begin + w.end(),
                 "time_begin": round(times[begin + w.start()][0]), "time_end": round(times[begin + w.end() - 1][1])}
                for w in _WORD.finditer(sentence)]
        out.append(segment)
    if out:
        out[-1]["is_final_segment"] = True
    return out


def segments_by_chunk(found: list[dict], rendered: Rendered, pieces: list[bytes]) -> list[list[dict]]:
    """Which stream chunk carries which segments: the one holding the segment's last audio."""
    total = spoken_ms(rendered)
    ends, offset = [], 0
    for piece in pieces:
        offset += len(piece)
        ends.append(total * offset / max(1, len(rendered.audio)))
    placed: list[list[dict]] = [[] for _ in pieces]
    index = 0
    for segment in found:
        while index < len(pieces) - 1 and ends[index] < segment["time_end"]:
            index += 1
        if pieces:
            placed[index].append(segment)
    return placed


def broken(found: list[dict]) -> list[dict]:
    """The same segments, not in the documented shape (their times as strings)."""
    return [{**s, "time_begin": str(s["time_begin"])} for s in found]


def _pronounced(sentence: str, tone: list[str]) -> str:
    for entry in tone:
        original, _, replacement = entry.partition("/")
        if original:
            sentence = sentence.replace(original, replacement)
    return sentence
