"""template.yaml as CloudFormation receives it: translated by aws-sam-translator (the library
`sam validate`, `sam deploy` and CloudFormation's own AWS::Serverless transform run), for given
parameter values, with the intrinsics that only depend on parameters resolved.

    cfn = translated(Stage="prod")
    cfn.of_type("AWS::ApiGateway::Stage")       # {logical id: resource}
    cfn.resolve(props["StageName"])             # "prod"

`resolve` is the local stack's resolver (kyma_local.template.Intrinsics: Ref to a parameter or
pseudo parameter, Fn::If on the template's Conditions, Fn::Sub / Fn::Join, Fn::Equals/Not/And/Or,
AWS::NoValue dropped).  A Ref or Fn::GetAtt to a resource stays as it is, unless `arn` is given: then
Ref / GetAtt .Arn of a DynamoDB table, S3 bucket or SQS queue become the ARN of the local name
the tests use (kyma_local.template.Template.physical_name).
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from functools import cache, cached_property
from typing import Any

import boto3
from samtranslator.parser.parser import Parser
from samtranslator.translator.translator import Translator

from kyma_local.template import KEEP, Intrinsics, Template

REGION = "us-east-1"
ACCOUNT_ID = "123456789012"    # moto's default account: the ARNs of the resources the tests create
STACK_NAME = "kyma-test"
logging.getLogger("samtranslator").setLevel(logging.ERROR)   # its usage metrics are never published here


class Cfn:
    def __init__(self, doc: dict, parameters: dict[str, str]) -> None:
        self.doc = doc
        self.parameters = parameters
        self.local = Template()   # local physical names (what the tests' AWS calls name)

    @property
    def resources(self) -> dict[str, dict]:
        return self.doc["Resources"]

    def of_type(self, cfn_type: str) -> dict[str, dict]:
        """Resources of a type, those whose Condition is false left out."""
        return {k: v for k, v in self.resources.items()
                if v["Type"] == cfn_type and ("Condition" not in v or self.condition(v["Condition"]))}

    def props(self, logical_id: str) -> dict:
        return self.resources[logical_id].get("Properties", {})

    def condition(self, name: str) -> bool:
        return self._plain.condition(name)

    # ── intrinsics: kyma_local.template.Intrinsics, resource references kept or given local ARNs ──
    def resolve(self, value: Any, *, arn: bool = False) -> Any:
        return (self._arns if arn else self._plain).resolve(value)

    @cached_property
    def _plain(self) -> Intrinsics:
        return Intrinsics(self.doc.get("Conditions", {}), self.parameters, mappings=self.doc.get("Mappings", {}),
                          ref=lambda logical: KEEP, getatt=lambda logical, attr: KEEP)

    @cached_property
    def _arns(self) -> Intrinsics:
        def getatt(logical: str, attr: str) -> Any:
            if attr == "Arn":
                return self.arn_of(logical)
            return self.local.physical_name(logical) if attr == "QueueName" else KEEP

        return Intrinsics(self.doc.get("Conditions", {}), self.parameters, mappings=self.doc.get("Mappings", {}),
                          ref=self.arn_of, getatt=getatt)

    def arn_of(self, logical_id: str) -> str:
        """The ARN of a table, bucket or queue under the name the local stack and tests give it."""
        kind = self.resources[logical_id]["Type"]
        name = self.local.physical_name(logical_id)
        arns: dict[str, Callable[[], str]] = {
            "AWS::DynamoDB::Table": lambda: f"arn:aws:dynamodb:{REGION}:{ACCOUNT_ID}:table/{name}",
            "AWS::S3::Bucket": lambda: f"arn:aws:s3:::{name}",
            "AWS::SQS::Queue": lambda: f"arn:aws:sqs:{REGION}:{ACCOUNT_ID}:{name}",
            "AWS::Lambda::Function": lambda: f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{name}",
            # Locally a key is reached by the alias alias/<its local name> (kyma_local.aws.kms_alias).
            "AWS::KMS::Key": lambda: f"arn:aws:kms:{REGION}:{ACCOUNT_ID}:key/{name}",
        }
        if kind not in arns:
            raise KeyError(f"no local ARN for {logical_id} ({kind})")
        return arns[kind]()

    def policy_statements(self, function_id: str) -> list[tuple[str, dict]]:
        """(policy name, statement) of every inline policy of a function's execution role,
        with ARNs resolved to the local names."""
        role = self.props(function_id)["Role"]["Fn::GetAtt"][0]
        out = []
        for policy in self.props(role).get("Policies", []):
            statements = policy["PolicyDocument"]["Statement"]
            out.extend((policy["PolicyName"], self.resolve(statement, arn=True))
                       for statement in (statements if isinstance(statements, list) else [statements]))
        return out


class _NoManagedPolicies:
    def load(self) -> dict[str, str]:
        return {}


def translated(**parameters: str) -> Cfn:
    """template.yaml translated for these parameter values (the template's defaults for the rest)."""
    return _translated(tuple(sorted(parameters.items())))


@cache
def _translated(overrides: tuple[tuple[str, str], ...]) -> Cfn:
    source = Template()
    doc = copy.deepcopy(source.doc)
    # As `sam validate` / `sam build` do: code locations become S3 URIs before translation.
    for resource in doc["Resources"].values():
        props = resource.get("Properties", {})
        if resource["Type"] == "AWS::Serverless::Function":
            props["CodeUri"] = "s3://kyma-artifacts/code.zip"
        elif resource["Type"] == "AWS::Serverless::LayerVersion":
            props["ContentUri"] = "s3://kyma-artifacts/layer.zip"
    defaults = {k: str(v["Default"]) for k, v in doc.get("Parameters", {}).items() if "Default" in v}
    values = {**defaults, **dict(overrides)}
    translator = Translator(None, Parser(), boto_session=boto3.session.Session(region_name=REGION))
    out = translator.translate(doc, parameter_values=dict(values), get_managed_policy_map=_NoManagedPolicies().load)
    pseudo = {"AWS::Region": REGION, "AWS::AccountId": ACCOUNT_ID, "AWS::StackName": STACK_NAME,
              "AWS::Partition": "aws", "AWS::URLSuffix": "amazonaws.com"}
    return Cfn(out, {**values, **pseudo})
