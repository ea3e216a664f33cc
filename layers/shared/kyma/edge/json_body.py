"""Every JSON body the API accepts, read one way: whatever the bytes, a value or a 400.

A body is refused (400 invalid_request, before anything is charged) unless it is
strict UTF-8 JSON whose
- nesting is at most MAX_DEPTH levels (Python's parser would raise RecursionError
  on thousands, and every later walk of the value would too);
- strings and keys hold no lone surrogates ("\\ud800" parses, but cannot be stored
  in DynamoDB, sent upstream or even encoded back to UTF-8);
- numbers are finite (NaN, Infinity and overflowing literals such as 1e400 slip
  through JSON Schema's minimum/maximum, which are false for NaN).
"""

from __future__ import annotations

import json
import math
from typing import Any

from kyma.edge.errors import InvalidRequest

MAX_DEPTH = 32


def _no_constants(name: str) -> Any:
    raise InvalidRequest(f"The request body contains {name}, which is not a JSON number.")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise InvalidRequest(f"The number {text[:32]} is out of range.")
    return value


def parse(body: bytes) -> Any:
    try:
        text = body.decode("utf-8")
        value = json.loads(text, parse_constant=_no_constants, parse_float=_finite)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise InvalidRequest("The request body is not valid JSON.") from exc
    _check(value)
    return value


def parse_object(body: bytes) -> dict:
    value = parse(body)
    if not isinstance(value, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    return value


def _check(value: Any) -> None:
    """Depth and strings, without recursion (a walk of the parsed value, iteratively)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            _utf8(item)
        elif isinstance(item, (dict, list)):
            if depth > MAX_DEPTH:
                raise InvalidRequest(f"The request body is nested more than {MAX_DEPTH} levels deep.")
            if isinstance(item, dict):
                for key, child in item.items():
                    _utf8(key)
                    stack.append((child, depth + 1))
            else:
                stack.extend((child, depth + 1) for child in item)


def _utf8(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidRequest("The request body contains a string that is not valid Unicode "
                             "(a lone surrogate such as \\ud800).") from exc
