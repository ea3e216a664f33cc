"""Integration fixtures: the fake MiniMax wired in through SSM, like production."""

from __future__ import annotations

import boto3
import pytest
from fakes.minimax_server import FakeMiniMax
from helpers import api_event, context
from requests_toolbelt.multipart.encoder import MultipartEncoder

MINIMAX_KEY = "test-minimax-key-4f2a"
PARAMETER = "/kyma/test/minimax-api-key"


@pytest.fixture
def minimax(aws, monkeypatch):
    """A fake MiniMax on loopback, its key in (moto) SSM, the functions pointed at it."""
    from kyma.config import config
    from kyma.providers.select import provider

    with FakeMiniMax(api_key=MINIMAX_KEY) as fake:
        boto3.client("ssm").put_parameter(Name=PARAMETER, Value=MINIMAX_KEY, Type="SecureString")
        monkeypatch.setenv("MINIMAX_API_KEY_PARAMETER", PARAMETER)
        monkeypatch.setenv("MINIMAX_BASE_URL", fake.base_url)
        config.cache_clear()
        provider.cache_clear()
        yield fake
    provider.cache_clear()
    config.cache_clear()


def multipart(fields: list) -> tuple[bytes, str]:
    encoder = MultipartEncoder(fields=fields)
    return encoder.to_string(), encoder.content_type


def clone_event(account_id: str, audio: bytes | None = None, *, filename: str = "reference.mp3",
                part_type: str = "audio/mpeg", name: str | None = None, model: str | None = None,
                fields: list | None = None, headers: dict | None = None) -> dict:
    """POST /v1/audio/voice-clone as API Gateway delivers it (multipart, base64)."""
    if fields is None:
        fields = []
        if audio is not None:
            fields.append(("file", (filename, audio, part_type)))
        if name is not None:
            fields.append(("name", name))
        if model is not None:
            fields.append(("model", model))
    body, ctype = multipart(fields) if fields else (b"", "multipart/form-data; boundary=x")
    return api_event("POST", "/v1/audio/voice-clone", body=body, account_id=account_id,
                     headers={"Content-Type": ctype, **(headers or {})})


@pytest.fixture
def call():
    """call(handler, event) → the proxy response, with a fresh Lambda context."""
    return lambda handler, event: handler(event, context("VoiceCloneFunction"))
