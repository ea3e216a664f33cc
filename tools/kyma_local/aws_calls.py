"""Which function made which AWS call: every boto3 call a function makes, recorded with the
resources it names, for the IAM grant check (tests/integration/test_iam_grants.py).

`install()` registers botocore event handlers on every botocore session created afterwards (the
built-in handler list each new session loads, as moto does) and on boto3's default session if it
already exists; a client copies its session's handlers when it is created, so install before the
first client.  A call is attributed to the function whose invocation is running in the calling
thread: `invoking(function_id)` around it (the local Lambda runtime, the web-adapter stand-in and
the tests' handler loader do this).  Calls outside any invocation (test set-up, kyma-admin, the
local stack's own set-up) are not recorded.

What is recorded is the call's service, operation, the parameters that name resources (table,
index, bucket, key, parameter name, queue; per item for transactions and batches, never item
data) and its HTTP status and error code.  Presigned URLs and POSTs are recorded too: the URL is
signed with the function's credentials, so S3 checks the function's permissions when it is used.

`install(calls_file)` also appends each call as one JSON line to that file: the local stack does
this when KYMA_AWS_CALLS_FILE is set, so that a test can read what a stack in a subprocess did.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import asdict, dataclass, field
from typing import Any

CALLS_FILE_ENV = "KYMA_AWS_CALLS_FILE"
# `make test`: where each parallel test worker leaves its in-process calls for the IAM grant check.
WORKER_CALLS_FILE_ENV = "KYMA_TEST_WORKER_CALLS_FILE"
_CONTEXT_KEY = "kyma_aws_call"
# The parameters that name a resource, by service (never item data or bodies).
_NAMING = ("TableName", "IndexName", "Bucket", "Key", "Name", "Names", "Path", "QueueUrl", "FunctionName",
           "TopicArn", "SecretId", "StreamArn", "restApiId", "KeyId")

_function: ContextVar[str | None] = ContextVar("kyma_aws_calls_function", default=None)
_lock = threading.Lock()
_calls: list[AwsCall] = []
_file: str | None = None
_installed = False


@dataclass
class AwsCall:
    function: str
    service: str                       # botocore's service id, hyphenized: dynamodb, s3, ssm, sqs...
    operation: str                     # GetItem, TransactWriteItems, PutObject...
    params: dict[str, Any]             # the resource-naming parameters
    presigned: str | None = None       # "url" or "post": signed here, used later by a client
    status: int | None = None          # HTTP status of the answer (None: presigned, or no answer)
    error: str | None = None           # error code of the answer, or the exception raised
    items: list[dict[str, Any]] = field(default_factory=list)   # TransactItems / RequestItems, named

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, line: str) -> AwsCall:
        return cls(**json.loads(line))


@contextlib.contextmanager
def invoking(function_id: str) -> Iterator[None]:
    """Attribute the AWS calls made in this thread (and context) to `function_id`."""
    token = _function.set(function_id)
    try:
        yield
    finally:
        _function.reset(token)


def recorded() -> list[AwsCall]:
    """Every call recorded in this process so far."""
    with _lock:
        return list(_calls)


def read_file(path: str) -> list[AwsCall]:
    """The calls another process appended to `path`."""
    try:
        with open(path) as f:
            return [AwsCall.from_json(line) for line in f if line.strip()]
    except FileNotFoundError:
        return []


def write_file(path: str, calls: list[AwsCall]) -> None:
    """Append `calls` to `path` in one write (a test worker's calls, for a check in another run)."""
    with open(path, "a") as f:
        f.write("".join(call.to_json() + "\n" for call in calls))


def install(calls_file: str | None = None) -> None:
    """Record from now on (idempotent); with `calls_file`, also append each call there."""
    global _installed, _file
    import boto3
    import botocore.handlers

    _file = calls_file or _file
    if _installed:
        return
    handlers = [("before-parameter-build", _before_parameter_build), ("after-call", _after_call),
                ("after-call-error", _after_call_error), ("before-sign.s3.PutObject", _before_sign_put_object)]
    botocore.handlers.BUILTIN_HANDLERS.extend(handlers)
    if boto3.DEFAULT_SESSION is not None:
        for event, handler in handlers:
            boto3.DEFAULT_SESSION.events.register(event, handler, unique_id=f"kyma-aws-calls-{event}")
    _installed = True


# ── botocore event handlers ──────────────────────────────────────────────
def _before_parameter_build(params: dict, model: Any, context: dict, **_: Any) -> None:
    function = _function.get()
    if function is None:
        return
    if context.get("is_presign_request"):
        if model.name == "CreateBucket":
            return   # generate_presigned_post builds its URL from CreateBucket: recorded at signing
        _finish(_new(function, model, params, presigned="url"))
        return
    context[_CONTEXT_KEY] = _new(function, model, params)


def _after_call(http_response: Any, parsed: dict, context: dict, **_: Any) -> None:
    call = context.pop(_CONTEXT_KEY, None)
    if call is not None:
        call.status = getattr(http_response, "status_code", None)
        call.error = (parsed.get("Error") or {}).get("Code") if isinstance(parsed, dict) else None
        _finish(call)


def _after_call_error(exception: BaseException, context: dict, **_: Any) -> None:
    call = context.pop(_CONTEXT_KEY, None)
    if call is not None:
        call.error = type(exception).__name__
        _finish(call)


def _before_sign_put_object(request: Any, **_: Any) -> None:
    """generate_presigned_post signs a PutObject policy: the form's key and bucket."""
    function = _function.get()
    fields = request.context.get("s3-presign-post-fields")
    if function is None or fields is None:
        return
    conditions = request.context.get("s3-presign-post-policy", {}).get("conditions", [])
    bucket = next((c["bucket"] for c in conditions if isinstance(c, dict) and "bucket" in c), None)
    _finish(AwsCall(function, "s3", "PutObject", {"Bucket": bucket, "Key": fields.get("key")}, presigned="post"))


def _new(function: str, model: Any, params: dict, *, presigned: str | None = None) -> AwsCall:
    service = model.service_model.service_id.hyphenize()
    named = {k: params[k] for k in _NAMING if isinstance(params.get(k), (str, list))}
    items: list[dict[str, Any]] = []
    for item in params.get("TransactItems") or []:      # [{"Put": {"TableName": ...}}, ...]
        ((kind, spec),) = item.items()
        items.append({"kind": kind, **{k: spec[k] for k in ("TableName", "IndexName") if k in spec}})
    for table, request in (params.get("RequestItems") or {}).items():   # BatchGet/BatchWrite
        kinds = ({next(iter(r)) for r in request} if isinstance(request, list) else {"Get"})
        items.extend({"kind": kind, "TableName": table} for kind in sorted(kinds))
    return AwsCall(function, service, model.name, named, presigned=presigned, items=items)


def _finish(call: AwsCall) -> None:
    with _lock:
        _calls.append(call)
        if _file:
            with open(_file, "a") as f:
                f.write(call.to_json() + "\n")
