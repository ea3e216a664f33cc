"""End-to-end: the local stack in a subprocess, exactly as `make run` starts it,
driven by real HTTP clients (curl, requests, the OpenAI SDK) and kyma-admin."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


class StackProcess:
    def __init__(self, tmp: Path, env: dict[str, str] | None = None) -> None:
        self.state_file = tmp / "kyma-local.json"
        self.env = {**os.environ, "KYMA_LOCAL_STATE": str(self.state_file), "PORT": "0",
                    "PYTHONUNBUFFERED": "1", "KYMA_LOCAL_THROTTLING": "off",
                    "KYMA_LOCAL_UPSTREAM_SPEECH_RPM": "1000000"}
        # Never a developer's real MiniMax key (or endpoint) unless a test passes one.
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "MINIMAX_API_KEY",
                     "MINIMAX_BASE_URL"):
            self.env.pop(name, None)
        self.env.update(env or {})
        self.lines: list[str] = []
        self.proc = subprocess.Popen([sys.executable, "-m", "kyma_local"], cwd=ROOT, env=self.env,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        threading.Thread(target=self._drain, daemon=True).start()
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and not self._banner_done():
            if self.proc.poll() is not None:
                raise RuntimeError("local stack exited:\n" + "\n".join(self.lines))
            time.sleep(0.1)
        if not self._banner_done():
            raise RuntimeError("local stack did not start:\n" + "\n".join(self.lines))
        text = "\n".join(self.lines)
        self.api_url = re.search(r"API:\s+(\S+)", text).group(1)
        self.api_key = re.search(r"^KYMA_API_KEY=(\S+)$", text, re.M).group(1)
        sandbox = re.search(r"Provider:\s+sandbox at (\S+)", text)
        self.sandbox_url = sandbox.group(1) if sandbox else None

    def _drain(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def _banner_done(self) -> bool:
        return any(line.startswith("kyma-admin") for line in self.lines)

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def admin(self, *args: str, check: bool = True, input: str | None = None) -> subprocess.CompletedProcess:
        result = subprocess.run([str(BIN / "kyma-admin"), *args], env=self.env, cwd=ROOT, text=True,
                                capture_output=True, timeout=60, input=input)
        if check and result.returncode != 0:
            raise AssertionError(f"kyma-admin {args} failed: {result.stdout}{result.stderr}")
        return result

    def new_account(self, usd: str) -> tuple[str, str]:
        out = self.admin("create-account", "--balance", usd).stdout
        return (re.search(r"account_id=(\S+)", out).group(1), re.search(r"KYMA_API_KEY=(\S+)", out).group(1))

    def balance(self, key: str) -> float:
        """GET /v1/credits/balance for an API key, as a client sees it."""
        import requests

        response = requests.get(f"{self.api_url}/v1/credits/balance",
                                headers={"Authorization": f"Bearer {key}"}, timeout=30)
        assert response.status_code == 200, response.text
        return response.json()["balance_usd"]

    def stop(self) -> None:
        if os.environ.get("KYMA_E2E_DUMP"):       # debugging aid: keep what the stack printed
            Path(os.environ["KYMA_E2E_DUMP"]).write_text(self.output)
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


@pytest.fixture(scope="session")
def stack(tmp_path_factory):
    """The local stack with the sandbox provider (no MiniMax key), like a fresh `make run`."""
    s = StackProcess(tmp_path_factory.mktemp("stack"))
    yield s
    s.stop()


@pytest.fixture(scope="session")
def curl():
    path = shutil.which("curl")
    if path is None:
        pytest.skip("curl is not installed on this machine (.ci/run installs it)")
    return path
