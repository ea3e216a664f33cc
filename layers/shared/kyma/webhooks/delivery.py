"""Delivery: from the outbox to the customer's receiver, at least once, signed.

1. `Dispatcher.fan_out` (the WebhookEvents stream): one queue message per endpoint subscribed to
   the event.  It carries the body, so every attempt sends (and signs) the same bytes.  A failed
   fan-out raises: the stream retries the record (a duplicate message is harmless: receivers
   dedupe on `webhook-id`, which is the event's id on every attempt and every endpoint).
2. `Deliverer.attempt` (the delivery queue): check the URL again (SSRF: resolved now, refused if
   any address is not public), POST to the checked address with a 10 s budget, no redirects;
   record the attempt (GET …/deliveries).  A 2xx is success.  Anything else is retried on the
   contract's schedule (RETRY_DELAYS): the next attempt is a new message whose `due` time lies
   ahead; SQS delays a message by 15 minutes at most, so a message that arrives early is put back
   with the rest of its delay, without an attempt.  After the last attempt the event is dropped
   (shown as failed).  An endpoint that has failed every attempt for 5 days is disabled.
   A failure of ours (KMS, DynamoDB, SQS) raises: the message comes back after its visibility
   timeout, and after several receives it goes to the dead-letter queue, which is alarmed.
"""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from standardwebhooks.webhooks import Webhook

from kyma.platform.config import Config
from kyma.platform.observability import MetricUnit, logger, metrics
from kyma.webhooks import ssrf
from kyma.webhooks.endpoints import Endpoints
from kyma.webhooks.events import Event

SQS_MAX_DELAY = 900
USER_AGENT = "kyma-webhooks/1"


def sign(secrets: list[str], event_id: str, timestamp: int, body: str) -> str:
    """The `webhook-signature` header: one `v1,<base64>` per signing secret, space-separated."""
    when = datetime.fromtimestamp(timestamp, UTC)
    return " ".join(Webhook(secret).sign(event_id, when, body) for secret in secrets)


@dataclass(frozen=True)
class Dispatcher:
    endpoints: Endpoints
    sqs: Any
    cfg: Config

    def fan_out(self, event: Event) -> int:
        """Queue the first attempt for every endpoint that wants this event.  How many."""
        rows = self.endpoints.subscribers(event.account_id, event.type, only=event.only_webhook_id)
        body, now = event.body(), int(time.time())
        for row in rows:
            enqueue(self.sqs, self.cfg, {"event_id": event.event_id, "type": event.type, "account_id": event.account_id,
                                         "webhook_id": row["sk"], "body": body, "attempt": 1, "due": now}, delay=0)
        if rows:
            metrics.add_metric(name="WebhookEventsQueued", unit=MetricUnit.Count, value=len(rows))
        logger.info("webhook event dispatched", extra={"event_id": event.event_id, "type": event.type,
                                                       "account_id": event.account_id, "endpoints": len(rows)})
        return len(rows)


def enqueue(sqs: Any, cfg: Config, message: Mapping[str, Any], *, delay: int) -> None:
    sqs.send_message(QueueUrl=cfg.webhook_queue_url, MessageBody=json.dumps(dict(message)),
                     DelaySeconds=max(0, min(SQS_MAX_DELAY, int(delay))))


@dataclass(frozen=True)
class Deliverer:
    endpoints: Endpoints
    sqs: Any
    cfg: Config
    resolver: ssrf.Resolver = ssrf.system_resolver
    send: Callable[..., ssrf.Answer] = ssrf.post

    def attempt(self, message: Mapping[str, Any]) -> str:
        """One message from the delivery queue.  What happened: "waiting" (put back until its due
        time), "delivered", "retrying", "failed" (the last attempt failed), "disabled" or "gone"
        (the endpoint was disabled or deleted: nothing sent)."""
        now = time.time()
        due = int(message.get("due") or 0)
        if due > now + 1:
            enqueue(self.sqs, self.cfg, message, delay=int(due - now))
            return "waiting"
        row = self.endpoints.find(message["account_id"], message["webhook_id"])
        if row is None:
            return "gone"
        attempt, event_id = int(message["attempt"]), str(message["event_id"])
        if row.get("status") == "disabled":
            self._record(message, now, None, "endpoint disabled", None)
            return "disabled"
        status, error = self._send(row, event_id, str(message["body"]), now)
        ok = status is not None and 200 <= status < 300
        if ok:
            self._record(message, now, status, None, None)
            self.endpoints.succeeded(row)
            metrics.add_metric(name="WebhookDeliveries", unit=MetricUnit.Count, value=1)
            return "delivered"
        metrics.add_metric(name="WebhookDeliveryFailures", unit=MetricUnit.Count, value=1)
        disabled = self.endpoints.failed(row, int(now))
        delays = self.cfg.webhook_retry_delays
        retry_at = int(now) + delays[attempt - 1] if attempt <= len(delays) and not disabled else None
        # The next attempt is queued before this one is recorded as done: a crash in between
        # repeats this attempt (at least once), never loses the next one.
        if retry_at is not None:
            enqueue(self.sqs, self.cfg, {**message, "attempt": attempt + 1, "due": retry_at},
                    delay=retry_at - int(now))
        self._record(message, now, status, error, retry_at)
        logger.info("webhook attempt failed", extra={
            "event_id": event_id, "webhook_id": row["sk"], "attempt": attempt, "status_code": status,
            "error": error, "next_retry_at": retry_at, "disabled": disabled})
        if disabled:
            logger.warning("webhook endpoint disabled after failing for the disable window",
                           extra={"webhook_id": row["sk"], "account_id": row["pk"]})
            return "disabled"
        return "retrying" if retry_at is not None else "failed"

    def _send(self, row: Mapping[str, Any], event_id: str, body: str, now: float) -> tuple[int | None, str | None]:
        try:
            target = ssrf.check(row["url"], allow_loopback=self.cfg.webhooks_allow_loopback, resolver=self.resolver)
        except ssrf.Refused as exc:
            metrics.add_metric(name="WebhookSsrfRefusals", unit=MetricUnit.Count, value=1)
            return None, f"refused: {exc}"
        timestamp = int(now)
        headers = {"content-type": "application/json", "user-agent": USER_AGENT, "webhook-id": event_id,
                   "webhook-timestamp": str(timestamp),
                   "webhook-signature": sign(self.endpoints.signing_secrets(row, now), event_id, timestamp, body)}
        started = time.monotonic()
        try:
            answer = self.send(target, body.encode(), headers, timeout=self.cfg.webhook_timeout_seconds)
        except (OSError, http.client.HTTPException) as exc:
            if time.monotonic() - started >= self.cfg.webhook_timeout_seconds - 0.05 or isinstance(exc, TimeoutError):
                return None, f"timeout: no answer within {self.cfg.webhook_timeout_seconds:g} s"
            return None, f"connection failed: {type(exc).__name__}"
        return answer.status, None if 200 <= answer.status < 300 else f"HTTP {answer.status}"

    def _record(self, message: Mapping[str, Any], now: float, status: int | None, error: str | None,
                retry_at: int | None) -> None:
        self.endpoints.record_attempt(str(message["webhook_id"]), event_id=str(message["event_id"]),
                                      event_type=str(message["type"]), attempt=int(message["attempt"]), at=now,
                                      status_code=status, error=error, next_retry_at=retry_at)
