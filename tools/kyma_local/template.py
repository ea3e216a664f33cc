"""Read template.yaml: the single source of the local stack's tables, buckets,
routes, environment and gateway behaviour.

CloudFormation short-form tags (!Ref, !Sub, !GetAtt, !If, ...) load as their
long-form dicts; `Template.resolve` evaluates the few intrinsics the local
stack needs, with local names for resources.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_PATH = ROOT / "template.yaml"


_NO_VALUE = object()     # what `!Ref AWS::NoValue` resolves to before its key is dropped


class _CfnLoader(yaml.SafeLoader):
    pass


def _construct(tag: str):
    name = "Ref" if tag == "Ref" else f"Fn::{tag}"

    def build(loader: yaml.SafeLoader, node: yaml.Node) -> dict:
        if isinstance(node, yaml.ScalarNode):
            value: Any = loader.construct_scalar(node)
            if tag == "GetAtt":
                value = value.split(".", 1)
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        else:
            value = loader.construct_mapping(node, deep=True)
        return {name: value}

    return build


for _tag in ("Ref", "Sub", "GetAtt", "If", "Equals", "Not", "And", "Or", "Join", "Select",
             "Split", "FindInMap", "ImportValue", "Condition", "Base64", "GetAZs"):
    _CfnLoader.add_constructor(f"!{_tag}", _construct(_tag))


@dataclass(frozen=True)
class ApiEvent:
    path: str
    method: str                # "GET", "POST", ... or "ANY"
    authorized: bool           # False when Auth: {Authorizer: NONE}
    transfer_mode: str = "BUFFERED"   # ResponseTransferMode: BUFFERED | RESPONSE_STREAM
    timeout_ms: int = 29_000          # TimeoutInMillis (streaming integrations: up to 900,000)

    @property
    def streams(self) -> bool:
        return self.transfer_mode == "RESPONSE_STREAM"


@dataclass(frozen=True)
class Function:
    logical_id: str
    code_uri: Path
    handler: str               # "app.lambda_handler"
    timeout: int
    memory_mb: int
    environment: dict[str, str]
    api_events: tuple[ApiEvent, ...] = field(default_factory=tuple)

    @property
    def module_path(self) -> Path:
        return self.code_uri / (self.handler.rsplit(".", 1)[0] + ".py")

    @property
    def handler_name(self) -> str:
        return self.handler.rsplit(".", 1)[1]

    # ── AWS Lambda Web Adapter functions (Handler: run.sh starts a web app) ──
    @property
    def web_adapter(self) -> bool:
        """Run by the Lambda Web Adapter: its layer's exec wrapper starts the adapter."""
        return self.environment.get("AWS_LAMBDA_EXEC_WRAPPER") == "/opt/bootstrap"

    @property
    def invoke_mode(self) -> str:
        """AWS_LWA_INVOKE_MODE: "buffered" (the adapter's default) or "response_stream"."""
        return self.environment.get("AWS_LWA_INVOKE_MODE", "buffered").lower()

    @property
    def app_path(self) -> Path:
        """The web app run.sh would start; locally its make_server(host, port) builds the server."""
        return self.code_uri / "app.py"


class Template:
    def __init__(self, path: Path = TEMPLATE_PATH, *, name_prefix: str = "kyma-local",
                 parameters: dict[str, str] | None = None) -> None:
        self.path = path
        self.doc = yaml.load(path.read_text(), Loader=_CfnLoader)  # noqa: S506 (_CfnLoader is a SafeLoader)
        self.name_prefix = name_prefix
        self.parameter_overrides = parameters or {}

    # ── names ──
    def physical_name(self, logical_id: str) -> str:
        """The local stand-in for a resource's generated name."""
        return f"{self.name_prefix}-{logical_id}".lower()  # valid as an S3 bucket name too

    @property
    def resources(self) -> dict[str, dict]:
        return self.doc["Resources"]

    def of_type(self, cfn_type: str) -> dict[str, dict]:
        return {k: v for k, v in self.resources.items() if v["Type"] == cfn_type}

    @cached_property
    def parameters(self) -> dict[str, str]:
        defaults = {k: str(v.get("Default", "")) for k, v in self.doc.get("Parameters", {}).items()}
        return {**defaults, **self.parameter_overrides, "AWS::Region": "us-east-1",
                "AWS::AccountId": "123456789012", "AWS::StackName": self.name_prefix,
                "AWS::URLSuffix": "amazonaws.com", "AWS::Partition": "aws"}

    # ── intrinsics ──
    def resolve(self, value: Any) -> Any:
        """The value with intrinsics evaluated; `!Ref AWS::NoValue` leaves its key or item out."""
        out = self._resolve(value)
        return None if out is _NO_VALUE else out

    def _resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            return [v for v in map(self._resolve, value) if v is not _NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            (key, arg), = value.items()
            if key == "Ref":
                if arg == "AWS::NoValue":
                    return _NO_VALUE
                if self.resources.get(arg, {}).get("Type") == "AWS::SQS::Queue":   # a queue's Ref is its URL
                    return f"https://sqs.us-east-1.amazonaws.com/123456789012/{self.physical_name(arg)}"
                return self.parameters[arg] if arg in self.parameters else self.physical_name(arg)
            if key == "Fn::GetAtt":
                logical, attr = arg
                name = self.physical_name(logical)
                return f"arn:aws:local:::{name}" if attr == "Arn" else name
            if key == "Fn::Sub":
                text, extra = (arg, {}) if isinstance(arg, str) else (arg[0], self.resolve(arg[1]))
                return re.sub(r"\$\{([^}]+)\}", lambda m: str(
                    extra.get(m.group(1)) if m.group(1) in extra else self.resolve(
                        {"Fn::GetAtt": m.group(1).split(".", 1)} if "." in m.group(1)
                        else {"Ref": m.group(1)})), text)
            if key == "Fn::If":
                cond, yes, no = arg
                return self._resolve(yes if self.condition(cond) else no)
            if key == "Fn::FindInMap":
                table, first, second = (str(self.resolve(a)) for a in arg)
                return self.doc["Mappings"][table][first][second]
            if key == "Fn::Join":
                sep, parts = arg
                return sep.join(str(self.resolve(p)) for p in parts)
            if key == "Fn::Split":
                sep, text = arg
                return str(self.resolve(text)).split(sep)
        resolved = {k: self._resolve(v) for k, v in value.items()}
        return {k: v for k, v in resolved.items() if v is not _NO_VALUE}

    def condition(self, name: str) -> bool:
        return bool(self._eval_condition(self.doc.get("Conditions", {})[name]))

    def _eval_condition(self, expr: Any) -> Any:
        if isinstance(expr, dict) and len(expr) == 1:
            (key, arg), = expr.items()
            if key == "Fn::Equals":
                a, b = (self._eval_condition(x) for x in arg)
                return str(a) == str(b)
            if key == "Fn::Not":
                return not self._eval_condition(arg[0])
            if key == "Fn::And":
                return all(self._eval_condition(x) for x in arg)
            if key == "Fn::Or":
                return any(self._eval_condition(x) for x in arg)
            if key == "Condition":
                return self.condition(arg)
        return self.resolve(expr)

    # ── the pieces the local stack needs ──
    @cached_property
    def tables(self) -> dict[str, dict]:
        """logical id → resolved AWS::DynamoDB::Table Properties."""
        return {k: self.resolve(v["Properties"]) for k, v in self.of_type("AWS::DynamoDB::Table").items()}

    @cached_property
    def queues(self) -> dict[str, dict]:
        return {k: self.resolve(v.get("Properties", {})) for k, v in self.of_type("AWS::SQS::Queue").items()}

    @cached_property
    def buckets(self) -> dict[str, dict]:
        return {k: self.resolve(v.get("Properties", {})) for k, v in self.of_type("AWS::S3::Bucket").items()}

    @cached_property
    def functions(self) -> dict[str, Function]:
        glob = self.doc.get("Globals", {}).get("Function", {})
        out = {}
        for logical_id, res in self.of_type("AWS::Serverless::Function").items():
            props = res["Properties"]
            env = {**glob.get("Environment", {}).get("Variables", {}),
                   **props.get("Environment", {}).get("Variables", {})}
            events = []
            for event in (props.get("Events") or {}).values():
                if event["Type"] != "Api":
                    continue
                p = self.resolve(event["Properties"])
                authorized = (p.get("Auth") or {}).get("Authorizer") != "NONE"
                events.append(ApiEvent(p["Path"], p["Method"].upper(), authorized,
                                       str(p.get("ResponseTransferMode", "BUFFERED")).upper(),
                                       int(p.get("TimeoutInMillis", 29_000))))
            out[logical_id] = Function(
                logical_id=logical_id,
                code_uri=(self.path.parent / props["CodeUri"]).resolve(),
                handler=props.get("Handler", glob.get("Handler")),
                timeout=int(props.get("Timeout", glob.get("Timeout", 3))),
                memory_mb=int(props.get("MemorySize", glob.get("MemorySize", 128))),
                environment={k: str(self.resolve(v)) for k, v in env.items()},
                api_events=tuple(events),
            )
        return out

    @cached_property
    def schedules(self) -> dict[str, list[str]]:
        """function logical id → its Schedule/ScheduleV2 expressions."""
        out: dict[str, list[str]] = {}
        for logical_id, res in self.of_type("AWS::Serverless::Function").items():
            for event in (res["Properties"].get("Events") or {}).values():
                if event["Type"] in ("Schedule", "ScheduleV2"):
                    out.setdefault(logical_id, []).append(event["Properties"]["Schedule"
                                                          if event["Type"] == "Schedule" else "ScheduleExpression"])
        return out

    @cached_property
    def api(self) -> dict:
        (props,) = [self.resolve(v["Properties"]) for v in self.of_type("AWS::Serverless::Api").values()]
        return props

    @property
    def binary_media_types(self) -> list[str]:
        return [t.replace("~1", "/") for t in self.api.get("BinaryMediaTypes", [])]

    @property
    def stage(self) -> str:
        return self.api["StageName"]

    @property
    def gateway_responses(self) -> dict[str, dict]:
        return self.api.get("GatewayResponses", {})

    @property
    def authorizer(self) -> tuple[str, dict]:
        auth = self.api["Auth"]
        name = auth["DefaultAuthorizer"]
        spec = auth["Authorizers"][name]
        function_id = self.doc["Resources"]["KymaApi"]["Properties"]["Auth"]["Authorizers"][name][
            "FunctionArn"]["Fn::GetAtt"][0]
        return function_id, spec

    def environment(self) -> dict[str, str]:
        """The union of every function's variables (they share one process locally)."""
        env: dict[str, str] = {}
        for fn in self.functions.values():
            env.update(fn.environment)
        return env
