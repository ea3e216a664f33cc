"""The webhook delivery queue: one attempt per message (kyma.webhooks.delivery `Deliverer`).

A receiver's failure is not ours: it is recorded and retried on the contract's schedule (a new
message, delayed).  A failure of ours (KMS, DynamoDB, SQS) fails the message alone (partial batch
response): SQS redelivers it after its visibility timeout, and after maxReceiveCount receives it
goes to the dead-letter queue, which is alarmed."""

from kyma.platform import init_phase

init_phase.begin()  # no cyclic GC passes while INIT imports (kyma/platform/init_phase.py)

import json
from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from kyma.platform.observability import instrument
from kyma.services import webhook_services

hooks = webhook_services()
processor = BatchProcessor(event_type=EventType.SQS)


def deliver(record: SQSRecord) -> str:
    return hooks.deliverer.attempt(json.loads(record.body))


@instrument
def lambda_handler(event: dict, context) -> Any:
    return process_partial_response(event=event, record_handler=deliver, processor=processor, context=context)

init_phase.end()
