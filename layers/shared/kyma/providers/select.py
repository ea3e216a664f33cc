"""Build the MiniMax client from configuration, once per process.

There is one provider, the real `MiniMaxClient`; only where it points and
which key it sends differ:

* in AWS the key lives in SSM Parameter Store (SecureString) and is read
  through Powertools Parameters, cached for 5 minutes (a rotated key is
  picked up without a deploy);
* in the local stack `KYMA_LOCAL_MINIMAX_API_KEY` carries the key itself --
  the MiniMax sandbox's, or a developer's real one -- and is never stored in
  the embedded AWS.

`MINIMAX_BASE_URL` says where MiniMax is (the sandbox's loopback address
locally); `KYMA_PROVIDER_NAME` what ``X-Kyma-Provider`` says.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

from kyma.platform.config import Config, config

if TYPE_CHECKING:
    from kyma.providers.minimax import MiniMaxClient

KEY_CACHE_SECONDS = 300


@lru_cache(maxsize=1)
def _ssm():
    """Powertools Parameters over an SSM client with short timeouts (kyma.platform.aws.fast_client): the key
    is looked up before the reserve (MiniMaxClient.check_key), so a slow SSM fails fast, uncharged.
    Imported on first use: Parameters is only needed when MiniMax is called."""
    from aws_lambda_powertools.utilities.parameters import SSMProvider

    from kyma.platform.aws import fast_client

    return SSMProvider(boto3_client=fast_client("ssm"))


@lru_cache(maxsize=1)
def provider() -> MiniMaxClient:
    return build(config())


def build(cfg: Config) -> MiniMaxClient:
    from kyma.providers.minimax import MiniMaxClient

    if cfg.minimax_api_key_local:
        local_key = cfg.minimax_api_key_local

        def api_key() -> str:
            return local_key
    else:
        parameter = cfg.minimax_api_key_parameter

        def api_key() -> str:
            if not parameter:        # nothing configured: the client reports an operator problem
                return ""
            return _ssm().get(parameter, decrypt=True, max_age=KEY_CACHE_SECONDS)

    return MiniMaxClient(cfg.minimax_base_url, api_key, name=cfg.provider_name or "minimax",
                         connect_timeout=cfg.minimax_connect_timeout, read_timeout=cfg.minimax_read_timeout)
