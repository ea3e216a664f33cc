"""The one error vocabulary of the API.

Every error a client can see is an `ApiError`: an HTTP status, a snake_case
`error.code` and one human sentence.  Functions raise them; the HTTP edge
(`kyma.http`) turns them into the envelope

    {"error": {"code": "...", "message": "..."}}

Storage and provider code translate low-level failures (botocore
`ClientError`, HTTP errors) into these with ``raise ... from exc``.
"""

from __future__ import annotations


class ApiError(Exception):
    """An error with a place in the public contract."""

    status: int = 400
    code: str = "invalid_request"

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status
        if code is not None:
            self.code = code
        self.headers = headers or {}

    def envelope(self) -> dict:
        return {"error": {"code": self.code, "message": self.message}}


class InvalidRequest(ApiError):
    status, code = 400, "invalid_request"


class PayloadTooLarge(ApiError):
    status, code = 413, "invalid_request"


class UnsupportedMediaType(ApiError):
    status, code = 415, "invalid_request"


class AuthError(ApiError):
    status, code = 401, "auth_error"


class InsufficientCredits(ApiError):
    status, code = 402, "insufficient_credits"


class VoiceNotOwned(ApiError):
    status, code = 403, "voice_not_owned"


class VoiceNotFound(ApiError):
    status, code = 404, "voice_not_found"


class NotFound(ApiError):
    status, code = 404, "not_found"


class MethodNotAllowed(ApiError):
    status, code = 405, "method_not_allowed"


class IdempotencyConflict(ApiError):
    status, code = 409, "idempotency_conflict"


class IdempotencyInProgress(ApiError):
    status, code = 409, "idempotency_in_progress"


class ProviderError(ApiError):
    """Upstream (MiniMax) failed.  `trace_id` is MiniMax's, for the logs only."""

    status, code = 502, "provider_error"

    def __init__(self, message: str, *, trace_id: str | None = None,
                 provider_code: int | None = None, retryable: bool = True) -> None:
        super().__init__(message)
        self.trace_id = trace_id
        self.provider_code = provider_code
        self.retryable = retryable


class OwnershipWriteFailed(ApiError):
    status, code = 500, "ownership_write_failed"


class InternalError(ApiError):
    status, code = 500, "internal_error"


class AudioUnreadable(ApiError):
    status, code = 400, "audio_unreadable"


class ReferenceTooShort(ApiError):
    status, code = 400, "reference_too_short"


class ReferenceTooLong(ApiError):
    status, code = 400, "reference_too_long"
