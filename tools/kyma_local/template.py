"""Read template.yaml: the single source of the local stack's tables, buckets,
routes, environment and gateway behaviour.

CloudFormation short-form tags (!Ref, !Sub, !GetAtt, !If, ...) load as their
long-form dicts; `Intrinsics` evaluates the few intrinsics the template uses, and
`Template.resolve` runs it with local names for resources.  tests/sam_template.py
runs the same `Intrinsics` over the template as aws-sam-translator turns it into
CloudFormation, leaving resource references as they are (or giving them local ARNs).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_PATH = ROOT / "template.yaml"




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


KEEP = object()       # what a resource lookup returns to leave its Ref / Fn::GetAtt as it is
NO_VALUE = object()   # AWS::NoValue: the property or list item is left out


class Intrinsics:
    """Ref to a parameter or pseudo parameter, Fn::If on the template's Conditions, Fn::Sub /
    Fn::Join, Fn::FindInMap, Fn::Split, Fn::Equals/Not/And/Or and Condition, and AWS::NoValue
    dropped.  A Ref to a resource is `ref(logical id)`, an Fn::GetAtt is `getatt(logical id,
    attribute)`: each returns the value, or KEEP to leave the reference (and whatever joins or
    substitutes it) unresolved."""

    def __init__(self, conditions: Mapping[str, Any], parameters: Mapping[str, str],
                 ref: Callable[[str], Any], getatt: Callable[[str, str], Any],
                 mappings: Mapping[str, Any] | None = None) -> None:
        self.conditions = conditions
        self.parameters = parameters
        self.mappings = mappings or {}
        self.ref = ref
        self.getatt = getatt

    def resolve(self, value: Any) -> Any:
        out = self._resolve(value)
        return None if out is NO_VALUE else out

    def condition(self, name: str) -> bool:
        return bool(self.resolve(self.conditions[name]))

    def _resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            return [v for v in map(self._resolve, value) if v is not NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            (key, arg), = value.items()
            if key == "Ref":
                if arg == "AWS::NoValue":
                    return NO_VALUE
                found = self.parameters[arg] if arg in self.parameters else self.ref(arg)
                return value if found is KEEP else found
            if key == "Fn::GetAtt":
                logical, attr = arg if isinstance(arg, list) else arg.split(".", 1)
                found = self.getatt(logical, attr)
                return value if found is KEEP else found
            if key == "Fn::If":
                name, yes, no = arg
                return self._resolve(yes if self.condition(name) else no)
            if key == "Fn::Equals":
                a, b = (self._resolve(x) for x in arg)
                return str(a) == str(b)
            if key == "Fn::Not":
                return not self._resolve(arg[0])
            if key == "Fn::And":
                return all(self._resolve(x) for x in arg)
            if key == "Fn::Or":
                return any(self._resolve(x) for x in arg)
            if key == "Condition":
                return self.condition(arg)
            if key == "Fn::Join":
                sep, parts = arg
                joined = [self._resolve(p) for p in parts]
                if all(isinstance(p, str) for p in joined):
                    return sep.join(joined)
                return {key: [sep, joined]}
            if key == "Fn::Sub":
                return self._sub(arg)
            if key == "Fn::FindInMap":
                keys = [self._resolve(a) for a in arg]
                if all(isinstance(k, str) for k in keys):
                    table, first, second = keys
                    return self.mappings[table][first][second]
                return {key: keys}
            if key == "Fn::Split":
                sep, text = arg
                split = self._resolve(text)
                return split.split(sep) if isinstance(split, str) else {key: [sep, split]}
        resolved = {k: self._resolve(v) for k, v in value.items()}
        return {k: v for k, v in resolved.items() if v is not NO_VALUE}

    def _sub(self, arg: Any) -> Any:
        text, extra = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1])

        def one(m: re.Match) -> str:
            name = m.group(1)
            if name in extra:
                got = self._resolve(extra[name])
            elif "." in name:
                got = self._resolve({"Fn::GetAtt": name.split(".", 1)})
            else:
                got = self._resolve({"Ref": name})
            return got if isinstance(got, str) else m.group(0)

        out = re.sub(r"\$\{([^}!]+)\}", one, text)
        return out if "${" not in re.sub(r"\$\{!", "", out) else {"Fn::Sub": out if not extra else [out, extra]}


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

    # ── intrinsics, with local names for resources ──
    @cached_property
    def intrinsics(self) -> Intrinsics:
        def ref(logical: str) -> str:
            if self.resources.get(logical, {}).get("Type") == "AWS::SQS::Queue":   # a queue's Ref is its URL
                return f"https://sqs.us-east-1.amazonaws.com/123456789012/{self.physical_name(logical)}"
            return self.physical_name(logical)

        def getatt(logical: str, attr: str) -> str:
            name = self.physical_name(logical)
            return f"arn:aws:local:::{name}" if attr == "Arn" else name

        return Intrinsics(self.doc.get("Conditions", {}), self.parameters, ref=ref, getatt=getatt,
                          mappings=self.doc.get("Mappings", {}))

    def resolve(self, value: Any) -> Any:
        return self.intrinsics.resolve(value)

    def condition(self, name: str) -> bool:
        return self.intrinsics.condition(name)

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
