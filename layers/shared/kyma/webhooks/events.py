"""Events, recorded with the fact that makes them true.

Emitting an event is one call: `event_put(cfg, account_id, type, data)` is a TransactWriteItems
item; add it to the transaction that makes the fact true (a voice becoming active or expired, a
job settled or released), and the event exists if and only if the fact does.  Nothing is sent
from there: the WebhookEvents table's stream invokes the dispatcher (kyma.webhooks.delivery
`fan_out`), which queues one delivery per subscribed endpoint.  A process that dies right after
the fact loses nothing (the stream has the record); a customer's request never waits on a
receiver.  `record` writes an event on its own, for events that are their own fact (webhook.test).
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kyma.platform.config import Config
from kyma.platform.dynamo import from_item, to_item

SPEECH_JOB_SUCCEEDED = "speech.job.succeeded"
SPEECH_JOB_FAILED = "speech.job.failed"
VOICE_ACTIVE = "voice.active"
VOICE_EXPIRED = "voice.expired"
WEBHOOK_TEST = "webhook.test"
TYPES = (SPEECH_JOB_SUCCEEDED, SPEECH_JOB_FAILED, VOICE_ACTIVE, VOICE_EXPIRED, WEBHOOK_TEST)

# Events stay in the outbox this long (DynamoDB TTL); the stream has them for 24 h anyway.
EVENT_TTL_SECONDS = 7 * 86_400


def new_event_id() -> str:
    """`msg_` + 26 url-safe characters: unique per event, the `webhook-id` on every attempt."""
    return "msg_" + secrets.token_urlsafe(20)[:26]


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(int(epoch), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Event:
    event_id: str
    account_id: str
    type: str
    timestamp: str                 # ISO 8601, UTC: the fact's time
    data: dict
    only_webhook_id: str | None = None   # webhook.test: that endpoint alone

    def body(self) -> str:
        """The exact bytes every attempt sends and signs (the same on every retry)."""
        return json.dumps({"type": self.type, "timestamp": self.timestamp, "data": self.data},
                          separators=(",", ":"), sort_keys=True)


def event_put(cfg: Config, account_id: str, type: str, data: Mapping[str, Any], *,
              event_id: str | None = None, now: float | None = None, only_webhook_id: str | None = None) -> dict:
    """The TransactWriteItems item that records one event (see the module's docstring)."""
    if type not in TYPES:
        raise ValueError(f"unknown webhook event type {type!r}")
    now = time.time() if now is None else now
    return {"Put": {
        "TableName": cfg.webhook_events_table,
        "Item": to_item({"event_id": event_id or new_event_id(), "account_id": account_id, "type": type,
                         "timestamp": iso(now), "data": json.dumps(dict(data), separators=(",", ":")),
                         "only_webhook_id": only_webhook_id, "expires_at": int(now) + EVENT_TTL_SECONDS}),
        "ConditionExpression": "attribute_not_exists(event_id)",
    }}


def record(ddb: Any, cfg: Config, account_id: str, type: str, data: Mapping[str, Any], *,
           only_webhook_id: str | None = None) -> str:
    """An event that is its own fact, written alone.  Its id."""
    put = event_put(cfg, account_id, type, data, only_webhook_id=only_webhook_id)["Put"]
    ddb.put_item(**put)
    return str(put["Item"]["event_id"]["S"])


def from_stream_image(image: Mapping[str, Any]) -> Event:
    """The event a WebhookEvents stream record (its NewImage, DynamoDB JSON) carries."""
    row = from_item(dict(image)) or {}
    return Event(event_id=row["event_id"], account_id=row["account_id"], type=row["type"],
                 timestamp=row["timestamp"], data=json.loads(row.get("data") or "{}"),
                 only_webhook_id=row.get("only_webhook_id"))
