"""Scheduled: speech jobs past their deadline are failed and released; jobs that stopped moving
are resumed; upstream slots of parts no longer running are given back (kyma/jobs/worker.py)."""

from kyma.platform import init_phase

init_phase.begin()  # no cyclic GC passes while INIT imports (kyma/platform/init_phase.py)

from kyma.jobs.worker import Worker, sweep
from kyma.platform.observability import instrument
from kyma.providers.select import provider
from kyma.services import services

svc = services()
worker = Worker(svc, svc.jobs, provider())


@instrument
def lambda_handler(event: dict, context) -> dict:
    return sweep(worker, time_left=lambda: context.get_remaining_time_in_millis() / 1000)

init_phase.end()
