"""What an operator needs from the deployed stack, held to the template as CloudFormation receives
it (translated by aws-sam-translator, tests/sam_template.py): one stage, access logs, log
retention, tables that survive the stack, a reconciler that cannot race itself and whose failures
land somewhere, alarms and a dashboard that point at real resources and metrics."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from sam_template import translated

from kyma_local.template import Template

ROOT = Path(__file__).resolve().parents[2]
SOURCE = Template()
FUNCTIONS = sorted(SOURCE.of_type("AWS::Serverless::Function"))
MONEY_TABLES = {"AccountsTable", "ApiKeysTable", "VoicesTable", "LedgerTable", "IdempotencyTable"}
# Emitted by the integrator's code soon (issue 12); every other alarmed metric is emitted today.
MONEY_ALARMS = {"HoldsReleasedByReconciler", "ReleaseFailures", "OpenHoldsPastWindow", "ProviderOperatorErrors",
                "VoicesActivatingOverOneDay", "VoiceDeletesPendingOverOneDay", "AuditMismatches"}


def emitted_metrics() -> set[str]:
    """Metric names the code emits: every metrics.add_metric(name="...") in the layer and functions."""
    names = set()
    for path in [*ROOT.glob("layers/shared/kyma/**/*.py"), *ROOT.glob("functions/*/*.py")]:
        names |= set(re.findall(r"add_metric\(\s*name=\"([A-Za-z0-9_]+)\"", path.read_text()))
    return names


def alarms_on(cfn, namespace: str, metric: str) -> dict[str, dict]:
    return {k: cfn.resolve(v["Properties"]) for k, v in cfn.of_type("AWS::CloudWatch::Alarm").items()
            if v["Properties"].get("Namespace") == namespace and v["Properties"].get("MetricName") == metric}


# ── 1. one stage ─────────────────────────────────────────────────────────
@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_the_api_has_exactly_one_stage_named_by_the_stage_parameter(stage):
    cfn = translated(Stage=stage)
    stages = [cfn.resolve(p["Properties"]["StageName"]) for p in cfn.of_type("AWS::ApiGateway::Stage").values()]
    # A Deployment with a StageName creates a stage too (SAM's implicit "Stage").
    stages += [cfn.resolve(d["Properties"]["StageName"]) for d in cfn.of_type("AWS::ApiGateway::Deployment").values()
               if "StageName" in d["Properties"]]
    assert stages == [stage]


# ── 2. access logs ───────────────────────────────────────────────────────
ACCESS_LOG_FIELDS = {
    "$context.requestId", "$context.authorizer.account_id", "$context.resourcePath", "$context.httpMethod",
    "$context.status", "$context.responseLatency", "$context.integrationLatency",
    "$context.integrationErrorMessage", "$context.identity.userAgent", "$context.identity.sourceIp",
}


def test_the_stage_writes_a_json_access_log_with_the_fields_on_call_needs_and_no_header():
    cfn = translated()
    (stage,) = cfn.of_type("AWS::ApiGateway::Stage").values()
    setting = stage["Properties"]["AccessLogSetting"]
    group_id = setting["DestinationArn"]["Fn::GetAtt"][0]
    group = cfn.resources[group_id]
    assert group["Type"] == "AWS::Logs::LogGroup"
    assert group["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionInDays"}

    fmt = setting["Format"]
    assert "\n" not in fmt
    variables = set(re.findall(r"\$context\.[A-Za-z0-9_.]+", fmt))
    assert variables >= ACCESS_LOG_FIELDS, ACCESS_LOG_FIELDS - variables
    # One JSON object per request, every value filled in by API Gateway.
    sample = re.sub(r"\$context\.error\.messageString", '"quoted message"', fmt)
    record = json.loads(re.sub(r"\$context\.[A-Za-z0-9_.]+", "x", sample))
    assert {"requestId", "accountId", "resourcePath", "httpMethod", "status", "userAgent", "sourceIp"} <= set(record)
    # Never a header (Authorization carries the key), a body, or the key itself.
    assert not re.search(r"authorization|\$input|\$method\.request|header|apiKey|\$context\.identity\.api",
                         fmt, re.IGNORECASE)
    for setting_ in stage["Properties"].get("MethodSettings", []):
        assert not setting_.get("DataTraceEnabled"), "execution logs with data trace log the Authorization header"


def test_api_gateway_has_its_cloudwatch_role_before_the_stage_logs_or_the_stack_leaves_it_alone():
    made = translated(CreateApiGatewayAccountRole="true")
    (account,) = made.of_type("AWS::ApiGateway::Account").values()
    role_id = account["Properties"]["CloudWatchRoleArn"]["Fn::GetAtt"][0]
    role = made.resources[role_id]
    assert role["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {
        "Service": "apigateway.amazonaws.com"}
    assert made.resolve(role["Properties"]["ManagedPolicyArns"]) == [
        "arn:aws:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs"]
    # A deleted stack leaves the account setting pointing at this role: both outlive it.
    for resource in (account, role):
        assert resource["DeletionPolicy"] == resource["UpdateReplacePolicy"] == "Retain"
    # The REST API (and so its deployment and stage) waits for the account setting.
    (rest_api_id,) = made.of_type("AWS::ApiGateway::RestApi")
    handle = made.resources[made.resources[rest_api_id]["DependsOn"]]
    assert made.resolve(handle["Metadata"]) == {"AccountSetting": {"Ref": "ApiGatewayAccount"}}

    left_alone = translated(CreateApiGatewayAccountRole="false")
    assert left_alone.of_type("AWS::ApiGateway::Account") == {}
    assert left_alone.of_type("AWS::IAM::Role").keys().isdisjoint({role_id})
    assert left_alone.resolve(handle["Metadata"]) == {"AccountSetting": "set outside this stack"}


# ── 3. log groups with retention ─────────────────────────────────────────
def test_every_function_logs_to_its_own_group_with_a_retention():
    cfn = translated()
    assert SOURCE.doc["Parameters"]["LogRetentionInDays"]["Default"] == 30
    functions = cfn.of_type("AWS::Lambda::Function")
    assert set(FUNCTIONS) <= set(functions)
    groups = set()
    for logical_id, function in functions.items():
        group_id = function["Properties"]["LoggingConfig"]["LogGroup"]["Ref"]
        group = cfn.resources[group_id]
        assert group["Type"] == "AWS::Logs::LogGroup"
        assert group["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionInDays"}
        assert cfn.resolve(group["Properties"]["LogGroupName"]) == f"/aws/lambda/kyma-test/{logical_id}"
        groups.add(group_id)
    assert len(groups) == len(functions)
    assert cfn.resolve(cfn.props(next(iter(groups)))["RetentionInDays"]) == "30"
    assert translated(LogRetentionInDays="90").resolve({"Ref": "LogRetentionInDays"}) == "90"


# ── 4. money tables survive the stack ────────────────────────────────────
def test_money_and_customer_tables_are_retained_when_the_stack_or_the_table_goes():
    cfn = translated()
    tables = cfn.of_type("AWS::DynamoDB::Table")
    retained = {k for k, v in tables.items()
                if v.get("DeletionPolicy") == "Retain" and v.get("UpdateReplacePolicy") == "Retain"}
    assert retained >= MONEY_TABLES
    # Every table's fate is a decision written down, not CloudFormation's default.
    for logical_id, table in tables.items():
        assert {"DeletionPolicy", "UpdateReplacePolicy"} <= set(table), logical_id
    # Upload rows expire within hours and hold no money (see the template's comment).
    assert tables["UploadsTable"]["DeletionPolicy"] == "Delete"


# ── 5. the reconciler ────────────────────────────────────────────────────
def test_the_reconciler_never_runs_twice_at_once_and_its_failed_runs_land_in_a_queue():
    from moto.iam.access_control import IAMPolicyStatement, PermissionResult

    cfn = translated(ReserveConcurrency="true")        # off by default: tests/unit/test_template_first_deploy.py
    function = cfn.props("ReconcilerFunction")
    assert cfn.resolve(function["ReservedConcurrentExecutions"]) == 1
    (config,) = [v["Properties"] for v in cfn.of_type("AWS::Lambda::EventInvokeConfig").values()
                 if v["Properties"]["FunctionName"] == {"Ref": "ReconcilerFunction"}]
    assert 0 <= config["MaximumRetryAttempts"] <= 2
    queue_id = config["DestinationConfig"]["OnFailure"]["Destination"]["Fn::GetAtt"][0]
    assert cfn.resources[queue_id]["Type"] == "AWS::SQS::Queue"
    # EventBridge invokes it asynchronously: the schedule is what the invoke config applies to.
    (rule,) = [r for r in cfn.of_type("AWS::Events::Rule").values()
               if r["Properties"]["Targets"][0]["Arn"] == {"Fn::GetAtt": ["ReconcilerFunction", "Arn"]}]
    assert rule["Properties"]["ScheduleExpression"].startswith("rate(")
    # Lambda sends the failed event with the function's own role.
    queue_arn = cfn.arn_of(queue_id)
    assert any(IAMPolicyStatement(s).is_action_permitted("sqs:SendMessage", queue_arn) == PermissionResult.PERMITTED
               for _, s in cfn.policy_statements("ReconcilerFunction"))
    # Someone hears about it.
    depth = alarms_on(cfn, "AWS/SQS", "ApproximateNumberOfMessagesVisible")
    assert [{"Name": "QueueName", "Value": {"Fn::GetAtt": [queue_id, "QueueName"]}}] in [
        a["Dimensions"] for a in depth.values()]
    errors = alarms_on(cfn, "AWS/Lambda", "Errors")
    assert any(a["Dimensions"] == [{"Name": "FunctionName", "Value": {"Ref": "ReconcilerFunction"}}]
               for a in errors.values())


def test_every_failure_queue_is_writable_by_lambda_and_alarmed_on():
    """Each on-failure destination (asynchronous invocations, event source mappings) is a queue
    the function's role may send to (Lambda sends with it), and every queue's depth is alarmed."""
    from moto.iam.access_control import IAMPolicyStatement, PermissionResult

    cfn = translated()
    destinations = []
    for kind, function_of in (("AWS::Lambda::EventInvokeConfig", lambda p: p["FunctionName"]["Ref"]),
                              ("AWS::Lambda::EventSourceMapping", lambda p: p["FunctionName"]["Ref"])):
        for resource in cfn.of_type(kind).values():
            props = resource["Properties"]
            on_failure = (props.get("DestinationConfig") or {}).get("OnFailure")
            if on_failure:
                destinations.append((function_of(props), on_failure["Destination"]["Fn::GetAtt"][0]))
    assert {"ReconcilerFunction", "VoiceActivationFunction"} <= {f for f, _ in destinations}
    for function, queue in destinations:
        assert any(IAMPolicyStatement(s).is_action_permitted("sqs:SendMessage", cfn.arn_of(queue))
                   == PermissionResult.PERMITTED for _, s in cfn.policy_statements(function)), (function, queue)
    alarmed = {a["Dimensions"][0]["Value"]["Fn::GetAtt"][0]
               for a in alarms_on(cfn, "AWS/SQS", "ApproximateNumberOfMessagesVisible").values()}
    assert alarmed == set(cfn.of_type("AWS::SQS::Queue"))


# ── 6. alarms ────────────────────────────────────────────────────────────
def test_every_function_has_throttle_and_error_alarms():
    cfn = translated()
    for metric, exempt in (("Throttles", set()), ("Errors", {"AuthorizerFunction"})):
        watched = {a["Dimensions"][0]["Value"]["Ref"] for a in alarms_on(cfn, "AWS/Lambda", metric).values()}
        assert watched == set(cfn.of_type("AWS::Lambda::Function")) - exempt, metric


def test_the_5xx_rate_alarm_watches_this_api_and_stage():
    cfn = translated(Stage="prod")
    (alarm,) = [cfn.resolve(v["Properties"]) for k, v in cfn.of_type("AWS::CloudWatch::Alarm").items()
                if any(m.get("MetricStat", {}).get("Metric", {}).get("MetricName") == "5XXError"
                       for m in v["Properties"].get("Metrics", []))]
    (rest_api,) = cfn.of_type("AWS::ApiGateway::RestApi").values()
    api_name = cfn.resolve(rest_api["Properties"].get("Name") or rest_api["Properties"]["Body"]["info"]["title"])
    returned = [m for m in alarm["Metrics"] if m.get("ReturnData")]
    assert len(returned) == 1 and "Expression" in returned[0]
    for m in alarm["Metrics"]:
        if "MetricStat" in m:
            assert m["MetricStat"]["Metric"]["Namespace"] == "AWS/ApiGateway"
            assert m["MetricStat"]["Metric"]["Dimensions"] == [{"Name": "ApiName", "Value": api_name},
                                                               {"Name": "Stage", "Value": "prod"}]
            assert set(re.findall(r"[a-z]+", returned[0]["Expression"])) >= {m["Id"]}


def test_money_alarms_watch_the_metrics_powertools_emits(monkeypatch):
    from aws_lambda_powertools.metrics.provider.cloudwatch_emf.cloudwatch import AmazonCloudWatchEMFProvider

    cfn = translated()
    env = SOURCE.doc["Globals"]["Function"]["Environment"]["Variables"]
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", env["POWERTOOLS_SERVICE_NAME"])
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", env["POWERTOOLS_METRICS_NAMESPACE"])
    emitted, pending = emitted_metrics(), set()
    for name in sorted(MONEY_ALARMS):
        # What a function's EMF line says for this metric (kyma.platform.observability's Metrics()).
        provider = AmazonCloudWatchEMFProvider()
        provider.add_metric(name=name, unit="Count", value=1)
        emf = provider.serialize_metric_set()
        (directive,) = emf["_aws"]["CloudWatchMetrics"]
        (dimension_names,) = directive["Dimensions"]
        (alarm,) = alarms_on(cfn, directive["Namespace"], name).values()
        assert alarm["Dimensions"] == [{"Name": d, "Value": emf[d]} for d in dimension_names]
        assert alarm["Dimensions"] == [{"Name": "service", "Value": "kyma"}]
        assert alarm["TreatMissingData"] == "notBreaching"
        if name not in emitted:
            pending.add(name)
    assert not pending, f"alarmed, but no code emits: {sorted(pending)}"


def test_alarms_notify_the_topic_only_when_one_is_given():
    topic = "arn:aws:sns:us-east-1:123456789012:kyma-oncall"
    silent, paging = translated(), translated(AlarmTopicArn=topic)
    alarms = silent.of_type("AWS::CloudWatch::Alarm")
    assert len(alarms) >= 2 * len(FUNCTIONS) + len(MONEY_ALARMS)
    for logical_id in alarms:
        assert "AlarmActions" not in silent.resolve(silent.props(logical_id)), logical_id
        assert paging.resolve(paging.props(logical_id))["AlarmActions"] == [topic], logical_id


# ── the dashboard ────────────────────────────────────────────────────────
def test_one_dashboard_shows_what_on_call_needs_and_points_at_real_things():
    cfn = translated(Stage="prod")
    (dashboard,) = cfn.of_type("AWS::CloudWatch::Dashboard").values()
    body = cfn.resolve(dashboard["Properties"]["DashboardBody"])
    text = body["Fn::Sub"] if isinstance(body, dict) else body
    refs = set(re.findall(r"\$\{([^}]+)\}", text))
    for ref in refs:   # what is left is resource names and attributes, all of this stack
        assert ref.split(".")[0] in cfn.resources, ref
    widgets = json.loads(re.sub(r"\$\{([^}]+)\}", r"<\1>", text))["widgets"]
    metrics = [m for w in widgets for m in w["properties"].get("metrics", [])]
    alarms = [a for w in widgets for a in w["properties"].get("alarms", [])]
    by_namespace: dict[str, set[str]] = {}
    for namespace, name, *rest in metrics:
        dims = dict(zip(rest[0:-1:2], rest[1:-1:2], strict=True)) if isinstance(rest[-1], dict) else {}
        by_namespace.setdefault(namespace, set()).add(name)
        if namespace == "AWS/Lambda":
            assert dims["FunctionName"].strip("<>") in cfn.of_type("AWS::Lambda::Function")
        elif namespace == "AWS/ApiGateway":
            assert dims == {"ApiName": "kyma-test", "Stage": "prod"}
        elif namespace == "Kyma":
            assert dims == {"service": "kyma"}
            assert name in emitted_metrics(), name
        elif namespace == "AWS/SQS":
            assert dims["QueueName"].strip("<>").split(".")[0] in cfn.of_type("AWS::SQS::Queue")
    for alarm in alarms:
        assert alarm.strip("<>").removesuffix(".Arn") in cfn.of_type("AWS::CloudWatch::Alarm"), alarm
    # Traffic, 4xx/5xx, latency percentiles; every function's errors, throttles and duration;
    # money and the provider.
    assert {"Count", "4XXError", "5XXError", "Latency", "IntegrationLatency"} <= by_namespace["AWS/ApiGateway"]
    stats = {m[-1].get("stat") for m in metrics if m[1] == "Latency"}
    assert {"p50", "p99"} <= stats
    for metric in ("Errors", "Throttles", "Duration"):
        shown = {m[3].strip("<>") for m in metrics if m[0] == "AWS/Lambda" and m[1] == metric}
        assert shown == set(cfn.of_type("AWS::Lambda::Function")), metric
    assert MONEY_ALARMS | {"ProviderErrors", "ChargedMicroUSD"} <= by_namespace["Kyma"]
    assert {"Api5xxRateAlarm"} | {f"{m}Alarm" for m in MONEY_ALARMS} <= {a.strip("<>").removesuffix(".Arn")
                                                                         for a in alarms}


# ── 7. streamed speech fits the gateway's idle timeout ───────────────────
def test_the_api_is_regional_so_a_silent_stream_may_wait_five_minutes_not_thirty_seconds():
    """API Gateway cuts a streamed response silent for longer than its idle timeout: 30 s on an
    edge-optimized endpoint, 5 minutes on a regional one.  A whole (unstreamed) file is silent
    while MiniMax renders it, so the speech app's idle budget must match the endpoint type."""
    api = SOURCE.resources["KymaApi"]["Properties"]
    speech = SOURCE.resources["SpeechFunction"]["Properties"]["Environment"]["Variables"]
    assert api["EndpointConfiguration"] == {"Type": "REGIONAL"}
    assert int(speech["STREAM_IDLE_TIMEOUT_SECONDS"]) == 300
    assert int(speech["STREAM_API_TIMEOUT_SECONDS"]) == 900


# ── the upstream quota: one parameter, the budget below the platform's last guard ──
@pytest.mark.parametrize("rpm", SOURCE.doc["Parameters"]["UpstreamSpeechRpm"]["AllowedValues"])
def test_the_speech_throttle_sits_far_above_the_shared_upstream_budget_for_every_quota(rpm, monkeypatch):
    from kyma.platform.config import Config

    made = Template(parameters={"UpstreamSpeechRpm": str(rpm)})
    (speech,) = [s for s in made.api["MethodSettings"] if s["ResourcePath"] == "/~1v1~1audio~1speech"]
    rate, burst = float(speech["ThrottlingRateLimit"]), int(speech["ThrottlingBurstLimit"])
    env = made.environment()
    assert env["UPSTREAM_SPEECH_RPM"] == str(rpm)
    cfg = Config.from_env(env)
    (per_account,) = [(m, b) for e, m, b in cfg.rate_limit_defaults if e == "speech"]
    # The budget admits rpm a minute; the guard passes 20 times its average rate, and at once more
    # than a whole minute of the budget plus every account's refusals in a burst of five minutes' worth.
    assert rate >= 20 * rpm / 60 and burst >= min(5 * rpm, 5000) and burst <= 5000
    # One account alone within its default limit takes at most the open part of the budget, less
    # what batch work (activations, job parts) may take of it.
    assert per_account == (rpm - rpm // 3 - max(1, rpm // 6), 10)
