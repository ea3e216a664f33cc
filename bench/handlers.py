"""Handler costs with the embedded AWS and the MiniMax sandbox in another process (bench/servers.py),
so that their CPU and memory are not counted: the voice-clone handler's CPU time (its own thread,
`time.thread_time`, network waits excluded) and peak traced memory for a 4 MB inline multipart upload,
event in to response out; and the median wall time of a speech request (for the Lambda cost estimate;
the sandbox streams without MiniMax's pace, so MiniMax's latency is not in it)."""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MINIMAX_KEY_PARAMETER = "/kyma/bench/minimax-api-key"


@contextlib.contextmanager
def servers():
    """The embedded AWS and the MiniMax sandbox in a child process: their CPU and memory are not ours."""
    proc = subprocess.Popen([sys.executable, str(ROOT / "bench" / "servers.py")], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    info = json.loads(proc.stdout.readline())
    try:
        yield info
    finally:
        proc.stdin.close()
        proc.wait(10)


def measure_handlers(info: dict, quick: bool) -> dict:
    import audio_fixtures as fx
    import boto3
    from helpers import api_event, context, lwa_call, multipart

    from kyma.accounts.store import Accounts
    from kyma.platform.aws import dynamodb
    from kyma.platform.config import config
    from kyma.providers.select import provider
    from kyma_local.runtime import FunctionPool
    from kyma_local.template import Template
    from kyma_local.web_adapter import WebAdapterPool

    template = Template()
    os.environ.update(template.environment())
    os.environ.update({"AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x", "AWS_DEFAULT_REGION": "us-east-1",
                       "AWS_ENDPOINT_URL": info["aws"], "MINIMAX_BASE_URL": info["minimax"],
                       "MINIMAX_API_KEY_PARAMETER": MINIMAX_KEY_PARAMETER,
                       "POWERTOOLS_METRICS_DISABLED": "true", "POWERTOOLS_LOG_LEVEL": "ERROR",
                       # One account speaks 20 times in a row here: measured, not rate limited (the
                       # counter rides in the reserve transaction either way, so no call is hidden).
                       "RATE_LIMIT_DEFAULTS": json.dumps({"speech": [100_000, 10_000]})})
    from kyma.platform import aws as kyma_aws
    config.cache_clear()
    provider.cache_clear()
    kyma_aws.client.cache_clear()       # clients made under mock_aws in the previous phase
    kyma_aws.s3.cache_clear()
    boto3.setup_default_session()
    accounts = Accounts(dynamodb(), config())
    clone = FunctionPool(template.functions["VoiceCloneFunction"]).environment()
    speech = WebAdapterPool(template.functions["SpeechFunction"])

    # A 4 MB inline upload: a real 131 s, 16 kHz WAV in a multipart body.
    wav = fx.wav(131.0, rate=16000)
    body, ctype = multipart([("file", ("reference.wav", wav, "audio/wav")), ("name", "bench")])

    def upload_event():
        return api_event("POST", "/v1/audio/voice-clone", body=body,
                         account_id=accounts.create(50_000_000).account_id, headers={"Content-Type": ctype})

    clone(upload_event(), context())                           # warm: clients, SSM key, connections
    cpu, peaks, walls = [], [], []
    for _ in range(5 if quick else 9):                     # CPU: without tracemalloc (it slows allocation)
        event = upload_event()                                 # built before measuring: it is the input
        t_cpu, t_wall = time.thread_time(), time.perf_counter()
        response = clone(event, context())
        cpu.append((time.thread_time() - t_cpu) * 1000)
        walls.append(time.perf_counter() - t_wall)
        assert response["statusCode"] == 200, response["body"]
    for _ in range(3):                                         # memory: traced separately
        event = upload_event()
        tracemalloc.start()
        response = clone(event, context())
        peaks.append(tracemalloc.get_traced_memory()[1] / len(body))
        tracemalloc.stop()
        assert response["statusCode"] == 200, response["body"]

    speech_walls = []
    speech_event = api_event("POST", "/v1/audio/speech", account_id=accounts.create(50_000_000).account_id,
                             body=json.dumps({"input": "The quick brown fox jumps over the lazy dog." * 4,
                                              "voice": "English_expressive_narrator"}),
                             headers={"Content-Type": "application/json"})
    try:
        lwa_call(speech, speech_event)
        for _ in range(5 if quick else 20):
            t = time.perf_counter()
            assert lwa_call(speech, speech_event)["statusCode"] == 200
            speech_walls.append(time.perf_counter() - t)
    finally:
        speech.close()
    return {"upload_bytes": len(body), "upload_cpu_ms": statistics.median(cpu),
            "upload_peak_ratio": max(peaks), "clone_seconds": statistics.median(walls),
            "speech_seconds": statistics.median(speech_walls)}
