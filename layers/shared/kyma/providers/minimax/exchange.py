"""Talking to MiniMax: one HTTP exchange within a deadline, retried with jittered backoff.

`Exchange` owns the session, the API key lookup, the timeouts and the retry
policy of one `MiniMaxClient`.  Every call is bounded by the caller's
``deadline`` (a ``time.monotonic()`` instant): socket timeouts are capped by the
time left, and reading the answer aborts when the deadline passes (sending
aborts too, from `kyma.providers.minimax.upload`'s monitor, with `DeadlinePassed`).

Connection errors, timeouts, HTTP 5xx/408/429 and MiniMax's transient codes are
retried (`RetryPolicy`: jittered exponential backoff), never outliving the
deadline: a retry is only made if it can start at least `MIN_TIME_LEFT` seconds
before it.  Every failed attempt is logged (WARNING, structured, on
``kyma.providers.minimax``) with MiniMax's ``trace_id``, the code, the attempt
number and whether it will be retried.

Secrets: the key is fetched per attempt from a callable (the caller caches it)
and sent only in the ``Authorization`` header.  Errors are raised ``from None``
so that the `requests` exception -- whose ``.request`` holds the headers -- is
not chained into tracebacks.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import requests

from kyma.edge import errors
from kyma.providers.minimax.codes import (
    DUPLICATE_VOICE_ID,
    OPERATOR_MESSAGE,
    Failure,
    check_answer,
    cut_off,
    timeout,
)

# A child of the Powertools logger "kyma" (kyma.platform.observability): its JSON, its level.
logger = logging.getLogger("kyma.providers.minimax")

# Below this much time before the deadline a call (or a retry) is not started at all.
MIN_TIME_LEFT = 0.5
# Safety net against a runaway response (hex doubles the audio size).
MAX_RESPONSE_BYTES = 256 * 1024 * 1024
READ_BYTES = 256 * 1024


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a failed call is retried (always within its deadline).

    The n-th retry waits between half and all of ``min(max_delay, base_delay * 2**(n-1))``
    seconds ("equal jitter"): growing, never synchronised across Lambda instances.
    """

    attempts: int = 3
    base_delay: float = 0.25
    max_delay: float = 2.0

    def delay(self, retry: int, rng: random.Random) -> float:
        ceiling = min(self.max_delay, self.base_delay * 2 ** (retry - 1))
        return ceiling / 2 + rng.uniform(0, ceiling / 2)


NO_RETRY = RetryPolicy(attempts=1)


class DeadlinePassed(Exception):
    """Raised from inside the upload stream (or a read) when the deadline passes."""


class _TooLarge(Exception):
    """The answer exceeded MAX_RESPONSE_BYTES."""


@dataclass(eq=False, repr=False)
class Exchange:
    """Where MiniMax is, how to reach it and how hard to try; `name` is the provider's, for logs."""

    base_url: str
    api_key: Callable[[], str]
    name: str
    connect_timeout: float
    read_timeout: float
    session: requests.Session
    retry: RetryPolicy
    rng: random.Random

    def post(self, step: str, path: str, deadline: float, make: Callable[[], dict[str, Any]], *,
             customer_values: bool = True, duplicate_means_done: bool = False,
             quiet_codes: frozenset[int] = frozenset(), method: str = "POST",
             retry_unanswered: bool = True) -> tuple[dict, str | None]:
        """POST (or `method`, with retries) and return (parsed body, trace_id) of a successful answer.
        `make()` builds the request's keyword arguments afresh for every attempt.
        `retry_unanswered=False`: a call that may have been applied without its answer reaching us
        (a timeout, a dropped connection, an HTTP error without MiniMax's envelope) is not retried
        (creating an async task twice would render it twice); MiniMax's own refusals still are."""

        def attempt(key: str) -> tuple[dict, str | None]:
            try:
                response = self.send(step, path, deadline, key, method=method, **make())
                return self.read_json(step, response, deadline, key, customer_values=customer_values)
            except Failure as failure:
                if not retry_unanswered and failure.provider_code is None:
                    failure.retry_here = False
                raise

        result = self.with_retries(step, deadline, attempt, duplicate_means_done=duplicate_means_done,
                                   quiet_codes=quiet_codes)
        return result if result is not None else ({}, None)

    def with_retries(self, step: str, deadline: float, attempt: Callable[[str], Any], *,
                     duplicate_means_done: bool = False, quiet_codes: frozenset[int] = frozenset()) -> Any:
        """Run `attempt(key)` until it succeeds, fails for good, or the deadline is near.

        With `duplicate_means_done`, a retry answered 2039 (duplicate id) means an earlier
        attempt did register the id and only its answer was lost: success (None).

        A loop of our own rather than urllib3's `Retry` or tenacity: whether to retry is decided
        by MiniMax's code inside a 200 answer's ``base_resp`` (which `Retry` never sees), a retry
        must not start unless it fits before the caller's deadline (MIN_TIME_LEFT), the key is
        looked up again per attempt, and 2039 on a retry is a success; what is left is this loop."""
        tries = 0
        while True:
            tries += 1
            try:
                if deadline - time.monotonic() < MIN_TIME_LEFT:
                    raise Failure(step, "not attempted, too little time left before the deadline",
                                  message=f"MiniMax {step} not attempted: too little time left")
                return attempt(self.key(step))
            except Failure as failure:
                if duplicate_means_done and tries > 1 and failure.provider_code == DUPLICATE_VOICE_ID:
                    logger.info("MiniMax %s: duplicate id on attempt %d, an earlier attempt succeeded",
                                step, tries, extra={"provider": self.name, "step": step,
                                                    "trace_id": failure.trace_id, "attempt": tries})
                    return None
                pause = self._pause_before_retry(failure, tries, deadline)
                self.log(failure, tries, will_retry=pause is not None,
                         level=logging.INFO if failure.provider_code in quiet_codes else logging.WARNING)
                if pause is None:
                    raise failure.error() from None
                time.sleep(pause)

    def _pause_before_retry(self, failure: Failure, tries: int, deadline: float) -> float | None:
        if not failure.retry_here or tries >= self.retry.attempts:
            return None
        pause = self.retry.delay(tries, self.rng)
        if deadline - time.monotonic() - pause < MIN_TIME_LEFT:
            return None
        return pause

    def send(self, step: str, path: str, deadline: float, key: str, *, method: str = "POST",
             headers: dict[str, str] | None = None, **kwargs: Any) -> requests.Response:
        """Send one request; the answer's body is left unread (``stream=True``)."""
        remaining = deadline - time.monotonic()
        send_headers = {"Authorization": f"Bearer {key}", "Accept": "application/json"}
        if headers:
            send_headers.update(headers)
        timeouts = (min(self.connect_timeout, remaining), min(self.read_timeout, remaining))
        try:
            return self.session.request(method, self.base_url + path, headers=send_headers, timeout=timeouts,
                                        stream=True, **kwargs)
        except DeadlinePassed:
            raise timeout(step, "deadline passed while sending") from None
        except requests.Timeout as exc:
            raise timeout(step, type(exc).__name__) from None
        except requests.RequestException as exc:
            if looks_like_timeout(exc, deadline):
                raise timeout(step, type(exc).__name__) from None
            raise cut_off(step, f"could not reach MiniMax ({type(exc).__name__})") from None

    def read_json(self, step: str, response: requests.Response, deadline: float, key: str, *,
                  customer_values: bool = True) -> tuple[dict, str | None]:
        """Read, close and check one JSON answer; (body, trace_id) if it is a success."""
        try:
            header_trace = response.headers.get("Trace-Id") or None
            http_status = response.status_code
            try:
                raw = _read_body(response, deadline)
            except DeadlinePassed:
                raise timeout(step, "deadline passed while reading the answer", trace_id=header_trace) from None
            except _TooLarge:
                raise Failure(step, "answer too large", trace_id=header_trace, http_status=http_status,
                              retryable=False) from None
            except requests.RequestException as exc:
                if looks_like_timeout(exc, deadline):
                    raise timeout(step, type(exc).__name__, trace_id=header_trace) from None
                raise cut_off(step, f"answer cut off ({type(exc).__name__})", trace_id=header_trace,
                              http_status=http_status) from None
        finally:
            response.close()

        body, trace_id = check_answer(step, http_status, raw, key, trace_id=header_trace,
                                      customer_values=customer_values)
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("MiniMax %s succeeded", step, extra={
                "provider": self.name, "step": step, "trace_id": trace_id, "http_status": http_status})
        return body, trace_id

    def key(self, step: str) -> str:
        try:
            key = self.api_key()
        except Exception as exc:  # the secret lookup failed (e.g. SSM unavailable)
            raise Failure(step, f"API key lookup failed ({type(exc).__name__})",
                          message=f"MiniMax {step} failed: {OPERATOR_MESSAGE}", retry_here=True) from None
        if not isinstance(key, str) or not key.strip():
            raise Failure(step, "API key is empty", kind=errors.ProviderAccountProblem,
                          message=f"MiniMax {step} failed: {OPERATOR_MESSAGE}", retryable=False,
                          operator=True)
        return key.strip()

    def log(self, failure: Failure, attempt: int, *, will_retry: bool, level: int = logging.WARNING) -> None:
        logger.log(level, "MiniMax %s failed: %s%s", failure.step, failure.detail,
                   " (will retry)" if will_retry else "", extra={
                           "provider": self.name,
                           "step": failure.step,
                           "provider_code": failure.provider_code,
                           "trace_id": failure.trace_id,
                           "http_status": failure.http_status,
                           "retryable": failure.retryable,
                           "operator_problem": failure.operator,
                           "attempt": attempt,
                           "will_retry": will_retry,
                           "error_class": failure.kind.__name__,
                       })

    def give_up(self, failure: Failure, attempt: int = 1) -> errors.UpstreamError:
        """Log a failure that is not retried and build the exception to raise."""
        self.log(failure, attempt, will_retry=False)
        return failure.error()


def _read_body(response: requests.Response, deadline: float) -> bytearray:
    raw = bytearray()
    for chunk in response.iter_content(READ_BYTES):
        raw += chunk
        if len(raw) > MAX_RESPONSE_BYTES:
            raise _TooLarge()
        if time.monotonic() > deadline:
            raise DeadlinePassed()
    return raw


def looks_like_timeout(exc: BaseException, deadline: float) -> bool:
    """`requests` reports a read timeout while streaming as ConnectionError."""
    if isinstance(exc, requests.Timeout):
        return True
    for arg in getattr(exc, "args", ()):
        if "timeout" in type(arg).__name__.lower() or "timed out" in str(arg).lower():
            return True
    return deadline - time.monotonic() <= 0.05
