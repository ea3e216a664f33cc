"""boto3 clients, created once per process and reused by every request.

boto3 honours the standard `AWS_ENDPOINT_URL` variable, which is how the
local stack and the tests point these clients at the embedded AWS.
"""

from __future__ import annotations

from functools import cache, lru_cache

import boto3
from botocore.config import Config as BotoConfig

# Fail fast: API Gateway gives a request 29 s in total.  Standard retry mode
# retries throttling and transient errors with backoff.
_BOTO_CONFIG = BotoConfig(connect_timeout=2, read_timeout=5,
                          retries={"mode": "standard", "max_attempts": 3})


# Fail faster still where a whole function has a few seconds (the authorizer: 5 s) or where a
# call comes before anything is charged (the MiniMax key from SSM): at most 2 attempts of
# 0.5 s connect + 1 s read, about 3.5 s in the worst case with backoff, then the request fails cleanly.
_FAST_CONFIG = BotoConfig(connect_timeout=0.5, read_timeout=1.0, retries={"mode": "standard", "max_attempts": 2})


@cache
def client(service: str):
    return boto3.client(service, config=_BOTO_CONFIG)


@cache
def fast_client(service: str):
    return boto3.client(service, config=_FAST_CONFIG)


def dynamodb():
    return client("dynamodb")


# A write that may be skipped when time is short (a designed voice's preview, after MiniMax made the
# voice): at most 2 attempts of 1 s connect + 2 s read, about 6.5 s with backoff (PREVIEW_STORE_SECONDS).
_BOUNDED_CONFIG = BotoConfig(connect_timeout=1, read_timeout=2,
                             retries={"mode": "standard", "total_max_attempts": 2})


@lru_cache(maxsize=1)
def bounded_s3():
    return boto3.client("s3", config=_BOUNDED_CONFIG.merge(BotoConfig(signature_version="s3v4")))


@lru_cache(maxsize=1)
def s3():
    # Presigned URLs need SigV4 to work in every region.
    return boto3.client("s3", config=_BOTO_CONFIG.merge(BotoConfig(signature_version="s3v4")))


def sqs():
    return client("sqs")
