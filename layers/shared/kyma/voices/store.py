"""The Voices table: reads and single-item writes (the transactions that touch a voice are the
ledger's: a clone's settle writes the row, speech's reserve checks it, an expiry refunds with it)."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from kyma.platform.config import Config
from kyma.platform.dynamo import Cancelled, Transaction, from_item, pages, to_item, values
from kyma.voices.records import (
    ACTIVATING_INDEX,
    BY_OWNER_INDEX,
    CLONED,
    DELETED,
    DELETING,
    PENDING_DELETES_INDEX,
    activation_update,
)

# Items read per query of an owner's voices, whatever the page size (see owned_page).
READ_PAGE = 100


class Voices:
    """Reads and single-item writes of the Voices table (transactions live in the ledger)."""

    def __init__(self, client: Any, cfg: Config) -> None:
        self.ddb = client
        self.cfg = cfg

    def get(self, voice_id: str) -> dict | None:
        return from_item(self.ddb.get_item(TableName=self.cfg.voices_table, ConsistentRead=True,
                                           Key=to_item({"voice_id": voice_id})).get("Item"))

    def owned_page(self, owner_id: str, *, limit: int, start: dict | None,
                   kind: str | None = None) -> tuple[list[dict], dict | None]:
        """The owner's voices (only those of `kind`, "cloned" or "designed", if given), newest first,
        tombstones left out; (rows, key to continue from)."""
        shown = "(attribute_not_exists(#status) OR NOT (#status IN (:deleted, :deleting)))"
        names, kinds = {"#status": "status"}, {}
        if kind is not None:        # rows without `kind` are cloned (kyma.voices.records.kind_of)
            shown += (" AND (attribute_not_exists(#kind) OR #kind = :kind)" if kind == CLONED
                      else " AND #kind = :kind")
            names["#kind"], kinds["kind"] = "kind", kind
        kwargs: dict[str, Any] = {
            "TableName": self.cfg.voices_table, "IndexName": BY_OWNER_INDEX, "ScanIndexForward": False,
            "KeyConditionExpression": "owner_id = :o", "FilterExpression": shown,
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values(o=owner_id, deleted=DELETED, deleting=DELETING, **kinds),
            "Limit": limit}
        rows: list[dict] = []
        while True:
            if start:
                kwargs["ExclusiveStartKey"] = to_item(start)
            # DynamoDB applies Limit before the filter: read at least READ_PAGE items per query, or
            # a filter that skips most rows (type=designed among many clones) costs a query per row.
            kwargs["Limit"] = max(READ_PAGE, limit - len(rows))
            page = self.ddb.query(**kwargs)
            fresh = [r for r in map(from_item, page.get("Items", [])) if r is not None]
            last = from_item(page.get("LastEvaluatedKey"))
            room = limit - len(rows)
            if len(fresh) > room:       # more than the page holds: continue after the last row shown
                rows += fresh[:room]
                return rows, {k: rows[-1][k] for k in ("voice_id", "owner_id", "created_at")}
            rows += fresh
            if not last or len(rows) == limit:
                return rows, last
            start = last

    def activating(self, *, limit: int) -> list[dict]:
        """Voices still activating, oldest first (the sweep's work list)."""
        page = self.ddb.query(TableName=self.cfg.voices_table, IndexName=ACTIVATING_INDEX, Limit=limit,
                              KeyConditionExpression="activating = :one", ExpressionAttributeValues=values(one="1"))
        return [r for r in map(from_item, page.get("Items", [])) if r is not None]

    def count_activating_since(self, before: int) -> int:
        """How many voices have been activating since before `before` (epoch seconds)."""
        kwargs: dict[str, Any] = {
            "TableName": self.cfg.voices_table, "IndexName": ACTIVATING_INDEX, "Select": "COUNT",
            "KeyConditionExpression": "activating = :one AND created_at < :before",
            "ExpressionAttributeValues": values(one="1", before=before)}
        return sum(int(page.get("Count", 0)) for page in pages(self.ddb, "query", **kwargs))

    def mark_active(self, voice_id: str, now: int, *, event: dict | None = None) -> bool:
        """An activation synthesis succeeded.  False if the voice is no longer activating or active.
        `event` (a webhook event item, kyma.webhooks.events) is written in the same transaction as
        the change from activating, so it exists exactly when the voice became active; a voice
        already active is left so, with no second event."""
        update = activation_update(self.cfg, voice_id, now)
        if event is not None:
            first = {**update, "ConditionExpression": "attribute_not_exists(#status) OR #status = :activating"}
            if self.apply_with(first, event):
                return True
        return self.apply(update)

    def apply_with(self, update: dict, event: dict) -> bool:
        """One conditional update and an event item, in one transaction; False if the update's
        condition does not hold (then nothing is written)."""
        try:
            Transaction(self.ddb).add("voice", {"Update": update}).add("event", event).run()
        except Cancelled as cancelled:
            if "voice" in cancelled.failed:
                return False
            raise
        return True

    def record_attempt(self, voice_id: str, *, error: str, now: int) -> None:
        """An activation attempt failed (kept on the row for operators; the sweep retries)."""
        self.apply({
            "TableName": self.cfg.voices_table, "Key": to_item({"voice_id": voice_id}),
            "UpdateExpression": "SET last_activation_error = :e, last_activation_at = :now "
                                "ADD activation_attempts :one",
            "ConditionExpression": "attribute_exists(activating)",
            "ExpressionAttributeValues": values(e=error[:500], now=now, one=1)})

    def begin_delete(self, voice_id: str, owner_id: str, now: int) -> dict | None:
        """The owner's voice becomes `deleting`: gone for its owner at once (never listed, never
        usable), out of reach of activation and expiry (so never refunded), and on the sweep's list
        until MiniMax confirms the deletion.  The row as it is now; None if it is not theirs or
        already gone."""
        return self.apply_returning({
            "TableName": self.cfg.voices_table, "Key": to_item({"voice_id": voice_id}),
            "UpdateExpression": "SET #status = :deleting, deleting_since = :now, delete_pending = :one "
                                "REMOVE activating",
            "ConditionExpression": "owner_id = :me AND (attribute_not_exists(#status) OR "
                                   "NOT (#status IN (:deleting, :deleted)))",
            "ExpressionAttributeNames": {"#status": "status"},
            "ExpressionAttributeValues": values(deleting=DELETING, deleted=DELETED, now=now, me=owner_id, one="1")})

    def finish_delete(self, voice_id: str, now: int) -> bool:
        """MiniMax confirmed: the tombstone (ids are never reused; never listed again)."""
        return self.apply({
            "TableName": self.cfg.voices_table, "Key": to_item({"voice_id": voice_id}),
            "UpdateExpression": "SET #status = :deleted, deleted_at = :now REMOVE delete_pending",
            "ConditionExpression": "#status = :deleting",
            "ExpressionAttributeNames": {"#status": "status"},
            "ExpressionAttributeValues": values(deleted=DELETED, deleting=DELETING, now=now)})

    def pending_deletes(self, *, limit: int, before: int | None = None) -> list[str]:
        """Voices deleted here but not yet confirmed deleted upstream, oldest first (since before
        `before`, epoch seconds, if given)."""
        condition = "delete_pending = :one" + (" AND deleting_since < :before" if before is not None else "")
        page = self.ddb.query(TableName=self.cfg.voices_table, IndexName=PENDING_DELETES_INDEX, Limit=limit,
                              KeyConditionExpression=condition,
                              ExpressionAttributeValues=values(one="1", **({"before": before} if before is not None
                                                                          else {})))
        return [str(r["voice_id"]) for r in map(from_item, page.get("Items", [])) if r is not None]

    def apply_returning(self, update: dict) -> dict | None:
        """One conditional UpdateItem; the updated row, or None if its condition does not hold."""
        try:
            answer = self.ddb.update_item(**update, ReturnValues="ALL_NEW")
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return None
            raise
        return from_item(answer.get("Attributes")) or {}

    def apply(self, update: dict) -> bool:
        """One conditional UpdateItem; False if its condition does not hold."""
        try:
            self.ddb.update_item(**update)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise
        return True
