"""Webhook endpoints: what a customer registered, its signing secrets (KMS-encrypted), its state.

The Webhooks table holds, under `pk` = the account: each endpoint (`sk` = `wh_…`) and one counter
(`sk` = `#count`) that the create and delete transactions move, so that no race passes the limit
of MAX_ENDPOINTS; under `pk` = the endpoint: its recent delivery attempts (`sk` = `a#…`, TTL).

Signing secrets: the service must sign, so it must hold the key; it is kept in the endpoint's row
only as KMS ciphertext (Encrypt with the WebhookSecretsKey and an encryption context naming the
account and the endpoint, so a ciphertext copied onto another row does not decrypt).  KMS rather
than Secrets Manager: one key for every endpoint (Secrets Manager would be a secret, and a
charge, per endpoint and another API call on every delivery), the row and its secret are written
in one transaction, and the key's policy and CloudTrail log say who decrypted.  The plaintext is
returned once, at create and rotate, and never logged.  After a rotation the previous secret keeps
signing alongside the new one for ROTATION_OVERLAP_SECONDS (Standard Webhooks allows several
signatures), so a receiver can switch without dropping an event.
"""

from __future__ import annotations

import base64
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from kyma.edge import errors
from kyma.platform.config import Config
from kyma.platform.dynamo import Cancelled, Transaction, from_item, to_item, values
from kyma.webhooks import ssrf
from kyma.webhooks.events import TYPES, WEBHOOK_TEST, iso

MAX_ENDPOINTS = 10
MAX_DESCRIPTION = 500
ROTATION_OVERLAP_SECONDS = 86_400
ENABLED, DISABLED = "enabled", "disabled"
COUNT_SK = "#count"
WEBHOOK_ID_PREFIX = "wh_"
ATTEMPT_TTL_SECONDS = 30 * 86_400


def new_secret() -> str:
    """`whsec_` + base64 of 32 random bytes (Standard Webhooks: 24 to 64 bytes)."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def view(row: Mapping[str, Any]) -> dict:
    """What a customer sees of an endpoint (never a secret)."""
    out = {"webhook_id": row["sk"], "url": row["url"], "events": list(row.get("events") or ["*"]),
           "description": row.get("description", ""), "status": row.get("status", ENABLED),
           "created_at": iso(row["created_at"])}
    if row.get("disabled_at"):
        out["disabled_at"] = iso(row["disabled_at"])
    if row.get("failing_since"):
        out["failing_since"] = iso(row["failing_since"])
    return out


def read_create(body: Mapping[str, Any], *, allow_loopback: bool,
                resolver: ssrf.Resolver) -> tuple[str, list[str], str]:
    """(url, events, description) of a create request, or 400 invalid_request."""
    unknown = set(body) - {"url", "events", "description"}
    if unknown:
        raise errors.InvalidRequest(f"Unknown field(s): {', '.join(sorted(unknown))}.")
    url = body.get("url")
    try:
        ssrf.check(url if isinstance(url, str) else "", allow_loopback=allow_loopback, resolver=resolver)
    except ssrf.Refused as exc:
        raise errors.InvalidRequest(f"url refused: {exc}.") from exc
    events = body.get("events")
    if events is None:
        events = ["*"]
    if (not isinstance(events, list) or not events or len(events) > len(TYPES)
            or not all(isinstance(e, str) for e in events)):
        raise errors.InvalidRequest(f"events must be a non-empty list of event types ({', '.join(TYPES)}) or [\"*\"].")
    if "*" in events:
        if events != ["*"]:
            raise errors.InvalidRequest('events: "*" stands alone (all events).')
    elif bad := sorted(set(events) - set(TYPES)):
        raise errors.InvalidRequest(f"Unknown event type(s): {', '.join(bad)}. Known: {', '.join(TYPES)}.")
    description = body.get("description", "")
    if not isinstance(description, str) or len(description) > MAX_DESCRIPTION:
        raise errors.InvalidRequest(f"description must be a string of at most {MAX_DESCRIPTION} characters.")
    return url, list(dict.fromkeys(events)), description   # type: ignore[return-value]


def subscribed(row: Mapping[str, Any], event_type: str) -> bool:
    events = list(row.get("events") or ["*"])
    return event_type == WEBHOOK_TEST or "*" in events or event_type in events


@dataclass(frozen=True)
class Endpoints:
    ddb: Any
    kms: Any
    cfg: Config

    # ── secrets ──────────────────────────────────────────────────────────
    def _encrypt(self, account_id: str, webhook_id: str, secret: str) -> bytes:
        answer = self.kms.encrypt(KeyId=self.cfg.webhook_secrets_key, Plaintext=secret.encode(),
                                  EncryptionContext={"account_id": account_id, "webhook_id": webhook_id})
        return bytes(answer["CiphertextBlob"])

    def signing_secrets(self, row: Mapping[str, Any], now: float | None = None) -> list[str]:
        """The secrets that sign now: the current one, and a rotated one within its overlap."""
        now = time.time() if now is None else now
        out = []
        for entry in row.get("secrets") or []:
            if entry.get("expires_at") and int(entry["expires_at"]) <= now:
                continue
            answer = self.kms.decrypt(CiphertextBlob=bytes(entry["ciphertext"]), KeyId=self.cfg.webhook_secrets_key,
                                      EncryptionContext={"account_id": row["pk"], "webhook_id": row["sk"]})
            out.append(bytes(answer["Plaintext"]).decode())
        return out

    # ── the customer's endpoints ─────────────────────────────────────────
    def create(self, account_id: str, url: str, events: list[str], description: str) -> dict:
        webhook_id = WEBHOOK_ID_PREFIX + secrets.token_hex(12)
        secret, now = new_secret(), int(time.time())
        tx = Transaction(self.ddb)
        tx.add("count", {"Update": {
            "TableName": self.cfg.webhooks_table, "Key": to_item({"pk": account_id, "sk": COUNT_SK}),
            "UpdateExpression": "ADD endpoints :one",
            "ConditionExpression": "attribute_not_exists(endpoints) OR endpoints < :max",
            "ExpressionAttributeValues": values(one=1, max=MAX_ENDPOINTS)}})
        tx.add("endpoint", {"Put": {
            "TableName": self.cfg.webhooks_table,
            "Item": to_item({"pk": account_id, "sk": webhook_id, "url": url, "events": events,
                             "description": description, "status": ENABLED, "created_at": now,
                             "secrets": [{"ciphertext": self._encrypt(account_id, webhook_id, secret)}]}),
            "ConditionExpression": "attribute_not_exists(sk)"}})
        try:
            tx.run()
        except Cancelled as cancelled:
            if "count" in cancelled.failed:
                raise errors.InvalidRequest(f"At most {MAX_ENDPOINTS} webhook endpoints per account; "
                                            "delete one first.") from cancelled
            raise
        row = self.get_row(account_id, webhook_id)
        return {**view(row), "secret": secret}

    def all(self, account_id: str) -> list[dict]:
        page = self.ddb.query(TableName=self.cfg.webhooks_table, ConsistentRead=True,
                              KeyConditionExpression="pk = :me AND begins_with(sk, :wh)",
                              ExpressionAttributeValues=values(me=account_id, wh=WEBHOOK_ID_PREFIX))
        rows = [r for r in map(from_item, page.get("Items", [])) if r]
        return sorted(rows, key=lambda r: (int(r["created_at"]), r["sk"]))

    def get_row(self, account_id: str, webhook_id: str) -> dict:
        """The caller's endpoint, or 404 (another account's is not disclosed)."""
        row = None
        if webhook_id.startswith(WEBHOOK_ID_PREFIX) and len(webhook_id) < 64:
            row = from_item(self.ddb.get_item(TableName=self.cfg.webhooks_table, ConsistentRead=True,
                                              Key=to_item({"pk": account_id, "sk": webhook_id})).get("Item"))
        if row is None:
            raise errors.NotFound(f"Webhook {webhook_id} does not exist.")
        return row

    def delete(self, account_id: str, webhook_id: str) -> None:
        tx = Transaction(self.ddb)
        tx.add("endpoint", {"Delete": {
            "TableName": self.cfg.webhooks_table, "Key": to_item({"pk": account_id, "sk": webhook_id}),
            "ConditionExpression": "attribute_exists(sk)"}})
        tx.add("count", {"Update": {
            "TableName": self.cfg.webhooks_table, "Key": to_item({"pk": account_id, "sk": COUNT_SK}),
            "UpdateExpression": "ADD endpoints :minus", "ConditionExpression": "endpoints > :zero",
            "ExpressionAttributeValues": values(minus=-1, zero=0)}})
        try:
            tx.run()
        except Cancelled as cancelled:
            raise errors.NotFound(f"Webhook {webhook_id} does not exist.") from cancelled

    def rotate(self, account_id: str, webhook_id: str) -> dict:
        """A new secret; the current one keeps signing alongside it for ROTATION_OVERLAP_SECONDS."""
        row = self.get_row(account_id, webhook_id)
        now = int(time.time())
        kept = [e for e in row.get("secrets") or [] if not e.get("expires_at")][:1]
        previous = [{**e, "expires_at": now + ROTATION_OVERLAP_SECONDS} for e in kept]
        secret = new_secret()
        entries = [{"ciphertext": self._encrypt(account_id, webhook_id, secret)}, *previous]
        try:
            self.ddb.update_item(
                TableName=self.cfg.webhooks_table, Key=to_item({"pk": account_id, "sk": webhook_id}),
                UpdateExpression="SET secrets = :s, rotated_at = :now",
                ConditionExpression="attribute_exists(sk)",
                ExpressionAttributeValues=values(s=entries, now=now))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                raise errors.NotFound(f"Webhook {webhook_id} does not exist.") from exc
            raise
        return {**view(row), "secret": secret, "previous_secret_expires_at": iso(now + ROTATION_OVERLAP_SECONDS)
                if previous else None}

    # ── delivery outcomes ────────────────────────────────────────────────
    def subscribers(self, account_id: str, event_type: str, only: str | None = None) -> list[dict]:
        return [r for r in self.all(account_id) if r.get("status", ENABLED) == ENABLED
                and subscribed(r, event_type) and (only is None or r["sk"] == only)]

    def find(self, account_id: str, webhook_id: str) -> dict | None:
        return from_item(self.ddb.get_item(TableName=self.cfg.webhooks_table, ConsistentRead=True,
                                           Key=to_item({"pk": account_id, "sk": webhook_id})).get("Item"))

    def succeeded(self, row: Mapping[str, Any]) -> None:
        if row.get("failing_since"):
            self._update(row, "REMOVE failing_since", {})

    def failed(self, row: Mapping[str, Any], now: int) -> bool:
        """Count a failed attempt; True if the endpoint has now failed for the whole disable window
        (it is disabled: shown in GET, no more deliveries)."""
        since = int(row.get("failing_since") or now)
        if not row.get("failing_since"):
            self._update(row, "SET failing_since = if_not_exists(failing_since, :now)", values(now=now))
        if now - since < self.cfg.webhook_disable_after_seconds:
            return False
        self._update(row, "SET #status = :disabled, disabled_at = :now",
                     {**values(disabled=DISABLED, now=now)}, names={"#status": "status"})
        return True

    def _update(self, row: Mapping[str, Any], expression: str, vals: dict, *, names: dict | None = None) -> None:
        try:
            self.ddb.update_item(TableName=self.cfg.webhooks_table, Key=to_item({"pk": row["pk"], "sk": row["sk"]}),
                                 UpdateExpression=expression, ConditionExpression="attribute_exists(sk)",
                                 **({"ExpressionAttributeValues": vals} if vals else {}),
                                 **({"ExpressionAttributeNames": names} if names else {}))
        except ClientError as exc:     # deleted meanwhile: nothing to record
            if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise

    # ── attempts (GET …/deliveries) ──────────────────────────────────────
    def record_attempt(self, webhook_id: str, *, event_id: str, event_type: str, attempt: int, at: float,
                       status_code: int | None, error: str | None, next_retry_at: int | None) -> None:
        ms = int(at * 1000)
        self.ddb.put_item(TableName=self.cfg.webhooks_table, Item=to_item({
            "pk": webhook_id, "sk": f"a#{ms:015d}#{event_id}#{attempt:02d}", "event_id": event_id,
            "type": event_type, "attempt": attempt, "at_ms": ms, "status_code": status_code,
            "error": (error or "")[:300] or None, "succeeded": status_code is not None and 200 <= status_code < 300,
            "next_retry_at": next_retry_at, "expires_at": int(at) + ATTEMPT_TTL_SECONDS}))

    def attempts(self, webhook_id: str, *, limit: int) -> list[dict]:
        page = self.ddb.query(TableName=self.cfg.webhooks_table, ConsistentRead=True, ScanIndexForward=False,
                              Limit=limit, KeyConditionExpression="pk = :wh AND begins_with(sk, :a)",
                              ExpressionAttributeValues=values(wh=webhook_id, a="a#"))
        return [{"event_id": row["event_id"], "type": row["type"], "attempt": int(row["attempt"]),
                 "attempted_at": iso(int(row["at_ms"]) / 1000), "status_code": row.get("status_code"),
                 "error": row.get("error"), "succeeded": bool(row.get("succeeded")),
                 "next_retry_at": iso(row["next_retry_at"]) if row.get("next_retry_at") else None}
                for row in filter(None, map(from_item, page.get("Items", [])))]
