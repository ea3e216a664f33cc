"""`kyma-admin failures [--redrive]`: the failure queues, shown and drained so their alarms can clear.

Two queues hold what Lambda gave up on (both alarmed on their depth, 14 days' retention):

- ReconcilerFailureQueue: the reconciler's scheduled runs that failed every retry (Lambda's
  on-failure record of an asynchronous invocation: the event, the error);
- ActivationFailuresQueue: Voices-stream batches the activation gave up on (the record names the
  shard and sequence numbers, not the voices: the stream keeps records 24 hours).

Redriving runs the failed work again: the reconciler with a failed run's own event; for the
activation, its sweep, which retries every voice still activating or waiting for its upstream
delete, whatever batch it came in.  The messages received before a successful rerun are then
deleted, since that run covered them; after a failed rerun they stay (visible again at once),
with the error printed.  Each message is also printed first, so nothing is dropped unread.
"""

from __future__ import annotations

import json
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

MAX_MESSAGES = 1000          # per queue and command: more than a week of 5-minute failures


@dataclass(frozen=True)
class FailureQueue:
    label: str
    url: str
    function: str            # the function to run again (a name in AWS, a logical id locally)
    rerun_with_failed_event: bool   # the reconciler: the failed run's own event; else a scheduled sweep


@dataclass
class Rerun:
    ok: bool
    detail: str


# (function, event) → Rerun.  Two implementations: Lambda's Invoke (a deployed stack) and the local
# stack's control endpoint (make run).
Invoker = Callable[[str, dict], Rerun]


def scheduled_event() -> dict:
    """What EventBridge sends a scheduled function (the sweep's trigger)."""
    return {"version": "0", "id": str(uuid.uuid4()), "detail-type": "Scheduled Event", "source": "aws.events",
            "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), "resources": [], "detail": {},
            "kyma-admin": "failures --redrive"}


def lambda_invoker(client: Any) -> Invoker:
    """Synchronous Invoke: the answer says whether the rerun failed (FunctionError)."""
    def invoke(function: str, event: dict) -> Rerun:
        answer = client.invoke(FunctionName=function, InvocationType="RequestResponse",
                               Payload=json.dumps(event).encode())
        payload = answer["Payload"].read().decode("utf-8", "replace")
        if answer.get("FunctionError"):
            return Rerun(False, f"{answer['FunctionError']}: {payload[:300]}")
        return Rerun(True, payload[:300])
    return invoke


def local_invoker(control_url: str) -> Invoker:
    """The local stack runs a scheduled function now at <control>/schedules/<logical id>."""
    def invoke(function: str, event: dict) -> Rerun:
        req = urllib.request.Request(f"{control_url}schedules/{function}", method="POST", data=b"")
        with urllib.request.urlopen(req, timeout=300) as response:
            result = json.loads(response.read())
        if result.get("error"):
            return Rerun(False, f"{result['error']}: {result.get('error_message') or ''}"[:300])
        return Rerun(True, json.dumps(result.get("payload"))[:300])
    return invoke


def gist(body: str) -> str:
    """One line per failure record: when, why, what failed."""
    try:
        record = json.loads(body)
    except ValueError:
        return f"(not a Lambda failure record) {body[:120]}"
    ctx = record.get("requestContext") or {}
    parts = [str(record.get("timestamp", "?")), str(ctx.get("condition", "?")),
             f"{ctx.get('approximateInvokeCount', '?')} attempt(s)"]
    response = record.get("responsePayload")
    if isinstance(response, dict) and (response.get("errorType") or response.get("errorMessage")):
        parts.append(f"{response.get('errorType', 'Error')}: {str(response.get('errorMessage', ''))[:120]}")
    elif (record.get("responseContext") or {}).get("functionError"):
        parts.append(str(record["responseContext"]["functionError"]))
    batch = record.get("DDBStreamBatchInfo")
    if batch:
        parts.append(f"stream batch of {batch.get('batchSize', '?')} record(s), sequence "
                     f"{batch.get('startSequenceNumber', '?')}..{batch.get('endSequenceNumber', '?')}")
    return "  ".join(parts)


def depth(sqs: Any, queue: FailureQueue) -> int:
    attrs = sqs.get_queue_attributes(QueueUrl=queue.url, AttributeNames=[
        "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"]) + int(attrs["ApproximateNumberOfMessagesNotVisible"])


def receive_all(sqs: Any, queue: FailureQueue, hold_seconds: int) -> list[dict]:
    """Every message now visible, each hidden for `hold_seconds` (so none is read twice)."""
    messages: list[dict] = []
    while len(messages) < MAX_MESSAGES:
        batch = sqs.receive_message(QueueUrl=queue.url, MaxNumberOfMessages=10, VisibilityTimeout=hold_seconds,
                                    WaitTimeSeconds=0).get("Messages", [])
        if not batch:
            return messages
        messages += batch
    return messages


def release(sqs: Any, queue: FailureQueue, messages: list[dict]) -> None:
    """Visible again at once: the queue's depth (and its alarm) still counts them."""
    for message in messages:
        sqs.change_message_visibility(QueueUrl=queue.url, ReceiptHandle=message["ReceiptHandle"],
                                      VisibilityTimeout=0)


def show(sqs: Any, queues: list[FailureQueue], out: Callable[[str], None] = print) -> int:
    """Print each queue's depth and its messages; the total."""
    total = 0
    for queue in queues:
        messages = receive_all(sqs, queue, hold_seconds=30)
        try:
            out(f"{queue.label}: {len(messages)} message(s)  ({queue.url})")
            for message in messages:
                out(f"  {gist(message['Body'])}")
        finally:
            release(sqs, queue, messages)
        total += len(messages)
    return total


def redrive(sqs: Any, queues: list[FailureQueue], invoke: Invoker, out: Callable[[str], None] = print) -> int:
    """Rerun each non-empty queue's work once; delete its messages if the rerun succeeded.
    The number of messages left."""
    left = 0
    for queue in queues:
        messages = receive_all(sqs, queue, hold_seconds=900)      # the rerun's own time, at most
        if not messages:
            out(f"{queue.label}: empty")
            continue
        for message in messages:
            out(f"  {gist(message['Body'])}")
        event = scheduled_event()
        if queue.rerun_with_failed_event:
            failed = json.loads(messages[0]["Body"]).get("requestPayload")
            event = failed if isinstance(failed, dict) else event
        result = invoke(queue.function, event)
        if not result.ok:
            release(sqs, queue, messages)
            left += len(messages)
            out(f"{queue.label}: {queue.function} failed again, {len(messages)} message(s) kept: {result.detail}")
            continue
        for message in messages:
            sqs.delete_message(QueueUrl=queue.url, ReceiptHandle=message["ReceiptHandle"])
        out(f"{queue.label}: {queue.function} ran again ({result.detail}); {len(messages)} message(s) deleted")
    return left
