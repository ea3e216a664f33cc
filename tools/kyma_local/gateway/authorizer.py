"""The REQUEST Lambda authorizer: identity sources, the result cache, outcome mapping."""

from __future__ import annotations

import threading
import time
from typing import Any

from kyma_local.gateway.events import find_header
from kyma_local.gateway.limits import ACCOUNT, API_ID
from kyma_local.gateway.policy import policy_allows


class RequestAuthorizer:
    """Answers (gateway response type or None, authorizer context) for one request."""

    def __init__(self, pool: Any, spec: dict, *, stage: str, ttl: float | None = None) -> None:
        self.pool = pool
        self.stage = stage
        identity = spec.get("Identity", {})
        self.identity_headers = [h.lower() for h in identity.get("Headers", ["Authorization"])]
        self.ttl = identity.get("ReauthorizeEvery", 300) if ttl is None else ttl
        self._cache: dict[tuple, tuple[float, dict]] = {}
        self._lock = threading.Lock()

    def authorize(self, method: str, path: str, resource: str, single: dict, multi: dict, qs_single: dict,
                  qs_multi: dict, params: dict, request_context: dict) -> tuple[str | None, dict]:
        identity = tuple(single.get(find_header(single, h) or "") for h in self.identity_headers)
        if any(not v for v in identity):
            return "UNAUTHORIZED", {}
        method_arn = f"arn:aws:execute-api:us-east-1:{ACCOUNT}:{API_ID}/{self.stage}/{method}{path}"
        now = time.monotonic()
        with self._lock:
            cached = self._cache.get(identity)
        if cached and cached[0] > now:
            answer = cached[1]
        else:
            result = self.pool.invoke({
                "type": "REQUEST", "methodArn": method_arn, "resource": resource, "path": path,
                "httpMethod": method, "headers": single, "multiValueHeaders": multi,
                "queryStringParameters": qs_single, "multiValueQueryStringParameters": qs_multi,
                "pathParameters": params, "stageVariables": {}, "requestContext": request_context})
            if result.error:
                if result.error == "Unhandled" and result.error_message.endswith(": Unauthorized"):
                    return "UNAUTHORIZED", {}  # not cached by API Gateway either
                return "AUTHORIZER_CONFIGURATION_ERROR", {}
            answer = result.payload
            if not isinstance(answer, dict) or "policyDocument" not in answer or "principalId" not in answer:
                return "AUTHORIZER_CONFIGURATION_ERROR", {}
            if self.ttl:
                with self._lock:
                    self._cache[identity] = (now + self.ttl, answer)
        if not policy_allows(answer["policyDocument"], method_arn):
            return "ACCESS_DENIED", {}
        context = dict(answer.get("context") or {})
        return None, {**context, "principalId": answer["principalId"], "integrationLatency": 0}

    def flush(self) -> None:
        with self._lock:
            self._cache.clear()
