"""`make sam-local`: the built artifact under the real SAM CLI, in Docker, every answer checked.

Needs `sam build`'s .aws-sam/build, Docker and the base image (the Makefile target makes all
three: tools/sam-local/docker.sh, tools/sam-local/base-image.sh, make build).  Starts the
embedded AWS (moto) with two accounts and the MiniMax sandbox, relays both to the Docker
bridge, derives .aws-sam/local/{template.yaml,env.json}, then runs `sam local invoke` on every
zip function's event and drives `sam local start-api` with curl (kyma_local.sam_local.checks).
Exit status 1 if any check failed.  Logs of each SAM run: .aws-sam/local/*.log.
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import socket
import subprocess
import sys
import time

from kyma_local.aws import EmbeddedAws, create_resources, local_environment, upstream_environment
from kyma_local.sam_local import checks, derive, workarounds
from kyma_local.sam_local.relay import Relay
from kyma_local.sample import reference_mp3
from kyma_local.sandbox import MiniMaxSandbox
from kyma_local.stack import DEMO_ACCOUNT_ID, DEMO_BALANCE_MICROS
from kyma_local.template import ROOT, Template

SAM = [str(ROOT / ".venv-sam" / "bin" / "sam")]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen, timeout: float) -> None:
    until = time.monotonic() + timeout
    while time.monotonic() < until:
        if process.poll() is not None:
            raise SystemExit(f"sam local start-api exited ({process.returncode}); see .aws-sam/local/start-api.log")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.5)
    raise SystemExit("sam local start-api did not open its port")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kyma-sam-local", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT") or 0),
                        help="start-api's port on 127.0.0.1 (default $PORT, or any free port)")
    parser.add_argument("--only", choices=["invoke", "start-api"], help="run one part only")
    args = parser.parse_args(argv)
    os.environ.setdefault("SAM_CLI_TELEMETRY", "0")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    sam = SAM

    started = time.monotonic()
    template = Template()
    bridge = workarounds.bridge_gateway()
    aws = EmbeddedAws()
    aws.start()
    sandbox = MiniMaxSandbox.from_env(api_key=f"sandbox-{secrets.token_hex(12)}").start()
    relays = [Relay(bridge, aws.endpoint).start(), Relay(bridge, sandbox.base_url).start()]
    report = checks.Report()
    start_api: subprocess.Popen | None = None
    try:
        # The host side (accounts, keys) through loopback; the functions through the relays.
        os.environ.update(local_environment(template, aws))
        create_resources(template, endpoint_url=aws.endpoint)
        from kyma.accounts.store import Accounts
        from kyma.platform.aws import dynamodb
        from kyma.platform.config import config

        config.cache_clear()
        accounts = Accounts(dynamodb(), config())
        # The events' account (acct_demo), and a second one the audit must count too.
        demo = accounts.create(DEMO_BALANCE_MICROS, account_id=DEMO_ACCOUNT_ID, label="sam local invoke")
        accounts.create(DEMO_BALANCE_MICROS, label="sam local invoke, second")
        # What every function sees: the template's shared variables with local names, the embedded
        # AWS and the sandbox.  (local_environment's is the union of every function's: one process.)
        shared = set(template.doc["Globals"]["Function"]["Environment"]["Variables"])
        env = {k: v for k, v in local_environment(template, aws).items()
               if k in shared or k not in template.environment()}
        env.update(upstream_environment(sandbox.base_url, sandbox.api_key))
        env["AWS_ENDPOINT_URL"] = relays[0].url
        env["MINIMAX_BASE_URL"] = relays[1].url
        env.pop("POWERTOOLS_METRICS_DISABLED", None)       # EMF lines in the log, as in Lambda
        local_template, env_file, dropped = derive.derive(env)
        report.line(f"== sam local: {local_template.relative_to(ROOT)} and {env_file.relative_to(ROOT)} derived "
                    f"from .aws-sam/build (x86_64; embedded AWS {relays[0].url}, sandbox {relays[1].url}; "
                    f"left out: {', '.join(dropped) or 'none'}); set-up {time.monotonic() - started:.1f} s")
        workdir = derive.LOCAL

        if args.only in (None, "invoke"):
            t = time.monotonic()
            checks.invoke_all(sam, local_template, env_file, demo.api_key, workdir, report, dropped)
            report.line(f"== sam local invoke: {time.monotonic() - t:.0f} s")

        if args.only in (None, "start-api"):
            # Two fresh accounts ($50.00 each), whatever the invokes charged.
            a = accounts.create(DEMO_BALANCE_MICROS, label="sam local start-api A")
            b = accounts.create(DEMO_BALANCE_MICROS, label="sam local start-api B")
            reference = workdir / "reference.mp3"
            reference.write_bytes(reference_mp3())
            port = args.port or free_port()
            log = (workdir / "start-api.log").open("w")
            t = time.monotonic()
            start_api = subprocess.Popen(
                [*sam, "local", "start-api", "-t", str(local_template), "--env-vars", str(env_file),
                 "--host", "127.0.0.1", "--port", str(port), "--skip-pull-image", "--warm-containers", "LAZY"],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
            wait_for_port(port, start_api, 120)
            report.line(f"== sam local start-api on 127.0.0.1:{port} (up after {time.monotonic() - t:.1f} s)")
            curl = checks.Curl(f"http://127.0.0.1:{port}", workdir)
            checks.drive_api(curl, checks.Account("A", a.account_id, a.api_key),
                             checks.Account("B", b.account_id, b.api_key), reference, t, report)
            report.line(f"== sam local start-api: {time.monotonic() - t:.0f} s")
    finally:
        if start_api is not None and start_api.poll() is None:
            os.killpg(start_api.pid, signal.SIGINT)       # SAM CLI stops its warm containers on SIGINT
            try:
                start_api.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(start_api.pid, signal.SIGKILL)
        for relay in relays:
            relay.stop()
        sandbox.stop()
        aws.stop()
    total = time.monotonic() - started
    if report.failures:
        report.line(f"== sam local: {report.failures} check(s) FAILED ({total:.0f} s)")
        return 1
    report.line(f"== sam local: every check passed ({total:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
