"""The WebhookEvents table's stream (new events only): queue one delivery per subscribed endpoint.

An event is in that table only because the transaction that made its fact true wrote it
(kyma.webhooks.events), so a crash anywhere after the fact loses nothing: the stream keeps the
record, and a failed record alone is retried (partial batch response), then reported to the
on-failure queue (alarmed)."""

from kyma.platform import init_phase

init_phase.begin()  # no cyclic GC passes while INIT imports (kyma/platform/init_phase.py)

from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord

from kyma.platform.observability import instrument
from kyma.services import webhook_services
from kyma.webhooks.events import from_stream_image

hooks = webhook_services()
processor = BatchProcessor(event_type=EventType.DynamoDBStreams)


def dispatch(record: DynamoDBRecord) -> int:
    image = record.raw_event["dynamodb"]["NewImage"]
    return hooks.dispatcher.fan_out(from_stream_image(image))


@instrument
def lambda_handler(event: dict, context) -> Any:
    return process_partial_response(event=event, record_handler=dispatch, processor=processor, context=context)

init_phase.end()
