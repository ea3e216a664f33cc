"""Small helpers for the low-level DynamoDB client.

The functions use `boto3.client("dynamodb")` rather than the resource API:
it is cheaper to import (cold start) and supports every transaction feature.
These helpers convert plain Python values to attribute values and back, and
read why a transaction was cancelled.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any, TypeVar

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()

T = TypeVar("T")


def to_item(values: Mapping[str, Any]) -> dict:
    """{"a": 1, "b": "x", "c": None} → DynamoDB item; None values are left out."""
    return {k: _serializer.serialize(v) for k, v in values.items() if v is not None}


def from_item(item: Mapping[str, Any] | None) -> dict | None:
    """DynamoDB item → plain dict; whole numbers come back as int."""
    if item is None:
        return None
    out = {}
    for key, value in item.items():
        plain = _deserializer.deserialize(value)
        if isinstance(plain, Decimal) and plain == plain.to_integral_value():
            plain = int(plain)
        out[key] = plain
    return out


def values(**kwargs: Any) -> dict:
    """ExpressionAttributeValues from keyword arguments: values(amt=5) → {":amt": {"N": "5"}}."""
    return {f":{k}": _serializer.serialize(v) for k, v in kwargs.items()}


def error_code(exc: ClientError) -> str:
    return exc.response.get("Error", {}).get("Code", "")


def cancellation_reasons(exc: ClientError) -> list[dict]:
    """The per-item reasons of a TransactionCanceledException: [{"Code", "Item"?}, ...]."""
    return exc.response.get("CancellationReasons") or []


def is_transaction_conflict(exc: ClientError) -> bool:
    code = error_code(exc)
    if code == "TransactionConflictException":
        return True
    return code == "TransactionCanceledException" and any(
        r.get("Code") == "TransactionConflict" for r in cancellation_reasons(exc))


def retry_on_conflict(call: Callable[[], T], *, attempts: int = 8) -> T:
    """Run a transaction, retrying with jittered backoff while another transaction
    holds one of its items (DynamoDB's TransactionConflict).  Everything else raises."""
    for attempt in range(attempts):
        try:
            return call()
        except ClientError as exc:
            if not is_transaction_conflict(exc) or attempt == attempts - 1:
                raise
            time.sleep(random.uniform(0, 0.02 * 2**attempt))
    raise AssertionError("unreachable")
