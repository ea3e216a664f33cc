"""Integration fixtures: the MiniMax sandbox wired in through SSM, like production
(`minimax`), or through the process environment, like the local stack (`local_sandbox`)."""

from __future__ import annotations

import boto3
import pytest
from helpers import api_event, context
from requests_toolbelt.multipart.encoder import MultipartEncoder

from kyma_local.sandbox import MiniMaxSandbox

MINIMAX_KEY = "test-minimax-key-4f2a"
PARAMETER = "/kyma/test/minimax-api-key"


@pytest.fixture
def minimax(aws, monkeypatch):
    """The MiniMax sandbox on loopback, its key in (moto) SSM, the functions pointed at it."""
    from kyma.config import config
    from kyma.providers.select import provider

    with MiniMaxSandbox(api_key=MINIMAX_KEY) as sandbox:
        boto3.client("ssm").put_parameter(Name=PARAMETER, Value=MINIMAX_KEY, Type="SecureString")
        monkeypatch.setenv("MINIMAX_API_KEY_PARAMETER", PARAMETER)
        monkeypatch.setenv("MINIMAX_BASE_URL", sandbox.base_url)
        config.cache_clear()
        provider.cache_clear()
        yield sandbox
    provider.cache_clear()
    config.cache_clear()


@pytest.fixture
def local_sandbox(aws, monkeypatch):
    """The sandbox wired in exactly as `make run` and `make invoke` do it: the key in the
    process environment (KYMA_LOCAL_MINIMAX_API_KEY), nothing in SSM."""
    from kyma.config import config
    from kyma.providers.select import provider
    from kyma_local.aws import upstream_environment

    monkeypatch.delenv("MINIMAX_API_KEY", raising=False)
    with MiniMaxSandbox(api_key="sandbox-local-key") as sandbox:
        for name, value in upstream_environment(sandbox.base_url, sandbox.api_key).items():
            monkeypatch.setenv(name, value)
        config.cache_clear()
        provider.cache_clear()
        yield sandbox
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
