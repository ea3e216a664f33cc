"""Long-form speech jobs: the real functions (API, worker on SQS events, sweep), moto (its SQS queue
included) and the MiniMax sandbox's async T2A over loopback HTTP.

The worker is driven the way Lambda's SQS event source drives it: messages received from the
jobs queue, handed over as SQS events, deleted when the function reports them done and made
visible again when it reports them failed (a redelivery)."""

from __future__ import annotations

import itertools
import json
import time
from concurrent.futures import ThreadPoolExecutor

import audio_fixtures as fx
import boto3
import pytest
from helpers import START, SYSTEM_VOICE, api_event, body_of, clone_event, context, error_of
from integration.conftest import MINIMAX_KEY, PARAMETER  # the key other tests' SSM holds (cached in-process)

from kyma.audio import mp3
from kyma.jobs.split import spans
from kyma.platform.dynamo import from_item, to_item
from kyma_local.sandbox import MiniMaxSandbox

pytestmark = pytest.mark.long  # over a minute: runs first (tests/conftest.py)

RATE = 100_000                      # hd: $0.10 per 1,000 characters, in micro-dollars
PART = 2_000                        # parts of at most 2,000 characters in most tests (fast)


def book(chars: int) -> str:
    """`chars` characters of prose in paragraphs and sentences."""
    sentence = "The quick brown fox jumps over the lazy dog near the river bank. "
    paragraph = sentence * 12 + "\n\n"
    text = (paragraph * (chars // len(paragraph) + 1))[:chars]
    return text[:-1] + "." if text.endswith(" ") else text


@pytest.fixture
def sandbox(aws, monkeypatch, configure):
    from kyma.platform.config import config
    from kyma.providers.select import provider

    with MiniMaxSandbox(api_key=MINIMAX_KEY, first_chunk_ms=5, chunk_interval_ms=1, async_seconds=0.05,
                        async_ms_per_char=2) as running:
        boto3.client("ssm").put_parameter(Name=PARAMETER, Value=MINIMAX_KEY, Type="SecureString")
        configure(MINIMAX_API_KEY_PARAMETER=PARAMETER, MINIMAX_BASE_URL=running.base_url, JOB_POLL_SECONDS=0,
                  JOB_SLOT_RETRY_SECONDS=0, JOB_PART_MAX_CHARS=PART)
        provider.cache_clear()
        yield running
    provider.cache_clear()
    config.cache_clear()


@pytest.fixture
def api(sandbox, load_handler):
    return load_handler("SpeechJobsFunction")


@pytest.fixture
def worker(sandbox, load_handler):
    return load_handler("SpeechJobsWorkerFunction")


class Queue:
    """The jobs queue as Lambda's SQS event source reads it."""

    def __init__(self, cfg, handler) -> None:
        self.sqs = boto3.client("sqs")
        self.url = cfg.jobs_queue_url
        self.handler = handler
        self.delivered: list[dict] = []

    def receive(self, n: int = 10) -> list[dict]:
        return self.sqs.receive_message(QueueUrl=self.url, MaxNumberOfMessages=n, WaitTimeSeconds=0,
                                        AttributeNames=["All"]).get("Messages", [])

    def deliver(self, message: dict, *, times: int = 1) -> list[str]:
        """Hand one message to the worker `times` times (duplicates), as SQS records; delete it if
        the last delivery reported it done, else make it visible again.  The failed ids."""
        record = {"messageId": message["MessageId"], "receiptHandle": message["ReceiptHandle"],
                  "body": message["Body"], "attributes": message.get("Attributes", {}), "messageAttributes": {},
                  "eventSource": "aws:sqs", "awsRegion": "us-east-1",
                  "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:kyma-local-jobsqueue"}
        failed: list[str] = []
        for _ in range(times):
            self.delivered.append(json.loads(message["Body"]))
            answer = self.handler({"Records": [record]}, context("SpeechJobsWorkerFunction", 120))
            failed = [f["itemIdentifier"] for f in answer.get("batchItemFailures", [])]
        if failed:
            self.sqs.change_message_visibility(QueueUrl=self.url, ReceiptHandle=message["ReceiptHandle"],
                                               VisibilityTimeout=0)
        else:
            self.sqs.delete_message(QueueUrl=self.url, ReceiptHandle=message["ReceiptHandle"])
        return failed

    def drain(self, *, times: int = 1, until: float = 60.0, stop=lambda: False) -> None:
        deadline = time.monotonic() + until
        idle = 0
        while time.monotonic() < deadline and not stop():
            messages = self.receive()
            if not messages:
                idle += 1
                if idle > 20:
                    return
                time.sleep(0.05)
                continue
            idle = 0
            for message in messages:
                self.deliver(message, times=times)
        if not stop():
            raise AssertionError("the queue did not drain in time")


@pytest.fixture
def queue(cfg, worker):
    return Queue(cfg, worker)


def reloaded(configure, load_handler, cfg_fn, **env):
    """The API and the queue's worker as new Lambda environments reading `env` (configuration is read at INIT)."""
    configure(**env)
    return load_handler("SpeechJobsFunction"), Queue(cfg_fn(), load_handler("SpeechJobsWorkerFunction"))


def submit(api, account_id, body, headers=None):
    return api(api_event("POST", "/v1/audio/speech/jobs", body=json.dumps(body), account_id=account_id,
                         headers={"Content-Type": "application/json", **(headers or {})}), context())


def one(api, method, account_id, job_id):
    event = api_event(method, f"/v1/audio/speech/jobs/{job_id}", resource="/v1/audio/speech/jobs/{job_id}",
                      account_id=account_id)
    event["pathParameters"] = {"job_id": job_id}
    return api(event, context())


def get(api, account_id, job_id):
    return one(api, "GET", account_id, job_id)


def cancel(api, account_id, job_id):
    return one(api, "DELETE", account_id, job_id)


def job_row(ddb, cfg, job_id) -> dict:
    return from_item(ddb.get_item(TableName=cfg.jobs_table, Key=to_item({"job_id": job_id}),
                                  ConsistentRead=True)["Item"])


def holds(books, account) -> list[dict]:
    return [e for e in books.entries(account) if e.get("type") == "hold" and e.get("kind") == "speech_job"]


def download(url: str) -> bytes:
    """A presigned URL, fetched as a client would (moto answers S3's URLs in-process)."""
    import requests

    response = requests.get(url, timeout=10)
    assert response.status_code == 200, response.text[:200]
    return response.content


def assert_released_once(books, account, job_holds=1):
    entries = holds(books, account)
    assert len(entries) == job_holds and all(e["status"] == "released" for e in entries), entries
    assert books.balance(account) == START
    audit = books.audit(account)
    assert audit["consistent"], audit


# ── the whole path ────────────────────────────────────────────────────────
def test_a_cloned_voice_job_goes_queued_running_succeeded_and_is_charged_once(
        sandbox, api, queue, load_handler, accounts, books, ddb, cfg):
    clone = load_handler("VoiceCloneFunction")
    account = accounts.create(START).account_id
    voice = body_of(clone(clone_event(account, fx.mp3_cbr(12.0)), context()))["voice_id"]
    after_clone = books.balance(account)
    text = book(6_000)
    response = submit(api, account, {"input": text, "voice_id": voice, "metadata": {"book": "42"}})
    assert response["statusCode"] == 202, response
    created = body_of(response)
    job_id = created["job_id"]
    assert response["headers"]["Location"] == f"/v1/audio/speech/jobs/{job_id}"
    assert created["status"] == "queued" and created["characters"] == 6_000
    assert created["cost_usd"] == 0.6 and created["metadata"] == {"book": "42"}
    # The whole price is held at once, before any work
    assert books.balance(account) == after_clone - 6_000 * RATE // 1000
    assert [h["status"] for h in holds(books, account)] == ["open"]
    assert body_of(get(api, account, job_id))["status"] == "queued"

    n = len(spans(text, PART))
    assert n == 4                                      # paragraphs of 782 characters, two per part
    queue.deliver(queue.receive(1)[0])                 # start: split into parts
    running = body_of(get(api, account, job_id))
    assert running["status"] == "running" and running["progress"] == {"parts_done": 0, "parts_total": n}
    queue.drain()

    done = body_of(get(api, account, job_id))
    assert done["status"] == "succeeded" and done["progress"] == {"parts_done": n, "parts_total": n}
    audio = download(done["output"]["audio_url"])
    # The file is one MP3 (one ID3 tag at most, no per-part headers) and its duration, read from
    # its frames, is the sum of the parts' as MiniMax delivered them
    parts = [download_part(ddb, cfg, job_id, i) for i in range(n)]
    part_seconds = [mp3.duration(p) for p in parts]
    assert mp3.duration(audio) == pytest.approx(sum(part_seconds), abs=0.001)
    assert done["output"]["duration_ms"] == round(sum(part_seconds) * 1000)
    assert not audio.startswith(b"ID3") and audio.count(b"ID3\x04") == 0
    # Captions: every part's cues shifted to where the part starts; the last ends with the audio
    import io as _io

    import webvtt

    vtt = webvtt.from_buffer(_io.StringIO(download(done["output"]["vtt_url"]).decode()))
    srt = webvtt.from_buffer(_io.StringIO(download(done["output"]["srt_url"]).decode()), format="srt")
    cues = json.loads(download(done["output"]["subtitles_url"]))
    assert len(vtt.captions) == len(srt.captions) == len(cues) > n
    assert vtt.captions[-1].end_time.in_milliseconds() / 1000 == pytest.approx(mp3.duration(audio), abs=0.05)
    offsets = [round(sum(part_seconds[:i]) * 1000) for i in range(1, n)]   # where parts 2.. start
    assert all(any(c["time_begin"] == o for c in cues) for o in offsets)
    assert all(a["time_end"] <= b["time_begin"] for a, b in itertools.pairwise(cues))
    assert [c.text for c in vtt.captions] == [c["text"] for c in cues] == [c.text for c in srt.captions]
    # One charge of exactly characters x rate, in usage, the voice recorded as used
    entries = holds(books, account)
    assert [(e["status"], e["amount_micros"]) for e in entries] == [("charged", 6_000 * RATE // 1000)]
    assert books.balance(account) == after_clone - 600_000
    assert books.audit(account)["consistent"]
    usage = ddb.query(TableName=cfg.usage_table, KeyConditionExpression="account_id = :a",
                      ExpressionAttributeValues={":a": {"S": account}})["Items"]
    rows = {from_item(u)["endpoint"]: from_item(u) for u in usage}
    assert rows["speech-jobs"]["characters"] == 6_000 and rows["speech-jobs"]["cost_micros"] == 600_000
    voice_row = from_item(ddb.get_item(TableName=cfg.voices_table, Key=to_item({"voice_id": voice}))["Item"])
    assert voice_row["status"] == "active" and "used_at" in voice_row
    # Each part was one MiniMax task, in our async names, with the voice
    creates = sandbox.calls_to("/v1/t2a_async_v2")
    assert len(creates) == n and all(c.json["voice_setting"]["voice_id"] == voice for c in creates)
    assert "".join(c.json["text"] for c in creates) == text
    assert all(c.json["audio_setting"]["audio_sample_rate"] == 32000 and "sample_rate" not in c.json["audio_setting"]
               for c in creates)


def download_part(ddb, cfg, job_id, n) -> bytes:
    row = job_row(ddb, cfg, f"{job_id}#part#{n:03d}")
    return boto3.client("s3").get_object(Bucket=cfg.jobs_bucket, Key=row["audio_key"])["Body"].read()


@pytest.mark.parametrize("fmt", ["wav", "pcm_24000"])
def test_wav_and_pcm_jobs_join_their_samples_exactly(sandbox, api, queue, accounts, books, ddb, cfg, fmt):
    account = accounts.create(START).account_id
    job_id = body_of(submit(api, account, {"input": book(4_500), "voice_id": SYSTEM_VOICE,
                                           "response_format": fmt}))["job_id"]
    queue.drain()
    done = body_of(get(api, account, job_id))
    assert done["status"] == "succeeded", done
    audio = download(done["output"]["audio_url"])
    parts = [download_part(ddb, cfg, job_id, i) for i in range(len(spans(book(4_500), PART)))]
    assert len(parts) >= 3
    if fmt == "wav":
        import io
        import wave

        with wave.open(io.BytesIO(audio)) as joined:
            frames = joined.getnframes()
        part_frames = []
        for p in parts:
            with wave.open(io.BytesIO(p)) as w:
                part_frames.append(w.getnframes())
        assert frames == sum(part_frames) and audio[44:] == b"".join(p[44:] for p in parts)
    else:
        assert audio == b"".join(parts)
        assert done["output"]["duration_ms"] == round(len(audio) / 2 / 24_000 * 1000)


def test_a_120000_character_job_is_three_parts_of_at_most_50000(sandbox, accounts, books, configure, load_handler):
    from kyma.platform.config import config

    api, queue = reloaded(configure, load_handler, config, JOB_PART_MAX_CHARS=50_000)
    account = accounts.create(START).account_id
    text = book(120_000)
    job_id = body_of(submit(api, account, {"input": text, "voice_id": SYSTEM_VOICE,
                                           "response_format": "mp3_22050_32"}))["job_id"]
    queue.drain()
    done = body_of(get(api, account, job_id))
    assert done["status"] == "succeeded" and done["progress"]["parts_total"] == 3
    sizes = [len(c.json["text"]) for c in sandbox.calls_to("/v1/t2a_async_v2")]
    assert len(sizes) == 3 and max(sizes) <= 50_000 and sum(sizes) == 120_000
    assert [(e["status"], e["amount_micros"]) for e in holds(books, account)] == [("charged", 12_000_000)]
    assert books.audit(account)["consistent"]


def test_a_jobs_pronunciation_dict_reaches_minimax_with_every_part(sandbox, api, queue, accounts, books):
    account = accounts.create(START).account_id
    tone = ["Kyma/KEE-ma", "fox/focks"]
    job_id = body_of(submit(api, account, {"input": book(4_500), "voice_id": SYSTEM_VOICE,
                                           "pronunciation_dict": {"tone": tone}}))["job_id"]
    queue.drain()
    assert body_of(get(api, account, job_id))["status"] == "succeeded"
    sent = [c.json for c in sandbox.calls_to("/v1/t2a_async_v2")]
    assert len(sent) == len(spans(book(4_500), PART)) >= 3
    assert all(body["pronunciation_dict"] == {"tone": tone} for body in sent)
    assert [(e["status"], e["amount_micros"]) for e in holds(books, account)] == [("charged", 450_000)]


# ── refusals before the reserve ──────────────────────────────────────────
@pytest.mark.parametrize("body, status, code", [
    ({"input": "x" * 200_001, "voice_id": SYSTEM_VOICE}, 400, "input_too_long"),
    ({"input": "hi", "voice_id": SYSTEM_VOICE, "response_format": "flac"}, 400, "unsupported_format"),
    ({"input": "hi", "voice_id": SYSTEM_VOICE, "stream": True}, 400, "invalid_request"),
    ({"input": "hi", "voice_id": SYSTEM_VOICE, "metadata": {"k": 1}}, 400, "invalid_request"),
    ({"input": "hi", "voice_id": "kyma_ffffffffffffffff"}, 404, "voice_not_found"),
    ({"input": "hi"}, 400, "voice_required"),
    ({"input": "hi", "voice_id": SYSTEM_VOICE, "pronunciation_dict": {"tone": ["no separator"]}}, 400,
     "invalid_request"),
    ({"input": "hi", "voice_id": SYSTEM_VOICE, "pronunciation_dict": ["Kyma/KEE-ma"]}, 400, "invalid_request"),
    ({"input": "hi", "voice_id": SYSTEM_VOICE, "pronunciation_dict": {"tone": ["a/b"] * 101}}, 400,
     "invalid_request"),
])
def test_bad_jobs_are_4xx_free_and_queue_nothing(sandbox, api, queue, accounts, books, body, status, code):
    account = accounts.create(START).account_id
    error = error_of(submit(api, account, body))
    assert (error.status, error.code) == (status, code)
    assert books.balance(account) == START and holds(books, account) == [] and queue.receive() == []


def test_a_job_costing_more_than_the_balance_is_402(sandbox, api, queue, accounts, books):
    account = accounts.create(1_000_000).account_id          # $1: 10,000 characters
    error = error_of(submit(api, account, {"input": book(10_001), "voice_id": SYSTEM_VOICE}))
    assert (error.status, error.code) == (402, "insufficient_credits")
    assert books.balance(account) == 1_000_000 and queue.receive() == []


def test_another_accounts_voice_is_403_and_its_job_404(sandbox, api, queue, load_handler, accounts, books):
    clone = load_handler("VoiceCloneFunction")
    a, b = accounts.create(START).account_id, accounts.create(START).account_id
    voice = body_of(clone(clone_event(a, fx.mp3_cbr(12.0)), context()))["voice_id"]
    error = error_of(submit(api, b, {"input": "hello", "voice_id": voice}))
    assert (error.status, error.code) == (403, "voice_not_owned") and books.balance(b) == START
    job_id = body_of(submit(api, a, {"input": "hello", "voice_id": voice}))["job_id"]
    for call in (get, cancel):
        assert (error_of(call(api, b, job_id)).status, error_of(call(api, b, job_id)).code) == (404, "job_not_found")
    assert error_of(get(api, a, "job_nope")).code == "job_not_found"


def test_at_most_three_jobs_queued_or_running_per_account(sandbox, api, queue, accounts, books):
    account = accounts.create(START).account_id
    ids = [body_of(submit(api, account, {"input": "hello there", "voice_id": SYSTEM_VOICE}))["job_id"]
           for _ in range(3)]
    response = submit(api, account, {"input": "hello there", "voice_id": SYSTEM_VOICE})
    error = error_of(response)
    assert (error.status, error.code) == (429, "too_many_jobs") and response["headers"]["Retry-After"]
    assert len(holds(books, account)) == 3
    # Once one finishes (here: canceled), there is room again
    assert body_of(cancel(api, account, ids[0]))["status"] == "canceled"
    assert submit(api, account, {"input": "hello there", "voice_id": SYSTEM_VOICE})["statusCode"] == 202


def test_an_idempotency_key_makes_one_job_and_one_hold(sandbox, api, queue, accounts, books):
    account = accounts.create(START).account_id
    body = {"input": book(3_000), "voice_id": SYSTEM_VOICE}
    first = submit(api, account, body, {"Idempotency-Key": "book-42"})
    again = submit(api, account, body, {"Idempotency-Key": "book-42"})
    assert body_of(first)["job_id"] == body_of(again)["job_id"]
    assert again["headers"].get("Idempotent-Replayed") == "true"
    assert len(holds(books, account)) == 1
    other = submit(api, account, {**body, "input": "different"}, {"Idempotency-Key": "book-42"})
    assert error_of(other).code == "idempotency_conflict"


# ── failures: released exactly once, the audit consistent ────────────────
def test_a_part_refused_upstream_fails_the_job_and_releases_the_hold(sandbox, api, queue, accounts, books):
    account = accounts.create(START).account_id
    text = book(4_000) + " The forbidden words are here."
    sandbox.fail_when("/v1/t2a_async_v2", 1026, match="forbidden words")
    job_id = body_of(submit(api, account, {"input": text, "voice_id": SYSTEM_VOICE}))["job_id"]
    queue.drain()
    job = body_of(get(api, account, job_id))
    assert job["status"] == "failed" and job["error"]["code"] == "content_rejected" and job["output"] is None
    assert_released_once(books, account)


def test_a_task_failing_upstream_fails_the_job_once(sandbox, api, queue, accounts, books):
    account = accounts.create(START).account_id
    sandbox.async_tasks.fail_task_when("lazy dog", times=1)
    job_id = body_of(submit(api, account, {"input": book(5_000), "voice_id": SYSTEM_VOICE}))["job_id"]
    queue.drain()
    job = body_of(get(api, account, job_id))
    assert job["status"] == "failed" and job["error"]["code"] == "provider_error"
    assert_released_once(books, account)


def test_a_result_expired_before_it_was_fetched_fails_the_job(sandbox, api, queue, accounts, books, ddb, cfg):
    account = accounts.create(START).account_id
    job_id = body_of(submit(api, account, {"input": book(1_500), "voice_id": SYSTEM_VOICE}))["job_id"]
    queue.deliver(queue.receive(1)[0])                     # start
    queue.deliver(queue.receive(1)[0])                     # submit: the task is created
    time.sleep(0.1)
    sandbox.advance_clock(9 * 3600 + 1)                    # nobody polled for 9 hours
    queue.drain()
    job = body_of(get(api, account, job_id))
    assert job["status"] == "failed" and "expired" in job["error"]["message"]
    assert_released_once(books, account)


def test_a_worker_crash_between_steps_is_redelivered_and_finishes(sandbox, api, queue, accounts, books, monkeypatch):
    from kyma.jobs import store

    account = accounts.create(START).account_id
    job_id = body_of(submit(api, account, {"input": book(5_000), "voice_id": SYSTEM_VOICE}))["job_id"]
    original = store.Jobs.send_many
    crashes = []

    def crash_once(self, *args, **kwargs):
        if not crashes:
            crashes.append(1)
            raise ConnectionError("the worker died after the split, before its messages")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(store.Jobs, "send_many", crash_once)
    message = queue.receive(1)[0]
    assert queue.deliver(message) == [message["MessageId"]]          # reported failed: SQS redelivers it
    queue.drain()
    assert crashes and body_of(get(api, account, job_id))["status"] == "succeeded"
    assert len(sandbox.calls_to("/v1/t2a_async_v2")) == len(spans(book(5_000), PART))   # none twice
    assert [e["status"] for e in holds(books, account)] == ["charged"] and books.audit(account)["consistent"]


def test_duplicate_deliveries_of_every_step_submit_once_and_settle_once(sandbox, api, queue, accounts, books):
    account = accounts.create(START).account_id
    job_id = body_of(submit(api, account, {"input": book(5_000), "voice_id": SYSTEM_VOICE}))["job_id"]
    queue.drain(times=3)                                             # every message delivered three times
    assert body_of(get(api, account, job_id))["status"] == "succeeded"
    steps = {m["step"] for m in queue.delivered}
    assert {"start", "submit", "poll", "join"} <= steps
    assert len(sandbox.calls_to("/v1/t2a_async_v2")) == len(spans(book(5_000), PART))
    entries = holds(books, account)
    assert [(e["status"], e["amount_micros"]) for e in entries] == [("charged", 500_000)]
    assert books.balance(account) == START - 500_000 and books.audit(account)["consistent"]


def test_the_deadline_passing_fails_the_job_through_the_sweep(sandbox, accounts, books, load_handler, configure,
                                                               ddb, cfg):
    from kyma.platform.config import config

    # A deadline a slow machine cannot miss before the first step, then waited out from the job's own.
    api, queue = reloaded(configure, load_handler, config, JOB_DEADLINE_SECONDS=4)
    account = accounts.create(START).account_id
    job_id = body_of(submit(api, account, {"input": book(1_500), "voice_id": SYSTEM_VOICE}))["job_id"]
    queue.deliver(queue.receive(1)[0])                               # running
    time.sleep(max(0.0, int(job_row(ddb, cfg, job_id)["deadline_at"]) - time.time()) + 1.1)   # past it
    sweep = load_handler("SpeechJobsSweepFunction")
    outcome = sweep({"source": "aws.events"}, context("SpeechJobsSweepFunction", 120))
    assert outcome["timed_out"] == 1
    assert sweep({"source": "aws.events"}, context("SpeechJobsSweepFunction", 120))["timed_out"] == 0
    queue.drain()                                                    # its remaining steps find it finished
    job = body_of(get(api, account, job_id))
    assert job["status"] == "failed" and job["error"]["code"] == "job_timeout"
    assert_released_once(books, account)
    assert boto3.client("dynamodb").get_item(
        TableName=books.cfg.rate_counters_table,
        Key=to_item({"counter_id": "upstream-async#minimax"})).get("Item", {}).get("members") is None


def test_the_sweep_reads_every_page_of_active_jobs_and_stops_in_time_when_short(
        sandbox, accounts, books, load_handler, configure, ddb, cfg, monkeypatch):
    from kyma.jobs import store, worker
    from kyma.platform.config import config

    monkeypatch.setattr(store, "ACTIVE_PAGE_SIZE", 1)                 # one job per page of the index
    api, _ = reloaded(configure, load_handler, config, JOB_DEADLINE_SECONDS=4)
    accounts_ = [accounts.create(START).account_id for _ in range(3)]
    jobs = [body_of(submit(api, a, {"input": book(600), "voice_id": SYSTEM_VOICE}))["job_id"] for a in accounts_]
    time.sleep(max(0.0, max(int(job_row(ddb, cfg, j)["deadline_at"]) for j in jobs) - time.time()) + 1.1)
    sweeper = load_handler("SpeechJobsSweepFunction")
    # With too little of its invocation left it takes nothing on and says so
    short = sweeper({"source": "aws.events"}, context("SpeechJobsSweepFunction", int(worker.SWEEP_MARGIN_SECONDS) - 1))
    assert (short["timed_out"], short["unfinished"]) == (0, 1)
    outcome = sweeper({"source": "aws.events"}, context("SpeechJobsSweepFunction", 120))
    assert (outcome["timed_out"], outcome["unfinished"]) == (3, 0)
    for account, job_id in zip(accounts_, jobs, strict=True):
        assert body_of(get(api, account, job_id))["status"] == "failed"
        assert_released_once(books, account)


def test_the_job_hold_outlives_the_deadline_so_the_reconciler_leaves_it(sandbox, api, accounts, books, load_handler):
    account = accounts.create(START).account_id
    body_of(submit(api, account, {"input": "hello there", "voice_id": SYSTEM_VOICE}))
    hold = holds(books, account)[0]
    assert hold["expires_at"] - hold["created_at"] >= books.cfg.job_deadline_seconds
    released = load_handler("ReconcilerFunction")({"source": "aws.events"}, context("ReconcilerFunction", 120))
    assert released["released"] == 0 and holds(books, account)[0]["status"] == "open"


def test_a_cancel_racing_the_final_settle_exactly_one_wins(sandbox, api, queue, accounts, books, ddb, cfg):
    account = accounts.create(START).account_id
    job_id = body_of(submit(api, account, {"input": book(3_000), "voice_id": SYSTEM_VOICE}))["job_id"]
    # Everything up to the join
    queue.drain(stop=lambda: any(m["step"] == "join" for m in queue.delivered[-1:]) or
                job_row(ddb, cfg, job_id)["parts_done"] == 2)
    join = [m for m in queue.receive() if json.loads(m["Body"])["step"] == "join"]
    while not join:
        queue.drain(until=5, stop=lambda: job_row(ddb, cfg, job_id)["parts_done"] == 2)
        join = [m for m in queue.receive() if json.loads(m["Body"])["step"] == "join"]
    with ThreadPoolExecutor(2) as pool:
        settle = pool.submit(queue.deliver, join[0])
        canceled = pool.submit(cancel, api, account, job_id)
        settle.result()
        canceled = body_of(canceled.result())
    job = body_of(get(api, account, job_id))
    entries = holds(books, account)
    assert len(entries) == 1 and books.audit(account)["consistent"]
    if job["status"] == "succeeded":
        assert entries[0]["status"] == "charged" and canceled["canceled"] is False
        assert books.balance(account) == START - 300_000
    else:
        assert job["status"] == "canceled" and entries[0]["status"] == "released" and canceled["canceled"]
        assert books.balance(account) == START
        assert boto3.client("s3").list_objects_v2(Bucket=cfg.jobs_bucket,
                                                  Prefix=f"jobs/{account}/{job_id}/output").get("KeyCount") == 0


@pytest.mark.parametrize("winner", ["cancel", "settle"])
def test_cancel_and_settle_in_either_order_leave_one_outcome(sandbox, api, queue, accounts, books, ddb, cfg, winner):
    account = accounts.create(START).account_id
    job_id = body_of(submit(api, account, {"input": book(1_500), "voice_id": SYSTEM_VOICE}))["job_id"]
    while job_row(ddb, cfg, job_id).get("parts_done") != 1:
        for m in queue.receive():
            if json.loads(m["Body"])["step"] != "join":
                queue.deliver(m)
            else:
                join = m
        time.sleep(0.02)
    joins = [m for m in queue.receive() if json.loads(m["Body"])["step"] == "join"] or [join]
    if winner == "cancel":
        assert body_of(cancel(api, account, job_id))["status"] == "canceled"
        queue.deliver(joins[0])
        assert body_of(get(api, account, job_id))["status"] == "canceled"
        assert_released_once(books, account)
    else:
        queue.deliver(joins[0])
        after = body_of(cancel(api, account, job_id))
        assert after["status"] == "succeeded" and after["files_deleted"] is True
        assert [e["status"] for e in holds(books, account)] == ["charged"]
        assert books.balance(account) == START - 150_000 and books.audit(account)["consistent"]


# ── many jobs at once: the upstream budget holds ─────────────────────────
def test_twenty_jobs_by_five_accounts_all_finish_within_the_upstream_budget(sandbox, accounts, books, configure,
                                                                            load_handler):
    from kyma.platform.config import config

    api, queue = reloaded(configure, load_handler, config, JOB_UPSTREAM_SLOTS=3, JOB_MAX_ACTIVE=4)
    sandbox.async_tasks.seconds_per_task = 0.2
    owners = [accounts.create(START).account_id for _ in range(5)]
    jobs = [(owner, body_of(submit(api, owner, {"input": book(3_000), "voice_id": SYSTEM_VOICE}))["job_id"])
            for owner in owners for _ in range(4)]
    queue.drain(until=180)        # one poller: moto's in-process SQS is not safe for concurrent receivers
    assert all(body_of(get(api, owner, job_id))["status"] == "succeeded" for owner, job_id in jobs)
    stats = sandbox.async_tasks.stats()
    assert stats["tasks"] == 20 * len(spans(book(3_000), PART)) and 1 <= stats["max_concurrent"] <= 3
    for owner in owners:
        assert [e["status"] for e in holds(books, owner)] == ["charged"] * 4 and books.audit(owner)["consistent"]


# ── list, status filter, cursor; delete files ────────────────────────────
def test_the_list_is_newest_first_with_a_cursor_and_a_status_filter(sandbox, api, queue, accounts):
    account = accounts.create(START).account_id
    ids = [body_of(submit(api, account, {"input": f"hello {n}", "voice_id": SYSTEM_VOICE}))["job_id"]
           for n in range(3)]
    cancel(api, account, ids[0])

    def page(query):
        return body_of(api(api_event("GET", "/v1/audio/speech/jobs", account_id=account, query=query), context()))

    first = page("limit=2")
    assert [j["job_id"] for j in first["data"]] == ids[::-1][:2] and first["has_more"]
    rest = page(f"limit=2&cursor={first['next_cursor']}")
    assert [j["job_id"] for j in rest["data"]] == [ids[0]] and rest["next_cursor"] is None
    assert [j["job_id"] for j in page("status=canceled")["data"]] == [ids[0]]
    assert [j["job_id"] for j in page("status=queued")["data"]] == ids[:0:-1]
    bad = api(api_event("GET", "/v1/audio/speech/jobs", account_id=account, query="status=done"), context())
    assert error_of(bad).code == "invalid_request"
    bad = api(api_event("GET", "/v1/audio/speech/jobs", account_id=account, query="cursor=%%%"), context())
    assert error_of(bad).code == "invalid_request"


def test_a_poll_that_meets_a_transient_failure_polls_again_and_the_job_finishes(sandbox, api, queue, accounts, books):
    account = accounts.create(START).account_id
    job_id = body_of(submit(api, account, {"input": book(1_500), "voice_id": SYSTEM_VOICE}))["job_id"]
    sandbox.fail_when("/v1/query/t2a_async_query_v2", "http_500", times=2)
    sandbox.fail_when("/v1/files/retrieve", "connection_drop", times=1)
    queue.drain()
    assert body_of(get(api, account, job_id))["status"] == "succeeded"
    assert [c.injected for c in sandbox.calls_to("/v1/query/t2a_async_query_v2")][:2] == ["http_500"] * 2
    assert [e["status"] for e in holds(books, account)] == ["charged"] and books.audit(account)["consistent"]


def test_a_canceled_jobs_task_keeps_its_upstream_slot_until_minimax_finishes_it(sandbox, accounts, books, configure,
                                                                                 load_handler):
    from kyma.platform.config import config

    api, queue = reloaded(configure, load_handler, config, JOB_UPSTREAM_SLOTS=1)
    sandbox.async_tasks.seconds_per_task = 1.0
    account = accounts.create(START).account_id
    first = body_of(submit(api, account, {"input": book(1_500), "voice_id": SYSTEM_VOICE}))["job_id"]
    queue.deliver(queue.receive(1)[0])                          # start
    queue.deliver(queue.receive(1)[0])                          # submit: its task renders upstream
    assert body_of(cancel(api, account, first))["status"] == "canceled"
    assert books.balance(account) == START
    slots = boto3.client("dynamodb")

    def holders():
        item = slots.get_item(TableName=config().rate_counters_table,
                              Key=to_item({"counter_id": "upstream-async#minimax"})).get("Item", {})
        return set(from_item(item).get("members") or ()) if item else set()

    assert holders() == {f"{first}#part#000"}                   # MiniMax still renders it: still counted
    second = body_of(submit(api, account, {"input": book(1_500), "voice_id": SYSTEM_VOICE}))["job_id"]
    queue.drain(until=60)
    assert body_of(get(api, account, second))["status"] == "succeeded"
    assert sandbox.async_tasks.stats()["max_concurrent"] == 1 and holders() == set()
    assert [e["status"] for e in holds(books, account)] == ["released", "charged"]
    assert books.audit(account)["consistent"]


def test_a_lost_first_message_leaves_the_job_queued_until_the_sweep_starts_it(sandbox, accounts, books, configure,
                                                                               load_handler):
    from kyma.platform.config import config

    api, queue = reloaded(configure, load_handler, config, JOB_STUCK_SECONDS=0)
    account = accounts.create(START).account_id
    job_id = body_of(submit(api, account, {"input": book(1_500), "voice_id": SYSTEM_VOICE}))["job_id"]
    (lost,) = queue.receive(1)
    queue.sqs.delete_message(QueueUrl=queue.url, ReceiptHandle=lost["ReceiptHandle"])   # never delivered
    time.sleep(1.1)
    assert body_of(get(api, account, job_id))["status"] == "queued" and queue.receive() == []
    sweep = load_handler("SpeechJobsSweepFunction")
    assert sweep({"source": "aws.events"}, context("SpeechJobsSweepFunction", 120))["resumed"] == 1
    queue.drain()
    assert body_of(get(api, account, job_id))["status"] == "succeeded"
    assert [e["status"] for e in holds(books, account)] == ["charged"] and books.audit(account)["consistent"]


def test_a_sweep_short_of_time_for_the_timeouts_still_starts_a_job_whose_first_message_was_lost(
        sandbox, accounts, books, configure, load_handler, ddb, cfg):
    from kyma.jobs import worker
    from kyma.platform.config import config

    api, queue = reloaded(configure, load_handler, config, JOB_STUCK_SECONDS=0, JOB_DEADLINE_SECONDS=4)
    late, lost_one = (accounts.create(START).account_id for _ in range(2))
    expired = body_of(submit(api, late, {"input": book(600), "voice_id": SYSTEM_VOICE}))["job_id"]
    time.sleep(max(0.0, int(job_row(ddb, cfg, expired)["deadline_at"]) - time.time()) + 1.1)   # its deadline passes
    job_id = body_of(submit(api, lost_one, {"input": book(600), "voice_id": SYSTEM_VOICE}))["job_id"]
    lost = [m for m in queue.receive() if json.loads(m["Body"])["job_id"] == job_id]
    queue.sqs.delete_message(QueueUrl=queue.url, ReceiptHandle=lost[0]["ReceiptHandle"])   # never delivered
    # Time for the resumes but not for the timeouts: the expired job waits, the lost one is resent
    left = int(worker.SWEEP_MARGIN_SECONDS + worker.SWEEP_RESUME_SECONDS) - 1
    sweeper = load_handler("SpeechJobsSweepFunction")
    outcome = sweeper({"source": "aws.events"}, context("SpeechJobsSweepFunction", left))
    assert (outcome["timed_out"], outcome["unfinished"]) == (0, 1) and outcome["resumed"] >= 1
    queue.drain()
    assert body_of(get(api, lost_one, job_id))["status"] == "succeeded"
    assert [e["status"] for e in holds(books, lost_one)] == ["charged"] and books.audit(lost_one)["consistent"]
    assert body_of(get(api, late, expired))["status"] == "failed"
    assert_released_once(books, late)


def test_a_worker_that_died_mid_submit_never_submits_the_part_again_and_the_job_is_released(
        sandbox, accounts, books, configure, load_handler, monkeypatch):
    from kyma.jobs import store, worker
    from kyma.platform.config import config

    api, queue = reloaded(configure, load_handler, config, JOB_STUCK_SECONDS=0)
    account = accounts.create(START).account_id
    job_id = body_of(submit(api, account, {"input": book(1_500), "voice_id": SYSTEM_VOICE}))["job_id"]
    queue.deliver(queue.receive(1)[0])                               # start
    original = store.Jobs.move

    def die_after_the_call(self, key, *, was, to, **kwargs):
        if to == "submitted":
            raise SystemExit("the worker's process ended after MiniMax created the task")
        return original(self, key, was=was, to=to, **kwargs)

    monkeypatch.setattr(store.Jobs, "move", die_after_the_call)
    message = queue.receive(1)[0]
    with pytest.raises(SystemExit):
        queue.deliver(message)
    monkeypatch.setattr(store.Jobs, "move", original)
    queue.sqs.change_message_visibility(QueueUrl=queue.url, ReceiptHandle=message["ReceiptHandle"],
                                        VisibilityTimeout=0)
    queue.drain()                                                    # the redelivery finds the part claimed
    assert len(sandbox.calls_to("/v1/t2a_async_v2")) == 1
    monkeypatch.setattr(worker, "STALE_CLAIM_SECONDS", 0)            # the claim is older than any submit call
    sweep = load_handler("SpeechJobsSweepFunction")
    sweep({"source": "aws.events"}, context("SpeechJobsSweepFunction", 120))
    queue.drain()
    job = body_of(get(api, account, job_id))
    assert job["status"] == "failed" and job["error"]["code"] == "provider_error"
    assert len(sandbox.calls_to("/v1/t2a_async_v2")) == 1            # never a second task for the part
    assert_released_once(books, account)


def test_parts_take_the_shared_upstream_budget_as_batch_work_never_its_interactive_reserve(
        sandbox, accounts, books, configure, load_handler, cfg):
    from kyma.accounts.upstream import Budget, UpstreamBudget
    from kyma.platform.config import config

    if time.time() % 60 > 40:                         # one minute's budget throughout the test
        time.sleep(61 - time.time() % 60)
    api, queue = reloaded(configure, load_handler, config, UPSTREAM_SPEECH_RPM=6)   # open 4, reserve 2
    budget = Budget.of(config())
    account, quiet = accounts.create(START).account_id, accounts.create(START).account_id
    text = book(8_000)
    assert len(spans(text, PART)) > budget.open > budget.batch_share
    job_id = body_of(submit(api, account, {"input": text, "voice_id": SYSTEM_VOICE}))["job_id"]
    queue.drain(until=20)
    # Jobs took batch work's share of this minute and stopped there: the rest waits for the next minute
    assert len(sandbox.calls_to("/v1/t2a_async_v2")) == budget.batch_share
    job = body_of(get(api, account, job_id))
    assert job["status"] == "running" and job["progress"]["parts_done"] == budget.batch_share
    # ...and the reserve is still there for a light interactive customer
    UpstreamBudget(boto3.client("dynamodb"), config()).take(quiet, light=True)
    assert books.balance(account) == START - 800_000 and books.audit(account)["consistent"]


def _keyed_submit(api, ctx, body):
    event = api_event("POST", "/v1/audio/speech/jobs", body=json.dumps(body), account_id=ctx["account_id"],
                      headers={"Content-Type": "application/json"})
    event["requestContext"]["authorizer"].update(ctx)
    return api(event, context())


def test_a_job_on_a_capped_key_counts_in_its_month_kept_when_delivered_given_back_when_failed(
        sandbox, api, queue, accounts, books, ddb, cfg, load_handler):
    """Issue 20's cap covers jobs: the reserve adds the job's price to the key's month (402 over the
    cap, nothing reserved); the worker's settle keeps it, its release gives it back, in the money's
    own transaction; the audit holds the month to the key's charges and open holds."""
    from integration.test_keys import call, month_of_key

    authorizer = load_handler("AuthorizerFunction")
    keys = load_handler("KeysFunction")
    demo = accounts.create(START)
    first = authorizer({"type": "REQUEST", "headers": {"Authorization": f"Bearer {demo.api_key}"},
                        "methodArn": "arn:aws:execute-api:us-east-1:123456789012:api/dev/POST/v1/keys",
                        "requestContext": {"requestId": "r"}}, context())["context"]
    made = body_of(call(keys, "POST", "/v1/keys", first, {"name": "jobs", "scopes": ["speech"],
                                                          "monthly_spend_limit_usd": 1.0}))
    ctx = authorizer({"type": "REQUEST", "headers": {"Authorization": f"Bearer {made['key']}"},
                      "methodArn": "arn:aws:execute-api:us-east-1:123456789012:api/dev/POST/v1/audio/speech/jobs",
                      "requestContext": {"requestId": "r"}}, context())["context"]
    account, text = demo.account_id, book(4_000)          # $0.40 a job on this key's $1.00
    ok = _keyed_submit(api, ctx, {"input": text, "voice_id": SYSTEM_VOICE})
    assert ok["statusCode"] == 202, body_of(ok)
    assert month_of_key(ddb, cfg, made["key_id"]) == 400_000          # reserved: counted at once
    queue.drain()
    assert body_of(get(api, account, body_of(ok)["job_id"]))["status"] == "succeeded"
    assert month_of_key(ddb, cfg, made["key_id"]) == 400_000          # charged: kept
    sandbox.fail_when("/v1/t2a_async_v2", 1026, match="forbidden words")
    failing = _keyed_submit(api, ctx, {"input": text + " The forbidden words are here.", "voice_id": SYSTEM_VOICE})
    assert failing["statusCode"] == 202
    assert month_of_key(ddb, cfg, made["key_id"]) == 400_000 + 403_000          # 4,030 characters held
    queue.drain()
    assert body_of(get(api, account, body_of(failing)["job_id"]))["status"] == "failed"
    assert month_of_key(ddb, cfg, made["key_id"]) == 400_000          # released: given back with the money
    over = _keyed_submit(api, ctx, {"input": book(7_000), "voice_id": SYSTEM_VOICE})    # $0.70 > the $0.60 left
    assert error_of(over).code == "key_spend_limit_exceeded" and month_of_key(ddb, cfg, made["key_id"]) == 400_000
    assert books.balance(account) == START - 400_000 and books.audit(account)["consistent"]


def test_jobs_tell_their_webhooks_succeeded_and_failed_once_each_with_the_job_object(
        sandbox, api, queue, accounts, configure, load_handler):
    from integration.test_webhooks import Pipeline, call
    from standardwebhooks.webhooks import Webhook
    from webhook_receiver import Receiver

    from kyma.platform.config import config

    configure(WEBHOOKS_ALLOW_LOOPBACK="true")
    fns = {"api": load_handler("WebhooksFunction"), "dispatch": load_handler("WebhookDispatchFunction"),
           "deliver": load_handler("WebhookDeliveryFunction")}
    account = accounts.create(START).account_id
    with Receiver() as receiver:
        made = body_of(call(fns, "POST", "/v1/webhooks", account,
                            {"url": receiver.url, "events": ["speech.job.succeeded", "speech.job.failed"]}))
        good = body_of(submit(api, account, {"input": book(4_000), "voice_id": SYSTEM_VOICE}))["job_id"]
        sandbox.fail_when("/v1/t2a_async_v2", 1026, match="forbidden words")
        bad = body_of(submit(api, account, {"input": book(4_000) + " The forbidden words are here.",
                                            "voice_id": SYSTEM_VOICE}))["job_id"]
        queue.drain()
        pipe = Pipeline(config(), fns)
        pipe.run()
        pipe.run()                                   # nothing new: each event is delivered once
        got = receiver.wait_for(2)
        time.sleep(0.3)
        assert len(receiver.received) == 2
    events = {(p := Webhook(made["secret"]).verify(r.body, r.headers))["type"]: p["data"] for r in got}
    assert events["speech.job.succeeded"]["job_id"] == good
    assert events["speech.job.succeeded"]["status"] == "succeeded"
    assert events["speech.job.succeeded"]["output"]["audio_url"].startswith("http")
    assert events["speech.job.failed"]["job_id"] == bad and events["speech.job.failed"]["status"] == "failed"
    assert events["speech.job.failed"]["error"]["code"] == "content_rejected"
    assert events["speech.job.failed"]["output"] is None
