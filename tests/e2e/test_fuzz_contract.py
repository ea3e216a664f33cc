"""Schemathesis, the maintained OpenAPI fuzzer, against `make run` from the published contract
(GET /v1/openapi.json) with a real key: every operation, generated and mutated requests, every
check but one, and afterwards the books of the account it used must still balance.

The check left out is `positive_data_acceptance` ("a schema-valid request must not be refused"):
the API rightly refuses requests whose validity no schema can state (a cursor it never issued, a
voice id that does not exist, a clip that is not audio, a date range over 366 days, a lone
surrogate in a string).  The reverse check, `negative_data_rejection` (a schema-invalid request
must be refused), runs, as do `not_a_server_error` and every conformance check.

The seed is printed; `KYMA_FUZZ_SEED=<seed> make test` replays a run.  `KYMA_FUZZ_EXAMPLES`
(default 40 per operation) bounds it: about a minute here.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.long  # over a minute: runs first (tests/conftest.py)

ENDPOINTS = ("speech", "voice-clone", "voice-design", "uploads", "voices", "account")


def test_the_fuzzer_finds_no_5xx_no_contract_violation_and_the_books_balance(stack, tmp_path):
    account, key = stack.new_account("500")
    for endpoint in ENDPOINTS:                     # the fuzzer is one very fast customer: let it through
        stack.admin("set-limits", account, endpoint, "--per-minute", "100000", "--burst", "10000")
    seed = int(os.environ.get("KYMA_FUZZ_SEED") or random.randrange(1, 2**31))
    examples = os.environ.get("KYMA_FUZZ_EXAMPLES", "40")
    report = tmp_path / "schemathesis.json"
    command = [str(Path(sys.executable).parent / "schemathesis"), "run", f"{stack.api_url}/v1/openapi.json",
               "--url", stack.api_url, "-H", f"Authorization: Bearer {key}",
               "--checks", "all", "--exclude-checks", "positive_data_acceptance",
               "--phases", "examples,coverage,fuzzing", "--max-examples", examples, "--seed", str(seed),
               "--workers", "1", "--request-timeout", "60", "--no-color",
               "--report", "json", "--report-json-path", str(report)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=900, cwd=tmp_path)
    outcome = json.loads(report.read_text())
    summary = (f"schemathesis seed {seed} (replay: KYMA_FUZZ_SEED={seed} make test): "
               f"{outcome['operations']['tested']}/{outcome['operations']['total']} operations, "
               f"{outcome['test_cases']['generated']} cases, {outcome['test_cases']['with_failures']} with failures")
    print(summary)
    assert result.returncode == 0 and not outcome["failures"] and not outcome["errors"], \
        summary + "\n" + result.stdout[-6000:]
    assert outcome["operations"]["tested"] == outcome["operations"]["total"]
    # A run that generated nothing (an empty contract, a filter that matched no operation) proves nothing.
    assert outcome["operations"]["total"] > 0, summary
    assert outcome["test_cases"]["generated"] >= outcome["operations"]["total"], summary
    # Whatever it bought, refused or broke off, the books still balance for every account
    audit = stack.admin("audit", check=False)
    assert audit.returncode == 0 and "consistent" in audit.stdout, audit.stdout
