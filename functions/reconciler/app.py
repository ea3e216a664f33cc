"""Scheduled: release holds left open past their timeout (a crashed or timed-out request)."""

from kyma.platform import init_phase

init_phase.begin()  # no cyclic GC passes while INIT imports (kyma/platform/init_phase.py)

from kyma.billing.reconcile import release_expired_holds
from kyma.platform.observability import instrument
from kyma.services import services

svc = services()


@instrument
def lambda_handler(event: dict, context) -> dict:
    return release_expired_holds(svc.books, svc.ledger)

init_phase.end()
