"""The one error vocabulary of the API: every `error.code` a client can see is named here.

Every error is an `ApiError` subclass: an HTTP status, a snake_case
`error.code` and one human sentence.  Functions raise them; the HTTP edge
(`kyma.edge.http`) turns them into the envelope built by `envelope()`:

    {"error": {"code": "...", "message": "..."}}

API Gateway's own answers (template.yaml `GatewayResponses`) use the same
envelope and only codes listed in `CODES`; a test holds the template and the
README's error tables to this module.

Storage and provider code translate low-level failures (botocore
`ClientError`, MiniMax `base_resp` codes) into these with ``raise ... from exc``.
Nothing outside this module writes a code string.
"""

from __future__ import annotations

from typing import Any, ClassVar


def envelope(code: str, message: str) -> dict[str, Any]:
    """The error body every response of the API uses (functions and API Gateway alike)."""
    return {"error": {"code": code, "message": message}}


class ApiError(Exception):
    """An error with a place in the public contract."""

    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal_error"

    def __init__(self, message: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers or {}

    def envelope(self) -> dict[str, Any]:
        return envelope(self.code, self.message)


# ── 400: the request itself ──────────────────────────────────────────────
class InvalidRequest(ApiError):
    status, code = 400, "invalid_request"


class NotAVoiceCloneModel(ApiError):
    status, code = 400, "not_a_voice_clone_model"


class NotAVoiceDesignModel(ApiError):
    status, code = 400, "not_a_voice_design_model"


class DescriptionTooLong(ApiError):
    status, code = 400, "description_too_long"


class NotATtsModel(ApiError):
    status, code = 400, "not_a_tts_model"


class VoiceRequired(ApiError):
    status, code = 400, "voice_required"


class InputTooLong(ApiError):
    status, code = 400, "input_too_long"


class UnsupportedFormat(ApiError):
    status, code = 400, "unsupported_format"


class AudioUnreadable(ApiError):
    status, code = 400, "audio_unreadable"


class ReferenceTooShort(ApiError):
    status, code = 400, "reference_too_short"


class ReferenceTooLong(ApiError):
    status, code = 400, "reference_too_long"


class PayloadTooLarge(ApiError):
    status, code = 413, "invalid_request"      # the seed page's 413 row


class UnsupportedMediaType(ApiError):
    status, code = 415, "invalid_request"      # the seed page's 415 row


# ── 401 / 402 / 403 / 404 / 405 ──────────────────────────────────────────
class AuthError(ApiError):
    status, code = 401, "auth_error"


class InsufficientCredits(ApiError):
    status, code = 402, "insufficient_credits"


class KeySpendLimitExceeded(ApiError):
    """The key's monthly spend limit would be passed (kyma.accounts.gate); nothing was reserved."""

    status, code = 402, "key_spend_limit_exceeded"


class PermissionDenied(ApiError):
    """The key lacks the scope the route needs (kyma.edge.scopes); nothing was charged."""

    status, code = 403, "permission_denied"


class Forbidden(ApiError):
    """An allowed key on a route its policy does not cover (API Gateway ACCESS_DENIED)."""

    status, code = 403, "forbidden"


class VoiceNotOwned(ApiError):
    status, code = 403, "voice_not_owned"


class NotFound(ApiError):
    status, code = 404, "not_found"


class VoiceNotFound(ApiError):
    status, code = 404, "voice_not_found"


class JobNotFound(ApiError):
    status, code = 404, "job_not_found"


class UploadNotFound(ApiError):
    status, code = 404, "upload_not_found"


class MethodNotAllowed(ApiError):
    status, code = 405, "method_not_allowed"


# ── 409 / 410: state ─────────────────────────────────────────────────────
class KeyConflict(ApiError):
    """A key change that would lock the account out of managing its keys."""

    status, code = 409, "conflict"


class IdempotencyConflict(ApiError):
    status, code = 409, "idempotency_conflict"


class IdempotencyInProgress(ApiError):
    status, code = 409, "idempotency_in_progress"


class IdempotencyKeySpent(ApiError):
    status, code = 409, "idempotency_key_spent"


class UploadInUse(ApiError):
    status, code = 409, "upload_in_use"


class UploadUsed(ApiError):
    status, code = 410, "upload_used"


class UploadExpired(ApiError):
    status, code = 410, "upload_expired"


class IdempotencyExpired(ApiError):
    status, code = 410, "idempotency_expired"


# ── 429 ──────────────────────────────────────────────────────────────────
class RateLimited(ApiError):
    status, code = 429, "rate_limited"


class TooManyJobs(ApiError):
    """The account already has as many speech jobs queued or running as it may."""

    status, code = 429, "too_many_jobs"


class TooManyConcurrent(ApiError):
    """The account's limit of requests in flight of this kind (kyma.accounts.gate) is reached."""

    status, code = 429, "too_many_concurrent"


# ── 5xx: ours ────────────────────────────────────────────────────────────
class InternalError(ApiError):
    status, code = 500, "internal_error"


class OwnershipWriteFailed(ApiError):
    status, code = 500, "ownership_write_failed"


class BillingOutcomeUnknown(ApiError):
    status, code = 500, "billing_outcome_unknown"


class ServiceUnavailable(ApiError):
    status, code = 503, "service_unavailable"


class JobTimeout(ApiError):
    """A speech job's `error` when it ran past its deadline (never raised to a request)."""

    status, code = 504, "job_timeout"


class VoiceExpired(ApiError):
    """A cloned voice MiniMax no longer has (it answered 20132 for it)."""

    status, code = 410, "voice_expired"


# ── Upstream (MiniMax): what its answer means for the customer ──────────
class UpstreamError(ApiError):
    """Anything MiniMax answered with, or failed by.  `trace_id` and `provider_code` are
    MiniMax's, for logs and metrics; `operator` marks a problem of our MiniMax account
    (bad key, no balance, no permission) that pages the operator."""

    status, code = 502, "provider_error"
    operator: ClassVar[bool] = False

    def __init__(self, message: str, *, trace_id: str | None = None, provider_code: int | None = None,
                 retryable: bool = True, headers: dict[str, str] | None = None) -> None:
        super().__init__(message, headers=headers)
        self.trace_id = trace_id
        self.provider_code = provider_code
        self.retryable = retryable


class ProviderError(UpstreamError):
    """MiniMax failed (after retries, or in a way retrying cannot fix); nothing was charged."""

    status, code = 502, "provider_error"


class ProviderUnavailable(UpstreamError):
    """MiniMax cannot serve us right now: our account's problem or its capacity, not the request's."""

    status, code = 503, "service_unavailable"


class ProviderAccountProblem(ProviderUnavailable):
    """Our MiniMax account is misconfigured (1004, 1008, 2038, 2042, 2049, 2056): alarm the operator."""

    operator = True


class ContentRejected(UpstreamError):
    """MiniMax refused the text: sensitive input or output (1026/1027), invisible characters (1042)."""

    status, code = 400, "content_rejected"


class ReferenceRejected(UpstreamError):
    """MiniMax refused the reference clip (1043, 1044, 2037, 2048)."""

    status, code = 400, "reference_rejected"


class UpstreamInvalidRequest(UpstreamError):
    """MiniMax refused a parameter value the customer chose (2013)."""

    status, code = 400, "invalid_request"


class UpstreamVoiceMissing(UpstreamError):
    """MiniMax does not know the voice (20132).  For a cloned voice the speech domain turns
    this into `VoiceExpired`; for a system voice it stays a 404."""

    status, code = 404, "voice_not_found"


def _subclasses(cls: type[ApiError]) -> list[type[ApiError]]:
    out: list[type[ApiError]] = []
    for sub in cls.__subclasses__():
        out += [sub, *_subclasses(sub)]
    return out


def codes() -> frozenset[str]:
    """Every `error.code` the API can return (tests hold the template and README to it)."""
    return frozenset({ApiError.code} | {c.code for c in _subclasses(ApiError)})
