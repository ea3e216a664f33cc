"""The API Gateway and Lambda quotas the stand-in enforces, and its local identifiers."""

from __future__ import annotations

import json
from typing import Any

MAX_REQUEST_BYTES = 10 * 1024 * 1024          # API Gateway REST payload limit
MAX_INVOKE_PAYLOAD_BYTES = 6 * 1024 * 1024     # Lambda synchronous invocation (event or response)
# REST quota "Total combined size of all header values: 10240 bytes" (HTTP APIs: "request line and
# header values"); the stand-in counts the request line too.
MAX_HEADER_BYTES = 10_240
DEFAULT_INTEGRATION_TIMEOUT_MS = 29_000        # REST integration timeout unless TimeoutInMillis says otherwise
API_ID = "localapi00"
ACCOUNT = "123456789012"
CONTROL_PREFIX = "/__kyma_local/"              # local-only control plane (loopback)


def json_size(value: Any) -> int:
    """Bytes of `value` as compact JSON: how Lambda measures an event or a response."""
    return len(json.dumps(value, separators=(",", ":")).encode("utf-8"))
