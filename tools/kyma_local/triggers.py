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
"""

from __future__ import annotations

import json
import re
import threading
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

    def start(self, *, schedules: bool = True, streams: bool = True) -> Triggers:
        if schedules:
            for function_id, expressions in self.template.schedules.items():
                for expression in expressions:
                    seconds = rate_seconds(expression)
                    if seconds:
                        threading.Thread(target=self._every, args=(function_id, seconds / self.schedule_scale),
                                         daemon=True, name=f"schedule-{function_id}").start()
        if streams:
            for mapping in stream_mappings(self.template):
                threading.Thread(target=_StreamPoller(self, mapping).run, daemon=True,
                                 name=f"stream-{mapping.function_id}").start()
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
        iterators: dict[str, str | None] = {}
        while not self.triggers.stop_event.is_set():
            for shard in self.streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]:
                if shard["ShardId"] not in iterators:
                    iterators[shard["ShardId"]] = self.streams.get_shard_iterator(
                        StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
            for shard_id, iterator in list(iterators.items()):
                if iterator is None:
                    continue
                page = self.streams.get_records(ShardIterator=iterator, Limit=self.mapping.batch_size)
                iterators[shard_id] = page.get("NextShardIterator")
                records = [self._event_record(r, arn) for r in page.get("Records", [])]
                batch = [r for r in records if not self.mapping.patterns
                         or any(matches(p, r) for p in self.mapping.patterns)]
                if batch:
                    self._deliver(batch, shard_id, arn)
            self.triggers.stop_event.wait(POLL_SECONDS)

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
