"""GET /v1/credits/balance: the caller's prepaid balance."""

from kyma import init_phase

init_phase.begin()  # no cyclic GC passes while INIT imports (kyma/init_phase.py)

from kyma.http import Request, Response, api_handler, json_response
from kyma.money import micros_to_json
from kyma.observability import instrument
from kyma.services import services

svc = services()


def balance(request: Request) -> Response:
    return json_response(200, {"balance_usd": micros_to_json(svc.books.balance(request.account_id))})


lambda_handler = instrument(api_handler({("GET", "/v1/credits/balance"): balance}), with_metrics=False)

init_phase.end()
