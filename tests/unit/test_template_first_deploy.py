"""A first `sam deploy` that cannot fail on a fresh account, and operations that clear: held to the
template as CloudFormation receives it (translated by aws-sam-translator, tests/sam_template.py)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from sam_template import translated

from kyma_local.template import Template

SOURCE = Template()
# The Web Adapter's public layer, pinned on purpose: version 30 is the adapter's v1.1.0, its newest
# stable release when this was written (26 was a v1.0.0 release candidate).  Moving it is a
# reviewed change: read the release notes, run the speech tests, then change both.
WEB_ADAPTER_LAYER = "arn:${AWS::Partition}:lambda:${AWS::Region}:753240598075:layer:LambdaAdapterLayerArm64:30"
RESERVING = {"ReconcilerFunction": 1, "AuditFunction": 1, "VoiceActivationFunction": 2, "SpeechJobsSweepFunction": 1,
             "SpeechJobsWorkerFunction": 10}


def reserved(cfn) -> dict[str, Any]:
    return {k: cfn.resolve(v["Properties"].get("ReservedConcurrentExecutions"))
            for k, v in cfn.of_type("AWS::Lambda::Function").items()
            if cfn.resolve(v["Properties"].get("ReservedConcurrentExecutions")) is not None}


# ── reserved concurrency: a parameter, off by default ─────────────────────
def test_no_function_reserves_concurrency_by_default():
    # A new account's quota is often 10 and Lambda keeps 100 unreserved: any reservation fails there.
    assert SOURCE.doc["Parameters"]["ReserveConcurrency"]["Default"] == "false"
    assert reserved(translated()) == {}


def test_reserve_concurrency_true_gives_the_single_runners_their_reservation():
    assert reserved(translated(ReserveConcurrency="true")) == RESERVING
    assert sum(RESERVING.values()) == 15         # the README's "a limit of 115 or more"
    assert reserved(translated(ReserveConcurrency="false")) == {}


# ── the Web Adapter layer: the newest stable version, pinned ──────────────
def test_the_speech_function_runs_the_pinned_web_adapter_layer_in_the_stacks_partition():
    cfn = translated()
    layers = cfn.props("SpeechFunction")["Layers"]
    assert layers[-1] == {"Fn::Sub": WEB_ADAPTER_LAYER}
    assert cfn.resolve(layers[-1]).startswith("arn:aws:lambda:us-east-1:753240598075:")


def strings(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(value, dict):
        for k, v in value.items():
            yield from strings(v, f"{path}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from strings(v, f"{path}[{i}]")
    elif isinstance(value, str):
        yield path, value


def test_no_arn_in_the_template_hard_codes_the_aws_partition():
    # aws-cn and aws-us-gov stacks: every ARN the template writes takes ${AWS::Partition}.
    written = [(path, text) for path, text in strings(SOURCE.doc["Resources"], "Resources")
               if re.search(r"arn:aws:", text)]
    assert written == []
    assert any("arn:${AWS::Partition}:lambda:" in text for _, text in strings(SOURCE.doc["Resources"]))


# ── prod must notify someone ─────────────────────────────────────────────
def rule_verdict(**parameters: str) -> bool | None:
    """None where the rule does not apply, else whether its assertions hold (CloudFormation refuses
    the stack, before creating anything, when they do not)."""
    cfn = translated(**parameters)
    rule = cfn.doc["Rules"]["ProdAlarmsNotifySomeone"]
    if not cfn.resolve(rule["RuleCondition"]):
        return None
    return all(cfn.resolve(a["Assert"]) for a in rule["Assertions"])


def test_a_prod_stack_without_an_alarm_topic_is_refused():
    assert rule_verdict(Stage="prod") is False
    assert rule_verdict(Stage="prod", AlarmTopicArn="arn:aws:sns:us-east-1:123456789012:kyma-oncall") is True
    assert rule_verdict(Stage="dev") is None
    assert rule_verdict(Stage="staging") is None


def test_the_refusal_says_what_to_do():
    (assertion,) = SOURCE.doc["Rules"]["ProdAlarmsNotifySomeone"]["Assertions"]
    assert "AlarmTopicArn" in assertion["AssertDescription"] and "samconfig.toml" in assertion["AssertDescription"]


# ── the uploads bucket's CORS: configured origins only ───────────────────
def test_the_uploads_bucket_has_no_cors_rule_by_default():
    assert "CorsConfiguration" not in translated().resolve(translated().props("UploadsBucket"))


def test_the_uploads_bucket_lets_only_the_configured_origins_post():
    cfn = translated(UploadsCorsOrigins="https://app.example.com,https://staging.example.com")
    (rule,) = cfn.resolve(cfn.props("UploadsBucket"))["CorsConfiguration"]["CorsRules"]
    # The one resolver (kyma_local.template) evaluates Fn::Split as CloudFormation does.
    assert cfn.resolve(rule["AllowedOrigins"]) == ["https://app.example.com", "https://staging.example.com"]
    assert rule["AllowedMethods"] == ["POST"]
    # As CloudFormation evaluates it (the local stack's resolver does the Split).
    local = Template(parameters={"UploadsCorsOrigins": "https://app.example.com,https://staging.example.com"})
    assert local.buckets["UploadsBucket"]["CorsConfiguration"]["CorsRules"][0]["AllowedOrigins"] == [
        "https://app.example.com", "https://staging.example.com"]


@pytest.mark.parametrize("value, accepted", [
    ("", True), ("https://app.example.com", True), ("https://a.example.com,http://localhost:5173", True),
    ("*", False), ("https://*.example.com", False), ("https://a.example.com, https://b.example.com", False),
    ("app.example.com", False)])
def test_the_origins_parameter_accepts_origins_only_never_a_wildcard(value, accepted):
    pattern = SOURCE.doc["Parameters"]["UploadsCorsOrigins"]["AllowedPattern"]
    assert bool(re.fullmatch(pattern, value)) is accepted


# ── the failure queues can be found and drained (kyma-admin failures) ─────
def test_the_stack_outputs_what_kyma_admin_failures_needs():
    outputs = SOURCE.doc["Outputs"]
    assert outputs["ReconcilerFailureQueueUrl"]["Value"] == {"Ref": "ReconcilerFailureQueue"}
    assert outputs["ActivationFailuresQueueUrl"]["Value"] == {"Ref": "ActivationFailuresQueue"}
    assert outputs["ReconcilerFunctionName"]["Value"] == {"Ref": "ReconcilerFunction"}
    assert outputs["VoiceActivationFunctionName"]["Value"] == {"Ref": "VoiceActivationFunction"}
