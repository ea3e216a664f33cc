"""A hold's claim on a single-use input: the upload a voice clone is made from.

The reserve transaction claims the caller's pending upload (pending → claimed,
`claim_check`), the settle marks it used (`used_item`), a release gives it back
(claimed → pending, `returned_item`) so a failed clone can be retried.  They are
billing's, not the uploads service's (kyma.voices.uploads), because every release,
the reconciler's too, must return the upload in the same transaction as the money.
"""

from __future__ import annotations

from kyma.edge import errors
from kyma.platform.config import Config
from kyma.platform.dynamo import Check, to_item, values

PENDING, CLAIMED, USED = "pending", "claimed", "used"


def not_found(upload_id: str) -> errors.ApiError:
    return errors.UploadNotFound(f"Upload {upload_id} was not found.")


def claim_check(cfg: Config, upload_id: str, account_id: str, entry_id: str) -> Check:
    """Reserve: claim the caller's pending upload for the hold `entry_id` (single use)."""
    def refusal(upload: dict | None) -> errors.ApiError:
        if upload is None or upload.get("account_id") != account_id:
            return not_found(upload_id)
        if upload.get("status") == CLAIMED:
            return errors.UploadInUse(f"Upload {upload_id} is being used by another request.")
        return errors.UploadUsed(f"Upload {upload_id} has already been used.")

    return Check("upload", {"Update": {
        "TableName": cfg.uploads_table,
        "Key": to_item({"upload_id": upload_id}),
        "UpdateExpression": "SET #status = :claimed, hold_entry_id = :entry",
        "ConditionExpression": "account_id = :me AND #status = :pending",
        "ExpressionAttributeNames": {"#status": "status"},
        "ExpressionAttributeValues": values(me=account_id, claimed=CLAIMED, pending=PENDING, entry=entry_id),
        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
    }}, refusal)


def used_item(cfg: Config, upload_id: str, entry_id: str) -> dict:
    """Settle: the upload claimed by this hold is used."""
    return _transition(cfg, upload_id, entry_id, USED)


def returned_item(cfg: Config, upload_id: str, entry_id: str) -> dict:
    """Release: the upload claimed by this hold is pending again (a failed clone can retry)."""
    return _transition(cfg, upload_id, entry_id, PENDING)


def _transition(cfg: Config, upload_id: str, entry_id: str, status: str) -> dict:
    remove = " REMOVE hold_entry_id" if status == PENDING else ""
    return {"Update": {
        "TableName": cfg.uploads_table,
        "Key": to_item({"upload_id": upload_id}),
        "UpdateExpression": "SET #status = :status" + remove,
        "ConditionExpression": "hold_entry_id = :entry",
        "ExpressionAttributeNames": {"#status": "status"},
        "ExpressionAttributeValues": values(status=status, entry=entry_id),
    }}
