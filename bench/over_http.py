"""Measured through the local stack as `make run` starts it (tests/e2e's StackProcess: another process,
the sandbox as MiniMax's stand-in), over HTTP:

- time to the first audio byte, as our overhead over the sandbox's own first-chunk delay: the same
  synthesis asked of the sandbox directly (its t2a_v2 stream) and through the API (POST
  /v1/audio/speech with stream_format audio: gateway, authorizer, the adapter stand-in, the app,
  the reserve, then MiniMax), interleaved, each on a fresh connection; the difference of the medians;
- throughput (full run only): speech requests per second, sequential and with 8 clients, with the
  sandbox's pacing off, so that the stack is what is measured.
"""

from __future__ import annotations

import http.client
import json
import os
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

VOICE = "English_expressive_narrator"
TEXT = "The first audio of a voice agent's answer."


@contextmanager
def local_stack(env: dict[str, str] | None = None):
    from e2e.conftest import StackProcess

    tmp = Path(os.environ.get("TMPDIR", "/tmp")) / f"kyma-bench-{os.getpid()}-{time.monotonic_ns()}"
    tmp.mkdir(parents=True, exist_ok=True)
    stack = StackProcess(tmp, env=env)
    try:
        yield stack
    finally:
        stack.stop()


def _first_byte(url: str, path: str, headers: dict[str, str], body: dict) -> float:
    """Seconds from sending the request to the first byte of the response body (read to the end)."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        started = time.perf_counter()
        conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json", **headers})
        response = conn.getresponse()
        assert response.status == 200, (response.status, response.read()[:300])
        assert response.read1(65536)
        elapsed = time.perf_counter() - started
        response.read()
        return elapsed
    finally:
        conn.close()


def first_byte(samples: int) -> dict:
    """Median time to the first audio byte, directly from the sandbox and through the API."""
    with local_stack() as stack:
        sandbox = json.loads(stack.state_file.read_text())["sandbox"]
        _, key = stack.new_account("1000")
        api = (stack.api_url, "/v1/audio/speech", {"Authorization": f"Bearer {key}"},
               {"input": TEXT, "voice": VOICE, "stream_format": "audio"})
        upstream = (sandbox["url"], "/v1/t2a_v2", {"Authorization": f"Bearer {sandbox['api_key']}"},
                    {"model": "speech-2.8-hd", "text": TEXT, "stream": True, "output_format": "hex",
                     "stream_options": {"exclude_aggregated_audio": True},
                     "voice_setting": {"voice_id": VOICE, "speed": 1.0, "vol": 1.0, "pitch": 0},
                     "audio_setting": {"sample_rate": 32000, "bitrate": 128000, "format": "mp3", "channel": 1}})
        for _ in range(3):                          # warm: the authorizer's cache, the app, connection pools
            _first_byte(*api)
            _first_byte(*upstream)
        direct, through = [], []
        for _ in range(samples):
            direct.append(_first_byte(*upstream))
            through.append(_first_byte(*api))
        from kyma_local.sandbox.control import SandboxControl

        configured = SandboxControl(sandbox["url"]).config()["first_chunk_ms"]
    sandbox_ms, api_ms = statistics.median(direct) * 1000, statistics.median(through) * 1000
    return {"samples": samples, "sandbox_ms": sandbox_ms, "api_ms": api_ms, "overhead_ms": api_ms - sandbox_ms,
            "api_p90_ms": statistics.quantiles(through, n=10)[-1] * 1000, "configured_ms": configured}


def throughput() -> dict:
    """Requests per second for speech through the whole local stack over HTTP (sandbox unpaced)."""
    import requests

    with local_stack({"KYMA_SANDBOX_FIRST_CHUNK_MS": "0", "KYMA_SANDBOX_CHUNK_INTERVAL_MS": "0"}) as stack:
        _, key = stack.new_account("1000")
        session = requests.Session()
        url = f"{stack.api_url}/v1/audio/speech"
        payload = {"input": "Benchmarking the local stack.", "voice": VOICE}
        headers = {"Authorization": f"Bearer {key}"}

        def one(s=session):
            assert s.post(url, json=payload, headers=headers, timeout=30).status_code == 200

        for _ in range(5):
            one()
        n = 60
        t = time.perf_counter()
        for _ in range(n):
            one()
        sequential = n / (time.perf_counter() - t)
        local = threading.local()

        def threaded(_):
            if not hasattr(local, "s"):
                local.s = requests.Session()
            one(local.s)

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(threaded, range(16)))
            t = time.perf_counter()
            list(pool.map(threaded, range(n * 2)))
            concurrent = n * 2 / (time.perf_counter() - t)
    return {"sequential": sequential, "concurrent8": concurrent}
