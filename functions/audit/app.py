"""Scheduled: audit every account's books (kyma/billing/audit.py) and emit AuditMismatches, which alarms."""

from kyma.platform import init_phase

init_phase.begin()  # no cyclic GC passes while INIT imports (kyma/platform/init_phase.py)

from kyma.billing.audit import account_ids, audit_all
from kyma.platform.observability import MetricUnit, instrument, logger, metrics
from kyma.services import services

svc = services()


@instrument
def lambda_handler(event: dict, context) -> dict:
    report = audit_all(svc.books, account_ids(svc.ledger.ddb, svc.cfg.accounts_table))
    metrics.add_metric(name="AuditedAccounts", unit=MetricUnit.Count, value=report.accounts)
    metrics.add_metric(name="AuditMismatches", unit=MetricUnit.Count, value=len(report.mismatched))
    for mismatch in report.mismatched:
        logger.error("books do not balance", extra={"account_id": mismatch["account_id"],
                                                    "problems": mismatch["problems"]})
    return {"accounts": report.accounts, "mismatched": [m["account_id"] for m in report.mismatched],
            "totals": report.totals}

init_phase.end()
