"""The schema lives in template.yaml only: the local stack and the tests build from it."""

import json
from pathlib import Path

from kyma.edge import openapi

ROOT = Path(__file__).resolve().parents[2]


def test_tables_are_created_from_the_template_properties(aws, ddb):
    for logical_id, props in aws.tables.items():
        table = ddb.describe_table(TableName=aws.physical_name(logical_id))["Table"]
        assert table["KeySchema"] == props["KeySchema"]
        assert {i["IndexName"]: i["KeySchema"] for i in table.get("GlobalSecondaryIndexes", [])} == \
            {i["IndexName"]: i["KeySchema"] for i in props.get("GlobalSecondaryIndexes", [])}
        assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
        ttl = ddb.describe_time_to_live(TableName=aws.physical_name(logical_id))["TimeToLiveDescription"]
        if "TimeToLiveSpecification" in props:
            assert ttl["AttributeName"] == props["TimeToLiveSpecification"]["AttributeName"]
            assert ttl["TimeToLiveStatus"] == "ENABLED"


def test_money_and_key_tables_have_pitr_encryption_and_switchable_deletion_protection(aws):
    params = aws.doc["Parameters"]
    assert params["TableDeletionProtection"]["AllowedValues"] == ["true", "false"]
    for logical_id in ("AccountsTable", "LedgerTable", "ApiKeysTable", "VoicesTable", "IdempotencyTable"):
        props = aws.resources[logical_id]["Properties"]
        assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
        assert props["SSESpecification"] == {"SSEEnabled": True}
        assert props["DeletionProtectionEnabled"] == {"Ref": "TableDeletionProtection"}


def test_public_routes_match_the_template_and_unknown_methods_reach_the_fallback(aws):
    declared: dict[str, set[str]] = {}
    fallback: set[str] = set()
    for logical_id, fn in aws.functions.items():
        for event in fn.api_events:
            if logical_id == "FallbackFunction":
                fallback.add(event.path)
            else:
                declared.setdefault(event.path, set()).add(event.method)
                public = event.path == "/v1/openapi.json"
                assert event.authorized != public, f"{event.path} must sit behind the authorizer"
    routes = openapi.routes()
    assert declared == {path: set(methods) for path, methods in routes.items()}
    assert fallback == set(routes) | {"/", "/{proxy+}"}


def test_every_function_has_a_realistic_event_file():
    events = {p.name for p in (ROOT / "events").glob("*.json")}
    for name in events:
        json.loads((ROOT / "events" / name).read_text())
    assert {"account-balance.json", "authorizer-request.json", "speech.json", "voice-clone-inline.json"} <= events


def test_the_minimax_key_is_referenced_by_parameter_name_never_a_literal(aws):
    env = aws.doc["Globals"]["Function"]["Environment"]["Variables"]
    assert env["MINIMAX_API_KEY_PARAMETER"] == {"Ref": "MiniMaxApiKeyParameterName"}
    assert "MINIMAX_API_KEY" not in env


def test_the_speech_route_streams_from_a_web_adapter_function_and_its_clocks_agree(aws, monkeypatch):
    """Translated as `sam` translates it: a streaming integration to the function's
    response-streaming-invocations, the adapter's layer and settings, and one maximum duration."""
    from samtranslator.translator.transform import transform

    from kyma_local.template import _CfnLoader

    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    import yaml

    doc = yaml.load(aws.path.read_text(), Loader=_CfnLoader)  # noqa: S506 (_CfnLoader is a SafeLoader)
    for resource in doc["Resources"].values():            # what `sam package` would have uploaded
        for uri in ("CodeUri", "ContentUri"):
            if uri in resource.get("Properties", {}):
                resource["Properties"][uri] = "s3://bucket/key"
    out = transform(doc, {"Stage": "dev"}, type("NoManagedPolicies", (), {"load": lambda self: {}})())["Resources"]
    (api,) = [r for r in out.values() if r["Type"] == "AWS::ApiGateway::RestApi"]
    integration = api["Properties"]["Body"]["paths"]["/v1/audio/speech"]["post"]["x-amazon-apigateway-integration"]
    assert integration["responseTransferMode"] == "STREAM"
    assert integration["uri"]["Fn::Sub"].endswith("/2021-11-15/functions/${SpeechFunction.Arn}"
                                                  "/response-streaming-invocations")
    speech = out["SpeechFunction"]["Properties"]
    assert speech["Handler"] == "run.sh"
    assert speech["Layers"][1] == {"Fn::Sub": "arn:${AWS::Partition}:lambda:${AWS::Region}:753240598075:layer:"
                                              "LambdaAdapterLayerArm64:30"}    # pinned: test_template_first_deploy
    env = speech["Environment"]["Variables"]
    assert (env["AWS_LAMBDA_EXEC_WRAPPER"], env["AWS_LWA_INVOKE_MODE"]) == ("/opt/bootstrap", "response_stream")
    # One maximum duration: the integration's, the function's and the one the app stops before
    assert integration["timeoutInMillis"] == speech["Timeout"] * 1000 == int(env["STREAM_API_TIMEOUT_SECONDS"]) * 1000
    assert speech["Timeout"] <= 900                       # Lambda's maximum, and the streaming integration's
    run_sh = (ROOT / "functions" / "speech" / "run.sh")
    assert run_sh.stat().st_mode & 0o111 and "/opt/python" in run_sh.read_text()
