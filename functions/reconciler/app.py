"""Scheduled: release holds left open past their timeout (a crashed or timed-out request)."""

from kyma import init_phase

init_phase.begin()  # no cyclic GC passes while INIT imports (kyma/init_phase.py)

from kyma.observability import instrument
from kyma.reconcile import release_expired_holds
from kyma.services import services

svc = services()


@instrument
def lambda_handler(event: dict, context) -> dict:
    return release_expired_holds(svc.books, svc.ledger)

init_phase.end()
