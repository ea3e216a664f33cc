"""Per-method throttling from the stage's MethodSettings (token buckets)."""

from __future__ import annotations

import threading
import time


class TokenBucket:
    def __init__(self, rate: float, burst: int) -> None:
        self.rate, self.burst = rate, burst
        self.tokens, self.updated = float(burst), time.monotonic()
        self.lock = threading.Lock()

    def take(self) -> bool:
        with self.lock:
            now = time.monotonic()
            self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
            self.updated = now
            if self.tokens >= 1:
                self.tokens -= 1
                return True
            return False


def resource_path(encoded: str) -> str:
    """A MethodSetting's ResourcePath as the resource it names.  CloudFormation encodes the
    path after its leading slash with ~1 for "/" (and ~0 for "~"): "/~1v1~1audio~1speech" is
    /v1/audio/speech; "/" is the root and "/*" every resource."""
    rest = encoded[1:] if encoded.startswith("/") else encoded
    if rest in ("", "*"):
        return "/" + rest
    return rest.replace("~1", "/").replace("~0", "~")


def buckets_from(settings: list[dict]) -> dict[tuple[str, str], TokenBucket]:
    out = {}
    for s in settings:
        if "ThrottlingRateLimit" in s:
            key = (resource_path(s["ResourcePath"]), s["HttpMethod"])
            out[key] = TokenBucket(float(s["ThrottlingRateLimit"]), int(s.get("ThrottlingBurstLimit", 1)))
    return out


def bucket_for(buckets: dict[tuple[str, str], TokenBucket], resource: str, method: str) -> TokenBucket | None:
    return (buckets.get((resource, method)) or buckets.get((resource, "*"))
            or buckets.get(("/*", "*")))
