"""The whole local stack in one object: embedded AWS + MiniMax sandbox + Lambda runtime + API gateway.

Used by `make run` (kyma_local.__main__), `make invoke` (kyma_local.invoke)
and the tests.  Everything binds to 127.0.0.1 only.

MiniMax: the functions run the real MiniMax client.  Without MINIMAX_API_KEY
it talks to the MiniMax sandbox (`kyma_local.sandbox`, started here on a
loopback port, with a throwaway key); with MINIMAX_API_KEY set, to the real
MiniMax with that key.  Either key reaches the functions through the process
environment (KYMA_LOCAL_MINIMAX_API_KEY), never through the embedded AWS.
"""

from __future__ import annotations

import json
import os
import secrets
import threading
from http.server import ThreadingHTTPServer
from pathlib import Path

from kyma_local import aws_calls
from kyma_local.aws import (
    REGION,
    EmbeddedAws,
    create_resources,
    local_environment,
    real_minimax_key,
    upstream_environment,
)
from kyma_local.gateway import CONTROL_PREFIX, LocalApiGateway, make_server
from kyma_local.runtime import FunctionPool
from kyma_local.sandbox import MiniMaxSandbox
from kyma_local.state import STATE_FILE
from kyma_local.template import Template
from kyma_local.triggers import Triggers
from kyma_local.web_adapter import WebAdapterPool

DEMO_ACCOUNT_ID = "acct_demo"
DEMO_BALANCE_MICROS = 50_000_000


class LocalStack:
    def __init__(self, *, port: int = 3000, env: dict[str, str] | None = None,
                 authorizer_ttl: float | None = None, quiet: bool = False,
                 state_file: Path | None = STATE_FILE, schedules: bool = True) -> None:
        self.template = Template()
        self.port = port
        self.extra_env = env or {}
        self.authorizer_ttl = authorizer_ttl
        self.quiet = quiet
        self.state_file = state_file
        self.run_schedules = schedules
        self.aws = EmbeddedAws()
        self.sandbox: MiniMaxSandbox | None = None
        self.pools: dict[str, FunctionPool | WebAdapterPool] = {}
        self.gateway: LocalApiGateway | None = None
        self.api_url = ""
        self.demo_api_key = ""
        self._server: ThreadingHTTPServer | None = None
        self._stop = threading.Event()
        self.triggers: Triggers | None = None

    def start(self) -> LocalStack:
        if os.environ.get(aws_calls.CALLS_FILE_ENV):
            # every function's AWS calls, appended to that file (tests/integration/test_iam_grants.py)
            aws_calls.install(os.environ[aws_calls.CALLS_FILE_ENV])
        self.aws.start()
        env = local_environment(self.template, self.aws)
        if real_minimax_key():
            env.update(upstream_environment())
        else:
            self.sandbox = MiniMaxSandbox.from_env(api_key=f"sandbox-{secrets.token_hex(12)}").start()
            env.update(upstream_environment(self.sandbox.base_url, self.sandbox.api_key))
        env.update(self.extra_env)
        os.environ.update(env)
        create_resources(self.template, endpoint_url=self.aws.endpoint)
        from kyma.platform.config import config
        from kyma.providers.select import provider
        config.cache_clear()
        provider.cache_clear()

        self.pools = {fid: WebAdapterPool(fn) if fn.web_adapter else FunctionPool(fn)
                      for fid, fn in self.template.functions.items()}
        self.gateway = LocalApiGateway(self.template, self.pools, authorizer_ttl=self.authorizer_ttl)
        server = self._server = make_server(self.gateway, "127.0.0.1", self.port, quiet=self.quiet)
        self.port = server.server_address[1]
        self.api_url = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=server.serve_forever, daemon=True, name="local-api").start()
        self.demo_api_key = self._create_demo_account()
        self.triggers = Triggers(self.template, self.pools,
                                 schedule_scale=float(os.environ.get("KYMA_LOCAL_SCHEDULE_SCALE") or 1))
        self.triggers.start(schedules=self.run_schedules)
        self.gateway.controls["schedules"] = self.triggers.run_schedule
        if self.state_file:
            self.state_file.write_text(json.dumps(self.state(), indent=2))
        return self

    def stop(self) -> None:
        self._stop.set()
        if self.triggers:
            self.triggers.stop()
        if self._server:
            self._server.shutdown()
            self._server.server_close()
        for pool in self.pools.values():
            if isinstance(pool, WebAdapterPool):
                pool.close()
        if self.sandbox is not None:
            self.sandbox.stop()
        self.aws.stop()
        if self.state_file and self.state_file.exists():
            self.state_file.unlink()

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def state(self) -> dict:
        """What kyma-admin, `make invoke` and other tools need to reach this stack.

        The sandbox's key is a throwaway for this run (loopback only); a developer's
        real MiniMax key is never written here."""
        return {
            "api_url": self.api_url,
            "aws_endpoint": self.aws.endpoint,
            "region": REGION,
            "control_url": self.api_url + CONTROL_PREFIX,
            "tables": {k: self.template.physical_name(k) for k in self.template.tables},
            "buckets": {k: self.template.physical_name(k) for k in self.template.buckets},
            "queues": {k: self.template.physical_name(k) for k in self.template.queues},
            "demo_account_id": DEMO_ACCOUNT_ID,
            "provider": "sandbox" if self.sandbox else "minimax",
            "sandbox": ({"url": self.sandbox.base_url, "api_key": self.sandbox.api_key,
                         "control_url": self.sandbox.control_url} if self.sandbox else None),
        }

    def _create_demo_account(self) -> str:
        from kyma.accounts.store import Accounts
        from kyma.platform.aws import dynamodb
        from kyma.platform.config import config

        return Accounts(dynamodb(), config()).create(
            DEMO_BALANCE_MICROS, account_id=DEMO_ACCOUNT_ID, label="local demo").api_key

