"""Integration fixtures: the fake MiniMax wired in through SSM, like production."""

from __future__ import annotations

import boto3
import pytest
from fakes.minimax_server import FakeMiniMax
from helpers import context

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


@pytest.fixture
def call():
    """call(handler, event) → the proxy response, with a fresh Lambda context."""
    return lambda handler, event: handler(event, context("VoiceCloneFunction"))
