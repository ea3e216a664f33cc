"""Reference clips up to 10 MB, uploaded straight to S3.

An inline upload cannot exceed ~4.5 MB: API Gateway hands Lambda the body
base64-encoded inside a 6 MB event.  So a client asks for an upload
(POST /v1/audio/voice-clone/uploads), POSTs the file to S3 with the returned
presigned form, then clones with `upload_id`.

- The presigned POST's policy limits the size to 1 byte – 10 MB and pins the key
  under the caller's own prefix.  The server never trusts the policy alone:
  it re-checks the object's size before reading it (413 over 10 MB), and then
  runs the same format and duration checks as an inline upload.  The embedded
  S3 of the local stack (moto) ignores POST policy conditions entirely, so
  these server-side checks are also what holds there.
- An upload belongs to the account that created it; another account's
  upload_id is simply not found.  It is single-use: the reserve transaction
  claims it, the settle marks it used, a release gives it back so a failed
  clone can be retried (kyma.billing.claims: those items ride in the ledger's
  transactions, the reconciler's release too).
- Successful clones delete the object; the bucket's lifecycle rule removes
  leftovers within a day, and the row's TTL (`purge_at`) removes the row.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError

from kyma.billing.claims import PENDING, USED, not_found
from kyma.edge import errors
from kyma.edge.schema import BodySchema
from kyma.platform.config import Config
from kyma.platform.dynamo import from_item, to_item
from kyma.platform.observability import logger

MAX_BYTES = 10 * 1024 * 1024
POST_TTL_SECONDS = 900              # the presigned form: 15 minutes to upload
USE_WINDOW_SECONDS = 3600           # the upload_id: 1 hour to clone with it
PURGE_AFTER_SECONDS = 86_400        # DynamoDB TTL on the row
MAX_FILENAME_CHARS = 255
MAX_CONTENT_TYPE_CHARS = 100

# An upload's life: pending (waiting for its file, or given back) → claimed (a clone is running) → used.


def _create_error(field: str, rule: str, value: Any) -> errors.ApiError:
    if field == "filename":
        return errors.InvalidRequest(f"filename must be a string of at most {MAX_FILENAME_CHARS} characters.")
    return errors.InvalidRequest("content_type must be an audio/* type (or application/octet-stream).")


# POST .../uploads, both fields optional (null counts as absent); published as it is checked.
CREATE_BODY = BodySchema({"type": "object", "properties": {
    "filename": {"type": "string", "maxLength": MAX_FILENAME_CHARS},
    "content_type": {"type": "string", "maxLength": MAX_CONTENT_TYPE_CHARS,
                     "pattern": "^(audio/|application/octet-stream)"},
}}, _create_error)


def parse_create(body: dict) -> tuple[str | None, str | None]:
    """POST .../uploads body → (filename, content_type), both optional, or 400."""
    given = {k: body[k] for k in CREATE_BODY.schema["properties"] if body.get(k) is not None}
    CREATE_BODY.check(given)
    return given.get("filename"), given.get("content_type")


class Uploads:
    def __init__(self, ddb: Any, s3: Callable[[], Any], cfg: Config) -> None:
        """`s3` returns the client, created on first use: inline clones never need it."""
        self.ddb, self._s3, self.cfg = ddb, s3, cfg

    @property
    def s3(self) -> Any:
        return self._s3()

    def create(self, account_id: str, *, filename: str | None = None, content_type: str | None = None) -> dict:
        """A presigned S3 POST for one reference clip.  The answer of POST .../uploads (201)."""
        now = int(time.time())
        upload_id = "up_" + secrets.token_hex(12)
        key = f"uploads/{account_id}/{upload_id}"
        fields: dict[str, str] = {}
        conditions: list[Any] = [["content-length-range", 1, MAX_BYTES], {"key": key}]
        if content_type:
            fields["Content-Type"] = content_type
            conditions.append({"Content-Type": content_type})
        post = self.s3.generate_presigned_post(self.cfg.uploads_bucket, key, Fields=fields,
                                               Conditions=conditions, ExpiresIn=POST_TTL_SECONDS)
        self.ddb.put_item(TableName=self.cfg.uploads_table, Item=to_item({
            "upload_id": upload_id, "account_id": account_id, "s3_key": key, "status": PENDING,
            "filename": filename, "created_at": now, "expires_at": now + USE_WINDOW_SECONDS,
            "purge_at": now + PURGE_AFTER_SECONDS,
        }), ConditionExpression="attribute_not_exists(upload_id)")
        return {"upload_id": upload_id, "url": post["url"], "fields": post["fields"],
                "expires_at": now + POST_TTL_SECONDS, "max_bytes": MAX_BYTES}

    def fetch(self, account_id: str, upload_id: str) -> bytes:
        """The uploaded bytes, after checking who owns the upload, its state and its size."""
        if not isinstance(upload_id, str) or not upload_id.startswith("up_") or len(upload_id) > 64:
            raise not_found(str(upload_id)[:64])
        row = from_item(self.ddb.get_item(TableName=self.cfg.uploads_table,
                                          Key=to_item({"upload_id": upload_id}), ConsistentRead=True).get("Item"))
        if row is None or row["account_id"] != account_id:
            raise not_found(upload_id)
        if row["status"] == USED:
            raise errors.UploadUsed(f"Upload {upload_id} has already been used to clone a voice; create a new upload.")
        if row["expires_at"] < time.time():
            raise errors.UploadExpired(f"Upload {upload_id} expired; create a new upload.")
        try:
            head = self.s3.head_object(Bucket=self.cfg.uploads_bucket, Key=row["s3_key"])
        except ClientError as exc:
            if exc.response["Error"]["Code"] in ("404", "NoSuchKey", "NotFound"):
                raise errors.UploadNotFound(f"No file has been uploaded for {upload_id} yet.") from exc
            raise
        size = head["ContentLength"]
        if size > MAX_BYTES:   # the policy should have stopped it; never trust it alone
            raise errors.PayloadTooLarge(f"The uploaded file is {size:,} bytes; the limit is 10 MB.")
        if size == 0:
            raise errors.InvalidRequest("The uploaded file is empty.")
        return self.s3.get_object(Bucket=self.cfg.uploads_bucket, Key=row["s3_key"])["Body"].read()

    def discard(self, account_id: str, upload_id: str) -> None:
        """Delete a used upload's object (best effort: the lifecycle rule is the backstop)."""
        try:
            self.s3.delete_object(Bucket=self.cfg.uploads_bucket, Key=f"uploads/{account_id}/{upload_id}")
        except Exception:  # after a settled clone nothing may fail the request
            logger.exception("could not delete a used upload; the lifecycle rule will", extra={"upload_id": upload_id})
