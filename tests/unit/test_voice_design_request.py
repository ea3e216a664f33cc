"""A voice-design request read and checked (kyma.voices.design): fields, alias, hints, limits."""

from __future__ import annotations

import json

import pytest

from kyma.edge import errors
from kyma.voices import design


def read(**fields):
    return design.read_request(json.dumps(fields).encode())


def test_the_defaults():
    inp = read(description="A calm narrator.")
    assert (inp.model, inp.name, inp.preview_text, inp.gender, inp.age_group) == (
        "minimax-voice-design", None, design.DEFAULT_PREVIEW_TEXT, None, None)
    assert inp.prompt == "A calm narrator."
    assert len(design.DEFAULT_PREVIEW_TEXT) <= design.MAX_PREVIEW_TEXT_CHARS


def test_the_hints_are_folded_into_the_prompt_not_sent_as_fields():
    inp = read(text="A calm narrator.", gender="male", age_group="elderly")
    assert inp.description == "A calm narrator."
    assert inp.prompt == "A calm narrator. Gender: male. Age group: elderly."
    assert read(description="x", age_group="child").prompt == "x Age group: child."


def test_null_fields_count_as_absent():
    inp = read(description="x", name=None, model=None, preview_text=None, gender=None, age_group=None)
    assert inp.model == "minimax-voice-design" and inp.preview_text == design.DEFAULT_PREVIEW_TEXT


@pytest.mark.parametrize("fields, kind", [
    ({"description": "x", "model": "speech-2.8-hd"}, errors.NotAVoiceDesignModel),
    ({"description": "x" * 1001}, errors.DescriptionTooLong),
    ({"description": ""}, errors.InvalidRequest),
    ({"description": "x", "text": "y"}, errors.InvalidRequest),
    ({"description": "x", "gender": "Female"}, errors.InvalidRequest),     # exact values only
    ({"description": "x", "age_group": "middle aged"}, errors.InvalidRequest),
    ({"description": "x", "preview_text": 5}, errors.InvalidRequest),
    ({"description": "x", "name": 5}, errors.InvalidRequest),
])
def test_refusals(fields, kind):
    with pytest.raises(kind):
        read(**fields)


def test_the_fingerprint_is_the_parsed_request():
    assert design.fingerprint(read(description="x")) == design.fingerprint(read(text="x"))
    assert design.fingerprint(read(description="x")) != design.fingerprint(read(description="x", gender="male"))
    assert design.fingerprint(read(description="x")) != design.fingerprint(read(description="x", name="n"))
