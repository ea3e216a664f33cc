"""The embedded AWS: a moto server on loopback with the template's tables and buckets.

boto3 reaches it through the standard `AWS_ENDPOINT_URL` variable: the
functions run unchanged, with no local-only code paths.

moto is a stand-in, not DynamoDB.  Two differences matter here:
- moto applies concurrent requests without isolation (a transaction copies
  and restores whole tables; parallel transactions lose updates).  DynamoDB
  applies each request atomically, so `serialize_dynamodb()` runs moto's
  DynamoDB requests one at a time.  Without it, concurrency tests see lost
  updates that real DynamoDB would never produce.
- moto does not enforce S3 presigned-POST policy conditions; the code re-checks
  sizes server-side (see the upload tests).

moto's server answers every CORS request with "allow this origin" by default, which would let
any web page a developer opens read and write the local tables through the loopback port.
`EmbeddedAws` turns that off: like AWS, only a bucket's own CORS rules answer a browser.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from typing import Any

import boto3

from kyma_local.template import Template

REGION = "us-east-1"
# moto accepts any credentials; these keep boto3 from looking for real ones.
LOCAL_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local",
                     "AWS_DEFAULT_REGION": REGION, "AWS_REGION": REGION}

_dynamodb_lock = threading.RLock()
_patched = False


def serialize_dynamodb() -> None:
    """Make moto's DynamoDB linearizable, like the real service (idempotent)."""
    global _patched
    if _patched:
        return
    from moto.dynamodb.responses import DynamoHandler

    original = DynamoHandler.call_action

    def call_action(self: Any) -> Any:
        with _dynamodb_lock:
            return original(self)

    DynamoHandler.call_action = call_action  # type: ignore[method-assign]
    _patched = True


def disable_global_cors() -> None:
    """No flask-cors on moto's server apps (MOTO_DISABLE_GLOBAL_CORS, which moto reads once, at
    import: werkzeug_app keeps its own copy, read each time it builds a service's app)."""
    import moto.settings
    from moto.moto_server import werkzeug_app

    os.environ["MOTO_DISABLE_GLOBAL_CORS"] = "true"
    moto.settings.DISABLE_GLOBAL_CORS = True
    werkzeug_app.DISABLE_GLOBAL_CORS = True


class EmbeddedAws:
    """moto's threaded server on 127.0.0.1 (port 0 = any free port), without global CORS."""

    def __init__(self, port: int = 0) -> None:
        from moto.server import ThreadedMotoServer

        serialize_dynamodb()
        disable_global_cors()
        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no access log per AWS call
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        self.endpoint = ""

    def start(self) -> str:
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.endpoint = f"http://{host}:{port}"
        return self.endpoint

    def stop(self) -> None:
        self._server.stop()

    def environment(self) -> dict[str, str]:
        return {**LOCAL_CREDENTIALS, "AWS_ENDPOINT_URL": self.endpoint}


def create_resources(template: Template, *, endpoint_url: str | None = None) -> None:
    """Create every DynamoDB table, S3 bucket and SQS queue of the template, from its own Properties."""
    kwargs = {"region_name": REGION}
    if endpoint_url:
        kwargs["endpoint_url"] = endpoint_url
    ddb = boto3.client("dynamodb", **kwargs)
    for logical_id, props in template.tables.items():
        create_table(ddb, template.physical_name(logical_id), props)
    s3 = boto3.client("s3", **kwargs)
    for logical_id, props in template.buckets.items():
        create_bucket(s3, template.physical_name(logical_id), props)
    sqs = boto3.client("sqs", **kwargs)
    urls = {}
    for logical_id, props in template.queues.items():
        attributes = {k: str(props[k]) for k in ("MessageRetentionPeriod", "VisibilityTimeout", "DelaySeconds")
                      if k in props}
        urls[logical_id] = sqs.create_queue(QueueName=template.physical_name(logical_id),
                                            Attributes=attributes)["QueueUrl"]
    # Redrive policies name their dead-letter queue by ARN: the embedded queue's own.
    for logical_id, props in template.queues.items():
        redrive = props.get("RedrivePolicy")
        if not redrive:
            continue
        target = redrive["deadLetterTargetArn"].rsplit(":", 1)[-1]
        (target_id,) = [q for q in template.queues if template.physical_name(q) == target]
        arn = sqs.get_queue_attributes(QueueUrl=urls[target_id], AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        sqs.set_queue_attributes(QueueUrl=urls[logical_id], Attributes={"RedrivePolicy": json.dumps(
            {"deadLetterTargetArn": arn, "maxReceiveCount": str(redrive["maxReceiveCount"])})})
    # KMS keys: one per AWS::KMS::Key, reachable by the alias local_environment passes on.
    kms = boto3.client("kms", **kwargs)
    for logical_id in template.of_type("AWS::KMS::Key"):
        key_id = kms.create_key(Description=template.physical_name(logical_id))["KeyMetadata"]["KeyId"]
        kms.create_alias(AliasName=kms_alias(template, logical_id), TargetKeyId=key_id)


def kms_alias(template: Template, logical_id: str) -> str:
    return f"alias/{template.physical_name(logical_id)}"


def create_table(ddb: Any, name: str, props: dict) -> None:
    """CloudFormation AWS::DynamoDB::Table Properties → CreateTable (+ TTL, PITR)."""
    args: dict[str, Any] = {
        "TableName": name,
        "AttributeDefinitions": props["AttributeDefinitions"],
        "KeySchema": props["KeySchema"],
        "BillingMode": props.get("BillingMode", "PROVISIONED"),
    }
    if args["BillingMode"] == "PROVISIONED":
        args["ProvisionedThroughput"] = props["ProvisionedThroughput"]
    for key in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes"):
        if props.get(key):
            args[key] = props[key]
    if "SSESpecification" in props:
        args["SSESpecification"] = {"Enabled": _bool(props["SSESpecification"].get("SSEEnabled"))}
    if "StreamSpecification" in props:
        args["StreamSpecification"] = {"StreamEnabled": True,
                                       "StreamViewType": props["StreamSpecification"]["StreamViewType"]}
    if "DeletionProtectionEnabled" in props:
        args["DeletionProtectionEnabled"] = _bool(props["DeletionProtectionEnabled"])
    ddb.create_table(**args)
    ttl = props.get("TimeToLiveSpecification")
    if ttl:
        ddb.update_time_to_live(TableName=name, TimeToLiveSpecification={
            "AttributeName": ttl["AttributeName"], "Enabled": _bool(ttl["Enabled"])})
    pitr = props.get("PointInTimeRecoverySpecification")
    if pitr:
        ddb.update_continuous_backups(TableName=name, PointInTimeRecoverySpecification={
            "PointInTimeRecoveryEnabled": _bool(pitr["PointInTimeRecoveryEnabled"])})


def create_bucket(s3: Any, name: str, props: dict) -> None:
    """CloudFormation AWS::S3::Bucket Properties → CreateBucket (+ encryption, CORS, lifecycle)."""
    s3.create_bucket(Bucket=name)
    if "PublicAccessBlockConfiguration" in props:
        s3.put_public_access_block(Bucket=name, PublicAccessBlockConfiguration={
            k: _bool(v) for k, v in props["PublicAccessBlockConfiguration"].items()})
    if "BucketEncryption" in props:
        rules = [{("ApplyServerSideEncryptionByDefault" if k == "ServerSideEncryptionByDefault" else k): v
                  for k, v in rule.items()}
                 for rule in props["BucketEncryption"]["ServerSideEncryptionConfiguration"]]
        s3.put_bucket_encryption(Bucket=name, ServerSideEncryptionConfiguration={"Rules": rules})
    if "CorsConfiguration" in props:
        rules = [{("MaxAgeSeconds" if k == "MaxAge" else k): v for k, v in rule.items() if k != "Id"}
                 for rule in props["CorsConfiguration"]["CorsRules"]]
        s3.put_bucket_cors(Bucket=name, CORSConfiguration={"CORSRules": rules})
    if "LifecycleConfiguration" in props:
        s3.put_bucket_lifecycle_configuration(Bucket=name, LifecycleConfiguration={
            "Rules": [_lifecycle_rule(r) for r in props["LifecycleConfiguration"]["Rules"]]})


def _lifecycle_rule(rule: dict) -> dict:
    out: dict[str, Any] = {"ID": rule.get("Id", "rule"), "Status": rule["Status"],
                           "Filter": {"Prefix": rule.get("Prefix", "")}}
    if "ExpirationInDays" in rule:
        out["Expiration"] = {"Days": int(rule["ExpirationInDays"])}
    if "AbortIncompleteMultipartUpload" in rule:
        out["AbortIncompleteMultipartUpload"] = {
            "DaysAfterInitiation": int(rule["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"])}
    return out


def _bool(value: Any) -> bool:
    return value if isinstance(value, bool) else str(value).lower() == "true"


def local_environment(template: Template, aws: EmbeddedAws) -> dict[str, str]:
    """The variables every local function sees: the template's, plus the embedded AWS.

    Where MiniMax is comes on top, from `upstream_environment`."""
    env = template.environment()
    env.update(aws.environment())
    # Locally the MiniMax key never goes through (moto's) SSM: KYMA_LOCAL_MINIMAX_API_KEY
    # carries it (upstream_environment).  MINIMAX_BASE_URL overrides the template's default
    # (e.g. the mainland-China endpoint).
    env["MINIMAX_API_KEY_PARAMETER"] = ""
    if os.environ.get("MINIMAX_BASE_URL"):
        env["MINIMAX_BASE_URL"] = os.environ["MINIMAX_BASE_URL"]
    env.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
    # KYMA_LOCAL_UPSTREAM_SPEECH_RPM: test stacks that make many paid calls in a burst (with
    # KYMA_LOCAL_THROTTLING=off) widen the shared upstream budget; `make run` keeps the template's.
    if os.environ.get("KYMA_LOCAL_UPSTREAM_SPEECH_RPM"):
        env["UPSTREAM_SPEECH_RPM"] = os.environ["KYMA_LOCAL_UPSTREAM_SPEECH_RPM"]
    apply_local_webhooks(env, template)
    return env


def apply_local_webhooks(env: dict[str, str], template: Template, *, allow_loopback: bool = True) -> None:
    """Webhooks locally: the signing key by its local alias (moto names keys itself), loopback
    receivers allowed (http://127.0.0.1, for tests; never set by template.yaml), and, for tests,
    a faster retry schedule (KYMA_LOCAL_WEBHOOK_RETRY_DELAYS, seconds, comma-separated)."""
    env["WEBHOOK_SECRETS_KEY"] = kms_alias(template, "WebhookSecretsKey")
    if allow_loopback:
        env["WEBHOOKS_ALLOW_LOOPBACK"] = "true"
    if os.environ.get("KYMA_LOCAL_WEBHOOK_RETRY_DELAYS"):
        env["WEBHOOK_RETRY_DELAYS"] = os.environ["KYMA_LOCAL_WEBHOOK_RETRY_DELAYS"]


def real_minimax_key() -> str:
    """A developer's own MiniMax key (MINIMAX_API_KEY), or "" to use the sandbox."""
    return os.environ.get("MINIMAX_API_KEY", "").strip()


def upstream_environment(sandbox_url: str | None = None, sandbox_key: str | None = None) -> dict[str, str]:
    """Which MiniMax the local functions call, with which key, and what X-Kyma-Provider says.

    With MINIMAX_API_KEY set: the real MiniMax (MINIMAX_BASE_URL or the template's
    default), that key passed in the process environment only.  Otherwise the
    sandbox at `sandbox_url` with its key.
    """
    real_key = real_minimax_key()
    if real_key:
        return {"KYMA_LOCAL_MINIMAX_API_KEY": real_key, "KYMA_PROVIDER_NAME": "minimax"}
    if not sandbox_url or not sandbox_key:
        raise ValueError("no MINIMAX_API_KEY and no sandbox to point the functions at")
    return {"MINIMAX_BASE_URL": sandbox_url, "KYMA_LOCAL_MINIMAX_API_KEY": sandbox_key,
            "KYMA_PROVIDER_NAME": "sandbox"}
