"""The JSON edge: whatever the bytes, a parsed value or 400 invalid_request, never another exception."""

from __future__ import annotations

import contextlib
import json

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from kyma.edge.errors import InvalidRequest
from kyma.edge.json_body import MAX_DEPTH, parse, parse_object

PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize("body", [
    b"[" * 5000 + b"]" * 5000,                                   # RecursionError in Python's parser
    b'{"a":' * (MAX_DEPTH + 1) + b"1" + b"}" * (MAX_DEPTH + 1),  # parses, but deeper than we accept
    b'{"input": "\\ud800", "voice": "v"}',                        # a lone surrogate in a value
    b'{"\\udfff": 1}',                                            # ... and in a key
    b'{"speed": NaN}', b'{"speed": Infinity}', b'{"vol": -Infinity}',
    b'{"speed": 1e400}', b'{"speed": -1e999}',                    # literals that overflow to inf
    b'{"n": 1' + b"0" * 5000 + b"}",                              # an integer over Python's digit limit
    b"\xff\xfe{}", b'{"a": "\xc3\x28"}', "{}".encode("utf-16"),   # not UTF-8
])
def test_each_class_of_hostile_json_is_a_400(body):
    with pytest.raises(InvalidRequest):
        parse(body)


def test_the_deepest_accepted_nesting_parses():
    body = b'{"a":' * (MAX_DEPTH - 1) + b"1" + b"}" * (MAX_DEPTH - 1)
    assert isinstance(parse_object(body), dict)


@PROPERTY
@given(st.binary(max_size=2048))
@example(b"[" * 3000)
@example(b'"\\ud83d"')
def test_random_bytes_parse_or_are_invalid_request(data):
    try:
        value = parse(data)
    except InvalidRequest:
        return
    json.dumps(value).encode("utf-8")       # what parses can be stored and sent upstream again


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=30)


@PROPERTY
@given(_json, st.data())
def test_valid_json_round_trips_and_mutations_never_escape_the_contract(value, data):
    raw = json.dumps(value).encode()
    assert parse(raw) == json.loads(raw)
    # Mutate: cut it, flip a byte, or splice in JSON's troublemakers.
    cut = data.draw(st.integers(0, len(raw)))
    splice = data.draw(st.sampled_from([b"NaN", b"1e999", b'"\\udc00"', b"[" * 100, b"\xff", b"-"]))
    for mutated in (raw[:cut], raw[:cut] + splice + raw[cut:]):
        with contextlib.suppress(InvalidRequest):     # a 400 is fine; anything else fails the test
            parse(mutated)
