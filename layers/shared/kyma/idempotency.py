"""`Idempotency-Key`: Stripe semantics on top of Powertools idempotency.

- same key + same request → the first response is replayed (one charge),
  marked `Idempotent-Replayed: true`;
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
from typing import Any

from kyma.config import Config
from kyma.errors import IdempotencyConflict, IdempotencyInProgress, InvalidRequest
from kyma.observability import logger

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255
POLL_SECONDS = 0.2


def key_from(headers: Any) -> str | None:
    """The Idempotency-Key header value, validated, or None."""
    value = headers.get(HEADER)
    if value is None:
        return None
    if not value or len(value) > MAX_KEY_LENGTH or not value.isprintable() or not value.isascii():
        raise InvalidRequest(f"{HEADER} must be 1-{MAX_KEY_LENGTH} printable ASCII characters.")
    return value


def guard_id(scope: str, key: str) -> str:
    """The ledger entry that marks an Idempotency-Key as charged (kyma.billing.reserve)."""
    return f"idempotency#{scope}#{hashlib.sha256(key.encode()).hexdigest()[:40]}"


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


class Idempotency:
    def __init__(self, client: Any, cfg: Config) -> None:
        # Imported here: only requests that carry the header pay for it (cold start).
        from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer

        self.cfg = cfg
        self.store = DynamoDBPersistenceLayer(table_name=cfg.idempotency_table, boto3_client=client)

    def run(self, *, scope: str, account_id: str, key: str, request_fingerprint: str,
            deadline: float, lambda_context: Any, work: Callable[[], dict]) -> tuple[dict, bool]:
        """Run `work` at most once per (scope, account, key).  Returns (result, replayed)."""
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
        )
        ran = False
        done: list[dict] = []

        @idempotent_function(data_keyword_argument="request", persistence_store=self.store,
                             config=config, key_prefix=f"kyma-{scope}")
        def execute(request: dict) -> dict:
            nonlocal ran
            ran = True
            done.append(work())
            return done[0]

        data = {"account_id": account_id, "key": key, "fingerprint": request_fingerprint}
        wait_until = min(deadline, time.monotonic() + self.cfg.idempotency_wait_seconds)
        while True:
            try:
                result = execute(request=data)
                return result, not ran
            except IdempotencyPersistenceLayerError:
                if not done:
                    raise
                # The work succeeded (and was charged) but its record could not be saved:
                # deliver it anyway.  A retry with this key after the in-progress record
                # expires would run again; that is the lesser harm than withholding a paid result.
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
