"""Cold start: the INIT phase's CPU time in fresh Python processes, as a ratio to a bare boto3 client.

Each case runs in its own process: a buffered function imports its `app.py` (the module-level set-up
is INIT); a web-adapter function (SpeechFunction) also builds its server and answers the adapter's
readiness check, since Lambda's INIT ends only when GET / answers.  The baseline process does
`import boto3; boto3.client("dynamodb")`; a Powertools-examples-style function is the peer to beat.
Median of `repetitions` processes per case, interleaved so machine drift hits every case alike.  All
code is byte-compiled first, as boto3 is in site-packages.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BASELINE_NAME = "baseline: boto3 + DynamoDB client"
BASELINE = "import boto3\nboto3.client('dynamodb')"
FUNCTIONS = ("AuthorizerFunction", "AccountFunction", "VoiceCloneFunction", "SpeechFunction", "ReconcilerFunction")
MINIMAX_KEY_PARAMETER = "/kyma/bench/minimax-api-key"


def _import(path: Path) -> str:
    return (f"import importlib.util\nspec = importlib.util.spec_from_file_location('app', {str(path)!r})\n"
            "module = importlib.util.module_from_spec(spec)\nspec.loader.exec_module(module)")


def _web_app(path: Path) -> str:
    """INIT of a Lambda Web Adapter function: import, listen, answer the readiness check."""
    return _import(path) + (
        "\nimport http.client, threading\nserver = module.make_server('127.0.0.1', 0)\n"
        "serving = threading.Thread(target=server.handle_request)\nserving.start()\n"
        "conn = http.client.HTTPConnection('127.0.0.1', server.server_address[1])\n"
        "conn.request('GET', '/')\nassert conn.getresponse().status == 200\nserving.join()")


def cold_start(repetitions: int) -> dict[str, float]:
    """Median INIT seconds per case (the baseline first)."""
    from kyma_local.template import Template

    template = Template()
    env = {**os.environ, **template.environment(), "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x",
           "AWS_DEFAULT_REGION": "us-east-1", "MINIMAX_API_KEY_PARAMETER": MINIMAX_KEY_PARAMETER,
           "POWERTOOLS_TRACE_DISABLED": "true"}
    env.pop("AWS_ENDPOINT_URL", None)
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "layers" / "shared" / "kyma"),
                    str(ROOT / "functions"), str(ROOT / "bench")], check=True,
                   env={k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"})
    cases = {BASELINE_NAME: BASELINE,
             "reference: Powertools-examples style": _import(ROOT / "bench" / "reference_app.py")}
    for fid in FUNCTIONS:
        fn = template.functions[fid]
        cases[fid] = _web_app(fn.app_path) if fn.web_adapter else _import(fn.module_path)
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(repetitions):
        for name, code in cases.items():
            script = f"import time\n_t0 = time.process_time()\n{code}\nprint(time.process_time() - _t0)"
            out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True,
                                 check=False)
            if out.returncode != 0:
                raise RuntimeError(f"{name} failed to initialise:\n{out.stderr}")
            samples[name].append(float(out.stdout.strip().splitlines()[-1]))
    return {name: statistics.median(values) for name, values in samples.items()}


def ratios(cold: dict[str, float]) -> dict[str, float]:
    base = cold[BASELINE_NAME]
    return {name: seconds / base for name, seconds in cold.items()}
