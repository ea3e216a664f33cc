"""MiniMax's subtitles (``subtitle_enable``): the documented segment shape, read strictly.

Sync T2A with ``subtitle_enable: true`` and ``subtitle_type`` (``sentence`` or ``word``):

- a non-streamed answer carries ``data.subtitle_file``, a URL to a JSON array of segments;
- a streamed answer carries a segment in ``data.subtitle`` on the last chunk of that segment
  (integrators report that the data rides on the segment's last chunk; the field name is ours
  to confirm against MiniMax, so the client accepts exactly this and nothing else).

A segment: ``text``, ``pronounce_text``, ``time_begin``, ``time_end`` (ms from the start of the
audio), ``text_begin``, ``text_end``, ``is_final_segment`` and, at word level,
``timestamped_words`` (``word``, ``word_begin``, ``word_end``, ``time_begin``, ``time_end``).

The shapes come from secondary sources (shared/reference/timestamps.md), so anything else --
a missing field, a wrong type, times running backwards -- raises `ShapeError`: the client turns
it into a logged provider error, and the paid call releases its hold.  Never guessed around.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

from kyma.providers import Segment, TimedWord


class ShapeError(ValueError):
    """MiniMax's subtitle data is not in the documented shape (the message says where)."""


def segments_of_file(raw: Any, *, words: bool) -> tuple[Segment, ...]:
    """A ``subtitle_file``'s JSON: a list of segments, in order."""
    if not isinstance(raw, list):
        raise ShapeError("the subtitle file is not a JSON array of segments")
    parsed = tuple(segment(item, words=words, where=f"segment {n}") for n, item in enumerate(raw))
    check_order(parsed)
    return parsed


def segments_of_event(raw: Any, *, words: bool) -> tuple[Segment, ...]:
    """A streamed event's ``data.subtitle``: one segment (or, tolerated, a list of them)."""
    items = raw if isinstance(raw, list) else [raw]
    return tuple(segment(item, words=words, where="streamed segment") for item in items)


def segment(raw: Any, *, words: bool, where: str) -> Segment:
    if not isinstance(raw, dict):
        raise ShapeError(f"{where} is not an object")
    text = raw.get("text")
    if not isinstance(text, str):
        raise ShapeError(f"{where} has no text")
    begin, end = _ms(raw, "time_begin", where), _ms(raw, "time_end", where)
    if end < begin:
        raise ShapeError(f"{where} ends before it begins")
    timed: tuple[TimedWord, ...] = ()
    if words:
        listed = raw.get("timestamped_words")
        if not isinstance(listed, list) or (text.strip() and not listed):
            raise ShapeError(f"{where} has no timestamped_words")
        timed = tuple(_word(item, f"{where} word {n}") for n, item in enumerate(listed))
        for previous, word in itertools.pairwise(timed):
            if word.time_begin < previous.time_begin:
                raise ShapeError(f"{where}: word times run backwards")
    return Segment(text=text, time_begin=begin, time_end=end, text_begin=_index(raw, "text_begin", where),
                   text_end=_index(raw, "text_end", where), words=timed)


def check_order(parsed: tuple[Segment, ...]) -> None:
    for previous, current in itertools.pairwise(parsed):
        if current.time_begin < previous.time_begin:
            raise ShapeError("segment times run backwards")


def _word(raw: Any, where: str) -> TimedWord:
    if not isinstance(raw, dict) or not isinstance(raw.get("word"), str) or not raw["word"]:
        raise ShapeError(f"{where} has no word")
    begin, end = _ms(raw, "time_begin", where), _ms(raw, "time_end", where)
    if end < begin:
        raise ShapeError(f"{where} ends before it begins")
    return TimedWord(word=raw["word"], time_begin=begin, time_end=end, word_begin=_index(raw, "word_begin", where),
                     word_end=_index(raw, "word_end", where))


def _ms(raw: dict, name: str, where: str) -> int:
    value = raw.get(name)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ShapeError(f"{where} has no valid {name}")
    return round(value)


def _index(raw: dict, name: str, where: str) -> int | None:
    value = raw.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ShapeError(f"{where} has an invalid {name}")
    return value
