"""The speech request's validation costs a lookup, not a schema compilation, per request."""

from __future__ import annotations

import fastjsonschema
import pytest

from kyma.edge import errors
from kyma.speech import request as speech_request


def test_the_schema_is_compiled_once_per_process_not_per_request(monkeypatch):
    compiled = []
    real = fastjsonschema.compile

    def counting(definition, *args, **kwargs):
        compiled.append(definition)
        return real(definition, *args, **kwargs)

    monkeypatch.setattr(fastjsonschema, "compile", counting)
    speech_request._validator.cache_clear()
    body = {"model": "minimax-speech-turbo", "input": "Hello.", "voice": "English_expressive_narrator",
            "text": "Hello.", "voice_id": "English_expressive_narrator"}          # both names: both schemas
    for _ in range(5):
        assert speech_request.parse(body).text == "Hello."
    with pytest.raises(errors.InvalidRequest, match="speed"):
        speech_request.parse({**body, "speed": 9})
    assert len(compiled) == 2                       # the full schema and the partial one, once each
