"""The caller's money: GET /v1/credits/balance, GET /v1/credits/ledger (every balance change,
newest first) and GET /v1/usage (what was charged per UTC day, endpoint and model)."""

from kyma.platform import init_phase

init_phase.begin()  # no cyclic GC passes while INIT imports (kyma/platform/init_phase.py)

from kyma.accounts.rate_limits import RateLimiter
from kyma.billing import usage
from kyma.billing.money import micros_to_json
from kyma.edge.http import Request, Response, api_handler, json_response, query_limit
from kyma.platform.observability import instrument
from kyma.services import services

svc = services()
limiter = RateLimiter(svc.ledger.ddb, svc.cfg)
usage_rows = usage.Usage(svc.ledger.ddb, svc.cfg)


def balance(request: Request) -> Response:
    return json_response(200, {"balance_usd": micros_to_json(svc.books.balance(request.account_id))})


def ledger(request: Request) -> Response:
    return json_response(200, svc.books.page(request.account_id,
                                             limit=query_limit(request.query, default=20, maximum=100),
                                             cursor=request.query.get("cursor")))


def usage_report(request: Request) -> Response:
    start, end = usage.parse_range(request.query)
    return json_response(200, {"start": start, "end": end,
                               "usage": usage_rows.between(request.account_id, start, end)})


lambda_handler = instrument(api_handler({
    ("GET", "/v1/credits/balance"): limiter.guard("account", balance),
    ("GET", "/v1/credits/ledger"): limiter.guard("account", ledger),
    ("GET", "/v1/usage"): limiter.guard("account", usage_report),
}), with_metrics=False)

init_phase.end()
