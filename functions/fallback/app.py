"""Answers what no other function does: unknown routes (404) and known routes
called with a method they do not have (405, with `Allow`), in the error envelope.

API Gateway routes here through `ANY /{proxy+}`, `ANY /` and an `ANY` method on
each real resource (a specific method always wins over ANY).  No AWS access.
"""

from kyma import init_phase

init_phase.begin()  # no cyclic GC passes while INIT imports (kyma/init_phase.py)

import json

from kyma.routes import ROUTES


def lambda_handler(event: dict, context) -> dict:
    method, path, resource = event.get("httpMethod", ""), event.get("path", ""), event.get("resource", "")
    allowed = ROUTES.get(resource)
    if allowed:
        status, code, headers = 405, "method_not_allowed", {"Allow": ", ".join(allowed)}
        message = f"{method} is not allowed on {resource}; use {' or '.join(allowed)}."
    else:
        status, code, headers = 404, "not_found", {}
        message = f"No route for {method} {path}."
    request_id = (event.get("requestContext") or {}).get("requestId") or getattr(context, "aws_request_id", "")
    return {"statusCode": status, "isBase64Encoded": False,
            "headers": {"Content-Type": "application/json", "X-Request-Id": request_id, **headers},
            "body": json.dumps({"error": {"code": code, "message": message}})}

init_phase.end()
