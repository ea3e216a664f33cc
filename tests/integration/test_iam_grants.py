"""Every AWS call a function makes is granted by that function's IAM policy in template.yaml, and
every statement of those policies is needed by some call.

The calls: whatever this session recorded (kyma_local.aws_calls: the integration tests in this
process, the end-to-end tests' local stacks through KYMA_AWS_CALLS_FILE), plus one representative
request per function path driven here through the real handlers (moto, the fake MiniMax), so the
check never depends on which other tests ran.  This module runs after every other test
(tests/conftest.py).  The policies: the template translated as CloudFormation receives it, each
environment with the SSM parameter name it configures.  The evaluation: tests/iam_grants.py.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import audio_fixtures as fx
import boto3
import pytest
from helpers import START, SYSTEM_VOICE, ProcessDied, api_event, body_of, clone_event, context, raising
from iam_grants import Report, check, statements_of, unused_grants
from integration.conftest import PARAMETER
from sam_template import translated

from kyma_local import aws_calls

pytestmark = pytest.mark.aws_grants

WAV = fx.wav(12.0)
_driven: list[aws_calls.AwsCall] = []
_key_context: dict[str, dict] = {}      # account → its key's authorizer context (the reserve's key check)


def authorizer_event(key: str) -> dict:
    event = json.loads((Path(__file__).resolve().parents[2] / "events" / "authorizer-request.json").read_text())
    event["headers"]["Authorization"] = event["multiValueHeaders"]["Authorization"][0] = f"Bearer {key}"
    return event


def json_event(path: str, account_id: str, body: dict, headers: dict | None = None, method: str = "POST",
               resource: str | None = None) -> dict:
    return with_key(api_event(method, path, body=json.dumps(body), account_id=account_id, resource=resource,
                              headers={"Content-Type": "application/json", **(headers or {})}))


def with_key(event: dict) -> dict:
    """The event as the authorizer passes it on for its account's key (its id, hash and scopes)."""
    authorizer = event["requestContext"].get("authorizer") or {}
    authorizer.update(_key_context.get(authorizer.get("account_id", ""), {}))
    return event


def fresh_environment() -> None:
    """A function's own execution environment: nothing another function (or test) read from SSM
    is cached for it (in Lambda each function runs in processes of its own)."""
    from aws_lambda_powertools.utilities import parameters

    from kyma.providers import select

    parameters.clear_caches()
    for cached in vars(select).values():      # the provider, its SSM parameter store, ...
        if callable(getattr(cached, "cache_clear", None)):
            cached.cache_clear()


def stream_event(voice_id: str) -> dict:
    """The Voices table's stream delivering a new row (the event source mapping's batch)."""
    from kyma.platform.dynamo import to_item

    item = boto3.client("dynamodb").get_item(TableName=os.environ["VOICES_TABLE"],
                                             Key=to_item({"voice_id": voice_id}))["Item"]
    return {"Records": [{"eventID": "1", "eventName": "INSERT", "eventSource": "aws:dynamodb",
                         "eventVersion": "1.1", "awsRegion": "us-east-1",
                         "dynamodb": {"Keys": {"voice_id": item["voice_id"]}, "NewImage": item,
                                      "SequenceNumber": "100", "StreamViewType": "NEW_IMAGE"},
                         "eventSourceARN": "arn:aws:dynamodb:us-east-1:123456789012:table/v/stream/x"}]}


def drive(load_handler, configure, accounts, cfg, minimax, monkeypatch) -> None:
    """One request down every path of every function that reaches AWS differently."""
    from botocore.exceptions import ClientError

    from kyma.billing.ledger import Ledger
    from kyma.providers.minimax import MiniMaxClient

    configure(HOLD_TIMEOUT_SECONDS=0)        # holds expire at once: the reconciler has work
    s3 = boto3.client("s3")
    rich, poor = accounts.create(START), accounts.create(1_000)
    acct = rich.account_id

    # AuthorizerFunction: a known key and an unknown one.
    authorizer = load_handler("AuthorizerFunction")
    assert authorizer(authorizer_event(rich.api_key), context())["principalId"] == acct
    _key_context[acct] = authorizer(authorizer_event(rich.api_key), context())["context"]
    with pytest.raises(Exception, match="Unauthorized"):
        authorizer(authorizer_event("sk-kyma-unknown"), context())

    # AccountFunction (balance, ledger, usage; each counted against the rate limit), and the two
    # functions that reach no AWS at all.
    account = load_handler("AccountFunction")
    for path in ("/v1/credits/balance", "/v1/credits/ledger", "/v1/usage"):
        assert account(api_event("GET", path, account_id=acct), context())["statusCode"] == 200
    # KeysFunction: make a key, list, change (dropping `keys`: the no-lock-out condition), revoke; limits.
    keys = load_handler("KeysFunction")
    made = body_of(keys(json_event("/v1/keys", acct, {"name": "ci", "scopes": ["keys", "speech"]}), context()))
    assert keys(with_key(api_event("GET", "/v1/keys", account_id=acct)), context())["statusCode"] == 200
    one_key = "/v1/keys/{key_id}"
    patch = json_event(f"/v1/keys/{made['key_id']}", acct, {"scopes": ["speech"]}, method="PATCH", resource=one_key)
    patch["pathParameters"] = {"key_id": made["key_id"]}
    assert keys(patch, context())["statusCode"] == 200
    revoke = with_key(api_event("DELETE", f"/v1/keys/{made['key_id']}", resource=one_key, account_id=acct))
    revoke["pathParameters"] = {"key_id": made["key_id"]}
    assert keys(revoke, context())["statusCode"] == 200
    assert keys(with_key(api_event("GET", "/v1/limits", account_id=acct)), context())["statusCode"] == 200
    assert load_handler("FallbackFunction")(api_event("GET", "/nowhere"), context())["statusCode"] == 404
    assert load_handler("OpenApiFunction")(api_event("GET", "/v1/openapi.json"), context())["statusCode"] == 200

    # VoiceCloneFunction.
    fresh_environment()
    clone = load_handler("VoiceCloneFunction")

    def clone_call(event):
        return clone(with_key(event), context("VoiceCloneFunction"))

    upload = body_of(clone_call(json_event("/v1/audio/voice-clone/uploads", acct, {"filename": "r.wav"})))
    # Before the file arrives: S3 says 404 (ListBucket), the upload is not there yet.
    assert clone_call(json_event("/v1/audio/voice-clone", acct, {"upload_id": upload["upload_id"]}))[
        "statusCode"] >= 400
    s3.put_object(Bucket=cfg.uploads_bucket, Key=upload["fields"]["key"], Body=WAV)
    keyed = {"Idempotency-Key": "iam-clone"}
    first = clone_call(json_event("/v1/audio/voice-clone", acct, {"upload_id": upload["upload_id"]}, keyed))
    assert first["statusCode"] == 200, body_of(first)
    voice_id = body_of(first)["voice_id"]
    assert clone_call(json_event("/v1/audio/voice-clone", acct, {"upload_id": upload["upload_id"]}, keyed))[
        "headers"]["Idempotent-Replayed"] == "true"
    # A refused request with a key: Powertools deletes its record.
    assert clone_call(clone_event(poor.account_id, WAV, headers={"Idempotency-Key": "iam-402"}))["statusCode"] == 402
    # MiniMax fails (every retry): the hold is released.
    minimax.fail_when("/v1/voice_clone", "http_500")
    assert clone_call(clone_event(acct, WAV))["statusCode"] == 502
    minimax.clear_failures()
    # A settle that applied but lost its answer: the hold's status is read back.
    real_settle = Ledger.settle

    def settle_then_lose_the_answer(self, hold, **kwargs):
        real_settle(self, hold, **kwargs)
        raise ClientError({"Error": {"Code": "RequestTimeout", "Message": "injected"}}, "TransactWriteItems")

    with monkeypatch.context() as lossy:
        lossy.setattr(Ledger, "settle", settle_then_lose_the_answer)
        assert clone_call(clone_event(acct, WAV))["statusCode"] == 200
    # A request that dies mid-clone, with an upload: its hold is left open for the reconciler.
    second = body_of(clone_call(json_event("/v1/audio/voice-clone/uploads", acct, {})))
    s3.put_object(Bucket=cfg.uploads_bucket, Key=second["fields"]["key"], Body=WAV)
    with monkeypatch.context() as crash:
        crash.setattr(MiniMaxClient, "clone_voice", raising(ProcessDied()))
        with pytest.raises(ProcessDied):
            clone_call(json_event("/v1/audio/voice-clone", acct, {"upload_id": second["upload_id"]}))

    # VoiceDesignFunction: a keyed design (its preview put in S3) and its replay (a fresh URL), a
    # refused one, one MiniMax fails, and a settle that applied but lost its answer.
    fresh_environment()
    design = load_handler("VoiceDesignFunction")

    def design_call(body, headers=None, account_id=acct):
        return design(json_event("/v1/audio/voice-design", account_id, body, headers), context("VoiceDesignFunction"))

    described = {"description": "A calm narrator."}
    assert design_call(described, {"Idempotency-Key": "iam-design"})["statusCode"] == 200
    assert design_call(described, {"Idempotency-Key": "iam-design"})["headers"]["Idempotent-Replayed"] == "true"
    assert design_call(described, {"Idempotency-Key": "iam-design-402"}, poor.account_id)["statusCode"] == 402
    minimax.fail_when("/v1/voice_design", "http_500")
    assert design_call(described)["statusCode"] == 502
    minimax.clear_failures()
    with monkeypatch.context() as lossy:
        lossy.setattr(Ledger, "settle", settle_then_lose_the_answer)
        assert design_call(described)["statusCode"] == 200

    # ReconcilerFunction: releases that hold (and gives the upload back).
    assert load_handler("ReconcilerFunction")({}, context("ReconcilerFunction"))["released"] == 1

    # SpeechFunction.
    fresh_environment()
    speech = load_handler("SpeechFunction")

    def speak(body, headers=None):
        return speech(json_event("/v1/audio/speech", acct, body, headers), context("SpeechFunction"))

    keyed = {"Idempotency-Key": "iam-speech"}
    said = speak({"input": "Hello", "voice": SYSTEM_VOICE}, keyed)
    assert said["statusCode"] == 200
    assert speak({"input": "Hello", "voice": SYSTEM_VOICE}, keyed)["headers"]["Idempotent-Replayed"] == "true"
    # The replay's audio is gone (S3 answers 404): the code must see a 404, not a 403.
    for item in s3.list_objects_v2(Bucket=cfg.audio_bucket).get("Contents", []):
        s3.delete_object(Bucket=cfg.audio_bucket, Key=item["Key"])
    speak({"input": "Hello", "voice": SYSTEM_VOICE}, keyed)
    assert speak({"input": "Mine", "voice_id": voice_id})["statusCode"] == 200          # ownership gate
    # MiniMax fails for a keyed request: the hold is released and Powertools deletes the record.
    minimax.fail_when("/v1/t2a_v2", "http_500")
    assert speak({"input": "Fails", "voice": SYSTEM_VOICE}, {"Idempotency-Key": "iam-502"})["statusCode"] == 502
    minimax.clear_failures()
    with monkeypatch.context() as lossy:
        lossy.setattr(Ledger, "settle", settle_then_lose_the_answer)
        assert speak({"input": "Lost answer", "voice": SYSTEM_VOICE})["statusCode"] == 200
    # Streamed, as raw audio and as Server-Sent Events (large audio no longer detours through S3).
    assert speak({"input": "Streamed", "voice": SYSTEM_VOICE, "stream_format": "audio"})["statusCode"] == 200
    assert speak({"input": "Events", "voice": SYSTEM_VOICE, "stream_format": "sse"})["statusCode"] == 200
    # With timestamps, keyed: the timings are kept for the replay next to the audio (speech/*).
    timed = {"input": "Timed words.", "voice": SYSTEM_VOICE, "captions": "srt"}
    timed_key = {"Idempotency-Key": "iam-timed"}
    assert speech(json_event("/v1/audio/speech/with-timestamps", acct, timed, timed_key),
                  context("SpeechFunction"))["statusCode"] == 200
    assert speech(json_event("/v1/audio/speech/with-timestamps", acct, timed, timed_key),
                  context("SpeechFunction"))["headers"]["Idempotent-Replayed"] == "true"
    # MiniMax lost an active voice (20132): speech expires it.
    lost = body_of(clone_call(clone_event(acct, WAV)))["voice_id"]
    assert speak({"input": "Activate", "voice_id": lost})["statusCode"] == 200
    minimax.fail_when("/v1/t2a_v2", 20132, times=1)
    assert speak({"input": "Gone", "voice_id": lost})["statusCode"] == 410

    # VoicesFunction: list, get, delete (upstream too).
    fresh_environment()
    voices = load_handler("VoicesFunction")

    def voices_call(method, path, resource, voice=None):
        event = api_event(method, path, resource=resource, account_id=acct)
        event["pathParameters"] = {"voice_id": voice} if voice else None
        return voices(event, context("VoicesFunction"))

    assert voices_call("GET", "/v1/audio/voices", "/v1/audio/voices")["statusCode"] == 200
    one = "/v1/audio/voices/{voice_id}"
    assert voices_call("GET", f"/v1/audio/voices/{voice_id}", one, voice_id)["statusCode"] == 200
    assert voices_call("DELETE", f"/v1/audio/voices/{voice_id}", one, voice_id)["statusCode"] == 200

    # VoiceActivationFunction: the stream activates a new voice; one MiniMax lost before
    # activation is expired and refunded; the schedule sweeps what is still activating.
    doomed = body_of(clone_call(clone_event(acct, WAV)))["voice_id"]
    minimax.advance_clock(8 * 86_400)          # MiniMax's 7-day rule: the unused clone is gone
    fresh = body_of(clone_call(clone_event(acct, WAV)))["voice_id"]
    fresh_environment()
    activation = load_handler("VoiceActivationFunction")
    assert activation(stream_event(fresh), context("VoiceActivationFunction", 120)) == {"batchItemFailures": []}
    assert activation(stream_event(doomed), context("VoiceActivationFunction", 120)) == {"batchItemFailures": []}
    activation({"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}},
               context("VoiceActivationFunction", 120))

    drive_speech_jobs(load_handler, configure, acct, fresh, minimax, monkeypatch)

    # Webhooks: every route; the outbox's new events dispatched; a delivery that fails (retried,
    # the endpoint's failing clock set) and one that succeeds (the clock cleared).
    from webhook_receiver import Receiver

    configure(WEBHOOKS_ALLOW_LOOPBACK="true", WEBHOOK_RETRY_DELAYS="0,0,0,0,0,0,0")
    fresh_environment()
    hooks = load_handler("WebhooksFunction")
    dispatch, deliver = load_handler("WebhookDispatchFunction"), load_handler("WebhookDeliveryFunction")

    def hook_call(method, path, body=None):
        parts = path.split("/")
        resource = path if len(parts) == 3 else "/v1/webhooks/{webhook_id}" + (f"/{parts[4]}" if len(parts) > 4 else "")
        event = api_event(method, path, resource=resource, account_id=acct,
                          body=json.dumps(body) if body is not None else b"")
        event["pathParameters"] = {"webhook_id": parts[3]} if len(parts) > 3 else None
        return hooks(event, context("WebhooksFunction"))

    ddb, sqs = boto3.client("dynamodb"), boto3.client("sqs")
    with Receiver([500]) as receiver:
        made = body_of(hook_call("POST", "/v1/webhooks", {"url": receiver.url}))
        wid = made["webhook_id"]
        assert hook_call("GET", "/v1/webhooks")["statusCode"] == 200
        assert hook_call("GET", f"/v1/webhooks/{wid}")["statusCode"] == 200
        assert hook_call("POST", f"/v1/webhooks/{wid}/rotate-secret")["statusCode"] == 200
        assert hook_call("POST", f"/v1/webhooks/{wid}/test")["statusCode"] == 202
        rows = ddb.scan(TableName=cfg.webhook_events_table)["Items"]
        records = [{"eventID": r["event_id"]["S"], "eventName": "INSERT", "eventSource": "aws:dynamodb",
                    "dynamodb": {"Keys": {"event_id": r["event_id"]}, "NewImage": r,
                                 "SequenceNumber": str(n), "StreamViewType": "NEW_IMAGE"}}
                   for n, r in enumerate(rows)]
        assert dispatch({"Records": records}, context("WebhookDispatchFunction", 60)) == {"batchItemFailures": []}
        for _ in range(2):                       # the 500, then its retry's 200
            got = sqs.receive_message(QueueUrl=cfg.webhook_queue_url, MaxNumberOfMessages=10,
                                      WaitTimeSeconds=1)["Messages"]
            assert deliver({"Records": [{"messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"],
                                         "body": m["Body"], "attributes": {}, "messageAttributes": {},
                                         "eventSource": "aws:sqs"} for m in got]},
                           context("WebhookDeliveryFunction", 120)) == {"batchItemFailures": []}
            for m in got:
                sqs.delete_message(QueueUrl=cfg.webhook_queue_url, ReceiptHandle=m["ReceiptHandle"])
        assert len(receiver.received) >= 2
    assert hook_call("GET", f"/v1/webhooks/{wid}/deliveries")["statusCode"] == 200
    assert hook_call("DELETE", f"/v1/webhooks/{wid}")["statusCode"] == 200

    # AuditFunction: every account's books.
    assert load_handler("AuditFunction")({"source": "aws.events"}, context("AuditFunction"))["accounts"] >= 2


def drive_speech_jobs(load_handler, configure, acct, voice_id, minimax, monkeypatch) -> None:
    """Speech jobs: a keyed job with a cloned voice worked through the queue to its charge; its files
    deleted; a part refused (the worker releases); a cancel that beats the join (the worker deletes
    the output); a join that fails (its multipart upload aborted); the sweep timing out one job and
    resuming another."""
    from kyma.platform.aws import s3 as s3_client

    minimax.async_tasks.seconds_per_task = 0
    configure(JOB_POLL_SECONDS=0, JOB_SLOT_RETRY_SECONDS=0, JOB_PART_MAX_CHARS=200)
    sqs = boto3.client("sqs")
    url = os.environ["JOBS_QUEUE_URL"]
    fresh_environment()
    jobs = load_handler("SpeechJobsFunction")
    worker = load_handler("SpeechJobsWorkerFunction")

    def job_call(method, job_id=None, body=None, headers=None, query=""):
        path = "/v1/audio/speech/jobs" + (f"/{job_id}" if job_id else "")
        event = api_event(method, path, resource="/v1/audio/speech/jobs" + ("/{job_id}" if job_id else ""),
                          account_id=acct, body=json.dumps(body) if body else b"", query=query,
                          headers={"Content-Type": "application/json", **(headers or {})})
        event["pathParameters"] = {"job_id": job_id} if job_id else None
        return jobs(with_key(event), context("SpeechJobsFunction"))      # the reserve's key check too

    def work(until=lambda m: False) -> list[dict]:
        """Deliver the queue's messages to the worker until it is empty; hold back those `until` picks."""
        held: list[dict] = []
        for _ in range(400):
            messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get(
                "Messages", [])
            if not messages:
                return held
            for m in messages:
                if until(json.loads(m["Body"])):
                    held.append(m)
                    continue
                worker({"Records": [{"messageId": m["MessageId"], "body": m["Body"], "eventSource": "aws:sqs"}]},
                       context("SpeechJobsWorkerFunction", 120))
                sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
        raise AssertionError("the jobs queue did not drain")

    text = "A sentence of a book. " * 30
    keyed = {"Idempotency-Key": "iam-job"}
    created = job_call("POST", body={"input": text, "voice_id": voice_id}, headers=keyed)
    assert created["statusCode"] == 202, body_of(created)
    job_id = body_of(created)["job_id"]
    assert job_call("POST", body={"input": text, "voice_id": voice_id}, headers=keyed)["headers"][
        "Idempotent-Replayed"] == "true"
    fresh_environment()                          # the worker reads the MiniMax key itself
    work()
    assert body_of(job_call("GET", job_id))["output"]["audio_url"]
    assert job_call("GET", query="status=succeeded")["statusCode"] == 200
    assert body_of(job_call("DELETE", job_id))["files_deleted"] is True
    # A part refused upstream: the worker fails the job and releases its hold.
    minimax.fail_when("/v1/t2a_async_v2", 1026, match="forbidden")
    refused = body_of(job_call("POST", body={"input": "The forbidden words.", "voice_id": SYSTEM_VOICE}))["job_id"]
    work()
    assert body_of(job_call("GET", refused))["status"] == "failed"
    minimax.clear_failures()
    # A cancel that beats the join: the join's settle finds the hold released and deletes its output.
    raced = body_of(job_call("POST", body={"input": text, "voice_id": SYSTEM_VOICE}))["job_id"]
    (join,) = work(until=lambda m: m["step"] == "join")
    assert body_of(job_call("DELETE", raced))["status"] == "canceled"
    worker({"Records": [{"messageId": join["MessageId"], "body": join["Body"]}]}, context("SpeechJobsWorkerFunction"))
    # A join whose upload fails: aborted, the step reported failed (SQS would deliver it again).
    stuck = body_of(job_call("POST", body={"input": text, "voice_id": SYSTEM_VOICE}))["job_id"]
    (join,) = work(until=lambda m: m["step"] == "join")
    with monkeypatch.context() as patch:
        patch.setattr(s3_client(), "upload_part", raising(ConnectionError("S3 went away")))
        answer = worker({"Records": [{"messageId": join["MessageId"], "body": join["Body"]}]},
                        context("SpeechJobsWorkerFunction"))
    assert answer == {"batchItemFailures": [{"itemIdentifier": join["MessageId"]}]}
    # The sweep: a job past its deadline is failed and released; the stuck one is resumed.
    configure(JOB_POLL_SECONDS=0, JOB_SLOT_RETRY_SECONDS=0, JOB_PART_MAX_CHARS=200, JOB_DEADLINE_SECONDS=1)
    late_jobs = load_handler("SpeechJobsFunction")
    event = api_event("POST", "/v1/audio/speech/jobs", account_id=acct,
                      body=json.dumps({"input": "Too late.", "voice_id": SYSTEM_VOICE}),
                      headers={"Content-Type": "application/json"})
    assert late_jobs(event, context("SpeechJobsFunction"))["statusCode"] == 202
    import time

    time.sleep(2.1)
    configure(JOB_STUCK_SECONDS=0)
    outcome = load_handler("SpeechJobsSweepFunction")({"source": "aws.events"}, context("SpeechJobsSweepFunction", 120))
    assert outcome["timed_out"] == 1 and outcome["resumed"] >= 1, outcome
    assert body_of(job_call("GET", stuck))["status"] == "running"


@pytest.fixture
def calls(load_handler, configure, accounts, cfg, minimax, monkeypatch) -> dict[str, list[aws_calls.AwsCall]]:
    """The calls to check, by where they ran: this process, or a local stack in a subprocess."""
    if not _driven:
        before = len(aws_calls.recorded())
        drive(load_handler, configure, accounts, cfg, minimax, monkeypatch)
        _driven.extend(aws_calls.recorded()[before:])
    earlier = os.environ.get(aws_calls.WORKER_CALLS_FILE_ENV)          # `make test`'s parallel workers' calls
    return {"in-process": aws_calls.recorded() + (aws_calls.read_file(earlier) if earlier else []),
            "local stack": aws_calls.read_file(os.environ[aws_calls.CALLS_FILE_ENV])}


# Each environment's deployment: the SSM parameter name it configures for the MiniMax key (the
# local stack passes the key in its environment and reads no parameter: the template's default).
PARAMETERS = {"in-process": PARAMETER,
              "local stack": str(translated().doc["Parameters"]["MiniMaxApiKeyParameterName"]["Default"])}


def checked(calls: dict, *, function: str | None = None, without: str | None = None) -> list[Report]:
    return [check(translated(MiniMaxApiKeyParameterName=PARAMETERS[where]),
                  [c for c in found if function is None or c.function == function], without=without)
            for where, found in calls.items()]


def test_every_aws_call_a_function_makes_is_granted_by_its_policy(calls, capsys):
    reports = dict(zip(calls, checked(calls), strict=True))
    cfn = translated()
    functions = set(cfn.of_type("AWS::Lambda::Function"))
    with capsys.disabled():
        print("\n== AWS calls seen per function, and the statement that grants each ==")
        for where, report in reports.items():
            print(f"-- {where} ({sum(len(v) for v in report.seen.values())} kinds of call)")
            print(report.table())
        print("-- functions that made no AWS call:",
              sorted(functions - {f for r in reports.values() for f, lines in r.seen.items() if lines}))
        for function in sorted(functions):
            for statement in statements_of(cfn, function):
                if statement.service_side:
                    print(f"-- used by Lambda itself, not the code: {function}: {statement.name}: "
                          f"{', '.join(f'{a} on {r}' for a, r in statement.pairs())}")
    missing = [m for report in reports.values() for m in report.missing]
    assert not missing, "\n".join(missing) + (
        "\nGrant it in template.yaml; or, if a test's stand-in for another function made the call inside"
        " this function's invocation, wrap that stand-in in kyma_local.aws_calls.invoking(<that function>).")
    # Every function with a policy of its own was driven here, and its statements are named.
    own = {f: [s for s in statements_of(cfn, f) if not s.service_side] for f in functions}
    assert {f for f, statements in own.items() if statements} <= {c.function for c in _driven}
    assert all("Sid" in s.body for statements in own.values() for s in statements)


def test_every_statement_is_needed_by_some_call(calls, capsys):
    """Leave one statement out of one function's policy: some observed call must lose its grant."""
    cfn = translated(MiniMaxApiKeyParameterName=PARAMETER)
    unneeded, wider = [], []
    for function in sorted(cfn.of_type("AWS::Lambda::Function")):
        seen = [need for report in checked(calls, function=function)
                for lines in report.seen.values() for grants in lines.values() for need, _ in grants]
        for statement in statements_of(cfn, function):
            if statement.service_side:      # Lambda itself uses it (the on-failure destination)
                continue
            if not any(r.missing for r in checked(calls, function=function, without=statement.name)):
                unneeded.append(f"{function}: {statement.name} grants nothing any observed call needs")
            wider += [f"{function}: {statement.name}: {pair}" for pair in unused_grants(statement, seen)]
    with capsys.disabled():
        print("\n== granted, but no observed call used it (untested path, or a grant to narrow) ==")
        print("\n".join(wider) or "(none)")
    assert not unneeded, "\n".join(unneeded)
