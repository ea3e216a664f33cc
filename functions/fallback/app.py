"""Answers what no other function does: unknown routes (404) and known routes called with a
method they do not have (405, with `Allow`), in the error envelope.

API Gateway routes here through `ANY /{proxy+}`, `ANY /` and an `ANY` method on each real
resource (a specific method always wins over ANY).  The methods each route has come from the
published contract (kyma/edge/openapi.json).  No AWS access.
"""

from kyma.platform import init_phase

init_phase.begin()  # no cyclic GC passes while INIT imports (kyma/platform/init_phase.py)

import json

from kyma.edge import errors, openapi


def lambda_handler(event: dict, context) -> dict:
    method, path, resource = event.get("httpMethod", ""), event.get("path", ""), event.get("resource", "")
    allowed = openapi.routes().get(resource)
    error: errors.ApiError
    if allowed:
        error = errors.MethodNotAllowed(f"{method} is not allowed on {resource}; use {' or '.join(allowed)}.",
                                        headers={"Allow": ", ".join(allowed)})
    else:
        error = errors.NotFound(f"No route for {method} {path}.")
    request_id = (event.get("requestContext") or {}).get("requestId") or getattr(context, "aws_request_id", "")
    return {"statusCode": error.status, "isBase64Encoded": False,
            "headers": {"Content-Type": "application/json", "X-Request-Id": request_id, **error.headers},
            "body": json.dumps(error.envelope())}

init_phase.end()
