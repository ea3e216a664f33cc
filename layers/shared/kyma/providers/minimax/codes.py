"""What MiniMax's answers mean: its error table, classified into `kyma.edge.errors`.

MiniMax answers most errors with HTTP 200 and a non-zero
``base_resp.status_code``, so every JSON answer is checked at four levels
(`check_answer`): HTTP status, JSON, ``base_resp`` and -- by the caller -- the
fields it needs.  Every ``base_resp.status_code`` of MiniMax's error table maps
to one `kyma.edge.errors.UpstreamError` class (`classify`):

=================================================  ==========================================
1026, 1027, 1042 (the text)                        `ContentRejected` (400)
1043, 1044, 2037, 2048 (the reference clip)        `ReferenceRejected` (400)
2013 (a parameter value)                           `UpstreamInvalidRequest` (400); a bug
                                                   (`ProviderError`) where no customer value
                                                   was sent (voice_clone, get_voice,
                                                   delete_voice)
1004, 1008, 2038, 2042, 2049, 2056 (our account)   `ProviderAccountProblem` (503, alarms)
20132 (the voice does not exist upstream)          `UpstreamVoiceMissing` (404)
1000, 1001, 1013, 1024, 1033                       retried, then `ProviderError` (502)
1002, 1039, 1041, 2045 (rate, capacity)            retried, then `ProviderUnavailable` (503)
                                                   with ``Retry-After``
anything else (2039 included)                      `ProviderError` (502)
=================================================  ==========================================

A failed attempt is a `Failure` until it is given up on; `Failure.error()` is
the exception the caller then gets.  MiniMax's ``status_msg`` is `scrub`bed of
our key before it goes anywhere.
"""

from __future__ import annotations

import json
from typing import Any

from kyma.edge import errors

STEP_UPLOAD = "file upload"
STEP_CLONE = "voice clone"
STEP_DESIGN = "voice design"
STEP_SYNTHESIS = "speech synthesis"
STEP_STREAM = "streamed speech synthesis"
STEP_SUBTITLES = "speech subtitles"
STEP_VOICES = "voice listing"
STEP_DELETE = "voice deletion"
STEP_TASK_CREATE = "async speech task creation"
STEP_TASK_QUERY = "async speech task query"
STEP_FILE_RETRIEVE = "file retrieval"
STEP_FILE_DOWNLOAD = "file download"

# MiniMax's error table (minimax-upstream.md §6), by what the answer means here.
CONTENT_REJECTED_CODES = frozenset({1026, 1027, 1042})
REFERENCE_REJECTED_CODES = frozenset({1043, 1044, 2037, 2048})
INVALID_PARAMETER_CODES = frozenset({2013})
OPERATOR_CODES = frozenset({1004, 1008, 2038, 2042, 2049, 2056})
VOICE_MISSING_CODES = frozenset({20132})
RETRYABLE_CODES = frozenset({1000, 1001, 1002, 1013, 1024, 1033, 1039, 1041, 2045})
CAPACITY_CODES = frozenset({1002, 1039, 1041, 2045})     # rate, token, connection, growth limits
DUPLICATE_VOICE_ID = 2039
# Retry-After (seconds) sent to our client when MiniMax stays rate-limited after our retries.
RETRY_AFTER_SECONDS = 5

OPERATOR_MESSAGE = ("the voice service is unavailable because of a problem on our side, not with your "
                    "request; nothing was charged and our operators have been alerted")


class Failure(Exception):
    """One failed attempt, classified; `error()` is what the caller gets if it is the last."""

    def __init__(self, step: str, detail: str, *, kind: type[errors.UpstreamError] = errors.ProviderError,
                 message: str | None = None, trace_id: str | None = None, provider_code: int | None = None,
                 http_status: int | None = None, retryable: bool = True, retry_here: bool = False,
                 operator: bool = False, capacity: bool = False) -> None:
        super().__init__(detail)
        self.step = step
        self.detail = detail
        self.kind = kind
        self.message = message or f"MiniMax {step} failed: {detail}"
        self.trace_id = trace_id
        self.provider_code = provider_code
        self.http_status = http_status
        self.retryable = retryable          # may our caller try again later?
        self.retry_here = retry_here        # is it worth retrying within this call?
        self.operator = operator
        self.capacity = capacity

    def error(self) -> errors.UpstreamError:
        headers = {"Retry-After": str(RETRY_AFTER_SECONDS)} if self.capacity else None
        return self.kind(self.message, trace_id=self.trace_id, provider_code=self.provider_code,
                         retryable=self.retryable, headers=headers)


def classify(step: str, code: int, status_msg: str, *, trace_id: str | None = None,
             http_status: int | None = None, customer_values: bool = True) -> Failure:
    """The meaning of a non-zero ``base_resp.status_code`` (see the module docstring)."""
    detail = f"{status_msg} ({code})"
    common: dict[str, Any] = {"trace_id": trace_id, "provider_code": code, "http_status": http_status}
    if code in OPERATOR_CODES:
        return Failure(step, detail, kind=errors.ProviderAccountProblem,
                       message=f"MiniMax {step} failed: {OPERATOR_MESSAGE}", retryable=False,
                       operator=True, **common)
    if code in RETRYABLE_CODES:
        capacity = code in CAPACITY_CODES
        return Failure(step, detail, kind=errors.ProviderUnavailable if capacity else errors.ProviderError,
                       retryable=True, retry_here=True, capacity=capacity, **common)
    if code in CONTENT_REJECTED_CODES:
        return Failure(step, detail, kind=errors.ContentRejected, retryable=False, **common)
    if code in REFERENCE_REJECTED_CODES:
        return Failure(step, detail, kind=errors.ReferenceRejected, retryable=False, **common)
    if code in INVALID_PARAMETER_CODES and customer_values:
        return Failure(step, detail, kind=errors.UpstreamInvalidRequest, retryable=False, **common)
    if code in VOICE_MISSING_CODES:
        return Failure(step, detail, kind=errors.UpstreamVoiceMissing, retryable=False, **common)
    return Failure(step, detail, kind=errors.ProviderError, retryable=False, **common)


def status_code(answer: Any) -> int | None:
    """``base_resp.status_code`` of a parsed answer (or event), if it has one."""
    base_resp = answer.get("base_resp") if isinstance(answer, dict) else None
    code = base_resp.get("status_code") if isinstance(base_resp, dict) else None
    return code if isinstance(code, int) and not isinstance(code, bool) else None


def refusal(step: str, code: int, answer: dict, key: str, *, trace_id: str | None, http_status: int | None,
            customer_values: bool = True) -> Failure:
    """`classify` an answer whose ``base_resp.status_code`` is `code` (not 0), its message scrubbed of `key`."""
    return classify(step, code, scrub(answer["base_resp"].get("status_msg"), key) or "unknown error",
                    trace_id=trace_id, http_status=http_status, customer_values=customer_values)


def check_answer(step: str, http_status: int, raw: bytes | bytearray, key: str, *, trace_id: str | None,
                 customer_values: bool = True) -> tuple[dict, str | None]:
    """(body, trace_id) of a successful JSON answer, or raise its classified `Failure`."""
    try:
        body = json.loads(raw)
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("trace_id"), str) and body["trace_id"]:
        trace_id = body["trace_id"]
    code = status_code(body)
    if not 200 <= http_status < 300:
        if isinstance(body, dict) and code is not None and code != 0:
            raise refusal(step, code, body, key, trace_id=trace_id, http_status=http_status,
                          customer_values=customer_values)
        transient = http_status >= 500 or http_status in (408, 429)
        raise Failure(step, f"HTTP {http_status}", trace_id=trace_id, http_status=http_status,
                      retryable=transient, retry_here=transient)
    if not isinstance(body, dict):
        raise Failure(step, "malformed response", trace_id=trace_id, http_status=http_status)
    if code is None:
        raise Failure(step, "response has no base_resp.status_code", trace_id=trace_id, http_status=http_status)
    if code != 0:
        raise refusal(step, code, body, key, trace_id=trace_id, http_status=http_status,
                      customer_values=customer_values)
    return body, trace_id


def timeout(step: str, detail: str, *, trace_id: str | None = None) -> Failure:
    return Failure(step, f"no answer in time ({detail})", message=f"MiniMax did not answer in time during {step}",
                   trace_id=trace_id, retry_here=True)


def cut_off(step: str, detail: str, *, trace_id: str | None = None, http_status: int | None = None) -> Failure:
    """The connection failed (before or during the answer): worth another attempt."""
    return Failure(step, detail, message=f"could not reach MiniMax during {step}", trace_id=trace_id,
                   http_status=http_status, retry_here=True)


def scrub(text: Any, key: str) -> str:
    """MiniMax's status_msg, on one line, without our key and not too long."""
    if not isinstance(text, str):
        return ""
    text = " ".join(text.split())
    if key:
        text = text.replace(key, "[redacted]")
    return text[:200]
