"""The local stand-in of a DynamoDB stream event source mapping (tools/kyma_local/triggers.py):
filter criteria, partial batch responses, retries then the on-failure queue, as Lambda does."""

from __future__ import annotations

import json
import threading
import time

import boto3
import pytest

from kyma.platform.dynamo import to_item
from kyma_local.runtime import InvokeResult
from kyma_local.triggers import Triggers, matches, queue_mappings, stream_mappings


class Recorder:
    """A function pool that records the batches it is given and answers with `answer(batch)`."""

    def __init__(self, answer=lambda batch: {"batchItemFailures": []}) -> None:
        self.batches: list[list[str]] = []
        self.answer = answer
        self.lock = threading.Lock()

    def invoke(self, event):
        ids = [r["dynamodb"]["Keys"]["voice_id"]["S"] for r in event["Records"]]
        with self.lock:
            self.batches.append(ids)
        try:
            return InvokeResult(self.answer(event["Records"]))
        except Exception as exc:               # the function raised: Lambda reports an Unhandled error
            return InvokeResult(None, "Unhandled", str(exc))


def put_voice(ddb, cfg, voice_id: str, status: str = "activating") -> None:
    ddb.put_item(TableName=cfg.voices_table, Item=to_item({
        "voice_id": voice_id, "owner_id": "acct", "status": status, "created_at": int(time.time())}))


def wait_for(condition, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.fixture
def aws(monkeypatch):
    """The local stack's embedded AWS (a moto server: the Streams API is served there, not in-process)."""
    from kyma.platform.config import config
    from kyma_local.aws import EmbeddedAws, create_resources
    from kyma_local.template import Template

    template = Template()
    embedded = EmbeddedAws()
    embedded.start()
    import urllib.request

    urllib.request.urlopen(urllib.request.Request(embedded.endpoint + "/moto-api/reset", method="POST"))
    for name, value in {**template.environment(), **embedded.environment()}.items():
        monkeypatch.setenv(name, value)
    config.cache_clear()
    create_resources(template, endpoint_url=embedded.endpoint)
    yield template
    urllib.request.urlopen(urllib.request.Request(embedded.endpoint + "/moto-api/reset", method="POST"))
    embedded.stop()
    config.cache_clear()


@pytest.fixture
def ddb(aws):
    return boto3.client("dynamodb")


@pytest.fixture
def cfg(aws):
    from kyma.platform.config import config

    return config()


@pytest.fixture
def run(aws):
    started: list[Triggers] = []

    def start(pool) -> Triggers:
        triggers = Triggers(aws, {"VoiceActivationFunction": pool}).start(schedules=False)
        started.append(triggers)
        return triggers

    yield start
    for triggers in started:
        triggers.stop()


def test_the_template_mapping_is_read_as_declared(aws):
    (mapping,) = [m for m in stream_mappings(aws) if m.function_id == "VoiceActivationFunction"]
    assert (mapping.function_id, mapping.table_id) == ("VoiceActivationFunction", "VoicesTable")
    assert mapping.report_item_failures and mapping.bisect and mapping.max_retries == 3
    assert mapping.on_failure_queue_id == "ActivationFailuresQueue"
    record = {"eventName": "INSERT", "dynamodb": {"NewImage": {"status": {"S": "activating"}}}}
    assert any(matches(p, record) for p in mapping.patterns)
    assert not any(matches(p, {**record, "eventName": "MODIFY"}) for p in mapping.patterns)


def test_only_new_activating_voices_are_delivered(run, ddb, cfg):
    pool = Recorder()
    run(pool)
    put_voice(ddb, cfg, "kyma_0000000000000001")
    put_voice(ddb, cfg, "kyma_0000000000000002", status="active")           # filtered out
    ddb.update_item(TableName=cfg.voices_table, Key=to_item({"voice_id": "kyma_0000000000000001"}),
                    UpdateExpression="SET #s = :a", ExpressionAttributeNames={"#s": "status"},
                    ExpressionAttributeValues={":a": {"S": "active"}})           # a MODIFY: filtered out
    put_voice(ddb, cfg, "kyma_0000000000000003")
    # A sentinel written last: the stream is read in order, so once it is delivered anything the
    # filter had let through would have been delivered before it.
    put_voice(ddb, cfg, "kyma_0000000000000009")
    wait_for(lambda: "kyma_0000000000000009" in [v for batch in pool.batches for v in batch])
    assert [v for batch in pool.batches for v in batch] == ["kyma_0000000000000001", "kyma_0000000000000003",
                                                            "kyma_0000000000000009"]


def test_a_failed_record_is_retried_alone_then_reported_to_the_queue(run, ddb, cfg, aws):
    def answer(records):
        failing = [r["dynamodb"]["SequenceNumber"] for r in records
                   if r["dynamodb"]["Keys"]["voice_id"]["S"].endswith("bad")]
        return {"batchItemFailures": [{"itemIdentifier": s} for s in failing]}

    pool = Recorder(answer)
    run(pool)
    put_voice(ddb, cfg, "kyma_000000000000good")
    put_voice(ddb, cfg, "kyma_0000000000000bad")
    sqs = boto3.client("sqs")
    url = sqs.get_queue_url(QueueName=aws.physical_name("ActivationFailuresQueue"))["QueueUrl"]
    messages: list[dict] = []
    wait_for(lambda: messages.extend(sqs.receive_message(QueueUrl=url).get("Messages", [])) or messages, 15)
    report = json.loads(messages[0]["Body"])
    assert report["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert report["DDBStreamBatchInfo"]["batchSize"] == 1
    # The first batch held both; then the failed record alone, retried MaximumRetryAttempts (3) times
    assert pool.batches[0] == ["kyma_000000000000good", "kyma_0000000000000bad"]
    assert pool.batches[1:] == [["kyma_0000000000000bad"]] * 3


def test_new_records_still_arrive_after_moto_rolls_back_a_transaction(run, ddb, cfg):
    from botocore.exceptions import ClientError

    pool = Recorder()
    run(pool)
    put_voice(ddb, cfg, "kyma_0000000000000001")
    wait_for(lambda: pool.batches)
    with pytest.raises(ClientError):               # a cancelled transaction touching the table
        ddb.transact_write_items(TransactItems=[{"ConditionCheck": {
            "TableName": cfg.voices_table, "Key": to_item({"voice_id": "kyma_0000000000000001"}),
            "ConditionExpression": "attribute_not_exists(voice_id)"}}])
    put_voice(ddb, cfg, "kyma_0000000000000002")
    wait_for(lambda: any("kyma_0000000000000002" in b for b in pool.batches))


# ── SQS event source mappings (the speech jobs queue) ────────────────────
class QueueRecorder:
    """A function pool for an SQS mapping: records message bodies, fails those `fails` picks."""

    def __init__(self, fails=lambda body: False) -> None:
        self.bodies: list[tuple[float, str]] = []
        self.fails = fails
        self.lock = threading.Lock()

    def invoke(self, event):
        failed = []
        for record in event["Records"]:
            with self.lock:
                self.bodies.append((time.monotonic(), record["body"]))
            if self.fails(record["body"]):
                failed.append({"itemIdentifier": record["messageId"]})
        return InvokeResult({"batchItemFailures": failed})


def test_the_jobs_queue_mapping_is_read_from_the_template(aws):
    (mapping,) = [m for m in queue_mappings(aws) if m.function_id == "SpeechJobsWorkerFunction"]
    assert (mapping.function_id, mapping.queue_id, mapping.batch_size, mapping.report_item_failures) == (
        "SpeechJobsWorkerFunction", "JobsQueue", 1, True)
    (hooks,) = [m for m in queue_mappings(aws) if m.function_id == "WebhookDeliveryFunction"]
    assert (hooks.queue_id, hooks.batch_size, hooks.report_item_failures) == ("WebhookDeliveryQueue", 10, True)


def test_queue_messages_are_delivered_after_their_delay_and_a_reported_failure_ends_in_the_dead_letter_queue(aws):
    sqs = boto3.client("sqs")
    url = sqs.get_queue_url(QueueName=aws.physical_name("JobsQueue"))["QueueUrl"]
    dlq = sqs.get_queue_url(QueueName=aws.physical_name("JobsDeadLetterQueue"))["QueueUrl"]
    pool = QueueRecorder(fails=lambda body: body == "poison")
    # Visibility 720 s in the template; scaled 720 times for the test: a failed message returns after 1 s
    triggers = Triggers(aws, {"SpeechJobsWorkerFunction": pool}, schedule_scale=720).start(
        schedules=False, streams=False)
    try:
        sent = time.monotonic()
        sqs.send_message(QueueUrl=url, MessageBody="later", DelaySeconds=2)
        sqs.send_message(QueueUrl=url, MessageBody="now")
        sqs.send_message(QueueUrl=url, MessageBody="poison")
        wait_for(lambda: any(b == "later" for _, b in pool.bodies), 15)
        arrival = {b: t for t, b in pool.bodies if b != "poison"}
        assert arrival["now"] - sent < 2 <= arrival["later"] - sent
        # The poison message: delivered maxReceiveCount (5) times, then moved to the dead-letter queue
        wait_for(lambda: sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["ApproximateNumberOfMessages"])[
            "Attributes"]["ApproximateNumberOfMessages"] == "1", 30)
        assert [b for _, b in pool.bodies].count("poison") == 5
        assert [b for _, b in pool.bodies].count("now") == 1      # a success is deleted, never redelivered
    finally:
        triggers.stop()
