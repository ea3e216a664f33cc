"""Keys a customer manages, over HTTP against `make run`: a key made by the first key, used, listed
(never its secret), restricted to `speech`, capped and drained to 402, revoked; the cap under 40
concurrent paid requests (with client cuts and MiniMax failures mid-stream); N+1 streams on a
limit of N.  Every run ends with the operator's audit consistent."""

from __future__ import annotations

import contextlib
import json
import random
import re
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from helpers import SYSTEM_VOICE

from e2e.conftest import StackProcess
from kyma_local.sample import reference_mp3

pytestmark = pytest.mark.long  # over a minute: runs first (tests/conftest.py)

TEXT = "Hello from the Kyma voice API"      # 29 characters: $0.0029
COST_USD = 0.0029


def auth(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


def audit_consistent(stack) -> None:
    result = stack.admin("audit", check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_key_made_by_the_first_key_used_listed_scoped_capped_drained_and_revoked(stack):
    account, first = stack.new_account("20")
    api = stack.api_url
    made = requests.post(f"{api}/v1/keys", headers=auth(first), timeout=30, json={"name": "ci"})
    assert made.status_code == 201, made.text
    key, key_id = made.json()["key"], made.json()["key_id"]
    assert requests.post(f"{api}/v1/audio/speech", headers=auth(key), timeout=60,
                         json={"input": TEXT, "voice": SYSTEM_VOICE}).status_code == 200
    listed = requests.get(f"{api}/v1/keys", headers=auth(first), timeout=30)
    assert listed.status_code == 200 and key not in listed.text and first not in listed.text
    mine = {k["key_id"]: k for k in listed.json()["keys"]}[key_id]
    assert mine["spent_this_month_usd"] == COST_USD and mine["status"] == "active"
    assert stack.admin("keys", account).stdout.count(key_id) == 1 and key not in stack.admin("keys", account).stdout

    # Restricted to speech: a clone is 403 permission_denied, nothing charged.
    assert requests.patch(f"{api}/v1/keys/{key_id}", headers=auth(first), timeout=30,
                          json={"scopes": ["speech"]}).json()["scopes"] == ["speech"]
    before = stack.balance(first)
    clone = requests.post(f"{api}/v1/audio/voice-clone", headers=auth(key), timeout=60,
                          files={"file": ("reference.mp3", reference_mp3(), "audio/mpeg")})
    assert clone.status_code == 403 and clone.json()["error"]["code"] == "permission_denied"
    assert stack.balance(first) == before

    # Capped at $0.50, then drained by speech until 402.
    assert requests.patch(f"{api}/v1/keys/{key_id}", headers=auth(first), timeout=30,
                          json={"monthly_spend_limit_usd": 0.5}).status_code == 200
    long_text = ("A sentence of speech, ten words long, to be said aloud. " * 18)[:1000]     # $0.10
    statuses = []
    for _ in range(8):
        response = requests.post(f"{api}/v1/audio/speech", headers=auth(key), timeout=60,
                                 json={"input": long_text, "voice": SYSTEM_VOICE})
        statuses.append(response.status_code)
        if response.status_code == 402:
            break
    assert statuses == [200, 200, 200, 200, 402]                       # 0.0029 + 4 × 0.10 ≤ 0.50 < + 0.10
    error = response.json()["error"]
    assert error["code"] == "key_spend_limit_exceeded"
    assert "0.0971 USD left" in error["message"] and re.search(r"resets at \d{4}-\d\d-01T00:00:00Z", error["message"])
    assert round(before - stack.balance(first), 6) == 0.4
    limits = requests.get(f"{api}/v1/limits", headers=auth(first), timeout=30)
    assert limits.status_code == 200 and limits.json()["key"]["scopes"][0] == "speech"

    # Revoked: the next paid call is refused at once (the reserve reads the key), nothing charged.
    assert requests.delete(f"{api}/v1/keys/{key_id}", headers=auth(first), timeout=30).json()["status"] == "revoked"
    balance = stack.balance(first)
    refused = requests.post(f"{api}/v1/audio/speech", headers=auth(key), timeout=60,
                            json={"input": TEXT, "voice": SYSTEM_VOICE})
    assert refused.status_code in (401, 403) and refused.json()["error"]["code"] in ("auth_error", "forbidden")
    assert stack.balance(first) == balance
    # The account's last key that can manage keys stays.
    first_id = requests.get(f"{api}/v1/limits", headers=auth(first), timeout=30).json()["key"]["key_id"]
    last = requests.delete(f"{api}/v1/keys/{first_id}", headers=auth(first), timeout=30)
    assert last.status_code == 409 and last.json()["error"]["code"] == "conflict"
    audit_consistent(stack)
    # The operator may revoke it (a compromised account): kyma-admin lists and revokes by key id.
    assert first_id in stack.admin("keys", account).stdout
    assert "revoked 1 key(s)" in stack.admin("revoke-key", "--account", account, "--key-id", first_id).stdout
    after = requests.post(f"{api}/v1/audio/speech", headers=auth(first), timeout=60,
                          json={"input": TEXT, "voice": SYSTEM_VOICE})
    assert after.status_code == 401                     # kyma-admin flushed the authorizer cache


@pytest.fixture(scope="module")
def same_price_stack(tmp_path_factory):
    """A stack whose clone costs what a 29-character speech request does, so a key's remaining limit
    affords exactly K of any mix of them."""
    s = StackProcess(tmp_path_factory.mktemp("keys"), {"VOICE_CLONE_PRICE_MICROS": "2900"})
    yield s
    s.stop()


def _paid_mix(stack, key: str, n: int, rng: random.Random, *, cut: bool) -> list[tuple[str, int]]:
    barrier = threading.Barrier(n)
    kinds = [("clone", "whole", "stream")[i % 3] for i in range(n)]
    cuts = [rng.randint(1, 4) if cut and rng.random() < 0.5 else 0 for _ in range(n)]

    def one(i: int) -> tuple[str, int]:
        kind = kinds[i]
        barrier.wait()
        if kind == "clone":
            response = requests.post(f"{stack.api_url}/v1/audio/voice-clone", headers=auth(key), timeout=120,
                                     files={"file": ("reference.mp3", reference_mp3(), "audio/mpeg")})
            return kind, response.status_code
        body = {"input": TEXT, "voice": SYSTEM_VOICE, **({"stream_format": "audio"} if kind == "stream" else {})}
        with requests.post(f"{stack.api_url}/v1/audio/speech", headers=auth(key), json=body, timeout=120,
                           stream=kind == "stream") as response:
            if kind == "stream" and cuts[i] and response.status_code == 200:
                for n_read, _ in enumerate(response.iter_content(256)):
                    if n_read + 1 >= cuts[i]:
                        break                                   # the client goes away mid-stream
                response.raw.close()
            else:
                with contextlib.suppress(requests.exceptions.ChunkedEncodingError):   # cut by MiniMax failing
                    _ = response.content
            return kind, response.status_code

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(one, range(n)))


def _month_usd(stack, key_first: str, key_id: str) -> float:
    listed = requests.get(f"{stack.api_url}/v1/keys", headers=auth(key_first), timeout=30).json()["keys"]
    return {k["key_id"]: k for k in listed}[key_id]["spent_this_month_usd"]


def _settled(stack, first: str, timeout: float = 30.0) -> list[dict]:
    import time

    deadline = time.monotonic() + timeout
    while True:
        entries = requests.get(f"{stack.api_url}/v1/credits/ledger?limit=100", headers=auth(first),
                               timeout=30).json()["entries"]
        charges = [e for e in entries if e["type"] == "charge"]
        if all(e["status"] != "pending" for e in charges) or time.monotonic() > deadline:
            return charges
        time.sleep(0.2)


def _capped(stack, k: int) -> tuple[str, str, str]:
    account, first = stack.new_account("50")
    for endpoint in ("speech", "voice-clone"):
        stack.admin("set-limits", account, endpoint, "--per-minute", "1000", "--burst", "1000")
    stack.admin("set-limits", account, "speech_stream", "--concurrent", "100")
    limit = round(k * COST_USD + 0.0028, 6)                 # K requests fit; K + 1 do not
    made = requests.post(f"{stack.api_url}/v1/keys", headers=auth(first), timeout=30,
                         json={"name": "capped", "monthly_spend_limit_usd": limit}).json()
    return first, made["key"], made["key_id"]


def test_forty_concurrent_mixed_paid_requests_on_a_key_affording_k_exactly_k_succeed(same_price_stack):
    stack, k = same_price_stack, 9
    first, key, key_id = _capped(stack, k)
    results = _paid_mix(stack, key, 40, random.Random(20), cut=False)
    statuses = [s for _, s in results]
    assert statuses.count(200) == k and statuses.count(402) == 40 - k, results
    charges = _settled(stack, first)
    assert [c["status"] for c in charges] == ["charged"] * k
    assert _month_usd(stack, first, key_id) == round(k * COST_USD, 6)
    assert round(50 - stack.balance(first), 6) == round(k * COST_USD, 6)
    audit_consistent(stack)


@pytest.mark.parametrize("failures", [False, True])
def test_forty_concurrent_with_client_cuts_and_minimax_failures_mid_stream_never_overshoot(same_price_stack,
                                                                                          failures):
    stack, k = same_price_stack, 9
    first, key, key_id = _capped(stack, k)
    if failures:
        requests.post(f"{stack.sandbox_url}/__sandbox/fail_when", timeout=10, json={
            "path": "/v1/t2a_v2", "code": "stream_error", "after_chunks": 3, "match": '"stream": true'})
    try:
        results = _paid_mix(stack, key, 40, random.Random(7 if failures else 3), cut=True)
    finally:
        requests.post(f"{stack.sandbox_url}/__sandbox/clear_failures", timeout=10)
    assert {s for _, s in results} <= {200, 402, 502}, results
    charges = _settled(stack, first)
    charged = [c for c in charges if c["status"] == "charged"]
    assert len(charged) <= k and all(c["status"] in ("charged", "released") for c in charges)
    # The key's month is its charges: every released hold gave its amount back.
    assert _month_usd(stack, first, key_id) == round(len(charged) * COST_USD, 6)
    assert round(50 - stack.balance(first), 6) == round(len(charged) * COST_USD, 6)
    if failures and any(kind == "stream" and s == 200 for kind, s in results):
        assert any(c["status"] == "released" for c in charges)
    # What came back can be spent, up to the cap exactly.
    more = [requests.post(f"{stack.api_url}/v1/audio/speech", headers=auth(key), timeout=60,
                          json={"input": TEXT, "voice": SYSTEM_VOICE}).status_code
            for _ in range(k - len(charged) + 1)]
    assert more == [200] * (k - len(charged)) + [402]
    audit_consistent(stack)


def test_n_plus_one_streams_on_a_limit_of_n_one_is_429_no_hold_left_then_one_more_is_accepted(stack):
    n = 3
    account, key = stack.new_account("10")
    stack.admin("set-limits", account, "speech", "--per-minute", "100", "--burst", "100")
    stack.admin("set-limits", account, "speech_stream", "--concurrent", str(n))
    long_text = ("Streams hold capacity while they run. " * 60)[:2000]
    barrier = threading.Barrier(n + 1)

    def stream(_: int) -> tuple[int, dict, bytes]:
        barrier.wait()
        with requests.post(f"{stack.api_url}/v1/audio/speech", headers=auth(key), timeout=120, stream=True,
                           json={"input": long_text, "voice": SYSTEM_VOICE, "stream_format": "audio"}) as r:
            return r.status_code, dict(r.headers), r.content

    with ThreadPoolExecutor(n + 1) as pool:
        results = list(pool.map(stream, range(n + 1)))
    refused = [r for r in results if r[0] == 429]
    assert len(refused) == 1 and sum(r[0] == 200 for r in results) == n, [r[0] for r in results]
    assert json.loads(refused[0][2])["error"]["code"] == "too_many_concurrent"
    assert int(refused[0][1]["Retry-After"]) >= 1
    charges = _settled(stack, key)
    assert len(charges) == n and all(c["status"] == "charged" for c in charges)      # no hold for the 429
    limits = requests.get(f"{stack.api_url}/v1/limits", headers=auth(key), timeout=30).json()
    assert limits["concurrency"]["speech_stream"] == {"limit": n, "in_flight": 0}
    with requests.post(f"{stack.api_url}/v1/audio/speech", headers=auth(key), timeout=120, stream=True,
                       json={"input": TEXT, "voice": SYSTEM_VOICE, "stream_format": "audio"}) as again:
        assert again.status_code == 200 and again.content
    audit_consistent(stack)
