"""A designed voice's preview: the audio MiniMax rendered with the design (`trial_audio`), kept in
S3 (bucket AudioBucket, prefix previews/, a 2-day lifecycle rule) and shown to its owner through a
presigned GET URL that lasts PREVIEW_URL_SECONDS (24 h).

The object outlives the Idempotency-Key record that replays a design (24 h), so a replay's fresh
URL always points at the object.  Keys are `previews/<account>/<voice_id>.<format>`: one per
voice, never guessable from outside (the URL is the only way in, and it is signed).  Presigning
is local computation: serving a URL costs no S3 call.  A URL signed with temporary credentials
(a Lambda role's) stops working when those credentials expire, if that comes first; replaying
the design with its Idempotency-Key gives a fresh one.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from kyma.audio import inspect_audio
from kyma.edge.errors import ApiError
from kyma.platform.observability import logger

PREFIX = "previews/"
PREVIEW_URL_SECONDS = 86_400
# The preview is stored after MiniMax made the voice and before the settle: only if the store (a
# bounded S3 client: kyma.platform.aws.bounded_s3, about 6.5 s at worst) cannot run the request past
# its deadline, which would release the hold and lose the paid voice for its preview.
PREVIEW_STORE_SECONDS = 8.0


def preview_key(account_id: str, voice_id: str, audio_format: str) -> str:
    return f"{PREFIX}{account_id}/{voice_id}.{audio_format}"


def sniff(audio: bytes) -> tuple[str, str]:
    """(extension, content type) of a preview, from its bytes (MiniMax renders MP3)."""
    if audio[:4] == b"fLaC":
        return "flac", "audio/flac"
    try:
        info = inspect_audio(audio)
    except ApiError:
        return "bin", "application/octet-stream"
    return info.format, info.mime_type


class Previews:
    def __init__(self, s3: Callable[[], Any], bucket: str, store: Callable[[], Any] | None = None) -> None:
        """`s3` returns the client that signs, `store` the bounded one that writes (`s3` if not
        given), each created on first use (only the design function needs them)."""
        self._s3 = s3
        self._store = store or s3
        self.bucket = bucket

    @property
    def s3(self) -> Any:
        return self._s3()

    @property
    def store(self) -> Any:
        return self._store()

    def put(self, account_id: str, voice_id: str, audio: bytes, *, deadline: float) -> str | None:
        """Keep the preview; its key, or None if it could not be stored or too little time is left
        before `deadline` (logged: the voice the customer pays for does not depend on its preview)."""
        if deadline - time.monotonic() < PREVIEW_STORE_SECONDS:      # deadlines are monotonic (kyma.edge.http)
            logger.warning("too little time left to store a designed voice's preview; the voice is kept "
                           "without one", extra={"voice_id": voice_id})
            return None
        extension, content_type = sniff(audio)
        key = preview_key(account_id, voice_id, extension)
        try:
            self.store.put_object(Bucket=self.bucket, Key=key, Body=audio, ContentType=content_type)
        except (ClientError, BotoCoreError):
            logger.exception("could not store a designed voice's preview", extra={"voice_id": voice_id})
            return None
        return key

    def url(self, key: str, now: float | None = None) -> tuple[str, int] | None:
        """A presigned GET URL for the preview at `key`, and when it expires (epoch seconds); None if
        it cannot be signed (no credentials: logged).  It answers a paid request: it never raises."""
        now = time.time() if now is None else now
        try:
            url = self.s3.generate_presigned_url("get_object", Params={"Bucket": self.bucket, "Key": key},
                                                 ExpiresIn=PREVIEW_URL_SECONDS)
        except (ClientError, BotoCoreError):
            logger.exception("could not sign a preview URL", extra={"preview_key": key})
            return None
        return url, int(now) + PREVIEW_URL_SECONDS
