"""GET /v1/openapi.json: the OpenAPI 3.1 document of the API, without authentication."""

from kyma.platform import init_phase

init_phase.begin()  # no cyclic GC passes while INIT imports (kyma/platform/init_phase.py)

from kyma.edge import openapi
from kyma.edge.http import Request, Response, api_handler
from kyma.platform.observability import instrument

DOCUMENT = openapi.document_text()


def document(request: Request) -> Response:
    return Response(200, DOCUMENT, {"Content-Type": "application/json", "Cache-Control": "public, max-age=300"})


lambda_handler = instrument(api_handler({("GET", "/v1/openapi.json"): document}), with_metrics=False)

init_phase.end()
