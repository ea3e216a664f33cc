"""Over HTTP against `make run` (its own stack here: the template's throttles on, MiniMax's 60 a minute
as the shared upstream budget, a quicker sandbox):

- a whole file (no stream_format) is charged only when delivered: a client gone before the first
  byte is released, with an Idempotency-Key it is charged and the retry replays, a client that
  reads it is charged once; the audit stays consistent;
- one busy customer never refuses another: two accounts busy within their own limits leave a
  quiet third one served (no 429), and when the shared quota itself is full every refusal is a
  503 with Retry-After and leaves no hold.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import pytest
import requests
from helpers import SYSTEM_VOICE

from e2e.conftest import StackProcess

pytestmark = pytest.mark.long  # over a minute: runs first (tests/conftest.py)

HD_MICROS_PER_CHAR = 100          # $0.10 per 1,000 characters


@pytest.fixture(scope="module")
def fair_stack(tmp_path_factory):
    s = StackProcess(tmp_path_factory.mktemp("fair"), env={
        "KYMA_LOCAL_THROTTLING": "on", "KYMA_LOCAL_UPSTREAM_SPEECH_RPM": "",   # as `make run`
        "KYMA_SANDBOX_CHUNK_INTERVAL_MS": "10"})       # 3,000 characters in about 12 s, not 45
    yield s
    s.stop()


def auth(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


def text_of(n: int) -> str:
    return ("Every word is paid for only when it arrives. " * (n // 40 + 1))[:n]


def charges(stack: StackProcess, key: str) -> list[dict]:
    entries = requests.get(f"{stack.api_url}/v1/credits/ledger?limit=100", headers=auth(key), timeout=30).json()
    return [e for e in entries["entries"] if e["type"] == "charge"]


def settled(stack: StackProcess, key: str, timeout: float = 90) -> list[dict]:
    """The account's charges once none is pending any more."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = charges(stack, key)
        if found and all(e["status"] != "pending" for e in found):
            return found
        time.sleep(0.2)
    raise AssertionError(f"still pending: {charges(stack, key)}")


def leave_before_the_first_byte(stack: StackProcess, key: str, body: dict, headers: dict | None = None) -> None:
    """Send the whole request, wait, check that no byte came back, close the socket."""
    url = urlsplit(stack.api_url)
    data = json.dumps(body).encode()
    head = "".join(f"{k}: {v}\r\n" for k, v in {
        "Host": url.netloc, **auth(key), "Content-Type": "application/json", "Content-Length": str(len(data)),
        **(headers or {})}.items())
    sock = socket.create_connection((url.hostname, url.port), timeout=10)
    sock.sendall(f"POST {url.path}/v1/audio/speech HTTP/1.1\r\n{head}\r\n".encode() + data)
    time.sleep(0.5)
    sock.setblocking(False)
    with pytest.raises(BlockingIOError):
        sock.recv(1)                        # nothing has arrived: the file is still being made
    sock.close()


def audit_consistent(stack: StackProcess) -> None:
    audit = stack.admin("audit", check=False)
    assert audit.returncode == 0 and "consistent" in audit.stdout, audit.stdout


# ── whole files: charged only when delivered ────────────────────────────
@pytest.mark.parametrize("chars", [300, 3000])
def test_a_whole_file_whose_client_left_before_the_first_byte_is_released(fair_stack, chars):
    requests.post(f"{fair_stack.api_url}/v1/audio/speech", headers=auth(fair_stack.api_key), timeout=60,
                  json={"input": "Warm up.", "voice": SYSTEM_VOICE})      # a warm environment: timings hold
    _, key = fair_stack.new_account("10")
    leave_before_the_first_byte(fair_stack, key, {"input": text_of(chars), "voice": SYSTEM_VOICE})
    (charge,) = settled(fair_stack, key)
    assert (charge["status"], charge["reference"]["characters"]) == ("released", chars)
    assert fair_stack.balance(key) == 10.0
    audit_consistent(fair_stack)


@pytest.mark.parametrize("chars", [300, 3000])
def test_with_an_idempotency_key_the_left_file_is_charged_and_the_retry_replays_it(fair_stack, chars):
    _, key = fair_stack.new_account("10")
    body = {"input": text_of(chars), "voice": SYSTEM_VOICE}
    idem = {"Idempotency-Key": f"left-{chars}"}
    leave_before_the_first_byte(fair_stack, key, body, idem)
    (charge,) = settled(fair_stack, key)
    assert charge["status"] == "charged"
    cost = chars * HD_MICROS_PER_CHAR / 1e6
    assert fair_stack.balance(key) == round(10 - cost, 6)
    retry = requests.post(f"{fair_stack.api_url}/v1/audio/speech", headers={**auth(key), **idem}, json=body,
                          timeout=120)
    assert retry.status_code == 200 and retry.headers["Idempotent-Replayed"] == "true"
    assert retry.headers["Content-Type"] == "audio/mpeg" and retry.content[:3] in (b"ID3", b"\xff\xfb")
    assert float(retry.headers["X-Kyma-Cost-USD"]) == cost
    assert len(charges(fair_stack, key)) == 1 and fair_stack.balance(key) == round(10 - cost, 6)   # once
    audit_consistent(fair_stack)


def test_a_client_that_reads_the_whole_file_is_charged_once(fair_stack):
    _, key = fair_stack.new_account("10")
    response = requests.post(f"{fair_stack.api_url}/v1/audio/speech", headers=auth(key), timeout=120,
                             json={"input": text_of(300), "voice": SYSTEM_VOICE})
    assert response.status_code == 200 and response.content[:3] in (b"ID3", b"\xff\xfb")
    assert len(response.content) > 18 * 16_000           # 18.3 s of 128 kbit/s mp3: the whole file
    assert float(response.headers["X-Kyma-Balance-USD"]) == 9.97
    (charge,) = settled(fair_stack, key)
    assert charge["status"] == "charged" and fair_stack.balance(key) == 9.97
    audit_consistent(fair_stack)


# ── one busy customer never refuses another ─────────────────────────────
def at_second_below(limit: int) -> None:
    """Wait until the UTC minute is young enough for a test to fit in it (the budget is per minute)."""
    while time.time() % 60 >= limit:
        time.sleep(0.2)


def test_two_busy_accounts_within_their_limits_never_refuse_a_quiet_one(fair_stack):
    busy = [fair_stack.new_account("20") for _ in range(2)]
    for account, _ in busy:           # 8 a second for 5 s is inside this limit (its own)
        fair_stack.admin("set-limits", account, "speech", "--per-minute", "40", "--burst", "20")
    _, quiet = fair_stack.new_account("20")
    body = {"input": "Quick.", "voice": SYSTEM_VOICE}
    results: dict[str, list] = {"busy": [], "quiet": []}
    lock = threading.Lock()

    def send(who: str, key: str) -> None:
        r = requests.post(f"{fair_stack.api_url}/v1/audio/speech", headers=auth(key), json=body, timeout=120)
        with lock:
            results[who].append(r)

    at_second_below(25)
    for _ in range(8):                # the quiet account's earlier requests this minute
        send("quiet", quiet)
    with ThreadPoolExecutor(48) as pool:
        started = time.monotonic()
        for tick in range(40):        # 8 a second for 5 s, from each busy account
            time.sleep(max(0.0, started + tick / 8 - time.monotonic()))
            for _, key in busy:
                pool.submit(send, "busy", key)
            if tick % 8 == 4:         # and the quiet one, once a second meanwhile
                pool.submit(send, "quiet", quiet)
    assert [r.status_code for r in results["quiet"]] == [200] * 13
    statuses = [r.status_code for r in results["busy"]]
    assert len(statuses) == 80 and set(statuses) <= {200, 503}, statuses       # never 429: within limits
    refused = [r for r in results["busy"] if r.status_code == 503]
    assert refused, "80 requests in 5 s are more than MiniMax's 60 a minute"
    assert all(r.json()["error"]["code"] == "service_unavailable" and 1 <= int(r.headers["Retry-After"]) <= 60
               for r in refused)
    assert statuses.count(200) <= 40            # the busy ones together: at most the open part
    for _, key in busy:
        assert all(e["status"] == "charged" for e in charges(fair_stack, key))   # no hold left by a refusal
    audit_consistent(fair_stack)


def test_when_the_shared_quota_is_full_every_refusal_is_503_with_retry_after_and_no_hold(fair_stack):
    tenants = [fair_stack.new_account("20") for _ in range(5)]
    for account, _ in tenants:
        fair_stack.admin("set-limits", account, "speech", "--per-minute", "40", "--burst", "40")
    body = {"input": "Full.", "voice": SYSTEM_VOICE}         # 5 characters: $0.0005
    time.sleep(60 - time.time() % 60)                        # a fresh minute: nothing of it used yet
    with ThreadPoolExecutor(32) as pool:
        futures = [(key, pool.submit(requests.post, f"{fair_stack.api_url}/v1/audio/speech", headers=auth(key),
                                     json=body, timeout=120))
                   for _ in range(20) for _, key in tenants]
        results = [(key, f.result()) for key, f in futures]
    statuses = [r.status_code for _, r in results]
    assert set(statuses) == {200, 503}, statuses             # 100 asked of MiniMax's 60: only ours refuses
    assert statuses.count(200) <= 60 and statuses.count(503) >= 40
    for _, r in results:
        if r.status_code == 503:
            assert r.json()["error"]["code"] == "service_unavailable"
            assert 1 <= int(r.headers["Retry-After"]) <= 60
    for _, key in tenants:
        served = sum(1 for k, r in results if k == key and r.status_code == 200)
        entries = charges(fair_stack, key)
        assert len(entries) == served and all(e["status"] == "charged" for e in entries)   # refused: no hold
        assert fair_stack.balance(key) == round(20 - served * 0.0005, 6)
    audit_consistent(fair_stack)
