"""SQS: the steps of speech jobs (kyma/jobs/worker.py), one message at a time, each idempotent.

A step that raises is reported as a failed item: SQS delivers it again after the queue's
visibility timeout, and after maxReceiveCount it lands in the dead-letter queue (alarmed on).
"""

from kyma.platform import init_phase

init_phase.begin()  # no cyclic GC passes while INIT imports (kyma/platform/init_phase.py)

from kyma.jobs.worker import Worker, message_of
from kyma.platform.observability import instrument, logger
from kyma.providers.select import provider
from kyma.services import services

svc = services()
worker = Worker(svc, svc.jobs, provider())


@instrument
def lambda_handler(event: dict, context) -> dict:
    failures = []
    for record in event.get("Records", []):
        message = message_of(record)
        try:
            outcome = worker.handle(message)
            logger.info("job step", extra={"job_id": message.get("job_id"), "step": message.get("step"),
                                           "part": message.get("part"), "outcome": outcome})
        except Exception:
            logger.exception("job step failed; SQS will deliver it again",
                             extra={"job_id": message.get("job_id"), "step": message.get("step")})
            failures.append({"itemIdentifier": record.get("messageId")})
    return {"batchItemFailures": failures}

init_phase.end()
