"""The caller's keys and limits: POST/GET /v1/keys, PATCH/DELETE /v1/keys/{key_id} (the `keys`
scope), GET /v1/limits (`account:read`): shared/reference/keys-and-limits.md."""

import time

from kyma.platform import init_phase

init_phase.begin()  # no cyclic GC passes while INIT imports (kyma/platform/init_phase.py)

from kyma.accounts import limits as account_limits
from kyma.accounts.customer_keys import CustomerKeys, read_fields
from kyma.accounts.rate_limits import RateLimiter
from kyma.edge.http import Request, Response, api_handler, json_response
from kyma.platform.observability import instrument, logger
from kyma.services import services

svc = services()
limiter = RateLimiter(svc.ledger.ddb, svc.cfg)
keys = CustomerKeys(svc.ledger.ddb, svc.cfg)


def create_key(request: Request) -> Response:
    made = keys.create(request.account_id, read_fields(request.json(), creating=True, now=time.time()))
    logger.info("key created", extra={"account_id": request.account_id, "new_key_id": made["key_id"],
                                      "by_key_id": request.authorizer.get("key_id")})
    return json_response(201, made, {"Cache-Control": "no-store"})


def list_keys(request: Request) -> Response:
    return json_response(200, {"keys": keys.list_keys(request.account_id)})


def update_key(request: Request) -> Response:
    key_id = request.path_params.get("key_id", "")
    shown = keys.update(request.account_id, key_id, read_fields(request.json(), creating=False, now=time.time()))
    logger.info("key changed", extra={"account_id": request.account_id, "changed_key_id": key_id})
    return json_response(200, shown)


def revoke_key(request: Request) -> Response:
    key_id = request.path_params.get("key_id", "")
    shown = keys.revoke(request.account_id, key_id)
    logger.info("key revoked", extra={"account_id": request.account_id, "revoked_key_id": key_id})
    return json_response(200, shown)


def limits(request: Request) -> Response:
    return json_response(200, account_limits.for_caller(svc.ledger.ddb, svc.cfg, request.account_id,
                                                        request.authorizer))


lambda_handler = instrument(api_handler({
    ("POST", "/v1/keys"): limiter.guard("account", create_key),
    ("GET", "/v1/keys"): limiter.guard("account", list_keys),
    ("PATCH", "/v1/keys/{key_id}"): limiter.guard("account", update_key),
    ("DELETE", "/v1/keys/{key_id}"): limiter.guard("account", revoke_key),
    ("GET", "/v1/limits"): limiter.guard("account", limits),
}), with_metrics=False)

init_phase.end()
