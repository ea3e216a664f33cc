"""The Markdown report: one section per measure, each budget next to its figure (bench/results.md)."""

from __future__ import annotations

import os
import platform
from datetime import UTC, datetime

from budgets import BUDGETS, mark

ARM64_GB_SECOND_USD = 0.0000133334    # Lambda arm64 price per GB-second (us-east-1)
REQUEST_USD = 0.20 / 1_000_000
MEMORY_MB = {"VoiceCloneFunction": 1024, "SpeechFunction": 1024}


def header(quick: bool, elapsed: float) -> list[str]:
    return [f"# Benchmark results ({'quick' if quick else 'full'} run)", "",
            f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {platform.machine()}, "
            f"{os.cpu_count()} CPUs, Python {platform.python_version()}; took {elapsed:.0f} s. "
            "Ratios and counts are the results; milliseconds are for scale only.", ""]


def cold(repetitions: int, seconds: dict[str, float], ratios: dict[str, float]) -> list[str]:
    lines = [f"## Cold start (INIT phase), median of {repetitions} fresh processes each, interleaved", "",
             "| function | ratio to baseline | budget | ms (this machine, for scale only) |", "|---|---|---|---|"]
    for name, ratio in ratios.items():
        budget = BUDGETS["cold"].get(name)
        shown = f"≤ {budget}x{mark(ratio <= budget)}" if budget else "–"
        lines.append(f"| {name} | {ratio:.2f}x | {shown} | {seconds[name] * 1000:.0f} |")
    return lines


def first_byte(ttfb: dict) -> list[str]:
    budget = BUDGETS["first_byte_overhead_ms"]
    return ["", "## Time to the first audio byte through the local stack "
                f"(median of {ttfb['samples']}, interleaved, each on a fresh connection)", "",
            "| measure | value | budget |", "|---|---|---|",
            f"| the sandbox's own first chunk, asked directly (configured delay {ttfb['configured_ms']:.0f} ms) "
            f"| {ttfb['sandbox_ms']:.1f} ms | – |",
            f"| POST /v1/audio/speech, stream_format audio | {ttfb['api_ms']:.1f} ms "
            f"(p90 {ttfb['api_p90_ms']:.1f} ms) | – |",
            f"| **our overhead** (the difference) | {ttfb['overhead_ms']:.1f} ms "
            f"| ≤ {budget} ms{mark(ttfb['overhead_ms'] <= budget)} |"]


def calls(rows: list[dict]) -> list[str]:
    lines = ["", "## AWS and upstream calls per request (HTTP requests sent, retries included)", "",
             "| endpoint | path | status | DynamoDB | S3 | SSM | MiniMax | repeated calls |",
             "|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['endpoint']} | {r['path']} | {r['status']} | {r['dynamodb']} | {r['s3']} | {r['ssm']} "
              f"| {r['upstream']} | {', '.join(r['repeated']) or 'none'} |" for r in rows]
    return lines


def upload(measured: dict) -> list[str]:
    cpu, peak = measured["upload_cpu_ms"], measured["upload_peak_ratio"]
    return ["", f"## Upload cost: voice-clone handler, {measured['upload_bytes']:,}-byte inline multipart body", "",
            "| measure | value | budget |", "|---|---|---|",
            f"| CPU time of the handler thread (network waits excluded) | {cpu:.1f} ms "
            f"| ≤ {BUDGETS['upload_cpu_ms']} ms{mark(cpu <= BUDGETS['upload_cpu_ms'])} |",
            f"| peak traced memory / body size | {peak:.2f}x "
            f"| ≤ {BUDGETS['upload_peak_ratio']}x{mark(peak <= BUDGETS['upload_peak_ratio'])} |"]


def information(rps: dict, measured: dict) -> list[str]:
    lines = ["", "## For information", "", "| measure | value |", "|---|---|",
             f"| speech through the local stack, sequential (sandbox unpaced) | {rps['sequential']:.0f} req/s |",
             f"| speech through the local stack, 8 concurrent clients (sandbox unpaced) "
             f"| {rps['concurrent8']:.0f} req/s |"]
    for name, seconds in (("VoiceCloneFunction", measured["clone_seconds"]),
                          ("SpeechFunction", measured["speech_seconds"])):
        gb = MEMORY_MB[name] / 1024
        per_million = 1_000_000 * (seconds * gb * ARM64_GB_SECOND_USD + REQUEST_USD)
        lines.append(f"| Lambda cost per 1M calls, {name} ({MEMORY_MB[name]} MB, arm64, {seconds * 1000:.0f} ms "
                     f"measured, MiniMax latency not included) | ${per_million:,.2f} |")
    return lines


def verdict(failures: list[str]) -> list[str]:
    return ["", "**All budgets met.**" if not failures else "**Budgets broken:**"] + [f"- {f}" for f in failures]
