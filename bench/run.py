"""make bench: what a serverless API's speed is decided by, measured side by side in one run.

1. Cold start: median over fresh Python processes of the CPU time of the INIT
   phase (importing the function module: every module-level set-up; all code
   byte-compiled, as site-packages are), as a ratio to a baseline
   process doing `import boto3; boto3.client("dynamodb")`, measured in the same
   run, interleaved.  A Powertools-examples-style function is the peer to beat.
2. AWS and upstream calls per request, counted exactly (botocore `before-send`
   hooks; the MiniMax sandbox's request log), for every path of voice-clone and
   speech, with and without Idempotency-Key, and the authorizer.
3. Upload cost: CPU time of the handler's own thread and peak traced memory
   for a 4 MB inline multipart upload, event in to response out.  The embedded
   AWS and the MiniMax sandbox run in another process, so neither is counted.
4. For information: requests per second through the local stack, and a Lambda
   cost estimate from measured handler durations.

Budgets are ratios and counts, never absolute times.  `--quick` (CI) runs 1–3
with fewer repetitions and exits non-zero when a budget is broken.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
import tracemalloc
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))          # the audio fixtures and test helpers

BUDGETS = {
    "cold": {"AuthorizerFunction": 1.15, "SpeechFunction": 1.5, "VoiceCloneFunction": 1.6},
    "ddb_happy": {"voice-clone": 3, "speech": 3, "authorizer": 1},
    "upstream_happy": {"voice-clone": 2, "speech": 1},
    "upload_cpu_ms": 60,
    "upload_peak_ratio": 3.0,
}
ARM64_GB_SECOND_USD = 0.0000133334    # Lambda arm64 price per GB-second (us-east-1)
REQUEST_USD = 0.20 / 1_000_000
MINIMAX_KEY_PARAMETER = "/kyma/bench/minimax-api-key"

# ── 1. cold start ─────────────────────────────────────────────────────────
BASELINE = "import boto3\nboto3.client('dynamodb')"


def _function_init(path: Path) -> str:
    return (f"import importlib.util\nspec = importlib.util.spec_from_file_location('app', {str(path)!r})\n"
            "module = importlib.util.module_from_spec(spec)\nspec.loader.exec_module(module)")


def cold_start(repetitions: int) -> dict[str, float]:
    from kyma_local.template import Template

    template = Template()
    env = {**os.environ, **template.environment(), "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x",
           "AWS_DEFAULT_REGION": "us-east-1", "MINIMAX_API_KEY_PARAMETER": MINIMAX_KEY_PARAMETER,
           "POWERTOOLS_TRACE_DISABLED": "true"}
    # Every case loads byte-compiled modules, as boto3 (the baseline) does from site-packages:
    # otherwise our own modules would pay compilation and boto3 would not.
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "layers" / "shared" / "kyma"),
                    str(ROOT / "functions"), str(ROOT / "bench")], check=True,
                   env={k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"})
    env.pop("AWS_ENDPOINT_URL", None)
    cases = {"baseline: boto3 + DynamoDB client": BASELINE,
             "reference: Powertools-examples style": _function_init(ROOT / "bench" / "reference_app.py")}
    for fid in ("AuthorizerFunction", "AccountFunction", "VoiceCloneFunction", "SpeechFunction",
                "ReconcilerFunction"):
        cases[fid] = _function_init(template.functions[fid].module_path)
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(repetitions):                  # interleaved: drift hits every case alike
        for name, code in cases.items():
            # CPU time of the INIT work: steadier than wall time on a shared machine.
            script = f"import time\n_t0 = time.process_time()\n{code}\nprint(time.process_time() - _t0)"
            out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True,
                                 check=False)
            if out.returncode != 0:
                raise RuntimeError(f"{name} failed to initialise:\n{out.stderr}")
            samples[name].append(float(out.stdout.strip().splitlines()[-1]))
    return {name: statistics.median(values) for name, values in samples.items()}


# ── 2. calls per request ──────────────────────────────────────────────────
class CallLog:
    """Every HTTP request botocore sends (retries included), by service and operation."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str]] = []

    def hook(self, event_name: str = "", request=None, **_):
        _, service, operation = event_name.split(".")[:3]
        body = getattr(request, "body", b"") or b""
        body = body if isinstance(body, bytes) else str(body).encode()
        target = f"{getattr(request, 'url', '')}|".encode() + body
        self.calls.append((service, operation, hashlib.sha256(target).hexdigest()[:12]))

    def count(self, service: str) -> int:
        return sum(1 for s, _, _ in self.calls if s == service)

    def repeated(self) -> list[str]:
        seen, dupes = set(), []
        for call in self.calls:
            if call in seen:
                dupes.append(f"{call[0]}.{call[1]}")
            seen.add(call)
        return dupes


def call_counts() -> list[dict]:
    import audio_fixtures as fx
    import boto3
    from helpers import api_event, clone_event, context
    from moto import mock_aws

    from kyma.accounts import Accounts
    from kyma.aws import dynamodb
    from kyma.config import config
    from kyma.providers.select import provider
    from kyma_local.aws import create_resources, serialize_dynamodb
    from kyma_local.runtime import FunctionPool
    from kyma_local.sandbox import MiniMaxSandbox
    from kyma_local.template import Template

    template = Template()
    os.environ.update(template.environment())
    os.environ.update({"AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x", "AWS_DEFAULT_REGION": "us-east-1",
                       "POWERTOOLS_METRICS_DISABLED": "true", "POWERTOOLS_LOG_LEVEL": "ERROR"})
    os.environ.pop("AWS_ENDPOINT_URL", None)
    serialize_dynamodb()
    rows: list[dict] = []
    log = CallLog()
    with mock_aws(), MiniMaxSandbox(api_key="bench-key") as fake:
        os.environ.update({"MINIMAX_API_KEY_PARAMETER": MINIMAX_KEY_PARAMETER, "MINIMAX_BASE_URL": fake.base_url})
        config.cache_clear()
        provider.cache_clear()
        create_resources(template)
        boto3.client("ssm").put_parameter(Name=MINIMAX_KEY_PARAMETER, Value="bench-key", Type="SecureString")
        boto3.DEFAULT_SESSION.events.register("before-send", log.hook)
        cfg = config()
        accounts = Accounts(dynamodb(), cfg)
        handlers = {fid: FunctionPool(fn).environment() for fid, fn in template.functions.items()}
        from aws_lambda_powertools.utilities import parameters
        parameters.get_parameter(MINIMAX_KEY_PARAMETER, decrypt=True, max_age=300)  # the per-process cache

        mp3 = fx.mp3_cbr(12.0)

        def measure(label: str, endpoint: str, invoke, *, expect: int) -> None:
            log.calls.clear()
            before = len(fake.calls)
            response = invoke()
            status = response["statusCode"] if isinstance(response, dict) and "statusCode" in response else 200
            assert status == expect, (label, status, response.get("body") if isinstance(response, dict) else "")
            rows.append({"endpoint": endpoint, "path": label, "status": status, "dynamodb": log.count("dynamodb"),
                         "s3": log.count("s3"), "ssm": log.count("ssm"), "upstream": len(fake.calls) - before,
                         "repeated": log.repeated()})

        def fresh_account(balance=50_000_000):
            return accounts.create(balance)

        # authorizer (one cache miss)
        acct = fresh_account()
        auth_event = json.loads((ROOT / "events" / "authorizer-request.json").read_text().replace(
            "{{KYMA_API_KEY}}", acct.api_key))
        measure("cache miss: key → account", "authorizer",
                lambda: {"statusCode": 200, **handlers["AuthorizerFunction"](auth_event, context())}, expect=200)
        measure("balance", "account", lambda: handlers["AccountFunction"](
            api_event("GET", "/v1/credits/balance", account_id=acct.account_id), context()), expect=200)

        clone = handlers["VoiceCloneFunction"]
        key_n = iter(range(10_000))

        def clone_call(account, *, idem=False, **kwargs):
            headers = {"Idempotency-Key": f"bench-{next(key_n)}"} if idem else None
            return lambda: clone(clone_event(account.account_id, mp3, headers=headers, **kwargs), context())

        measure("happy path", "voice-clone", clone_call(fresh_account()), expect=200)
        measure("happy path + Idempotency-Key", "voice-clone", clone_call(fresh_account(), idem=True), expect=200)
        idem_acct = fresh_account()
        replay_event = clone_event(idem_acct.account_id, mp3, headers={"Idempotency-Key": "bench-replay"})
        clone(replay_event, context())
        measure("replay (same Idempotency-Key)", "voice-clone", lambda: clone(replay_event, context()), expect=200)
        png_event = clone_event(fresh_account().account_id, fx.png())
        measure("refused by a check (415)", "voice-clone", lambda: clone(png_event, context()), expect=415)
        measure("402 insufficient credits", "voice-clone", clone_call(fresh_account(1)), expect=402)
        fake.fail_when("/v1/files/upload", "http_500")          # every attempt (the client retries)
        measure("upload fails upstream (502)", "voice-clone", clone_call(fresh_account()), expect=502)
        fake.clear_failures()
        fake.fail_when("/v1/voice_clone", 1002)
        measure("clone rate-limited upstream (503)", "voice-clone", clone_call(fresh_account()), expect=503)
        fake.clear_failures()

        speech = handlers["SpeechFunction"]
        voice_owner = fresh_account()
        voice_id = json.loads(clone(clone_event(voice_owner.account_id, mp3), context())["body"])["voice_id"]

        def speech_call(account, body=None, headers=None):
            payload = body or {"input": "Hello from the benchmark.", "voice": "English_expressive_narrator"}
            return lambda: speech(api_event("POST", "/v1/audio/speech", body=json.dumps(payload),
                                            account_id=account.account_id,
                                            headers={"Content-Type": "application/json", **(headers or {})}),
                                  context())

        measure("happy path (system voice)", "speech", speech_call(fresh_account()), expect=200)
        measure("happy path (own cloned voice)", "speech", speech_call(
            voice_owner, {"input": "Mine.", "voice": voice_id}), expect=200)
        measure("happy path + Idempotency-Key", "speech", speech_call(
            fresh_account(), headers={"Idempotency-Key": "bench-speech"}), expect=200)
        measure("403 voice not owned", "speech", speech_call(
            fresh_account(), {"input": "Not mine.", "voice": voice_id}), expect=403)
        measure("402 insufficient credits", "speech", speech_call(fresh_account(1)), expect=402)
        measure("refused by validation (400)", "speech", speech_call(
            fresh_account(), {"input": "x", "voice": "v", "speed": 9}), expect=400)
        fake.fail_when("/v1/t2a_v2", 1002)
        measure("t2a rate-limited upstream (503)", "speech", speech_call(fresh_account()), expect=503)
        fake.clear_failures()
        fake.audio_size(6_000_000)
        measure("large audio → S3 + 303", "speech", speech_call(fresh_account()), expect=303)
        fake.audio_size(None)
    return rows


# ── 3. upload cost, 4. durations and throughput (servers in another process) ──
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
    from helpers import api_event, context, multipart

    from kyma.accounts import Accounts
    from kyma.aws import dynamodb
    from kyma.config import config
    from kyma.providers.select import provider
    from kyma_local.runtime import FunctionPool
    from kyma_local.template import Template

    template = Template()
    os.environ.update(template.environment())
    os.environ.update({"AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x", "AWS_DEFAULT_REGION": "us-east-1",
                       "AWS_ENDPOINT_URL": info["aws"], "MINIMAX_BASE_URL": info["minimax"],
                       "MINIMAX_API_KEY_PARAMETER": MINIMAX_KEY_PARAMETER,
                       "POWERTOOLS_METRICS_DISABLED": "true", "POWERTOOLS_LOG_LEVEL": "ERROR"})
    from kyma import aws as kyma_aws

    config.cache_clear()
    provider.cache_clear()
    kyma_aws.client.cache_clear()       # clients made under mock_aws in the previous phase
    kyma_aws.s3.cache_clear()
    boto3.setup_default_session()
    cfg = config()
    accounts = Accounts(dynamodb(), cfg)
    clone = FunctionPool(template.functions["VoiceCloneFunction"]).environment()
    speech = FunctionPool(template.functions["SpeechFunction"]).environment()

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
    speech_account = accounts.create(50_000_000).account_id
    speech_event = api_event("POST", "/v1/audio/speech", account_id=speech_account,
                             body=json.dumps({"input": "The quick brown fox jumps over the lazy dog." * 4,
                                              "voice": "English_expressive_narrator"}),
                             headers={"Content-Type": "application/json"})
    speech(speech_event, context())
    for _ in range(5 if quick else 20):
        t = time.perf_counter()
        assert speech(speech_event, context())["statusCode"] == 200
        speech_walls.append(time.perf_counter() - t)
    return {"upload_bytes": len(body), "upload_cpu_ms": statistics.median(cpu),
            "upload_peak_ratio": max(peaks), "clone_seconds": statistics.median(walls),
            "speech_seconds": statistics.median(speech_walls)}


def throughput() -> dict:
    """Requests per second for speech through the whole local stack over HTTP (sandbox provider)."""
    import requests
    from e2e.conftest import StackProcess

    tmp = Path(os.environ.get("TMPDIR", "/tmp")) / f"kyma-bench-{os.getpid()}"
    tmp.mkdir(exist_ok=True)
    stack = StackProcess(tmp)
    try:
        _, key = stack.new_account("1000")
        session = requests.Session()
        url = f"{stack.api_url}/v1/audio/speech"
        payload = {"input": "Benchmarking the local stack.", "voice": "English_expressive_narrator"}
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
    finally:
        stack.stop()


# ── report ────────────────────────────────────────────────────────────────
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="CI mode: budgets only, fewer repetitions")
    args = parser.parse_args()
    started = time.time()
    failures: list[str] = []
    lines: list[str] = []

    cold = cold_start(9 if args.quick else 15)
    base = cold["baseline: boto3 + DynamoDB client"]
    lines += ["## Cold start (INIT phase), median of "
              f"{9 if args.quick else 15} fresh processes each, interleaved", "",
              "| function | ratio to baseline | budget | ms (this machine, for scale only) |", "|---|---|---|---|"]
    for name, seconds in cold.items():
        ratio = seconds / base
        budget = BUDGETS["cold"].get(name)
        ok = budget is None or ratio <= budget
        if not ok:
            failures.append(f"cold start {name}: {ratio:.2f}x > {budget}x")
        lines.append(f"| {name} | {ratio:.2f}x | {f'≤ {budget}x' if budget else '–'}{'' if ok else ' **FAIL**'} "
                     f"| {seconds * 1000:.0f} |")

    rows = call_counts()
    lines += ["", "## AWS and upstream calls per request (HTTP requests sent, retries included)", "",
              "| endpoint | path | status | DynamoDB | S3 | SSM | MiniMax | repeated calls |",
              "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['endpoint']} | {r['path']} | {r['status']} | {r['dynamodb']} | {r['s3']} | {r['ssm']} "
                     f"| {r['upstream']} | {', '.join(r['repeated']) or 'none'} |")
        if r["repeated"]:
            failures.append(f"{r['endpoint']} {r['path']}: repeated {r['repeated']}")
        if (r["path"].startswith("happy path") and "Idempotency" not in r["path"]) or r["endpoint"] == "authorizer":
            ddb_budget = BUDGETS["ddb_happy"].get(r["endpoint"])
            if ddb_budget is not None and r["dynamodb"] > ddb_budget:
                failures.append(f"{r['endpoint']} {r['path']}: {r['dynamodb']} DynamoDB calls > {ddb_budget}")
            up = BUDGETS["upstream_happy"].get(r["endpoint"])
            if up is not None and r["upstream"] != up:
                failures.append(f"{r['endpoint']} {r['path']}: {r['upstream']} upstream calls != {up}")

    with servers() as info:
        measured = measure_handlers(info, args.quick)
    cpu_ok = measured["upload_cpu_ms"] <= BUDGETS["upload_cpu_ms"]
    mem_ok = measured["upload_peak_ratio"] <= BUDGETS["upload_peak_ratio"]
    if not cpu_ok:
        failures.append(f"4 MB upload CPU {measured['upload_cpu_ms']:.1f} ms > {BUDGETS['upload_cpu_ms']} ms")
    if not mem_ok:
        failures.append(f"4 MB upload peak memory {measured['upload_peak_ratio']:.2f}x > "
                        f"{BUDGETS['upload_peak_ratio']}x")
    lines += ["", f"## Upload cost: voice-clone handler, {measured['upload_bytes']:,}-byte inline multipart body", "",
              "| measure | value | budget |", "|---|---|---|",
              f"| CPU time of the handler thread (network waits excluded) | {measured['upload_cpu_ms']:.1f} ms "
              f"| ≤ {BUDGETS['upload_cpu_ms']} ms{'' if cpu_ok else ' **FAIL**'} |",
              f"| peak traced memory / body size | {measured['upload_peak_ratio']:.2f}x "
              f"| ≤ {BUDGETS['upload_peak_ratio']}x{'' if mem_ok else ' **FAIL**'} |"]

    if not args.quick:
        rps = throughput()
        lines += ["", "## For information", "",
                  "| measure | value |", "|---|---|",
                  f"| speech through the local stack, sequential | {rps['sequential']:.0f} req/s |",
                  f"| speech through the local stack, 8 concurrent clients | {rps['concurrent8']:.0f} req/s |"]
        template_memory = {"VoiceCloneFunction": 1024, "SpeechFunction": 1024}
        for name, seconds in (("VoiceCloneFunction", measured["clone_seconds"]),
                              ("SpeechFunction", measured["speech_seconds"])):
            gb = template_memory[name] / 1024
            per_million = 1_000_000 * (seconds * gb * ARM64_GB_SECOND_USD + REQUEST_USD)
            lines.append(f"| Lambda cost per 1M calls, {name} ({template_memory[name]} MB, arm64, "
                         f"{seconds * 1000:.0f} ms measured, MiniMax latency not included) | ${per_million:,.2f} |")

    elapsed = time.time() - started
    header = [f"# Benchmark results ({'quick' if args.quick else 'full'} run)", "",
              f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {platform.machine()}, "
              f"{os.cpu_count()} CPUs, Python {platform.python_version()}; took {elapsed:.0f} s. "
              "Ratios and counts are the results; milliseconds are for scale only.", ""]
    verdict = ["", "**All budgets met.**" if not failures else "**Budgets broken:**"] + [f"- {f}" for f in failures]
    report = "\n".join(header + lines + verdict) + "\n"
    print(report)
    if not args.quick:
        explanations = (ROOT / "bench" / "explanations.md").read_text() if (
            ROOT / "bench" / "explanations.md").exists() else ""
        (ROOT / "bench" / "results.md").write_text(report + ("\n" + explanations if explanations else ""))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
