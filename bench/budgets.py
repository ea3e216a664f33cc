"""The budgets `make bench` holds the code to, and the checks that turn measurements into failures.

Budgets are ratios and counts, never absolute times (a shared 2-core machine: milliseconds are noise,
ratios within one run are not) -- with one exception: the time to the first audio byte is our overhead
over the sandbox's own first-chunk delay *measured in the same run*, a difference of two medians.
"""

from __future__ import annotations

# SpeechFunction: today's buffered function measured 1.28x (bench/results.md of 2026-11-24); the
# streaming one may cost at most 0.2x more.
SPEECH_COLD_BEFORE_STREAMING = 1.28

BUDGETS = {
    "cold": {"AuthorizerFunction": 1.15, "SpeechFunction": round(SPEECH_COLD_BEFORE_STREAMING + 0.2, 2),
             "VoiceCloneFunction": 1.6},
    # A design: reserve, settle, the balance read (DynamoDB); the preview's PutObject (S3, its URL is
    # signed locally); voice_design (MiniMax).
    "ddb_happy": {"voice-clone": 3, "voice-design": 3, "speech": 3, "authorizer": 1},
    "s3_happy": {"voice-design": 1},
    "upstream_happy": {"voice-clone": 2, "voice-design": 1, "speech": 1},
    "upload_cpu_ms": 60,
    "upload_peak_ratio": 3.0,
    # 30 ms while the speech reserve had three items (14 ms measured); issues 18 and 22 put four more
    # counters in it (the key, in flight, the key's month, the upstream budget: they move with the
    # money), and moto spends 18.5 ms median on the seven-item transaction alone (its expression
    # parser and a table copy per item, which DynamoDB does not spend).  Measured
    # on one idle machine, 2026-12-03: 27-41 ms over twelve runs, the reserve the largest part.
    "first_byte_overhead_ms": 45,
}


def cold_failures(ratios: dict[str, float]) -> list[str]:
    return [f"cold start {name}: {ratio:.2f}x > {BUDGETS['cold'][name]}x"
            for name, ratio in ratios.items() if name in BUDGETS["cold"] and ratio > BUDGETS["cold"][name]]


def call_failures(rows: list[dict]) -> list[str]:
    failures = []
    for r in rows:
        if r["repeated"]:
            failures.append(f"{r['endpoint']} {r['path']}: repeated {r['repeated']}")
        if (r["path"].startswith("happy path") and "Idempotency" not in r["path"]) or r["endpoint"] == "authorizer":
            ddb_budget = BUDGETS["ddb_happy"].get(r["endpoint"])
            if ddb_budget is not None and r["dynamodb"] > ddb_budget:
                failures.append(f"{r['endpoint']} {r['path']}: {r['dynamodb']} DynamoDB calls > {ddb_budget}")
            s3_budget = BUDGETS["s3_happy"].get(r["endpoint"])
            if s3_budget is not None and r["s3"] > s3_budget:
                failures.append(f"{r['endpoint']} {r['path']}: {r['s3']} S3 calls > {s3_budget}")
            up = BUDGETS["upstream_happy"].get(r["endpoint"])
            if up is not None and r["upstream"] != up:
                failures.append(f"{r['endpoint']} {r['path']}: {r['upstream']} upstream calls != {up}")
    return failures


def upload_failures(measured: dict) -> list[str]:
    failures = []
    if measured["upload_cpu_ms"] > BUDGETS["upload_cpu_ms"]:
        failures.append(f"4 MB upload CPU {measured['upload_cpu_ms']:.1f} ms > {BUDGETS['upload_cpu_ms']} ms")
    if measured["upload_peak_ratio"] > BUDGETS["upload_peak_ratio"]:
        failures.append(f"4 MB upload peak memory {measured['upload_peak_ratio']:.2f}x > "
                        f"{BUDGETS['upload_peak_ratio']}x")
    return failures


def first_byte_failures(ttfb: dict) -> list[str]:
    if ttfb["overhead_ms"] > BUDGETS["first_byte_overhead_ms"]:
        return [f"time to first audio byte: {ttfb['overhead_ms']:.1f} ms over the sandbox's own "
                f"> {BUDGETS['first_byte_overhead_ms']} ms"]
    return []


def mark(ok: bool) -> str:
    return "" if ok else " **FAIL**"
