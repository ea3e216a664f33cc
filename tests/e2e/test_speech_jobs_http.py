"""Speech jobs against the local stack, as `make run` starts it: the API over HTTP, the worker fed by
the embedded SQS queue (delays, redelivery, dead-letter queue), the sweep on its schedule and the
MiniMax sandbox's async T2A with real audio.  The audio is measured by decoding it (PyAV), not
from our metadata."""

from __future__ import annotations

import io
import json
import time
from concurrent.futures import ThreadPoolExecutor

import audio_fixtures as fx
import av
import boto3
import pytest
import requests

from e2e.conftest import StackProcess
from kyma_local.sandbox.control import SandboxControl

pytestmark = pytest.mark.long  # over a minute: runs first (tests/conftest.py)

RATE_PER_1K = 0.10
SLOTS = 3


def book(chars: int) -> str:
    sentence = "The quick brown fox jumps over the lazy dog near the river bank. "
    paragraph = sentence * 12 + "\n\n"
    text = (paragraph * (chars // len(paragraph) + 1))[:chars]
    return text[:-1] + "." if text.endswith(" ") else text


@pytest.fixture(scope="module")
def jobs_stack(tmp_path_factory):
    s = StackProcess(tmp_path_factory.mktemp("jobs-stack"), env={
        "KYMA_SANDBOX_ASYNC_SECONDS": "2", "KYMA_SANDBOX_ASYNC_MS_PER_CHAR": "2",
        "JOB_POLL_SECONDS": "1", "JOB_SLOT_RETRY_SECONDS": "1", "JOB_UPSTREAM_SLOTS": str(SLOTS),
        "JOB_MAX_ACTIVE": "4"})
    yield s
    s.stop()


def auth(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


def submit(stack, key, body, headers=None):
    return requests.post(f"{stack.api_url}/v1/audio/speech/jobs", json=body, headers={**auth(key), **(headers or {})},
                         timeout=60)


def get(stack, key, job_id):
    response = requests.get(f"{stack.api_url}/v1/audio/speech/jobs/{job_id}", headers=auth(key), timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def wait(stack, key, job_id, *, until=240.0, seen=None):
    deadline = time.monotonic() + until
    while time.monotonic() < deadline:
        job = get(stack, key, job_id)
        if seen is not None and (not seen or seen[-1] != job["status"]):
            seen.append(job["status"])
        if job["status"] in ("succeeded", "failed", "canceled"):
            return job
        time.sleep(0.5)
    raise AssertionError(f"job {job_id} did not finish: {job}")


def decoded_seconds(data: bytes) -> float:
    """What a player plays: every decoded sample, by PyAV (FFmpeg)."""
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.audio[0]
        samples = sum(frame.samples for frame in container.decode(stream))
        return samples / stream.rate


def embedded_s3(stack):
    state = json.loads(stack.state_file.read_text())
    return boto3.client("s3", endpoint_url=state["aws_endpoint"], region_name=state["region"],
                        aws_access_key_id="local", aws_secret_access_key="local"), state["buckets"]["JobsBucket"]


def clone(stack, key) -> str:
    response = requests.post(f"{stack.api_url}/v1/audio/voice-clone", headers=auth(key),
                             files={"file": ("reference.mp3", fx.mp3_cbr(12.0), "audio/mpeg")},
                             data={"name": "narrator"}, timeout=60)
    assert response.status_code == 200, response.text
    return response.json()["voice_id"]


def test_a_120000_character_book_with_a_cloned_voice_is_delivered_and_charged_once(jobs_stack):
    account, key = jobs_stack.new_account("50")
    voice = clone(jobs_stack, key)
    after_clone = jobs_stack.balance(key)
    response = submit(jobs_stack, key, {"input": book(120_000), "voice_id": voice, "metadata": {"book": "42"}})
    assert response.status_code == 202, response.text
    job = response.json()
    assert response.headers["Location"] == f"/v1/audio/speech/jobs/{job['job_id']}"
    assert job["status"] == "queued" and job["cost_usd"] == 12.0
    seen = ["queued"]
    done = wait(jobs_stack, key, job["job_id"], seen=seen)
    assert seen == ["queued", "running", "succeeded"], seen
    assert done["progress"] == {"parts_done": 3, "parts_total": 3} and done["metadata"] == {"book": "42"}
    # The audio downloads and plays; its decoded duration is the sum of the parts' decoded durations
    audio = requests.get(done["output"]["audio_url"], timeout=60)
    assert audio.status_code == 200 and audio.headers["Content-Type"] == "audio/mpeg"
    s3, bucket = embedded_s3(jobs_stack)
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=f"jobs/{account}/{job['job_id']}/parts/")
                  ["Contents"] if o["Key"].endswith(".mp3"))
    assert len(keys) == 3
    parts = [decoded_seconds(s3.get_object(Bucket=bucket, Key=k)["Body"].read()) for k in keys]
    total = decoded_seconds(audio.content)
    assert total == pytest.approx(sum(parts), abs=0.05), (total, parts)
    assert done["output"]["duration_ms"] / 1000 == pytest.approx(total, abs=0.05)
    # Captions line up: the last cue ends at the audio's end (± 50 ms), in SRT and WebVTT alike
    import webvtt

    vtt = webvtt.from_buffer(io.StringIO(requests.get(done["output"]["vtt_url"], timeout=30).text))
    srt = webvtt.from_buffer(io.StringIO(requests.get(done["output"]["srt_url"], timeout=30).text), format="srt")
    assert len(vtt.captions) == len(srt.captions) > 3
    assert vtt.captions[-1].end_time.in_milliseconds() / 1000 == pytest.approx(total, abs=0.05)
    assert srt.captions[-1].end_time.in_milliseconds() / 1000 == pytest.approx(total, abs=0.05)
    # One charge of exactly 120,000 x the rate; usage counts it; the books balance
    ledger = requests.get(f"{jobs_stack.api_url}/v1/credits/ledger?limit=100", headers=auth(key), timeout=30).json()
    charges = [e for e in ledger["entries"] if e.get("endpoint") == "speech-jobs"]
    assert [(e["status"], e["amount_usd"], e["reference"]["job_id"]) for e in charges] == [
        ("charged", 12.0, job["job_id"])]
    assert jobs_stack.balance(key) == pytest.approx(after_clone - 120_000 * RATE_PER_1K / 1000)
    usage = requests.get(f"{jobs_stack.api_url}/v1/usage", headers=auth(key), timeout=30).json()["usage"]
    assert [(u["characters"], u["cost_usd"], u["requests"]) for u in usage if u["endpoint"] == "speech-jobs"] == [
        (120_000, 12.0, 1)]
    assert "consistent" in jobs_stack.admin("audit").stdout


def test_a_part_refused_upstream_fails_the_job_and_the_money_comes_back(jobs_stack):
    control = SandboxControl(jobs_stack.sandbox_url)
    _, key = jobs_stack.new_account("10")
    control.fail_when("/v1/t2a_async_v2", 1026, match="a forbidden sentence")
    text = book(6_000) + " This is a forbidden sentence."
    job = submit(jobs_stack, key, {"input": text, "voice_id": "English_expressive_narrator"}).json()
    assert jobs_stack.balance(key) == pytest.approx(10 - len(text) * RATE_PER_1K / 1000)   # the whole price held
    done = wait(jobs_stack, key, job["job_id"])
    assert done["status"] == "failed" and done["error"]["code"] == "content_rejected" and done["output"] is None
    assert jobs_stack.balance(key) == 10
    assert "consistent" in jobs_stack.admin("audit").stdout


def test_a_canceled_job_is_not_charged_and_a_finished_ones_files_can_be_deleted(jobs_stack):
    _, key = jobs_stack.new_account("10")
    job = submit(jobs_stack, key, {"input": book(20_000), "voice_id": "English_expressive_narrator"}).json()
    canceled = requests.delete(f"{jobs_stack.api_url}/v1/audio/speech/jobs/{job['job_id']}", headers=auth(key),
                               timeout=30).json()
    assert canceled["status"] == "canceled" and canceled["canceled"] is True
    assert jobs_stack.balance(key) == 10
    small = submit(jobs_stack, key, {"input": "A short story.", "voice_id": "English_expressive_narrator"}).json()
    assert wait(jobs_stack, key, small["job_id"])["status"] == "succeeded"
    gone = requests.delete(f"{jobs_stack.api_url}/v1/audio/speech/jobs/{small['job_id']}", headers=auth(key),
                           timeout=30).json()
    assert gone["files_deleted"] is True and gone["output"] is None and gone["status"] == "succeeded"
    assert "consistent" in jobs_stack.admin("audit").stdout


def test_twenty_jobs_by_five_accounts_finish_within_the_upstream_budget_while_speech_keeps_working(jobs_stack):
    control = SandboxControl(jobs_stack.sandbox_url)
    before = control.async_stats()["tasks"]
    keys = [jobs_stack.new_account("30")[1] for _ in range(5)]
    def submit_as_a_client(k):
        """Submit, waiting out the per-account rate limit (3 submissions a second) as Retry-After says."""
        while True:
            response = submit(jobs_stack, k, {"input": book(60_000), "voice_id": "English_expressive_narrator"})
            if response.status_code != 429 or response.json()["error"]["code"] != "rate_limited":
                return response
            time.sleep(float(response.headers["Retry-After"]))

    with ThreadPoolExecutor(10) as pool:
        responses = list(pool.map(submit_as_a_client, [k for k in keys for _ in range(4)]))
    assert all(r.status_code == 202 for r in responses), [r.text for r in responses if r.status_code != 202]
    jobs = [(k, r.json()["job_id"]) for k, r in zip([k for k in keys for _ in range(4)], responses, strict=True)]
    # Interactive speech keeps working meanwhile
    for _ in range(5):
        speech = requests.post(f"{jobs_stack.api_url}/v1/audio/speech", headers=auth(jobs_stack.api_key), timeout=60,
                               json={"input": "Still here.", "voice_id": "English_expressive_narrator"})
        assert speech.status_code == 200 and speech.content
        time.sleep(1)
    finished = [wait(jobs_stack, k, job_id, until=600) for k, job_id in jobs]
    assert [j["status"] for j in finished] == ["succeeded"] * 20
    stats = control.async_stats()
    assert stats["tasks"] - before == 40 and 1 <= stats["max_concurrent"] <= SLOTS, stats
    for k in keys:
        assert jobs_stack.balance(k) == pytest.approx(30 - 4 * 6.0)
    assert "consistent" in jobs_stack.admin("audit").stdout
