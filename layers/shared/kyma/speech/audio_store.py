"""Rendered audio in S3 (bucket AudioBucket, prefix speech/, 1-day lifecycle).

Used only when audio must outlive the response: kept for Idempotency-Key replays
(the idempotency record holds only the key, never audio).  Fresh audio of any size
goes straight to the client (the speech route streams).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError


def speech_key(account_id: str, request_id: str, audio_format: str) -> str:
    return f"speech/{account_id}/{request_id}.{audio_format}"


class AudioStore:
    def __init__(self, s3: Callable[[], Any], bucket: str) -> None:
        """`s3` returns the client: it is created on first use, since most requests
        (no Idempotency-Key) never touch S3 (cold start, bench/results.md)."""
        self._s3 = s3
        self.bucket = bucket

    @property
    def s3(self) -> Any:
        return self._s3()

    def put(self, key: str, audio: bytes, content_type: str) -> None:
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=audio, ContentType=content_type)

    def get(self, key: str) -> bytes | None:
        try:
            return self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except ClientError as exc:
            if exc.response["Error"]["Code"] in ("NoSuchKey", "404"):
                return None
            raise
