"""Integration fixtures: the MiniMax sandbox wired in through SSM, like production
(`minimax`), or through the process environment, like the local stack (`local_sandbox`)."""

from __future__ import annotations

import boto3
import pytest
from helpers import context

from kyma_local.sandbox import MiniMaxSandbox

MINIMAX_KEY = "test-minimax-key-4f2a"
PARAMETER = "/kyma/test/minimax-api-key"
# Streams paced fast: most tests are about what arrives, not when.  Tests about timing set
# the sandbox's first_chunk_ms / chunk_interval_ms themselves (make run keeps MiniMax's pace).
FAST = {"first_chunk_ms": 5, "chunk_interval_ms": 1}


@pytest.fixture
def minimax(aws, monkeypatch):
    """The MiniMax sandbox on loopback, its key in (moto) SSM, the functions pointed at it."""
    from kyma.platform.config import config
    from kyma.providers.select import provider

    with MiniMaxSandbox(api_key=MINIMAX_KEY, **FAST) as sandbox:
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
    from kyma.platform.config import config
    from kyma.providers.select import provider
    from kyma_local.aws import upstream_environment

    monkeypatch.delenv("MINIMAX_API_KEY", raising=False)
    with MiniMaxSandbox(api_key="sandbox-local-key", **FAST) as sandbox:
        for name, value in upstream_environment(sandbox.base_url, sandbox.api_key).items():
            monkeypatch.setenv(name, value)
        config.cache_clear()
        provider.cache_clear()
        yield sandbox
    provider.cache_clear()
    config.cache_clear()


@pytest.fixture
def call():
    """call(handler, event) → the proxy response, with a fresh Lambda context."""
    return lambda handler, event: handler(event, context("VoiceCloneFunction"))
