"""Speech jobs: the submission's latency and AWS calls, and the worker's calls per part.

    .venv/bin/python bench/jobs.py          # prints the Markdown section and writes it into results.md

Counted exactly as bench/calls.py counts (every HTTP request botocore sends, retries included;
the MiniMax sandbox's request log), with moto in-process and the real handlers: the jobs API
(SpeechJobsFunction) for a submission, and the worker (SpeechJobsWorkerFunction) fed every
message of the queue for a job of N parts (each part's task done by its first poll: the minimum
number of polls).  Latency: the handler's wall time for a submission, median of 30, in-process
moto (a ratio-free number on a shared machine: for orientation only).
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH = Path(__file__).resolve().parent
sys.path[:0] = [str(ROOT / "tests"), str(BENCH), str(ROOT / "layers" / "shared"), str(ROOT / "tools")]

from calls import MINIMAX_KEY_PARAMETER, CallLog

BEGIN, END = "<!-- speech-jobs: begin -->", "<!-- speech-jobs: end -->"


def measure(parts: int = 3, part_chars: int = 2_000) -> dict:
    import boto3
    from helpers import api_event, context
    from moto import mock_aws

    from kyma.accounts.store import Accounts
    from kyma.platform.aws import dynamodb
    from kyma.platform.config import config
    from kyma.providers.select import provider
    from kyma_local.aws import create_resources, serialize_dynamodb
    from kyma_local.runtime import FunctionPool
    from kyma_local.sandbox import MiniMaxSandbox
    from kyma_local.template import Template

    template = Template()
    os.environ.update(template.environment())
    os.environ.update({"AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x", "AWS_DEFAULT_REGION": "us-east-1",
                       "POWERTOOLS_METRICS_DISABLED": "true", "POWERTOOLS_LOG_LEVEL": "ERROR",
                       "JOB_POLL_SECONDS": "0", "JOB_SLOT_RETRY_SECONDS": "0", "JOB_PART_MAX_CHARS": str(part_chars),
                       "JOB_MAX_ACTIVE": "1000", "RATE_LIMIT_DEFAULTS": json.dumps({"speech-jobs": [100_000, 10_000]})})
    os.environ.pop("AWS_ENDPOINT_URL", None)
    serialize_dynamodb()
    log = CallLog()
    with mock_aws(), MiniMaxSandbox(api_key="bench-key", async_seconds=0, async_ms_per_char=2) as fake:
        os.environ.update({"MINIMAX_API_KEY_PARAMETER": MINIMAX_KEY_PARAMETER, "MINIMAX_BASE_URL": fake.base_url})
        config.cache_clear()
        provider.cache_clear()
        boto3.setup_default_session()
        boto3.DEFAULT_SESSION.events.register("before-send", log.hook)   # before any client exists
        create_resources(template)
        boto3.client("ssm").put_parameter(Name=MINIMAX_KEY_PARAMETER, Value="bench-key", Type="SecureString")
        account = Accounts(dynamodb(), config()).create(1_000_000_000).account_id
        api = FunctionPool(template.functions["SpeechJobsFunction"]).environment()
        worker = FunctionPool(template.functions["SpeechJobsWorkerFunction"]).environment()
        provider().check_key()                      # warm, as in a warm Lambda
        sqs = boto3.client("sqs")
        url = config().jobs_queue_url
        paragraph = "The quick brown fox jumps over the lazy dog. " * 10 + "\n\n"
        text = (paragraph * (parts * part_chars // len(paragraph) + 2))[:parts * part_chars * 9 // 10]

        def submit() -> dict:
            body = json.dumps({"input": text, "voice_id": "English_expressive_narrator"})
            event = api_event("POST", "/v1/audio/speech/jobs", account_id=account, body=body,
                              headers={"Content-Type": "application/json"})
            return api(event, context("SpeechJobsFunction"))

        def empty_queue() -> None:
            while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
                for m in messages:
                    sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])

        submit()                                    # warm the environment
        empty_queue()
        timings = []
        for _ in range(30):
            started = time.perf_counter()
            assert submit()["statusCode"] == 202
            timings.append((time.perf_counter() - started) * 1000)
        empty_queue()

        start = len(log.calls)
        response = submit()
        assert response["statusCode"] == 202
        submission = Counter(f"{s}.{o}" for s, o, _ in log.calls[start:])
        minimax_before = len(fake.calls)
        start = len(log.calls)
        steps: Counter = Counter()
        for _ in range(200):
            messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
            if not messages:
                break
            for m in messages:
                steps[json.loads(m["Body"])["step"]] += 1
                worker({"Records": [{"messageId": m["MessageId"], "body": m["Body"]}]},
                       context("SpeechJobsWorkerFunction", 120))
                sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
        # the worker's own calls: not the bench's receive/delete of the queue
        work = Counter(f"{s}.{o}" for s, o, _ in log.calls[start:]
                       if o not in ("ReceiveMessage", "DeleteMessage"))
        upstream = Counter(c.path for c in fake.calls[minimax_before:])
        n = int(json.loads(response["body"])["characters"] > 0) and len(
            [c for c in fake.calls[minimax_before:] if c.path == "/v1/t2a_async_v2"])
        return {"parts": n, "latency_ms": statistics.median(timings), "p90_ms": sorted(timings)[26],
                "submission": submission, "work": work, "steps": steps, "upstream": upstream}


def section(m: dict) -> str:
    def table(counter: Counter, per: int = 1) -> str:
        rows = [f"| `{k}` | {v} | {v / per:.1f} |" for k, v in sorted(counter.items())]
        return "| call | whole job | per part |\n|---|---|---|\n" + "\n".join(rows)

    sub = m["submission"]
    return "\n".join([
        BEGIN,
        "## Speech jobs: submission and the worker's calls per part",
        "",
        f"Submission (`POST /v1/audio/speech/jobs`, {m['parts']}-part job, warm, in-process moto): median "
        f"{m['latency_ms']:.1f} ms, p90 {m['p90_ms']:.1f} ms of handler time (30 submissions; for orientation, a "
        "shared 2-core machine). Its AWS calls: " + ", ".join(f"`{k}` × {v}" for k, v in sorted(sub.items()))
        + " — one reserve transaction (rate limit, active-jobs cap, job row, hold and debit together), one queue "
          "send, the text put in S3 and the balance read for the answer.",
        "",
        f"The worker, for the whole job ({m['parts']} parts; each part's task done at its first poll), by AWS call:",
        "",
        table(m["work"], m["parts"]),
        "",
        "Steps delivered: " + ", ".join(f"{k} × {v}" for k, v in sorted(m["steps"].items()))
        + ". MiniMax calls: " + ", ".join(f"`{k}` × {v}" for k, v in sorted(m["upstream"].items()))
        + " (per part: create 1, query ≥ 1 — one per poll —, retrieve 1, and the download of the result, which is "
          "MiniMax's file storage, not its API). Every step reads the job row (its state decides what the step "
          "may do), submit and poll read the part's row, and a fetched part re-reads the job's count to know if "
          "it was the last; the submit reads the job's text from S3 to cut its part.",
        END,
    ])


def main() -> None:
    text = section(measure())
    print(text)
    results = BENCH / "results.md"
    current = results.read_text()
    if BEGIN in current:
        before, _, rest = current.partition(BEGIN)
        _, _, after = rest.partition(END)
        current = before + text + after
    else:
        current = current.rstrip("\n") + "\n\n" + text + "\n"
    results.write_text(current)


if __name__ == "__main__":
    main()
