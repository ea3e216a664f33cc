"""Gateway responses: the errors API Gateway answers itself, rendered from the template."""

from __future__ import annotations

import json
from dataclasses import dataclass

# Default status of each gateway response type (AWS documentation).
DEFAULT_STATUS = {
    "ACCESS_DENIED": 403, "API_CONFIGURATION_ERROR": 500, "AUTHORIZER_CONFIGURATION_ERROR": 500,
    "AUTHORIZER_FAILURE": 500, "BAD_REQUEST_BODY": 400, "BAD_REQUEST_PARAMETERS": 400,
    "INTEGRATION_FAILURE": 504, "INTEGRATION_TIMEOUT": 504, "MISSING_AUTHENTICATION_TOKEN": 403,
    "QUOTA_EXCEEDED": 429, "REQUEST_TOO_LARGE": 413, "RESOURCE_NOT_FOUND": 404, "THROTTLED": 429,
    "UNAUTHORIZED": 401, "UNSUPPORTED_MEDIA_TYPE": 415,
}
DEFAULT_MESSAGE = {
    "ACCESS_DENIED": "User is not authorized to access this resource",
    "MISSING_AUTHENTICATION_TOKEN": "Missing Authentication Token",
    "REQUEST_TOO_LARGE": "Request Too Long", "THROTTLED": "Too Many Requests",
    "UNAUTHORIZED": "Unauthorized", "INTEGRATION_TIMEOUT": "Endpoint request timed out",
}


@dataclass(frozen=True)
class HttpResponse:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


class GatewayResponses:
    """The template's GatewayResponses, with AWS's defaults for the types it leaves out."""

    def __init__(self, specs: dict[str, dict]) -> None:
        self.specs = specs

    def render(self, kind: str, request_id: str, *, status: int | None = None) -> HttpResponse:
        spec = self.specs.get(kind)
        default_status = status or DEFAULT_STATUS.get(kind, 500)
        if spec is None:
            spec = self.specs.get("DEFAULT_4XX" if default_status < 500 else "DEFAULT_5XX") or {}
        code = int(spec.get("StatusCode", default_status))
        template = (spec.get("ResponseTemplates") or {}).get("application/json")
        body = template if template is not None else json.dumps(
            {"message": DEFAULT_MESSAGE.get(kind, "Internal server error")})
        body = body.replace("$context.requestId", request_id)
        headers = [("Content-Type", "application/json")]
        for name, value in ((spec.get("ResponseParameters") or {}).get("Headers") or {}).items():
            if value == "context.requestId":
                headers.append((name, request_id))
            elif value.startswith("'") and value.endswith("'"):
                headers.append((name, value[1:-1]))
        headers.append(("x-amzn-RequestId", request_id))
        if not kind.startswith("DEFAULT_"):
            headers.append(("x-amzn-ErrorType", kind))
        return HttpResponse(code, headers, body.encode("utf-8"))
