"""A job's text split into parts of at most `limit` characters (code points), each one MiniMax task.

Boundaries, in order of preference: a paragraph (a blank line), then a sentence end
(. ! ? and their CJK forms, with closing quotes, followed by whitespace, or a CJK sentence
mark on its own), then any whitespace; only a run with none of them (no space for `limit`
characters) is cut mid-word.  A part ends after its boundary, so joining the parts gives the
text back exactly: ``"".join(text[a:b] for a, b in spans) == text``.  Parts are kept as large
as allowed: each one takes the last boundary of the best kind within its limit, unless that
would leave the part shorter than half the limit (then a lesser boundary further on is
preferred).  Deterministic: the same text and limit always give the same spans (a
redelivered message recomputes them).
"""

from __future__ import annotations

import re

_PARAGRAPH = re.compile(r"\n[ \t\r\f\v]*\n\s*")
_SENTENCE = re.compile(r"(?:[.!?…]+[\"'”’)\]]*\s+|[。！？]+[”’」』）]*\s*)")
_SPACE = re.compile(r"\s+")


def spans(text: str, limit: int) -> list[tuple[int, int]]:
    """[(start, end)] covering `text` in order, each at most `limit` characters."""
    if limit < 1:
        raise ValueError("limit must be positive")
    out: list[tuple[int, int]] = []
    start, n = 0, len(text)
    while start < n:
        if n - start <= limit:
            out.append((start, n))
            break
        end = _cut(text, start, start + limit)
        out.append((start, end))
        start = end
    return out


def _cut(text: str, start: int, hard_end: int) -> int:
    """Where the part starting at `start` ends (exclusive), at most `hard_end`."""
    floor = start + (hard_end - start) // 2
    best_any = None
    for pattern in (_PARAGRAPH, _SENTENCE, _SPACE):
        last = None
        for match in pattern.finditer(text, start, hard_end):
            if match.end() <= hard_end and match.end() > start:
                last = match.end()
        if last is not None:
            if last >= floor:
                return last
            best_any = best_any or last
    return best_any or hard_end
