"""BinaryMediaTypes matching: which request bodies arrive base64, which responses are decoded."""

from __future__ import annotations

import fnmatch


def is_binary(content_type: str, binary_types: list[str]) -> bool:
    """Does the request's Content-Type make its body binary (base64 in the event)?"""
    media = content_type.split(";")[0].strip().lower()
    return bool(media) and any(fnmatch.fnmatch(media, t.lower()) for t in binary_types)


def accepts_binary(accept: str, binary_types: list[str]) -> bool:
    """Does the request's first Accept type let a base64 Lambda response be decoded to bytes?"""
    first = accept.split(",")[0].split(";")[0].strip().lower()
    return bool(first) and any(fnmatch.fnmatch(first, t.lower()) if "*" in t else first == t.lower()
                               for t in binary_types)
