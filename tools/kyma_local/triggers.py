"""Invocations that do not come through the API: EventBridge schedules and DynamoDB stream
event source mappings, run from template.yaml the way AWS runs them.

Schedules: `rate(...)` expressions, each on its own thread (`KYMA_LOCAL_SCHEDULE_SCALE=n`
runs them n times as often, for tests); `run_schedule(function)` runs one now.

DynamoDB streams (moto implements the Streams API): each mapping polls its table's stream
from the start (TRIM_HORIZON: nothing written after the stack started is missed), keeps the
records its FilterCriteria match (the EventBridge pattern subset AWS documents for event
filtering: exact values, nested keys), and invokes the function with batches of up to
BatchSize.  As Lambda does for stream sources:
- the function raising fails the whole batch; with BisectBatchOnFunctionError the batch is
  split in two and each half retried;
- with ReportBatchItemFailures, `batchItemFailures` makes the batch resume from the first
  failed record (the ones before it are done);
- retries back off exponentially, up to MaximumRetryAttempts; then the batch's description
  goes to the OnFailure destination (an SQS queue), and the mapping moves on.
Backoff here is scaled down (0.2 s doubling, at most 2 s) so that tests see retries in seconds.

SQS event source mappings (moto implements SQS, with DelaySeconds and redrive to a
dead-letter queue): pollers receive up to BatchSize messages and invoke the function with
them as Lambda does (several pollers at once, up to KYMA_LOCAL_SQS_POLLERS: Lambda scales
out).  A batch that raises is left to the queue's VisibilityTimeout (divided by
KYMA_LOCAL_SCHEDULE_SCALE); with ReportBatchItemFailures only the reported messages are;
the others are deleted.  After the queue's maxReceiveCount moto moves a message to its
dead-letter queue, as SQS does.
"""

from __future__ import annotations

import json
import os
import re
import threading
import traceback
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import boto3

from kyma_local.template import Template

REGION = "us-east-1"
ACCOUNT = "123456789012"
POLL_SECONDS = 0.25


@dataclass(frozen=True)
class StreamMapping:
    function_id: str
    table_id: str
    batch_size: int
    max_retries: int
    bisect: bool
    report_item_failures: bool
    patterns: tuple[dict, ...]
    on_failure_queue_id: str | None


def stream_mappings(template: Template) -> list[StreamMapping]:
    out = []
    for function_id, res in template.of_type("AWS::Serverless::Function").items():
        for event in (res["Properties"].get("Events") or {}).values():
            if event["Type"] != "DynamoDB":
                continue
            p = event["Properties"]
            table_id = p["Stream"]["Fn::GetAtt"][0]
            destination = (((p.get("DestinationConfig") or {}).get("OnFailure") or {}).get("Destination"))
            out.append(StreamMapping(
                function_id=function_id, table_id=table_id, batch_size=int(p.get("BatchSize", 100)),
                max_retries=int(p.get("MaximumRetryAttempts", -1)),
                bisect=bool(p.get("BisectBatchOnFunctionError", False)),
                report_item_failures="ReportBatchItemFailures" in (p.get("FunctionResponseTypes") or []),
                patterns=tuple(json.loads(f["Pattern"]) for f in (p.get("FilterCriteria") or {}).get("Filters", [])),
                on_failure_queue_id=destination["Fn::GetAtt"][0] if isinstance(destination, dict) else None))
    return out


@dataclass(frozen=True)
class QueueMapping:
    function_id: str
    queue_id: str
    batch_size: int
    report_item_failures: bool


def queue_mappings(template: Template) -> list[QueueMapping]:
    out = []
    for function_id, res in template.of_type("AWS::Serverless::Function").items():
        for event in (res["Properties"].get("Events") or {}).values():
            if event["Type"] != "SQS":
                continue
            p = event["Properties"]
            out.append(QueueMapping(function_id=function_id, queue_id=p["Queue"]["Fn::GetAtt"][0],
                                    batch_size=int(p.get("BatchSize", 10)),
                                    report_item_failures="ReportBatchItemFailures" in (
                                        p.get("FunctionResponseTypes") or [])))
    return out


def matches(pattern: Any, value: Any) -> bool:
    """An event filtering pattern (exact-value lists, nested objects) against a record."""
    if isinstance(pattern, dict):
        return isinstance(value, dict) and all(k in value and matches(p, value[k]) for k, p in pattern.items())
    if isinstance(pattern, list):
        return value in pattern
    return bool(pattern == value)


def scheduled_event(function_id: str) -> dict:
    """The event EventBridge sends for a schedule."""
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"version": "0", "id": str(uuid.uuid4()), "detail-type": "Scheduled Event",
            "source": "aws.events", "account": ACCOUNT, "time": now, "region": REGION,
            "resources": [f"arn:aws:events:{REGION}:{ACCOUNT}:rule/kyma-local-{function_id}"],
            "detail": {}}


def rate_seconds(expression: str) -> float | None:
    m = re.fullmatch(r"rate\((\d+) (minute|minutes|hour|hours|day|days)\)", expression.strip())
    if not m:
        return None
    unit = {"minute": 60, "hour": 3600, "day": 86400}[m.group(2).rstrip("s")]
    return int(m.group(1)) * unit


class Triggers:
    def __init__(self, template: Template, pools: dict[str, Any], *, schedule_scale: float = 1.0) -> None:
        self.template = template
        self.pools = pools
        self.schedule_scale = schedule_scale
        self.stop_event = threading.Event()

    def start(self, *, schedules: bool = True, streams: bool = True, queues: bool = True) -> Triggers:
        if schedules:
            for function_id, expressions in self.template.schedules.items():
                for expression in expressions:
                    seconds = rate_seconds(expression)
                    if seconds:
                        threading.Thread(target=self._every, args=(function_id, seconds / self.schedule_scale),
                                         daemon=True, name=f"schedule-{function_id}").start()
        if streams:
            for mapping in stream_mappings(self.template):
                if mapping.function_id not in self.pools:       # a stand-in stack with some functions only
                    continue
                threading.Thread(target=_StreamPoller(self, mapping).run, daemon=True,
                                 name=f"stream-{mapping.function_id}").start()
        if queues:
            pollers = int(os.environ.get("KYMA_LOCAL_SQS_POLLERS") or 4)
            for queue in queue_mappings(self.template):
                if queue.function_id not in self.pools:     # a stand-in stack without that function
                    continue
                for n in range(pollers):
                    threading.Thread(target=_QueuePoller(self, queue).run, daemon=True,
                                     name=f"sqs-{queue.function_id}-{n}").start()
        return self

    def stop(self) -> None:
        self.stop_event.set()

    def run_schedule(self, function_id: str) -> Any:
        """Run a scheduled function now, as its schedule would."""
        result = self.pools[function_id].invoke(scheduled_event(function_id))
        return {"payload": result.payload, "error": result.error, "error_message": result.error_message}

    def _every(self, function_id: str, seconds: float) -> None:
        while not self.stop_event.wait(seconds):
            self.run_schedule(function_id)


class _QueuePoller:
    def __init__(self, triggers: Triggers, mapping: QueueMapping) -> None:
        self.triggers, self.mapping = triggers, mapping
        self.pool = triggers.pools[mapping.function_id]
        self.sqs = boto3.client("sqs", region_name=REGION)
        props = triggers.template.queues[mapping.queue_id]
        self.visibility = max(1, int(int(props.get("VisibilityTimeout", 30)) / triggers.schedule_scale))
        self.name = triggers.template.physical_name(mapping.queue_id)

    def run(self) -> None:
        url = self.sqs.get_queue_url(QueueName=self.name)["QueueUrl"]
        arn = f"arn:aws:sqs:{REGION}:{ACCOUNT}:{self.name}"
        while not self.triggers.stop_event.is_set():
            try:
                messages = self.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=min(10, self.mapping.batch_size),
                                                    WaitTimeSeconds=1, AttributeNames=["All"],
                                                    MessageAttributeNames=["All"]).get("Messages", [])
                if messages:
                    self._deliver(url, arn, messages)
            except Exception:   # the mapping keeps polling, as Lambda's does
                traceback.print_exc()
                self.triggers.stop_event.wait(POLL_SECONDS)

    def _deliver(self, url: str, arn: str, messages: list[dict]) -> None:
        records = [{"messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"],
                    "attributes": m.get("Attributes", {}), "messageAttributes": m.get("MessageAttributes", {}),
                    "md5OfBody": m.get("MD5OfBody"), "eventSource": "aws:sqs", "eventSourceARN": arn,
                    "awsRegion": REGION} for m in messages]
        result = self.pool.invoke({"Records": records})
        if result.error:
            failed = {m["MessageId"] for m in messages}
        elif self.mapping.report_item_failures:
            failed = {f.get("itemIdentifier") for f in (result.payload or {}).get("batchItemFailures") or []}
        else:
            failed = set()
        for m in messages:
            if m["MessageId"] in failed:
                self.sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"],
                                                   VisibilityTimeout=self.visibility)
            else:
                self.sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])


class _StreamPoller:
    def __init__(self, triggers: Triggers, mapping: StreamMapping) -> None:
        self.triggers, self.mapping = triggers, mapping
        self.pool = triggers.pools[mapping.function_id]
        self.ddb = boto3.client("dynamodb", region_name=REGION)
        self.streams = boto3.client("dynamodbstreams", region_name=REGION)
        self.sqs = boto3.client("sqs", region_name=REGION)
        self.table = triggers.template.physical_name(mapping.table_id)

    def run(self) -> None:
        arn = self.ddb.describe_table(TableName=self.table)["Table"]["LatestStreamArn"]
        # The last sequence number delivered, per shard.  A fresh iterator is asked for on every
        # poll (AFTER that number) rather than following NextShardIterator: moto replaces a
        # table's stream shard object when it rolls back a cancelled transaction, and an old
        # iterator would keep reading the replaced shard and never see a new record.
        delivered: dict[str, str | None] = {}
        while not self.triggers.stop_event.is_set():
            try:
                for shard in self.streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]:
                    self._poll(arn, shard["ShardId"], delivered)
            except Exception:   # the mapping keeps polling, as Lambda's does, whatever one poll met
                traceback.print_exc()
            self.triggers.stop_event.wait(POLL_SECONDS)

    def _poll(self, arn: str, shard_id: str, delivered: dict[str, str | None]) -> None:
        last = delivered.get(shard_id)
        position = ({"ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": last} if last
                    else {"ShardIteratorType": "TRIM_HORIZON"})
        iterator = self.streams.get_shard_iterator(StreamArn=arn, ShardId=shard_id, **position)["ShardIterator"]
        page = self.streams.get_records(ShardIterator=iterator, Limit=self.mapping.batch_size)
        records = [self._event_record(r, arn) for r in page.get("Records", [])]
        if not records:
            return
        batch = [r for r in records if not self.mapping.patterns
                 or any(matches(p, r) for p in self.mapping.patterns)]
        if batch:
            self._deliver(batch, shard_id, arn)
        delivered[shard_id] = records[-1]["dynamodb"]["SequenceNumber"]

    @staticmethod
    def _event_record(record: dict, arn: str) -> dict:
        """A record as the event source mapping hands it to Lambda (JSON-safe, eventSourceARN set)."""
        out = json.loads(json.dumps(record, default=lambda v: int(v.timestamp()) if hasattr(v, "timestamp")
                                    else str(v)))
        out["eventSourceARN"] = arn
        return out

    def _deliver(self, batch: list[dict], shard_id: str, arn: str) -> None:
        queue: list[tuple[list[dict], int]] = [(batch, 0)]      # (records, attempts so far)
        while queue and not self.triggers.stop_event.is_set():
            records, attempts = queue.pop(0)
            failed_from = self._invoke(records)
            if failed_from is None:
                continue
            rest, attempts = records[failed_from:], attempts + 1
            if 0 <= self.mapping.max_retries < attempts:
                self._on_failure(rest, shard_id, arn, attempts)
            elif failed_from == 0 and self.mapping.bisect and len(rest) > 1:
                half = len(rest) // 2
                queue[:0] = [(rest[:half], attempts), (rest[half:], attempts)]
            else:
                self.triggers.stop_event.wait(min(2.0, 0.2 * 2 ** (attempts - 1)))
                queue.insert(0, (rest, attempts))

    def _invoke(self, batch: list[dict]) -> int | None:
        """None: the batch is done.  n: records from index n on must be retried."""
        result = self.pool.invoke({"Records": batch})
        if result.error:
            return 0
        failures = (result.payload or {}).get("batchItemFailures") if self.mapping.report_item_failures else None
        if not failures:
            return None
        ids = [f.get("itemIdentifier") for f in failures]
        positions = [i for i, r in enumerate(batch) if r["dynamodb"].get("SequenceNumber") in ids]
        return min(positions) if positions else 0

    def _on_failure(self, batch: list[dict], shard_id: str, arn: str, attempts: int) -> None:
        if self.mapping.on_failure_queue_id is None:
            return
        url = self.sqs.get_queue_url(QueueName=self.triggers.template.physical_name(
            self.mapping.on_failure_queue_id))["QueueUrl"]
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
        sequence = [r["dynamodb"].get("SequenceNumber") for r in batch]
        self.sqs.send_message(QueueUrl=url, MessageBody=json.dumps({
            "requestContext": {"requestId": str(uuid.uuid4()), "condition": "RetryAttemptsExhausted",
                               "approximateInvokeCount": attempts + 1,
                               "functionArn": f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{self.mapping.function_id}"},
            "responseContext": {"statusCode": 200, "functionError": "Unhandled"},
            "version": "1.0", "timestamp": now,
            "DDBStreamBatchInfo": {"shardId": shard_id, "startSequenceNumber": sequence[0],
                                   "endSequenceNumber": sequence[-1], "batchSize": len(batch),
                                   "streamArn": arn}}))
