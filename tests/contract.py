"""Responses checked against the published contract (layers/shared/kyma/edge/openapi.json).

`check(method, resource, response)` fails a test when a function answers with a status the
document does not list for that operation, without X-Request-Id, with a Content-Type the
document does not list, with a JSON body its schema rejects, or with a Server-Sent Event
its event schema (and the JSON its `data` carries) rejects.  The integration tests run
every handler they load through it (tests/conftest.py `load_handler`).
"""

from __future__ import annotations

import base64
import json

from jsonschema import Draft202012Validator

from kyma.edge import openapi

DOCUMENT = json.loads(openapi.document_text())


def check(method: str, resource: str, response: dict) -> None:
    operation = DOCUMENT["paths"].get(resource, {}).get(method.lower())
    if operation is None:          # the fallback's 404/405 for routes and methods not in the contract
        assert response["statusCode"] in (404, 405), (method, resource, response["statusCode"])
        return
    status = str(response["statusCode"])
    documented = operation["responses"].get(status)
    assert documented is not None, f"{method} {resource} answered {status}, which the contract does not list"
    headers = {k.lower(): v for k, v in (response.get("headers") or {}).items()}
    assert headers.get("x-request-id") is not None, "every response carries X-Request-Id"
    content = documented.get("content") or {}
    media = (headers.get("content-type") or "").split(";")[0].strip()
    if not content:
        return
    assert media in content, f"{method} {resource} {status}: Content-Type {media!r} not in {list(content)}"
    if media == "text/event-stream":
        schema = content[media]["schema"]
        for event in _events(response.get("body") or ""):
            errors = sorted(Draft202012Validator(schema).iter_errors(event), key=str)
            assert not errors, f"{method} {resource} {status}: event {event}: {errors[0].message}"
            data = json.loads(event["data"])      # contentSchema is an annotation: checked here
            errors = sorted(Draft202012Validator(schema["properties"]["data"]["contentSchema"]).iter_errors(data),
                            key=str)
            assert not errors, f"{method} {resource} {status}: event data {data}: {errors[0].message}"
    if media == "application/json" and response.get("complete") is not False:   # a cut body is no document
        raw = response.get("body") or ""
        body = json.loads(base64.b64decode(raw) if response.get("isBase64Encoded") else raw)
        schema = {**content[media]["schema"], "components": DOCUMENT["components"]}
        errors = sorted(Draft202012Validator(schema).iter_errors(body), key=str)
        assert not errors, f"{method} {resource} {status}: {errors[0].message}"


def _events(stream: str) -> list[dict]:
    """A text/event-stream body as its events ({"data": ..., "event": ...}), as a client reads them."""
    events = []
    for block in stream.replace("\r\n", "\n").split("\n\n"):
        fields: dict[str, str] = {}
        for line in block.split("\n"):
            name, _, value = line.partition(":")
            if name and line != name:
                value = value.removeprefix(" ")
                fields[name] = fields[name] + "\n" + value if name in fields else value
        if "data" in fields:
            events.append(fields)
    return events
