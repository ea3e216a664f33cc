"""`Idempotency-Key`: Stripe semantics on top of Powertools idempotency.

- same key + same request → the first response is replayed (one charge),
  marked `Idempotent-Replayed: true` (Powertools' response_hook tells a replay);
- same key + different request → 409 idempotency_conflict;
- same key while the first is still running → the second waits up to
  IDEMPOTENCY_WAIT_SECONDS (bounded by its own deadline) and then replays;
  if the first is still running after that → 409 idempotency_in_progress.

Keys are scoped per account and per endpoint.  The record's key hashes
(account_id, header value); its validation hash covers a fingerprint of the
*parsed* request (a retried multipart upload has a new random boundary but
the same fields and file, so it must count as the same request).

Only successful responses are stored.  When the work raises (402, 502, ...),
Powertools deletes the record, so a retry with the same key runs again.
Nothing was charged, so nothing can be charged twice.

Records hold only small JSON (never audio: DynamoDB items are capped at
400 KB, and Powertools fails after the side effects when a record is too
large).  Speech stores its audio in S3 and keeps the reference here.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from kyma.edge.errors import IdempotencyConflict, IdempotencyInProgress, IdempotencyKeySpent, InvalidRequest
from kyma.platform.config import Config
from kyma.platform.dynamo import Check, to_item
from kyma.platform.observability import logger

if TYPE_CHECKING:
    from kyma.edge.http import Request

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255
POLL_SECONDS = 0.2
GUARD_TTL_SECONDS = 2 * 86_400


def key_from(headers: Any) -> str | None:
    """The Idempotency-Key header value, validated, or None."""
    value = headers.get(HEADER)
    if value is None:
        return None
    if not value or len(value) > MAX_KEY_LENGTH or not value.isprintable() or not value.isascii():
        raise InvalidRequest(f"{HEADER} must be 1-{MAX_KEY_LENGTH} printable ASCII characters.")
    return value


def guard_id(scope: str, account_id: str, key: str) -> str:
    """The charge guard of an Idempotency-Key: an item of the Idempotency table, written in the
    settle transaction and checked in the reserve transaction (kyma.billing.ledger), so that a key is
    charged at most once even if the Powertools record that normally replays it was lost."""
    return f"guard#{scope}#{hashlib.sha256(f'{account_id}#{key}'.encode()).hexdigest()}"


def guard_check(cfg: Config, guard: str) -> Check:
    """Reserve-transaction item: this key was never charged (409 idempotency_key_spent)."""
    return Check("guard", {"ConditionCheck": {
        "TableName": cfg.idempotency_table,
        "Key": to_item({"id": guard}),
        "ConditionExpression": "attribute_not_exists(id)",
    }}, lambda _: IdempotencyKeySpent(
        "This Idempotency-Key already completed a charged request whose response can no longer be "
        "replayed; send new requests with a new key."))


def guard_put(cfg: Config, guard: str, hold_entry_id: str) -> dict:
    """Settle-transaction item: the key is charged.  It outlives the idempotency record it backs
    up (GUARD_TTL_SECONDS > the record's TTL); the table's TTL (`expiration`) removes it after."""
    now = int(time.time())
    return {"Put": {
        "TableName": cfg.idempotency_table,
        "Item": to_item({"id": guard, "kind": "charge_guard", "hold_entry_id": hold_entry_id,
                         "created_at": now, "expiration": now + GUARD_TTL_SECONDS}),
        "ConditionExpression": "attribute_not_exists(id)",
    }}


def fingerprint(*parts: Any) -> str:
    """A stable hash of the parsed request (bytes are hashed, everything else JSON-encoded)."""
    digest = hashlib.sha256()
    for part in parts:
        if isinstance(part, (bytes, bytearray, memoryview)):
            digest.update(b"b")
            digest.update(hashlib.sha256(part).digest())
        else:
            digest.update(b"j")
            digest.update(json.dumps(part, sort_keys=True, separators=(",", ":")).encode())
    return digest.hexdigest()


REPLAYED = "__replayed"   # set on a record only by the replay hook; never stored


def _mark_replayed(response: Any, idempotent_data: Any) -> Any:  # Powertools' IdempotentHookFunction
    """Powertools' response_hook: runs only when a stored response is returned instead of the work."""
    return {**response, REPLAYED: True}


class Idempotency:
    """One call wraps a piece of paid work for any endpoint: `once(...)`."""

    def __init__(self, client: Any, cfg: Config) -> None:
        self.client = client
        self.cfg = cfg
        self._store: Any = None

    @property
    def store(self) -> Any:
        # Imported on first use: only requests that carry the header pay for it (cold start).
        if self._store is None:
            from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer

            self._store = DynamoDBPersistenceLayer(table_name=self.cfg.idempotency_table, boto3_client=self.client)
        return self._store

    def for_request(self, request: Request, *, scope: str, request_fingerprint: str,
                    work: Callable[[str | None], dict]) -> tuple[dict, bool]:
        """`once` for an API request: its account, its Idempotency-Key header (validated), its deadline."""
        return self.once(scope=scope, account_id=request.account_id or "", key=key_from(request.headers),
                         request_fingerprint=request_fingerprint, deadline=request.deadline,
                         lambda_context=request.lambda_context, work=work)

    def once(self, *, scope: str, account_id: str, key: str | None, request_fingerprint: str, deadline: float,
             lambda_context: Any, work: Callable[[str | None], dict]) -> tuple[dict, bool]:
        """Run `work(guard)` at most once per (scope, account, Idempotency-Key); return (record, replayed).

        `work` returns a small JSON-able record of the response (never audio) and receives the
        key's charge guard to pass to the ledger's reserve (None without a key: then it simply runs).
        """
        if key is None:
            return work(None), False
        from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig, idempotent_function
        from aws_lambda_powertools.utilities.idempotency.exceptions import (
            IdempotencyAlreadyInProgressError,
            IdempotencyPersistenceLayerError,
            IdempotencyValidationError,
        )

        config = IdempotencyConfig(
            event_key_jmespath="[account_id, key]",
            payload_validation_jmespath="fingerprint",
            expires_after_seconds=self.cfg.idempotency_ttl_seconds,
            hash_function="sha256",
            lambda_context=lambda_context,
            response_hook=_mark_replayed,
        )
        guard = guard_id(scope, account_id, key)
        done: list[dict] = []

        @idempotent_function(data_keyword_argument="request", persistence_store=self.store,
                             config=config, key_prefix=f"kyma-{scope}")
        def execute(request: dict) -> dict:
            done.append(work(guard))
            return done[0]

        data = {"account_id": account_id, "key": key, "fingerprint": request_fingerprint}
        wait_until = min(deadline, time.monotonic() + self.cfg.idempotency_wait_seconds)
        while True:
            try:
                result = dict(execute(request=data))
                replayed = bool(result.pop(REPLAYED, False))
                return result, replayed
            except IdempotencyPersistenceLayerError:
                if not done:
                    raise
                # The work succeeded (and was charged) but its record could not be saved:
                # deliver it anyway.  A retry with this key is refused by the charge guard.
                logger.exception("idempotency record not saved after a successful request",
                                 extra={"scope": scope})
                return done[0], False
            except IdempotencyValidationError as exc:
                raise IdempotencyConflict(
                    f"{HEADER} '{key}' was already used with a different request.") from exc
            except IdempotencyAlreadyInProgressError as exc:
                if time.monotonic() + POLL_SECONDS >= wait_until:
                    raise IdempotencyInProgress(
                        f"A request with {HEADER} '{key}' is still in progress; retry shortly.") from exc
                time.sleep(POLL_SECONDS)
