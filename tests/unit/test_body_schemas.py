"""The clone fields and the uploads body are checked by one compiled JSON Schema each
(kyma.edge.schema.BodySchema); each broken rule is the contract's own error and message."""

from __future__ import annotations

import pytest

from kyma.edge import errors
from kyma.voices import clone, uploads


@pytest.mark.parametrize(("field", "value", "error", "message"), [
    ("model", "tts-1", errors.NotAVoiceCloneModel, "'tts-1' is not a voice clone model; use minimax-voice-clone."),
    ("model", 5, errors.NotAVoiceCloneModel, "'5' is not a voice clone model; use minimax-voice-clone."),
    ("name", 5, errors.InvalidRequest, "name must be a string."),
    ("name", "x" * 65, errors.InvalidRequest, "name is 65 characters long; the limit is 64."),
    ("name", "x" * 65 + "\n", errors.InvalidRequest, "name is 66 characters long; the limit is 64."),
    ("name", "a\n", errors.InvalidRequest, "name must not contain control characters."),
    ("name", "a\x7f", errors.InvalidRequest, "name must not contain control characters."),
    ("upload_id", "", errors.InvalidRequest, "upload_id must be a non-empty string."),
    ("upload_id", 7, errors.InvalidRequest, "upload_id must be a non-empty string."),
])
def test_a_broken_clone_field_is_its_contract_error(field, value, error, message):
    with pytest.raises(error) as info:
        clone.check_field(field, value)
    assert type(info.value) is error and info.value.message == message


@pytest.mark.parametrize(("field", "value"), [("model", None), ("model", "minimax-voice-clone"),
                                              ("name", ""), ("name", "é" * 64), ("upload_id", "up_1")])
def test_valid_clone_fields_pass_as_they_are(field, value):
    assert clone.check_field(field, value) == value


@pytest.mark.parametrize(("body", "message"), [
    ({"filename": 5}, "filename must be a string of at most 255 characters."),
    ({"filename": "f" * 256}, "filename must be a string of at most 255 characters."),
    ({"content_type": "text/plain"}, "content_type must be an audio/* type (or application/octet-stream)."),
    ({"content_type": ""}, "content_type must be an audio/* type (or application/octet-stream)."),
    ({"content_type": "audio/" + "x" * 95}, "content_type must be an audio/* type (or application/octet-stream)."),
])
def test_a_broken_uploads_body_is_400_with_its_message(body, message):
    with pytest.raises(errors.InvalidRequest) as info:
        uploads.parse_create(body)
    assert info.value.message == message


def test_an_uploads_body_reads_null_as_absent_and_keeps_what_it_was_given():
    assert uploads.parse_create({}) == (None, None)
    assert uploads.parse_create({"filename": None, "content_type": None, "other": 1}) == (None, None)
    assert uploads.parse_create({"filename": "", "content_type": "audio/wav"}) == ("", "audio/wav")
    assert uploads.parse_create({"content_type": "application/octet-stream; x=1"}) == \
        (None, "application/octet-stream; x=1")
