"""The benchmark's servers, in their own process: the embedded AWS (moto, with the
template's tables and buckets) and the MiniMax sandbox (streaming without MiniMax's pace:
handler durations leave MiniMax's latency out).  Prints their endpoints as one JSON line,
then runs until stdin closes."""

import json
import os
import sys

from kyma_local.aws import REGION, EmbeddedAws, create_resources
from kyma_local.sandbox import MiniMaxSandbox
from kyma_local.template import Template

os.environ.update({"AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x", "AWS_DEFAULT_REGION": REGION})
aws = EmbeddedAws()
aws.start()
create_resources(Template(), endpoint_url=aws.endpoint)
import boto3

boto3.client("ssm", endpoint_url=aws.endpoint, region_name=REGION).put_parameter(
    Name="/kyma/bench/minimax-api-key", Value="bench-key", Type="SecureString")
with MiniMaxSandbox(api_key="bench-key", first_chunk_ms=0, chunk_interval_ms=0) as fake:
    print(json.dumps({"aws": aws.endpoint, "minimax": fake.base_url}), flush=True)
    sys.stdin.read()
aws.stop()
