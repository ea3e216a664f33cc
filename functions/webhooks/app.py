"""/v1/webhooks: register endpoints (the signing secret shown once), list, get, delete, rotate the
secret, see recent delivery attempts, send a test event (reference/webhooks.md)."""

from kyma.platform import init_phase

init_phase.begin()  # no cyclic GC passes while INIT imports (kyma/platform/init_phase.py)

from kyma.accounts.rate_limits import RateLimiter
from kyma.edge.http import Request, Response, api_handler, json_response, query_limit
from kyma.platform.observability import instrument, logger
from kyma.services import services, webhook_services
from kyma.webhooks import events
from kyma.webhooks.endpoints import read_create, view
from kyma.webhooks.ssrf import system_resolver

svc = services()
hooks = webhook_services()
limiter = RateLimiter(svc.ledger.ddb, svc.cfg)


def create(request: Request) -> Response:
    url, kinds, description = read_create(request.json(), allow_loopback=svc.cfg.webhooks_allow_loopback,
                                          resolver=system_resolver)
    created = hooks.endpoints.create(request.account_id, url, kinds, description)
    logger.info("webhook created", extra={"account_id": request.account_id, "webhook_id": created["webhook_id"]})
    return json_response(201, created)


def list_all(request: Request) -> Response:
    return json_response(200, {"webhooks": [view(r) for r in hooks.endpoints.all(request.account_id)]})


def get_one(request: Request) -> Response:
    return json_response(200, view(hooks.endpoints.get_row(request.account_id, request.path_params["webhook_id"])))


def delete(request: Request) -> Response:
    webhook_id = request.path_params["webhook_id"]
    hooks.endpoints.delete(request.account_id, webhook_id)
    return json_response(200, {"webhook_id": webhook_id, "deleted": True})


def rotate(request: Request) -> Response:
    return json_response(200, hooks.endpoints.rotate(request.account_id, request.path_params["webhook_id"]))


def deliveries(request: Request) -> Response:
    row = hooks.endpoints.get_row(request.account_id, request.path_params["webhook_id"])
    limit = query_limit(request.query, default=50, maximum=100)
    return json_response(200, {"webhook_id": row["sk"], "deliveries": hooks.endpoints.attempts(row["sk"], limit=limit)})


def test(request: Request) -> Response:
    row = hooks.endpoints.get_row(request.account_id, request.path_params["webhook_id"])
    event_id = events.record(svc.ledger.ddb, svc.cfg, request.account_id, events.WEBHOOK_TEST, {},
                             only_webhook_id=row["sk"])
    return json_response(202, {"webhook_id": row["sk"], "event_id": event_id, "type": events.WEBHOOK_TEST})


ITEM = "/v1/webhooks/{webhook_id}"
lambda_handler = instrument(api_handler({
    ("POST", "/v1/webhooks"): limiter.guard("account", create),
    ("GET", "/v1/webhooks"): limiter.guard("account", list_all),
    ("GET", ITEM): limiter.guard("account", get_one),
    ("DELETE", ITEM): limiter.guard("account", delete),
    ("POST", ITEM + "/rotate-secret"): limiter.guard("account", rotate),
    ("GET", ITEM + "/deliveries"): limiter.guard("account", deliveries),
    ("POST", ITEM + "/test"): limiter.guard("account", test),
}))

init_phase.end()
