"""Scheduled: release holds left open past their timeout (a crashed or timed-out request).

Safe against the handler waking up and settling at the same moment: release
and settle both require the hold to be open, so exactly one of them applies.
"""

from kyma import init_phase

init_phase.begin()  # no cyclic GC passes while INIT imports (kyma/init_phase.py)

from kyma.aws import dynamodb
from kyma.billing import Billing
from kyma.config import config
from kyma.observability import MetricUnit, instrument, logger, metrics

billing = Billing(dynamodb(), config())


def reconcile() -> dict:
    released = already_closed = failed = 0
    for hold in billing.expired_holds():
        try:
            if billing.release(hold, reason="expired"):
                released += 1
                logger.warning("released an expired hold", extra={
                    "account_id": hold.account_id, "entry_id": hold.entry_id, "amount_micros": hold.amount_micros})
            else:
                already_closed += 1
        except Exception:  # one bad hold must not stop the others; it is retried next run
            failed += 1
            logger.exception("could not release an expired hold", extra={"entry_id": hold.entry_id})
    metrics.add_metric(name="HoldsReleasedByReconciler", unit=MetricUnit.Count, value=released)
    return {"released": released, "already_closed": already_closed, "failed": failed}


@instrument
def lambda_handler(event: dict, context) -> dict:
    return reconcile()

init_phase.end()
