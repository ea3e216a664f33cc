"""The published contract: the OpenAPI 3.1 document of the whole public API.

`python -m kyma_openapi` (`make openapi`) writes `layers/shared/kyma/edge/openapi.json`
from `spec.build()`.  The document is built from the code's own vocabulary (the
error codes of `kyma.edge.errors`, the models and limits of the speech request), so
the two cannot drift; a test holds the committed file to the builder, to
template.yaml's routes and to the functions' dispatch tables, and the
integration and end-to-end tests validate their responses against it.

The file ships in the shared layer: `GET /v1/openapi.json` serves it and the
fallback function answers 405 from it.
"""
