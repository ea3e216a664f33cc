"""Buying a voice, cloned or designed: reserve its price → make it at MiniMax → settle with its row.

One protocol for both paid voice endpoints (voice-clone, voice-design), so they cannot drift:

1. a fresh kyma_<16 hex> id; the MiniMax key looked up (a failing secret store fails here,
   before anything is reserved);
2. reserve the price (402 if short), with the caller's rate-limit counter, the Idempotency-Key's
   charge guard and (clone) the upload claim, in one transaction;
3. `make(voice_id)` at MiniMax: any failure releases the hold (`kyma.billing.paid_call`);
4. settle: the charge, the voice row (status `activating`, its `kind`, its own price) and the
   day's usage row, in one transaction; if the row cannot be written the hold is released and the
   answer is 500 ownership_write_failed (no charge, safe to retry), or 500
   billing_outcome_unknown if neither outcome can be confirmed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from kyma.billing.money import micros_to_header, micros_to_json
from kyma.billing.paid_call import PaidCalls
from kyma.edge import errors
from kyma.platform.config import Config
from kyma.platform.dynamo import Check, ReserveGate
from kyma.platform.observability import MetricUnit, metrics, upstream_failure
from kyma.voices.records import CLONED, DESIGNED, new_voice_id, voice_put

if TYPE_CHECKING:
    from kyma.providers.minimax import MiniMaxClient

T = TypeVar("T")
LEDGER_KIND = {CLONED: "voice_clone", DESIGNED: "voice_design"}     # the hold's `kind`: its usage row
ACTION = {CLONED: "voice clone", DESIGNED: "voice design"}


@dataclass(frozen=True)
class Order:
    """What is being bought: a voice of `kind` ("cloned" or "designed"), its model, name and price."""

    kind: str
    model: str
    name: str | None
    price_micros: int


def buy_voice(order: Order, make: Callable[[str], T], *, account_id: str, request_id: str, deadline: float,
              paid: PaidCalls, provider: MiniMaxClient, cfg: Config, guard: str | None = None,
              rate_limit: Check | None = None, upload_id: str | None = None, gate: ReserveGate | None = None,
              preview_key: Callable[[T], str | None] = lambda made: None) -> tuple[str, T]:
    """Reserve, `make(voice_id)` upstream, settle with the voice row; (voice_id, what `make` returned).
    `preview_key(made)`: where the voice's preview was kept, recorded on its row."""
    voice_id = new_voice_id()
    provider.check_key()
    hold = paid.ledger.reserve(account_id, order.price_micros, kind=LEDGER_KIND[order.kind], request_id=request_id,
                               reference={"voice_id": voice_id, "model": order.model}, upload_id=upload_id,
                               guard=guard, rate_limit=rate_limit, gate=gate)
    try:
        made = paid.complete(
            hold, lambda: make(voice_id),
            items=lambda result: [voice_put(cfg, voice_id=voice_id, owner_id=account_id, name=order.name,
                                            model=order.model, provider=provider.name, request_id=request_id,
                                            price_micros=order.price_micros, kind=order.kind,
                                            preview_key=preview_key(result))],
            settle_failed=lambda: errors.OwnershipWriteFailed(
                f"The voice was {order.kind} but its ownership could not be recorded; no charge was applied. "
                "Safe to retry."),
            deadline=deadline)
    except errors.UpstreamError as exc:
        upstream_failure(exc, ACTION[order.kind], voice_id=voice_id)
        raise
    metrics.add_metric(name="ChargedMicroUSD", unit=MetricUnit.Count, value=order.price_micros)
    return voice_id, made


def receipt(*, voice_id: str, name: str | None, model: str, cost_micros: int, balance_micros: int | None,
            provider_name: str) -> tuple[dict, dict]:
    """The response of a bought voice (the seed page's shape, shared by clone and design): its
    body fields and its `X-Kyma-*` headers.  No balance (the read after the charge failed): null,
    and no balance header."""
    fields = {"voice_id": voice_id, "name": name, "model": model, "cost_usd": micros_to_json(cost_micros),
              "balance_usd": None if balance_micros is None else micros_to_json(balance_micros)}
    headers = {"X-Kyma-Model": model, "X-Kyma-Cost-USD": micros_to_header(cost_micros),
               **({} if balance_micros is None else {"X-Kyma-Balance-USD": micros_to_header(balance_micros)}),
               "X-Kyma-Provider": provider_name}
    return fields, headers
