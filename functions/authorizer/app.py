"""Lambda REQUEST authorizer: `Authorization: Bearer <API key>` → account.

API Gateway caches the answer per Authorization header value (template:
ReauthorizeEvery), so the policy allows every route of the stage and the
account id travels in the context to the functions.  An unknown or revoked
key raises "Unauthorized", which API Gateway answers as 401 auth_error.

Deliberately tiny: it runs before every uncached request, so it imports only
boto3 and the key lookup (no Powertools: its logger alone costs more than
this function's cold-start budget; see bench/results.md).
"""

from __future__ import annotations

from kyma.platform import init_phase

init_phase.begin()  # no cyclic GC passes while INIT imports (kyma/platform/init_phase.py)

import json
import logging
import os

from kyma.accounts.keys import ApiKeys
from kyma.platform.aws import fast_client
from kyma.platform.config import config

log = logging.getLogger("kyma.authorizer")
log.setLevel(os.environ.get("POWERTOOLS_LOG_LEVEL", "INFO"))
api_keys = ApiKeys(fast_client("dynamodb"), config())   # bounded well inside the authorizer's 5 s


def lambda_handler(event: dict, context) -> dict:
    token = _bearer(event.get("headers") or {})
    context = api_keys.context_for(token) if token else None
    request_id = (event.get("requestContext") or {}).get("requestId")
    if context is None:
        # Never log the key, not even in part.
        log.info(json.dumps({"message": "denied", "request_id": request_id,
                             "reason": "missing" if not token else "unknown, revoked or expired key"}))
        raise Exception("Unauthorized")  # API Gateway's contract for a 401
    account_id = context["account_id"]
    log.info(json.dumps({"message": "allowed", "request_id": request_id, "account_id": account_id,
                         "key_id": context["key_id"]}))
    return {
        "principalId": account_id,
        "policyDocument": {"Version": "2012-10-17", "Statement": [
            {"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": _stage_wildcard(event["methodArn"])}]},
        # Context values are strings: the key's id, hash (what the reserve's key check names) and scopes
        # (kyma.edge.scopes), its monthly limit, the account's own limits as JSON (kyma.accounts.keys).
        "context": context,
    }


def _bearer(headers: dict) -> str | None:
    value = next((v for k, v in headers.items() if k.lower() == "authorization"), None) or ""
    scheme, _, token = value.strip().partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def _stage_wildcard(method_arn: str) -> str:
    """arn:...:api-id/stage/GET/v1/x → arn:...:api-id/stage/*/* (the answer is cached per key,
    so it must allow every route, not just the first one called)."""
    api, stage = method_arn.split("/")[:2]
    return f"{api}/{stage}/*/*"

init_phase.end()
