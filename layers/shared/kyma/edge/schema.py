"""One JSON Schema per request body: compiled once per process (on first use, not in INIT: cold
start), its first failure mapped onto the contract's error by the body's own `explain`, never a
generic 422.  The published document (tools/kyma_openapi) is built from the same schemas.

kyma.speech.request compiles its schema the same way (two variants, for its aliases)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from kyma.edge.errors import ApiError

# explain(field, rule, value) → the contract's error: `field` is the top-level property that
# failed ("" for the body itself), `rule` the JSON Schema keyword (type, maxLength, pattern...).
Explain = Callable[[str, str, Any], ApiError]


class BodySchema:
    def __init__(self, schema: Mapping[str, Any], explain: Explain) -> None:
        self.schema = schema
        self._explain = explain
        self._validate: Callable[[Any], Any] | None = None

    def check(self, data: Any) -> None:
        """`data` as the schema says, or the contract's error for the first rule it breaks."""
        import fastjsonschema

        if self._validate is None:
            self._validate = fastjsonschema.compile(dict(self.schema))
        try:
            self._validate(data)
        except fastjsonschema.JsonSchemaValueException as exc:
            field = (exc.name or "").removeprefix("data").removeprefix(".").split(".")[0]
            raise self._explain(field, exc.rule or "", exc.value) from None
