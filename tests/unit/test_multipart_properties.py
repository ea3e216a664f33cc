"""Property-based tests (Hypothesis) of kyma.edge.multipart.

Properties:
* whatever the Content-Type and the body, `parse_content_type`, `boundary_of`
  and `parse_form` return or raise `InvalidRequest`/`PayloadTooLarge`, never
  anything else;
* a successful parse is sane: parts are views into the request body, names
  are non-empty, at most MAX_PARTS parts;
* a valid form round-trips, whichever legal parameter syntax (plain, quoted,
  RFC 2231 extended or continued) carries the boundary.

Inputs are random, or valid ones mutated: truncated, bytes flipped, delimiters
duplicated or removed, random header lines, random parameter syntax.  The
runs are derandomized (the same examples every run, replayable) and bounded
(``PROPERTY`` below); a failure prints the example and a reproduction blob.
"""

from __future__ import annotations

import contextlib
import string
import urllib.parse

import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from kyma.edge.errors import InvalidRequest, PayloadTooLarge
from kyma.edge.multipart import MAX_PARTS, boundary_of, parse_content_type, parse_form

PROPERTY = settings(max_examples=400, deadline=None, derandomize=True, database=None, print_blob=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
ALLOWED = (InvalidRequest, PayloadTooLarge)

# RFC 2046 boundary characters (a space may not come last)
BCHARS = string.ascii_letters + string.digits + "'()+_,-./:=?"
CHARSETS = ["utf-8", "UTF-8", "us-ascii", "iso-8859-1", "latin-1", "utf-16", "", "idna", "undefined",
            "punycode", "no-such-charset", "hex", "rot13", "utf-8\x00"]

boundaries = st.text(BCHARS, min_size=1, max_size=70)
field_names = st.text(st.characters(min_codepoint=32, max_codepoint=0x2FFF, exclude_characters='"\\\x7f'),
                      min_size=1, max_size=20).filter(lambda name: name.strip() == name)
values = st.binary(max_size=200)
forms = st.lists(st.tuples(field_names, values, st.none() | st.sampled_from(["a.mp3", "ref.wav", "x y.m4a"])),
                 min_size=1, max_size=5)


def encode(parts: list[tuple[str, bytes, str | None]], boundary: str) -> bytes:
    out = []
    for name, value, filename in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        out.append(f"--{boundary}\r\nContent-Disposition: {disposition}\r\n".encode())
        if filename:
            out.append(b"Content-Type: application/octet-stream\r\n")
        out.append(b"\r\n" + value + b"\r\n")
    out.append(f"--{boundary}--\r\n".encode())
    return b"".join(out)


@st.composite
def boundary_parameters(draw: st.DrawFn, boundary: str) -> str:
    """``boundary`` in one of the legal parameter syntaxes (RFC 2045, RFC 2231)."""
    style = draw(st.sampled_from(["plain", "quoted", "extended", "continued", "continued-extended"]))
    name = draw(st.sampled_from(["boundary", "Boundary", "BOUNDARY"]))
    if style == "plain":
        return f"{name}={boundary}" if not set(boundary) & set("'()+,/:=?") else f'{name}="{boundary}"'
    if style == "quoted":
        return f'{name}="{boundary}"'
    charset = draw(st.sampled_from(["utf-8", "us-ascii", "iso-8859-1", ""]))
    language = draw(st.sampled_from(["", "en"]))
    encoded = urllib.parse.quote(boundary, safe="")
    if style == "extended":
        return f"{name}*={charset}'{language}'{encoded}"
    cut = draw(st.integers(1, len(boundary))) if len(boundary) > 1 else 1
    head, tail = boundary[:cut], boundary[cut:]
    if style == "continued":
        pieces = [f'{name}*0="{head}"'] + ([f'{name}*1="{tail}"'] if tail else [])
    else:
        pieces = [f"{name}*0*={charset}'{language}'{urllib.parse.quote(head, safe='')}"]
        if tail:
            pieces.append(f"{name}*1*={urllib.parse.quote(tail, safe='')}")
    return "; ".join(pieces)


parameter_names = st.sampled_from(["boundary", "boundary*", "boundary*0", "boundary*1", "boundary*0*",
                                   "boundary*00", "charset", "charset*", "x*", "*", ""])
parameter_values = st.one_of(
    st.text(max_size=30),
    st.builds(lambda charset, lang, text: f"{charset}'{lang}'{text}",
              st.sampled_from(CHARSETS), st.sampled_from(["", "en", "'"]), st.text(max_size=20)),
    st.builds(lambda text: '"' + text + '"', st.text(max_size=20)),
    st.text(alphabet="%0123456789ABCDEFabcdef'\"\\;=*", max_size=30),
)


@st.composite
def content_types(draw: st.DrawFn) -> str:
    """Random parameter syntax on (mostly) a multipart/form-data media type."""
    media = draw(st.sampled_from(["multipart/form-data", "Multipart/Form-Data", "multipart/mixed",
                                  "application/json", "", "multipart/form-data/x"]) | st.text(max_size=20))
    params = draw(st.lists(st.tuples(parameter_names | st.text(max_size=10), parameter_values), max_size=5))
    separator = draw(st.sampled_from(["; ", ";", " ; ", ";\r\n ", ", "]))
    return media + "".join(f"{separator}{name}={value}" for name, value in params)


def assert_sane(form: dict, body: bytes) -> None:
    assert sum(len(parts) for parts in form.values()) <= MAX_PARTS
    for name, parts in form.items():
        assert isinstance(name, str) and name
        for part in parts:
            assert part.name == name
            assert part.data.obj is body and len(part.data) <= len(body)    # a view, not a copy
            assert part.filename is None or isinstance(part.filename, str)
            assert part.content_type is None or isinstance(part.content_type, str)
            with contextlib.suppress(InvalidRequest):     # not UTF-8, or too large: a 400
                assert isinstance(part.text(), str)


def parse_or_refuse(body: bytes, content_type: str) -> dict | None:
    try:
        form = parse_form(body, content_type)
    except ALLOWED as error:
        event(f"refused: {error.message}")     # --hypothesis-show-statistics shows the mix
        return None
    event("parsed")
    assert_sane(form, body)
    return form


# ---------------------------------------------------------------------------
# Content-Type
# ---------------------------------------------------------------------------

@PROPERTY
@given(content_types() | st.text(max_size=60))
@example("multipart/form-data; boundary*=utf-8''abc")             # the RFC 2231 500
@example("multipart/form-data; boundary*0*=utf-8''ab; boundary*1=cd")
@example("multipart/form-data; boundary*=idna''abc")              # a codec that raises UnicodeError
@example("multipart/form-data; boundary*=undefined''abc")
@example("multipart/form-data; boundary*=; boundary*0=")           # found by Hypothesis: TypeError
@example("multipart/form-data; boundary*=PUNYCODE''\x80")        # found by Hypothesis: UnicodeDecodeError
@example("multipart/form-data; boundary*=\x00''")                 # found by Hypothesis: ValueError
@example("multipart/form-data; boundary*" + "0" * 5000 + "=x")    # int() of > 4300 digits raises ValueError
def test_content_types_yield_a_boundary_or_invalid_request(content_type):
    try:
        media, params = parse_content_type(content_type)
    except InvalidRequest:
        media, params = None, None
    else:
        assert isinstance(media, str) and media == media.lower()
        assert all(isinstance(key, str) and isinstance(value, str) for key, value in params.items())
    try:
        boundary = boundary_of(content_type)
    except InvalidRequest:
        return
    assert media == "multipart/form-data"
    assert isinstance(boundary, bytes) and 1 <= len(boundary) <= 70 and boundary.isascii()


# ---------------------------------------------------------------------------
# Valid forms round-trip, whatever the boundary parameter's syntax
# ---------------------------------------------------------------------------

@PROPERTY
@given(st.data(), forms, boundaries)
@example(None, [("name", b"brand-narrator", None)], "abc").via("RFC 2231 extended boundary")
def test_valid_forms_round_trip_with_any_boundary_syntax(data, parts, boundary):
    if data is None:    # the explicit example: the 500 from the brief
        content_type = "multipart/form-data; boundary*=utf-8''abc"
    else:
        content_type = "multipart/form-data; " + data.draw(boundary_parameters(boundary))
    body = encode(parts, boundary)
    if any(f"\r\n--{boundary}".encode() in b"\r\n" + value for _, value, _ in parts):
        return    # a value that contains the delimiter cannot be sent with this boundary

    form = parse_form(body, content_type)

    assert_sane(form, body)
    expected: dict[str, list[tuple[bytes, str | None]]] = {}
    for name, value, filename in parts:
        expected.setdefault(name, []).append((value, filename))
    assert {name: [(bytes(p.data), p.filename) for p in got] for name, got in form.items()} == expected


@pytest.mark.parametrize("content_type, boundary", [
    ("multipart/form-data; boundary*=utf-8''abc", b"abc"),
    ("multipart/form-data; boundary*=''abc", b"abc"),
    ("multipart/form-data; boundary*=utf-8'en'a%20b%2Fc", b"a b/c"),
    ("multipart/form-data; boundary*0=ab; boundary*1=cd", b"abcd"),
    ("multipart/form-data; boundary*0*=utf-8''a%20b; boundary*1=cd", b"a bcd"),
    ('multipart/form-data; boundary*0="ab"; boundary*1="cd"', b"abcd"),
])
def test_rfc2231_boundaries_are_decoded(content_type, boundary):
    assert boundary_of(content_type) == boundary


@pytest.mark.parametrize("content_type", [
    "multipart/form-data; boundary*=utf-8''%E2%9C%93",      # decodes, but is not ASCII
    "multipart/form-data; boundary*=utf-8''" + "a" * 71,     # too long once decoded
    "multipart/form-data; boundary*=idna''abc",              # the codec raises UnicodeError
    "multipart/form-data; boundary*=undefined''abc",
    "multipart/form-data; boundary*=punycode''%80",          # UnicodeDecodeError despite errors="replace"
    "multipart/form-data; boundary*=\x00''abc",              # a charset with NUL: ValueError
    "multipart/form-data; boundary*=x; boundary*0=y",        # continuations numbered and not: TypeError
    "multipart/form-data; boundary*" + "0" * 5000 + "=x",    # continuation number int() refuses
])
def test_undecodable_or_invalid_rfc2231_boundaries_are_400(content_type):
    with pytest.raises(InvalidRequest):
        boundary_of(content_type)


@pytest.mark.parametrize("disposition, name, filename", [
    ("form-data; name*=utf-8''na%C3%AFve", "naïve", None),
    ("form-data; name*0=fi; name*1=le; filename*=utf-8''r%C3%A9f.wav", "file", "réf.wav"),
    ("form-data; name=file; filename*0*=utf-8''r%C3%A9; filename*1=f.wav", "file", "réf.wav"),
    ("form-data; name=file; filename=\"ref.wav\"; filename*=utf-8''r%C3%A9f.wav", "file", "réf.wav"),  # RFC 6266
])
def test_rfc2231_part_parameters_are_decoded(disposition, name, filename):
    body = f"--b\r\nContent-Disposition: {disposition}\r\n\r\nx\r\n--b--\r\n".encode()
    (part,) = parse_form(body, "multipart/form-data; boundary=b")[name]
    assert (part.name, part.filename, bytes(part.data)) == (name, filename, b"x")


@pytest.mark.parametrize("disposition", [
    "form-data; name*=idna''abc",
    "form-data; name=file; filename*=idna''abc",
    "form-data; name=file; filename*=undefined''abc",
    "form-data; name*" + "0" * 5000 + "=x",
])
def test_undecodable_part_parameters_are_400(disposition):
    body = f"--b\r\nContent-Disposition: {disposition}\r\n\r\nx\r\n--b--\r\n".encode()
    with pytest.raises(InvalidRequest):
        parse_form(body, "multipart/form-data; boundary=b")


# ---------------------------------------------------------------------------
# Mutated and random bodies
# ---------------------------------------------------------------------------

header_lines = st.one_of(
    st.sampled_from([
        b"Content-Disposition: form-data",
        b"Content-Disposition: form-data; name*=utf-8''x",
        b"Content-Disposition: form-data; name*=idna''x",
        b"Content-Disposition: form-data; name=\"a\"; filename*=undefined''x",
        b"Content-Disposition: attachment; name=a",
        b"Content-Type: text/plain; charset*=idna''x",
        b"content-disposition:form-data;name=a;name=b",
        b": no name", b"no colon", b"", b" ", b"X:\xff\xfe",
    ]),
    st.binary(max_size=40),
    st.builds(lambda name, value: name + b": " + value, st.sampled_from([b"Content-Disposition", b"X"]),
              st.binary(max_size=40)),
)


@st.composite
def mutated_bodies(draw: st.DrawFn) -> tuple[bytes, str]:
    parts = draw(forms)
    boundary = draw(boundaries)
    body = bytearray(encode(parts, boundary))
    delimiter = f"--{boundary}".encode()
    for _ in range(draw(st.integers(1, 4))):
        operation = draw(st.sampled_from(["truncate", "flip", "duplicate-delimiter", "remove-delimiter",
                                          "header-line", "insert", "delete", "crlf"]))
        at = draw(st.integers(0, len(body)))
        if operation == "truncate":
            del body[at:]
        elif operation == "flip" and body:
            body[min(at, len(body) - 1)] = draw(st.integers(0, 255))
        elif operation == "duplicate-delimiter":
            body[at:at] = b"\r\n" + delimiter + draw(st.sampled_from([b"", b"\r\n", b"--", b" \t\r\n"]))
        elif operation == "remove-delimiter":
            found = body.find(delimiter, at)
            if found >= 0:
                del body[found:found + len(delimiter)]
        elif operation == "header-line":
            line_end = body.find(b"\r\n", at)
            if line_end >= 0:
                body[line_end:line_end] = b"\r\n" + draw(header_lines)
        elif operation == "insert":
            body[at:at] = draw(st.binary(min_size=1, max_size=20))
        elif operation == "delete":
            del body[at:at + draw(st.integers(1, 50))]
        else:
            body[at:at] = draw(st.sampled_from([b"\r\n", b"\r\n\r\n", b"\r", b"\n", b"--"]))
    content_type = "multipart/form-data; " + draw(boundary_parameters(boundary))
    return bytes(body), content_type


@PROPERTY
@given(mutated_bodies())
def test_mutated_bodies_parse_or_raise_invalid_request(case):
    body, content_type = case
    parse_or_refuse(body, content_type)


@PROPERTY
@given(st.binary(max_size=300), content_types() | st.just("multipart/form-data; boundary=b"))
def test_random_bodies_and_content_types_parse_or_raise_invalid_request(body, content_type):
    parse_or_refuse(body, content_type)


@PROPERTY
@given(st.lists(st.sampled_from([b"--b", b"\r\n", b"--", b"Content-Disposition: form-data; name=a",
                                 b"Content-Disposition: form-data; name*=utf-8''%C3%A9",
                                 b"Content-Type: x", b"x", b"\r\n\r\n", b" "]), max_size=40))
def test_bodies_made_of_multipart_tokens_parse_or_raise_invalid_request(tokens):
    parse_or_refuse(b"".join(tokens), "multipart/form-data; boundary=b")
