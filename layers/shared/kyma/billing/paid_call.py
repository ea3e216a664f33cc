"""The protocol around one paid piece of work: reserve → work → settle, or release.

`kyma.billing.ledger` owns the writes; this module owns what happens *around* them when
something fails, so that no failure after a reserve loses or takes money:

- the work raises → the hold is released (exactly once) and the error propagates;
- the work finishes after the request's deadline (API Gateway would already have
  answered the client) → released: nothing is charged for a result nobody receives
  (`TooLate`; work that delivers before the settle checks it itself, before delivering);
- the settle fails → released and `settle_failed()` is raised, unless the settle had
  in fact been applied (its answer was lost), which is a success; if neither can be
  confirmed → 500 billing_outcome_unknown, never "no charge";
- the reconciler released the hold first (the request outlived it) → `settle_failed()`;
- a release that itself fails leaves the hold open for the reconciler.

A hold must outlive the request that holds it: `hold_lifetime(deadline, ...)` is how long
the reconciler must leave it alone (the request's deadline, plus the margin in which it
may still settle or release, plus HOLD_GRACE_SECONDS), and never less than the configured
hold timeout.

After the settle nothing may fail the request: the balance shown in the response
is read best-effort (`balance_or_none`).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from typing import TypeVar

from kyma.billing.accounting import Books
from kyma.billing.ledger import CHARGED, Hold, HoldNotOpen, Ledger
from kyma.edge import errors

T = TypeVar("T")
# A child of the Powertools logger "kyma" (kyma.platform.observability): its JSON, its level.
log = logging.getLogger("kyma.billing.paid_call")
# After a request's deadline its handler has SAFETY_MARGIN_SECONDS (kyma.edge.http) to release or
# settle before Lambda stops it; this covers that margin and clock skew between Lambda hosts.
HOLD_GRACE_SECONDS = 60


def hold_lifetime(deadline: float, minimum: int) -> int:
    """Seconds from now until the reconciler may release a hold taken for a request that
    ends by `deadline` (a time.monotonic() instant); at least `minimum`."""
    return max(minimum, math.ceil(deadline - time.monotonic()) + HOLD_GRACE_SECONDS)


class TooLate(errors.ProviderError):
    """The result came after the request's deadline: API Gateway has already answered (or closed)
    the client, so nobody can receive it, and nothing is charged.  Work that delivers before it
    settles raises this itself, before delivering (`PaidCalls.check_deadline`)."""

    release_reason = "deadline"

    def __init__(self) -> None:
        super().__init__("The provider answered too late to deliver the result in time; nothing was charged. Retry.")


class PaidCalls:
    def __init__(self, ledger: Ledger, books: Books) -> None:
        self.ledger = ledger
        self.books = books

    def complete(self, hold: Hold, work: Callable[[], T], *, settle_failed: Callable[[], errors.ApiError],
                 items: Callable[[T], Sequence[dict]] = lambda result: (), deadline: float | None = None) -> T:
        """Run `work` for an open hold; settle on success (with `items(result)`), release on any failure."""
        try:
            result = work()
        except Exception as exc:
            # e.g. "client_gone" (kyma.edge.web_app.ClientGone), "deadline" (TooLate)
            reason = getattr(exc, "release_reason", None) or (
                "provider_error" if isinstance(exc, errors.UpstreamError) else "error")
            self.release_safely(hold, reason)
            raise
        if deadline is not None and time.monotonic() > deadline:
            self.release_safely(hold, TooLate.release_reason)
            raise TooLate()
        try:
            self.ledger.settle(hold, items=items(result))
        except HoldNotOpen as exc:
            if exc.status != CHARGED:      # released by the reconciler: no charge, no row
                raise settle_failed() from exc
            # Charged already: our own settle applied and a retry of it found the hold closed.
        except Exception as exc:
            log.exception("settle failed", extra={"entry_id": hold.entry_id})
            applied = self._applied_after_all(hold)
            if applied is None:
                raise errors.BillingOutcomeUnknown(
                    "We could not confirm whether this request was charged. Check GET /v1/credits/balance "
                    "before retrying, or retry with the same Idempotency-Key.") from exc
            if not applied:
                raise settle_failed() from exc
        return result

    @staticmethod
    def check_deadline(deadline: float) -> None:
        """Inside work that delivers its result before the settle: TooLate (released) once past it."""
        if time.monotonic() > deadline:
            raise TooLate()

    def release_safely(self, hold: Hold, reason: str) -> bool | None:
        """Release without masking the error being handled.  None: could not release now
        (the hold stays open; the reconciler releases it later)."""
        try:
            return self.ledger.release(hold, reason=reason)
        except Exception:
            log.exception("release failed; the reconciler will release the hold",
                          extra={"entry_id": hold.entry_id, "reason": reason})
            return None

    def _applied_after_all(self, hold: Hold) -> bool | None:
        """After a settle that raised: release it, unless the settle had been applied.
        True: charged.  False: not charged (released now, or open for the reconciler).
        None: unknown (neither the release nor a read of the hold succeeded)."""
        if self.release_safely(hold, "settle_failed"):
            return False
        try:
            return self.books.hold_status(hold) == CHARGED
        except Exception:
            log.exception("could not read the hold's status", extra={"entry_id": hold.entry_id})
            return None

    def balance_or_none(self, account_id: str) -> int | None:
        """The balance for a response after a settle: best effort.  Once the charge is settled
        nothing may fail the request (the client must get what it paid for)."""
        try:
            return self.books.balance(account_id)
        except Exception:
            log.exception("balance read after settle failed", extra={"account_id": account_id})
            return None
