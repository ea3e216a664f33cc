"""Keeps cloned voices alive upstream (MiniMax deletes a clone no real synthesis used in 7 days).

- DynamoDB stream of the Voices table (new rows, status activating): activate each voice once;
  a failure fails only its record (partial batch response), which the event source mapping
  retries with backoff and finally sends to the on-failure queue.
- Schedule: the sweep retries what is still activating, expires (and refunds) what passed its
  window, and reports voices activating for over a day (an operator alarm).
Activation is our cost: nothing here is billed to the customer.
"""

from kyma.platform import init_phase

init_phase.begin()  # no cyclic GC passes while INIT imports (kyma/platform/init_phase.py)

import time
from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord

from kyma.platform.observability import instrument
from kyma.providers.select import provider
from kyma.services import services

svc = services()
processor = BatchProcessor(event_type=EventType.DynamoDBStreams)
SWEEP_LIMIT = 50            # voices per run; the rest wait for the next run
MARGIN_SECONDS = 5.0


@instrument
def lambda_handler(event: dict, context) -> Any:
    deadline = time.monotonic() + context.get_remaining_time_in_millis() / 1000 - MARGIN_SECONDS
    if event.get("source") == "aws.events":
        return svc.lifecycle.sweep(provider(), deadline=deadline, limit=SWEEP_LIMIT)

    def activate(record: DynamoDBRecord) -> str:
        keys = record.dynamodb.keys if record.dynamodb else {}
        return svc.lifecycle.activate(keys["voice_id"], provider(), deadline=deadline)

    return process_partial_response(event=event, record_handler=activate, processor=processor, context=context)

init_phase.end()
