"""Small helpers for the low-level DynamoDB client.

The functions use `boto3.client("dynamodb")` rather than the resource API:
it is cheaper to import (cold start) and supports every transaction feature.
These helpers convert plain Python values to attribute values and back, and
run transactions whose items have names (`Transaction`), so that a cancelled
transaction says which condition failed.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
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


def pages(client: Any, operation: str, **kwargs: Any) -> Iterator[dict]:
    """Every page of a ``query`` or ``scan`` (the low-level client's paginator follows
    LastEvaluatedKey): for reads that want everything; a customer's page keeps its own cursor."""
    return iter(client.get_paginator(operation).paginate(**kwargs))


def rows(client: Any, operation: str, **kwargs: Any) -> Iterator[dict]:
    """Every item of a ``query`` or ``scan``, as plain dicts (`from_item`), page after page."""
    for page in pages(client, operation, **kwargs):
        for item in page.get("Items", []):
            row = from_item(item)
            if row is not None:
                yield row


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
    holds one of its items (DynamoDB's TransactionConflict).  Everything else raises.

    Hand-written because botocore does not do it: its retry modes (standard, adaptive and the
    legacy _retry.json) retry throttling, 5xx and TransactionInProgressException, but a
    TransactionCanceledException whose reasons say TransactionConflict is a plain 400 to them;
    only the reasons, read here, tell a conflict (worth a retry) from a failed condition (final)."""
    for attempt in range(attempts):
        try:
            return call()
        except ClientError as exc:
            if not is_transaction_conflict(exc) or attempt == attempts - 1:
                raise
            time.sleep(random.uniform(0, 0.02 * 2**attempt))  # noqa: S311 (jitter, not a secret)
    raise AssertionError("unreachable")


class Stale(Exception):
    """A refusal meaning: this condition was built on information that has since changed, and the
    Check's builder has learnt the current value; build the transaction again and retry once."""


@dataclass(frozen=True)
class Undo:
    """What closing a hold must do to a counter its reserve moved: add `on_settle` (when charged) or
    `on_release` (when released) to the number `attribute` of the item `key` (plain values) in
    `table`.  Stored on the hold, so whoever closes it (handler or reconciler) moves the counter in
    the same transaction as the money, without knowing what the counter is for."""

    table: str
    key: Mapping[str, str]
    attribute: str
    on_settle: int
    on_release: int

    def as_map(self) -> dict[str, Any]:
        return {"table": self.table, "key": dict(self.key), "attribute": self.attribute,
                "on_settle": self.on_settle, "on_release": self.on_release}

    @staticmethod
    def from_map(stored: Mapping[str, Any]) -> Undo:
        return Undo(str(stored["table"]), {k: str(v) for k, v in stored["key"].items()}, str(stored["attribute"]),
                    int(stored["on_settle"]), int(stored["on_release"]))

    def item(self, delta: int) -> dict:
        """The TransactItems entry adding `delta` to the counter (it exists: the reserve made it)."""
        return {"Update": {"TableName": self.table, "Key": to_item(self.key),
                           "UpdateExpression": "ADD #n :d", "ExpressionAttributeNames": {"#n": self.attribute},
                           "ExpressionAttributeValues": values(d=delta)}}


@dataclass(frozen=True)
class Check:
    """A named transaction item whose condition decides whether a write may happen, and the
    client's answer when it does not: `refusal(item as it was, or None if absent)`.
    `undo`: the counters this item moves that the hold's settle or release must move back."""

    name: str
    item: dict
    refusal: Callable[[dict | None], Exception]
    undo: tuple[Undo, ...] = ()


class Cancelled(ClientError):
    """A transaction cancelled because conditions failed (still the TransactionCanceledException
    ClientError it was).  `failed` maps the name of each item whose condition failed to the item
    as it was (ALL_OLD; None if it did not exist)."""

    def __init__(self, failed: dict[str, dict | None], exc: ClientError) -> None:
        super().__init__(exc.response, exc.operation_name)
        self.failed = failed
        self.cause = exc


@dataclass
class Transaction:
    """A TransactWriteItems call whose items have names, so that a cancellation says *which*
    conditions failed without counting positions (DynamoDB's CancellationReasons come back
    in item order; they are zipped with the names here, once)."""

    client: Any
    names: list[str] = field(default_factory=list)
    items: list[dict] = field(default_factory=list)

    def add(self, name: str, item: dict) -> Transaction:
        """`item` is one TransactItems entry: {"Put" | "Update" | "ConditionCheck" | "Delete": {...}}."""
        if name in self.names:
            raise ValueError(f"duplicate transaction item name {name!r}")
        self.names.append(name)
        self.items.append(item)
        return self

    def run(self) -> None:
        """Apply every item or none.  Retries while another transaction holds an item
        (TransactionConflict); one ClientRequestToken per call, so that a botocore retry of a
        transaction whose answer was lost is applied once.  Failed conditions raise `Cancelled`."""
        token = str(uuid.uuid4())
        try:
            retry_on_conflict(lambda: self.client.transact_write_items(TransactItems=self.items,
                                                                       ClientRequestToken=token))
        except ClientError as exc:
            if error_code(exc) != "TransactionCanceledException":
                raise
            reasons = cancellation_reasons(exc)
            failed = {name: from_item(reason.get("Item"))
                      for name, reason in zip(self.names, reasons, strict=False)
                      if reason.get("Code") == "ConditionalCheckFailed"}
            if not failed:
                raise
            raise Cancelled(failed, exc) from exc


# What a paid endpoint passes to Ledger.reserve(gate=...): the amount → the caller's Checks
# (kyma.accounts.gate builds it; billing runs it without knowing what it checks).
ReserveGate = Callable[[int], Sequence[Check]]
