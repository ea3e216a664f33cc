"""Route matching: template resource paths ({param}, {proxy+}) and methods (ANY)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from kyma_local.gateway.limits import DEFAULT_INTEGRATION_TIMEOUT_MS


@dataclass(frozen=True)
class Route:
    resource: str
    method: str
    pool: Any                  # FunctionPool, WebAdapterPool, or a test stand-in with .invoke(event)
    authorized: bool
    pattern: re.Pattern
    specificity: tuple
    streams: bool = False      # ResponseTransferMode: RESPONSE_STREAM
    timeout_ms: int = DEFAULT_INTEGRATION_TIMEOUT_MS


def compile_resource(resource: str) -> tuple[re.Pattern, tuple]:
    parts, literal, greedy = [], 0, 0
    for segment in resource.strip("/").split("/") if resource != "/" else []:
        if segment.startswith("{") and segment.endswith("+}"):
            parts.append(f"(?P<{segment[1:-2]}>.+)")
            greedy += 1
        elif segment.startswith("{"):
            parts.append(f"(?P<{segment[1:-1]}>[^/]+)")
        else:
            parts.append(re.escape(segment))
            literal += 1
    regex = "^/" + "/".join(parts) + "/?$" if parts else "^/$"
    # Prefer: no greedy segment, then more literal segments.
    return re.compile(regex), (-greedy, literal)


def match(routes: list[Route], method: str, path: str) -> tuple[Route | None, dict]:
    """The route API Gateway picks: the most specific resource, then its method before ANY."""
    candidates = []
    for route in routes:
        m = route.pattern.match(path)
        if m:
            candidates.append((route, m.groupdict()))
    if not candidates:
        return None, {}
    best = max(c[0].specificity for c in candidates)
    on_resource = [c for c in candidates if c[0].specificity == best]
    for wanted in (method, "ANY"):
        for route, params in on_resource:
            if route.method == wanted:
                return route, params
    return None, {}
