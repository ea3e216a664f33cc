"""kyma-admin failures: the failure queues shown and redriven (kyma_admin.failures), on moto's SQS with
the template's queues and Lambda's own failure records; the rerun is an in-memory fake here (the
e2e tier runs it for real through the local stack: tests/e2e/test_money_http.py)."""

from __future__ import annotations

import json

import boto3
import pytest

from kyma_admin.failures import FailureQueue, Rerun, redrive, show

# What Lambda sends an asynchronous invocation's on-failure destination after its retries.
RECONCILER_RUN = {
    "version": "1.0", "timestamp": "2026-12-01T10:05:02.123Z",
    "requestContext": {"requestId": "c0ffee00-1111-2222-3333-444455556666", "condition": "RetriesExhausted",
                       "approximateInvokeCount": 3,
                       "functionArn": "arn:aws:lambda:us-east-1:123456789012:function:kyma-dev-Reconciler:$LATEST"},
    "requestPayload": {"version": "0", "id": "5d1e-run", "detail-type": "Scheduled Event", "source": "aws.events",
                       "time": "2026-12-01T10:05:00Z", "detail": {}},
    "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
    "responsePayload": {"errorType": "ProvisionedThroughputExceededException", "errorMessage": "Rate exceeded"},
}
# What a DynamoDB stream event source mapping sends after its retries: the batch's coordinates only.
ACTIVATION_BATCH = {
    "version": "1.0", "timestamp": "2026-12-01T11:00:00.000Z",
    "requestContext": {"requestId": "ab12", "condition": "RetryAttemptsExhausted", "approximateInvokeCount": 4,
                       "functionArn": "arn:aws:lambda:us-east-1:123456789012:function:kyma-dev-VoiceActivation"},
    "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
    "DDBStreamBatchInfo": {"shardId": "shardId-0001", "startSequenceNumber": "100", "endSequenceNumber": "104",
                           "batchSize": 5, "streamArn": "arn:aws:dynamodb:us-east-1:123456789012:table/v/stream/x"},
}


@pytest.fixture
def queues(aws):
    sqs = boto3.client("sqs", region_name="us-east-1")
    url = {k: sqs.get_queue_url(QueueName=aws.physical_name(k))["QueueUrl"]
           for k in ("ReconcilerFailureQueue", "ActivationFailuresQueue")}
    return sqs, [FailureQueue("reconciler failures", url["ReconcilerFailureQueue"], "kyma-dev-Reconciler", True),
                 FailureQueue("activation failures", url["ActivationFailuresQueue"], "kyma-dev-Activation", False)]


def visible(sqs, queue: FailureQueue) -> int:
    return int(sqs.get_queue_attributes(QueueUrl=queue.url, AttributeNames=["ApproximateNumberOfMessages"])
               ["Attributes"]["ApproximateNumberOfMessages"])


class FakeLambda:
    def __init__(self, ok: bool = True) -> None:
        self.ok = ok
        self.calls: list[tuple[str, dict]] = []

    def __call__(self, function: str, event: dict) -> Rerun:
        self.calls.append((function, event))
        return Rerun(self.ok, '{"released": 2}' if self.ok else "Unhandled: Rate exceeded")


def fill(sqs, queues) -> None:
    reconciler, activation = queues
    for _ in range(2):
        sqs.send_message(QueueUrl=reconciler.url, MessageBody=json.dumps(RECONCILER_RUN))
    sqs.send_message(QueueUrl=activation.url, MessageBody=json.dumps(ACTIVATION_BATCH))


def test_show_prints_every_failure_and_leaves_it_visible_for_the_alarm(queues):
    sqs, qs = queues
    fill(sqs, qs)
    lines: list[str] = []
    assert show(sqs, qs, out=lines.append) == 3
    assert lines[0].startswith("reconciler failures: 2 message(s)")
    assert lines[1] == lines[2] == ("  2026-12-01T10:05:02.123Z  RetriesExhausted  3 attempt(s)  "
                                    "ProvisionedThroughputExceededException: Rate exceeded")
    assert lines[3].startswith("activation failures: 1 message(s)")
    assert lines[4] == ("  2026-12-01T11:00:00.000Z  RetryAttemptsExhausted  4 attempt(s)  Unhandled  "
                        "stream batch of 5 record(s), sequence 100..104")
    assert [visible(sqs, q) for q in qs] == [2, 1]          # still counted by the depth alarms


def test_redrive_reruns_each_queues_work_once_and_deletes_what_it_covered(queues):
    sqs, qs = queues
    fill(sqs, qs)
    fake = FakeLambda()
    assert redrive(sqs, qs, fake, out=lambda _: None) == 0
    (reconciler_fn, reconciler_event), (activation_fn, activation_event) = fake.calls
    assert reconciler_fn == "kyma-dev-Reconciler" and reconciler_event == RECONCILER_RUN["requestPayload"]
    assert activation_fn == "kyma-dev-Activation"
    assert activation_event["detail-type"] == "Scheduled Event" and "Records" not in activation_event   # the sweep
    assert [visible(sqs, q) for q in qs] == [0, 0]
    lines: list[str] = []
    assert show(sqs, qs, out=lines.append) == 0                # the alarms can clear


def test_a_rerun_that_fails_again_keeps_every_message_visible(queues):
    sqs, qs = queues
    fill(sqs, qs)
    lines: list[str] = []
    assert redrive(sqs, qs, FakeLambda(ok=False), out=lines.append) == 3
    assert [visible(sqs, q) for q in qs] == [2, 1]
    assert "reconciler failures: kyma-dev-Reconciler failed again, 2 message(s) kept: Unhandled: Rate exceeded" \
        in lines


def test_empty_queues_run_nothing(queues):
    sqs, qs = queues
    fake = FakeLambda()
    lines: list[str] = []
    assert redrive(sqs, qs, fake, out=lines.append) == 0
    assert fake.calls == [] and lines == ["reconciler failures: empty", "activation failures: empty"]
