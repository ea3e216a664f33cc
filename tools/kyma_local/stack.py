"""The whole local stack in one object: embedded AWS + Lambda runtime + API gateway.

Used by `make run` (kyma_local.__main__), `make invoke` (kyma_local.invoke)
and the tests.  Everything binds to 127.0.0.1 only.
"""

from __future__ import annotations

import json
import os
import re
import threading
import uuid
from datetime import UTC, datetime
from http.server import ThreadingHTTPServer
from pathlib import Path

from kyma_local import aws_calls
from kyma_local.aws import REGION, EmbeddedAws, create_resources, local_environment
from kyma_local.gateway import CONTROL_PREFIX, LocalApiGateway, make_server
from kyma_local.runtime import FunctionPool
from kyma_local.state import STATE_FILE
from kyma_local.template import Template
from kyma_local.web_adapter import WebAdapterPool

DEMO_ACCOUNT_ID = "acct_demo"
# Where the stack keeps a developer's MINIMAX_API_KEY (embedded SSM), as the template's parameter.
LOCAL_MINIMAX_KEY_PARAMETER = "/kyma/local/minimax-api-key"
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
        self.pools: dict[str, FunctionPool | WebAdapterPool] = {}
        self.gateway: LocalApiGateway | None = None
        self.api_url = ""
        self.demo_api_key = ""
        self._server: ThreadingHTTPServer | None = None
        self._stop = threading.Event()

    def start(self) -> LocalStack:
        if os.environ.get(aws_calls.CALLS_FILE_ENV):
            # every function's AWS calls, appended to that file (tests/integration/test_iam_grants.py)
            aws_calls.install(os.environ[aws_calls.CALLS_FILE_ENV])
        self.aws.start()
        env = local_environment(self.template, self.aws)
        env.update(self.extra_env)
        os.environ.update(env)
        create_resources(self.template, endpoint_url=self.aws.endpoint)
        self._store_minimax_key()
        from kyma.config import config
        config.cache_clear()

        self.pools = {fid: WebAdapterPool(fn) if fn.web_adapter else FunctionPool(fn)
                      for fid, fn in self.template.functions.items()}
        self.gateway = LocalApiGateway(self.template, self.pools, authorizer_ttl=self.authorizer_ttl)
        server = self._server = make_server(self.gateway, "127.0.0.1", self.port, quiet=self.quiet)
        self.port = server.server_address[1]
        self.api_url = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=server.serve_forever, daemon=True, name="local-api").start()
        self.demo_api_key = self._create_demo_account()
        if self.run_schedules:
            self._start_schedules()
        if self.state_file:
            self.state_file.write_text(json.dumps(self.state(), indent=2))
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._server:
            self._server.shutdown()
            self._server.server_close()
        for pool in self.pools.values():
            if isinstance(pool, WebAdapterPool):
                pool.close()
        self.aws.stop()
        if self.state_file and self.state_file.exists():
            self.state_file.unlink()

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def state(self) -> dict:
        """What kyma-admin and other tools need to reach this stack."""
        return {
            "api_url": self.api_url,
            "aws_endpoint": self.aws.endpoint,
            "region": REGION,
            "control_url": self.api_url + CONTROL_PREFIX,
            "tables": {k: self.template.physical_name(k) for k in self.template.tables},
            "buckets": {k: self.template.physical_name(k) for k in self.template.buckets},
            "demo_account_id": DEMO_ACCOUNT_ID,
        }

    def _create_demo_account(self) -> str:
        from kyma.accounts import Accounts
        from kyma.aws import dynamodb
        from kyma.config import config

        return Accounts(dynamodb(), config()).create(
            DEMO_BALANCE_MICROS, account_id=DEMO_ACCOUNT_ID, label="local demo").api_key

    def _store_minimax_key(self) -> None:
        """A developer with a real MiniMax key (MINIMAX_API_KEY) gets the real provider
        locally, through the same SSM path as in AWS."""
        key = os.environ.get("MINIMAX_API_KEY")
        if not key:
            return
        import boto3

        boto3.client("ssm", region_name=REGION).put_parameter(
            Name=LOCAL_MINIMAX_KEY_PARAMETER, Value=key, Type="SecureString", Overwrite=True)
        os.environ["MINIMAX_API_KEY_PARAMETER"] = LOCAL_MINIMAX_KEY_PARAMETER

    def _start_schedules(self) -> None:
        """Run scheduled functions (e.g. the reconciler) on their template schedule."""
        for function_id, expressions in self.template.schedules.items():
            for expression in expressions:
                seconds = _rate_seconds(expression)
                if seconds:
                    threading.Thread(target=self._every, args=(function_id, seconds), daemon=True,
                                     name=f"schedule-{function_id}").start()

    def _every(self, function_id: str, seconds: float) -> None:
        while not self._stop.wait(seconds):
            self.pools[function_id].invoke(scheduled_event(function_id))


def scheduled_event(function_id: str) -> dict:
    """The event EventBridge sends for a schedule."""
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"version": "0", "id": str(uuid.uuid4()), "detail-type": "Scheduled Event",
            "source": "aws.events", "account": "123456789012", "time": now, "region": REGION,
            "resources": [f"arn:aws:events:{REGION}:123456789012:rule/kyma-local-{function_id}"],
            "detail": {}}


def _rate_seconds(expression: str) -> float | None:
    m = re.fullmatch(r"rate\((\d+) (minute|minutes|hour|hours|day|days)\)", expression.strip())
    if not m:
        return None
    unit = {"minute": 60, "hour": 3600, "day": 86400}[m.group(2).rstrip("s")]
    return int(m.group(1)) * unit
