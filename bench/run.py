"""make bench: what a serverless API's speed is decided by, measured side by side in one run.

1. Cold start (bench/cold.py): the INIT phase's CPU time in fresh processes, as a ratio to a bare
   boto3 client measured in the same run; a Powertools-examples-style function is the peer to beat.
2. Time to the first audio byte through the local stack, as our overhead over the sandbox's own
   first-chunk delay measured in the same run (bench/over_http.py).
3. AWS and upstream calls per request, counted exactly (bench/calls.py).
4. Upload cost: CPU time and peak memory of a 4 MB inline upload (bench/handlers.py).
5. For information (full run only): requests per second through the local stack, and a Lambda cost
   estimate from measured handler durations.

Budgets (bench/budgets.py) are ratios and counts, and one difference of two medians measured
together.  `--quick` (CI) runs 1-4 with fewer repetitions; both exit non-zero when a budget is
broken.  The full run writes bench/results.md (with bench/explanations.md appended).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path[:0] = [str(ROOT / "tests"), str(BENCH)]     # the test helpers and audio fixtures; these modules
os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "ERROR")  # the functions run in-process: keep their logs quiet

import budgets
import calls
import cold
import handlers
import over_http
import report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="CI mode: budgets only, fewer repetitions")
    quick = parser.parse_args().quick
    started = time.time()

    repetitions = 9 if quick else 15
    seconds = cold.cold_start(repetitions)
    ratios = cold.ratios(seconds)
    ttfb = over_http.first_byte(25 if quick else 40)
    rows = calls.call_counts()
    with handlers.servers() as info:
        measured = handlers.measure_handlers(info, quick)
    failures = (budgets.cold_failures(ratios) + budgets.first_byte_failures(ttfb) + budgets.call_failures(rows)
                + budgets.upload_failures(measured))
    lines = (report.cold(repetitions, seconds, ratios) + report.first_byte(ttfb) + report.calls(rows)
             + report.upload(measured))
    if not quick:
        lines += report.information(over_http.throughput(), measured)

    text = "\n".join(report.header(quick, time.time() - started) + lines + report.verdict(failures)) + "\n"
    print(text)
    if not quick:
        explanations = BENCH / "explanations.md"
        (BENCH / "results.md").write_text(text + ("\n" + explanations.read_text() if explanations.exists() else ""))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
