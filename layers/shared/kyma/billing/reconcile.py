"""Releasing holds left open past their time: a crashed or timed-out request's money goes back.

Safe against the handler waking up and settling at the same moment: release and
settle both require the hold to be open, so exactly one of them applies.
"""

from __future__ import annotations

import time

from kyma.billing.accounting import Books
from kyma.billing.audit import GRACE_SECONDS
from kyma.billing.ledger import Ledger
from kyma.platform.observability import MetricUnit, logger, metrics


def release_expired_holds(books: Books, ledger: Ledger) -> dict[str, int]:
    released = already_closed = failed = 0
    for hold in books.expired_holds():
        try:
            if ledger.release(hold, reason="expired"):
                released += 1
                logger.warning("released an expired hold", extra={
                    "account_id": hold.account_id, "entry_id": hold.entry_id, "amount_micros": hold.amount_micros})
            else:
                already_closed += 1
        except Exception:  # one bad hold must not stop the others; it is retried next run
            failed += 1
            logger.exception("could not release an expired hold", extra={"entry_id": hold.entry_id})
    # Money still locked after this run, well past its window: what the operator is paged about.
    stuck = sum(1 for _ in books.expired_holds(time.time() - GRACE_SECONDS))
    metrics.add_metric(name="HoldsReleasedByReconciler", unit=MetricUnit.Count, value=released)
    metrics.add_metric(name="ReleaseFailures", unit=MetricUnit.Count, value=failed)
    metrics.add_metric(name="OpenHoldsPastWindow", unit=MetricUnit.Count, value=stuck)
    return {"released": released, "already_closed": already_closed, "failed": failed, "stuck": stuck}
