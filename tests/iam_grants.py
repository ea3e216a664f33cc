"""The IAM grant check: every AWS call a function was seen making (kyma_local.aws_calls) against
that function's execution-role policy in the template as CloudFormation receives it
(tests/sam_template.py), evaluated statement by statement with moto's IAM policy evaluator.

An API operation becomes the IAM actions and resource ARNs AWS authorizes it with (`needs`):
- DynamoDB: the action of the same name on the table, or on table/<t>/index/<i> for a Query or
  Scan of an index; TransactWriteItems and TransactGetItems are authorized per item (PutItem,
  UpdateItem, DeleteItem, ConditionCheckItem, GetItem on each item's table), batches per table.
- S3: objects arn:aws:s3:::<bucket>/<key>, buckets arn:aws:s3:::<bucket>; HeadObject is
  s3:GetObject; an answer of 404 to GetObject/HeadObject also needs s3:ListBucket on the bucket
  (without it S3 answers 403, and the code's "missing = 404" paths would break); a presigned GET
  or POST is signed with the function's credentials, so S3 checks s3:GetObject / s3:PutObject of
  the function's role when a client uses it.
- SSM: ssm:GetParameter(s) on arn:aws:ssm:<region>:<account>:parameter/<name without leading />.
- SQS: the action of the same name on the queue's ARN.
- KMS: Encrypt/Decrypt on the key's ARN (IAM authorizes a call by alias against the key it names;
  locally each key is alias/<its local name>, so the alias names the key).
Any other operation is not mapped: the check fails and names it, so a new kind of call gets a
mapping (and a grant) before it ships.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from urllib.parse import urlparse

from moto.iam.access_control import IAMPolicyStatement, PermissionResult
from sam_template import ACCOUNT_ID, REGION, Cfn

from kyma_local.aws_calls import AwsCall

_DYNAMODB_ITEM_ACTIONS = {"Put": "PutItem", "Update": "UpdateItem", "Delete": "DeleteItem",
                          "ConditionCheck": "ConditionCheckItem", "Get": "GetItem"}
_DYNAMODB_SINGLE = {"GetItem", "PutItem", "UpdateItem", "DeleteItem", "Query", "Scan", "DescribeTable",
                    "DescribeTimeToLive", "DescribeContinuousBackups"}


class UnmappedCall(Exception):
    pass


@dataclass(frozen=True)
class Need:
    action: str
    resource: str
    why: str = ""

    def __str__(self) -> str:
        return f"{self.action} on {self.resource}" + (f" ({self.why})" if self.why else "")


def table_arn(name: str, index: str | None = None) -> str:
    arn = name if name.startswith("arn:") else f"arn:aws:dynamodb:{REGION}:{ACCOUNT_ID}:table/{name}"
    return f"{arn}/index/{index}" if index else arn


def needs(call: AwsCall) -> list[Need]:
    """The (action, resource) pairs AWS authorizes this call with."""
    service, operation, params = call.service, call.operation, call.params
    if service == "dynamodb":
        if operation in ("TransactWriteItems", "TransactGetItems"):
            return [Need(f"dynamodb:{_DYNAMODB_ITEM_ACTIONS[item['kind']]}", table_arn(item["TableName"]),
                         f"{operation} item {item['kind']}") for item in call.items]
        if operation in ("BatchWriteItem", "BatchGetItem"):
            return [Need(f"dynamodb:{operation}", table_arn(t)) for t in sorted({i["TableName"] for i in call.items})]
        if operation in _DYNAMODB_SINGLE:
            index = params.get("IndexName") if operation in ("Query", "Scan") else None
            return [Need(f"dynamodb:{operation}", table_arn(params["TableName"], index))]
    if service == "s3":
        bucket, key = params.get("Bucket"), params.get("Key")
        obj, bucket_arn = f"arn:aws:s3:::{bucket}/{key}", f"arn:aws:s3:::{bucket}"
        if call.presigned:
            why = f"presigned {call.presigned}: S3 checks the signer's role when it is used"
            return [Need(f"s3:{operation}", obj, why)]
        if operation in ("GetObject", "HeadObject"):
            out = [Need("s3:GetObject", obj)]
            if call.status == 404:
                out.append(Need("s3:ListBucket", bucket_arn, "a 404 answer, not 403, for a missing key"))
            return out
        if operation in ("PutObject", "DeleteObject"):
            return [Need(f"s3:{operation}", obj)]
        if operation in ("CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload"):
            return [Need("s3:PutObject", obj, f"{operation} is authorized as s3:PutObject")]
        if operation == "AbortMultipartUpload":
            return [Need("s3:AbortMultipartUpload", obj)]
        if operation in ("ListObjectsV2", "ListObjects"):
            return [Need("s3:ListBucket", bucket_arn)]
    if service == "ssm" and operation in ("GetParameter", "GetParameters"):
        names = params.get("Names") or [params["Name"]]
        return [Need(f"ssm:{operation}", f"arn:aws:ssm:{REGION}:{ACCOUNT_ID}:parameter/{n.lstrip('/')}")
                for n in names]
    if service == "sqs" and "QueueUrl" in params:
        account, name = urlparse(params["QueueUrl"]).path.strip("/").split("/")[-2:]
        action = "SendMessage" if operation == "SendMessageBatch" else operation   # a batch is authorized per message
        return [Need(f"sqs:{action}", f"arn:aws:sqs:{REGION}:{account}:{name}")]
    if service == "kms" and operation in ("Encrypt", "Decrypt") and "KeyId" in params:
        name = str(params["KeyId"]).removeprefix("alias/")
        return [Need(f"kms:{operation}", f"arn:aws:kms:{REGION}:{ACCOUNT_ID}:key/{name}")]
    raise UnmappedCall(f"{call.function}: {service}.{operation} {params}: map it to IAM actions in tests/iam_grants.py")


# ── statements ───────────────────────────────────────────────────────────
@dataclass(frozen=True)
class Statement:
    name: str                  # its Sid, or <policy name>#<n>
    body: dict                 # resolved to the local ARNs
    service_side: bool         # used by the Lambda service itself (a destination), not by the code

    def decides(self, need: Need) -> PermissionResult:
        return IAMPolicyStatement(self.body).is_action_permitted(need.action, need.resource)

    def pairs(self) -> list[tuple[str, str]]:
        actions, resources = self.body["Action"], self.body["Resource"]
        return [(a, r) for a in (actions if isinstance(actions, list) else [actions])
                for r in (resources if isinstance(resources, list) else [resources])]


def statements_of(cfn: Cfn, function_id: str) -> list[Statement]:
    """The role's inline statements.  Those of the function's own Policies translate to the
    policies <function>RolePolicy<n>; every other inline policy is one SAM adds for Lambda itself
    (an on-failure destination of an EventInvokeConfig or of an event source): not the code's."""
    out = []
    own = re.compile(rf"{re.escape(function_id)}RolePolicy\d+")
    for n, (policy, body) in enumerate(cfn.policy_statements(function_id)):
        out.append(Statement(body.get("Sid") or f"{policy}#{n}", body, service_side=not own.fullmatch(policy)))
    return out


def granting(statements: list[Statement], need: Need) -> str | None:
    """The statement that allows `need` (None if none does, or one denies it)."""
    allowed = None
    for statement in statements:
        result = statement.decides(need)
        if result == PermissionResult.DENIED:
            return None
        if result == PermissionResult.PERMITTED and allowed is None:
            allowed = statement.name
    return allowed


@dataclass
class Report:
    # function → call line → [(need, granting statement or None)]
    seen: dict[str, dict[str, list[tuple[Need, str | None]]]] = field(default_factory=lambda: defaultdict(dict))

    @property
    def missing(self) -> list[str]:
        return [f"{function}: {line}: {need} is not granted"
                for function, lines in self.seen.items() for line, grants in lines.items()
                for need, sid in grants if sid is None]

    def table(self) -> str:
        out = []
        for function in sorted(self.seen):
            out.append(function)
            for line, grants in sorted(self.seen[function].items()):
                out.append(f"  {line}")
                out.extend(f"      {need}  <- {sid or 'NOT GRANTED'}" for need, sid in grants)
        return "\n".join(out)


def describe(call: AwsCall) -> str:
    """One line per kind of call: operation and resources (object keys generalised to their prefix)."""
    params = dict(call.params)
    if "Key" in params and call.service == "s3":
        params["Key"] = params["Key"].split("/", 1)[0] + "/..."
    items = ", ".join(f"{i['kind']} {i['TableName']}" for i in call.items)
    extra = " ".join(f"{k}={v}" for k, v in sorted(params.items()))
    status = f" -> {call.status}" if call.status in (404,) else ""
    presigned = f" (presigned {call.presigned})" if call.presigned else ""
    return f"{call.service}.{call.operation}{presigned} {extra}{' [' + items + ']' if items else ''}{status}".strip()


def check(cfn: Cfn, calls: list[AwsCall], *, without: str | None = None) -> Report:
    """Every call against its function's statements (`without`: one statement left out)."""
    report = Report()
    cache: dict[str, list[Statement]] = {}
    functions = cfn.of_type("AWS::Lambda::Function")
    for call in calls:
        if call.function not in functions:
            report.seen[call.function][describe(call)] = [(Need("(any)", "(any)", "no such function"), None)]
            continue
        statements = cache.setdefault(call.function, statements_of(cfn, call.function))
        kept = [s for s in statements if s.name != without]
        line = describe(call)
        if line in report.seen[call.function]:
            continue
        report.seen[call.function][line] = [(need, granting(kept, need)) for need in needs(call)]
    return report


def unused_grants(statement: Statement, needs_seen: list[Need]) -> list[str]:
    """The (action, resource) pairs of a statement that no observed call needed: wider than the
    code's use so far (an untested path, or a grant to narrow)."""
    out = []
    for action, resource in statement.pairs():
        single = IAMPolicyStatement({"Effect": "Allow", "Action": action, "Resource": resource})
        if not any(single.is_action_permitted(n.action, n.resource) == PermissionResult.PERMITTED
                   for n in needs_seen):
            out.append(f"{action} on {resource}")
    return out

