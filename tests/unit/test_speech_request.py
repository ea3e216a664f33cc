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


def test_timings_and_pronunciation_leave_the_fingerprint_of_a_request_without_them_unchanged():
    """Idempotency-Keys issued before timestamps existed still match their retries."""
    from dataclasses import fields

    from kyma.billing.idempotency import fingerprint as hash_parts

    plain = speech_request.parse({"input": "Hello.", "voice": "English_expressive_narrator"})
    before = {f.name: getattr(plain, f.name) for f in fields(plain)
              if f.name not in ("delivery", "timestamps", "pronunciation", "captions")}
    assert speech_request.fingerprint(plain) == hash_parts(before)
    spoken = speech_request.parse({"input": "Hello.", "voice": "English_expressive_narrator",
                                   "pronunciation_dict": {"tone": ["Hello/Hullo"]}})
    assert speech_request.fingerprint(spoken) != speech_request.fingerprint(plain)
