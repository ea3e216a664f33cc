"""Pick the voice provider from configuration, once per process.

In AWS the MiniMax key lives in SSM Parameter Store (SecureString) and is
read through Powertools Parameters, cached for 5 minutes (so a rotated key
is picked up without a deploy).  With no parameter configured, which only
happens in the local stack, the sandbox provider answers.
"""

from __future__ import annotations

from functools import lru_cache

from kyma.config import Config, config
from kyma.providers import VoiceProvider

KEY_CACHE_SECONDS = 300


@lru_cache(maxsize=1)
def provider() -> VoiceProvider:
    return build(config())


def build(cfg: Config) -> VoiceProvider:
    if cfg.provider == "sandbox":
        from kyma.providers.sandbox import SandboxProvider

        return SandboxProvider()
    from kyma.providers.minimax import MiniMaxClient

    parameter = cfg.minimax_api_key_parameter

    def api_key() -> str:
        # Imported on first use: Parameters is only needed when MiniMax is called.
        from aws_lambda_powertools.utilities import parameters

        return parameters.get_parameter(parameter, decrypt=True, max_age=KEY_CACHE_SECONDS)

    return MiniMaxClient(cfg.minimax_base_url, api_key, connect_timeout=cfg.minimax_connect_timeout,
                         read_timeout=cfg.minimax_read_timeout)
