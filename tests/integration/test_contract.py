"""The published contract (layers/shared/kyma/edge/openapi.json) is the API: the same routes as
template.yaml and the functions, every error code in it named by kyma.edge.errors, and API
Gateway's own answers and the README's tables in that vocabulary."""

from __future__ import annotations

import json
import re
from pathlib import Path

from openapi_spec_validator import validate

from kyma.edge import errors, openapi

ROOT = Path(__file__).resolve().parents[2]
DOCUMENT = json.loads(openapi.document_text())


def test_the_document_is_valid_openapi_3_1_and_the_committed_file_is_what_the_builder_writes():
    from kyma_openapi.__main__ import render

    validate(DOCUMENT)
    assert DOCUMENT["openapi"].startswith("3.1")
    assert openapi.document_text() == render(), "run `make openapi` and commit layers/shared/kyma/edge/openapi.json"


def test_the_document_has_exactly_the_template_routes_and_each_function_serves_its_own(aws, load_handler):
    declared: dict[str, set[str]] = {}
    for logical_id, fn in aws.functions.items():
        if logical_id == "FallbackFunction":
            continue
        served = {(e.method, e.path) for e in fn.api_events}
        for method, path in served:
            declared.setdefault(path, set()).add(method)
        if served and fn.handler.startswith("app."):
            assert set(load_handler(logical_id).routes) == served, logical_id
        elif served and fn.web_adapter:                  # a web app (run.sh): its WebApp's routes
            assert set(_web_app(fn).routes) == served, logical_id
    assert declared == {path: set(methods) for path, methods in openapi.routes().items()}


def _web_app(fn):
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"contract_{fn.logical_id}", fn.app_path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.app


def test_every_error_code_in_the_document_and_the_gateway_responses_is_in_the_vocabulary(aws):
    assert set(DOCUMENT["components"]["schemas"]["Error"]["properties"]["error"]["properties"]["code"]["enum"]) \
        == errors.codes()
    for kind, spec in aws.gateway_responses.items():
        body = json.loads(spec["ResponseTemplates"]["application/json"])
        assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, kind
        assert body["error"]["code"] in errors.codes(), kind


def test_the_readme_error_tables_explain_exactly_the_vocabulary():
    readme = (ROOT / "README.md").read_text()
    rows = re.findall(r"^\| (\d{3}|5xx) \| ([^|]+) \|", readme, re.M)
    assert rows, "the README has error tables"
    codes = {code for _, cell in rows for code in re.findall(r"`([a-z_]+)`", cell)}
    assert codes and codes <= errors.codes(), codes - errors.codes()
    assert errors.codes() <= codes, f"codes a client can get that no README table explains: {errors.codes() - codes}"


def test_the_published_speech_request_states_every_rule_the_api_checks():
    # kyma.speech.request.SCHEMA is what the API compiles and runs; the document must say the same
    # (e.g. the voice id's control-character rule), field by field and alias by alias.
    from kyma.speech.request import SCHEMA

    published = DOCUMENT["components"]["schemas"]["SpeechRequest"]["properties"]

    def rule(field: str) -> dict:
        (schema, null) = published[field]["anyOf"]
        assert null == {"type": "null"}
        return schema

    def without_prose(schema: dict) -> dict:
        return {k: v for k, v in schema.items() if k not in ("description", "default")}

    aliases = {"input": ["input", "text"], "voice": ["voice_id"]}
    for field, schema in SCHEMA["properties"].items():
        for name in aliases.get(field, [field]):
            assert without_prose(rule(name)) == schema, name
    as_string, as_object = rule("voice")["oneOf"]
    assert as_string == as_object["properties"]["id"] == SCHEMA["properties"]["voice"]


def test_the_published_clone_and_upload_bodies_state_the_rules_the_api_checks():
    from kyma.voices.clone import FIELDS
    from kyma.voices.uploads import CREATE_BODY

    def without_prose(schema: dict) -> dict:
        return {k: v for k, v in schema.items() if k not in ("description", "default")}

    content = DOCUMENT["paths"]["/v1/audio/voice-clone"]["post"]["requestBody"]["content"]
    for media in ("multipart/form-data", "application/json"):
        published = content[media]["schema"]["properties"]
        for field, rule in FIELDS.schema["properties"].items():
            assert without_prose(published[field]) == rule, (media, field)
    upload = DOCUMENT["paths"]["/v1/audio/voice-clone/uploads"]["post"]["requestBody"]["content"]["application/json"]
    for field, rule in CREATE_BODY.schema["properties"].items():
        assert upload["schema"]["properties"][field] == {"anyOf": [rule, {"type": "null"}]}, field
