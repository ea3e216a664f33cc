"""`kyma.providers.select.build`: always the real client; where its key comes from."""

from __future__ import annotations

import time

import pytest

from kyma.edge import errors
from kyma.platform.config import Config
from kyma.providers import SynthesisRequest
from kyma.providers.minimax import MiniMaxClient
from kyma.providers.select import build
from kyma_local.sandbox import PATH_T2A, MiniMaxSandbox

REQUEST = SynthesisRequest(model="speech-02-turbo", text="Which key?", voice_id="English_Graceful_Lady",
                           audio_format="pcm")


def config(**env: str) -> Config:
    return Config.from_env(env)


def test_the_local_key_and_the_provider_label():
    with MiniMaxSandbox(api_key="sandbox-key-1") as sandbox:
        client = build(config(MINIMAX_BASE_URL=sandbox.base_url, KYMA_LOCAL_MINIMAX_API_KEY="sandbox-key-1",
                              KYMA_PROVIDER_NAME="sandbox", MINIMAX_API_KEY_PARAMETER="/never/read"))
        assert isinstance(client, MiniMaxClient) and client.name == "sandbox"
        assert client.base_url == sandbox.base_url
        client.synthesize(REQUEST, deadline=time.monotonic() + 10)
        assert sandbox.calls_to(PATH_T2A)[0].headers["Authorization"] == "Bearer sandbox-key-1"


def test_aws_defaults_name_the_provider_minimax():
    client = build(config(MINIMAX_API_KEY_PARAMETER="/kyma/prod/minimax-api-key"))
    assert client.name == "minimax" and client.base_url == "https://api.minimax.io"


def test_no_key_configured_is_an_operator_problem_and_calls_nothing():
    with MiniMaxSandbox() as sandbox:
        client = build(config(MINIMAX_BASE_URL=sandbox.base_url))
        with pytest.raises(errors.ProviderAccountProblem):
            client.synthesize(REQUEST, deadline=time.monotonic() + 10)
        assert sandbox.calls == []
