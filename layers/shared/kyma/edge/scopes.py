"""Which scope each route needs, and the check every route makes (403 permission_denied).

A key carries scopes (shared/reference/keys-and-limits.md); the authorizer passes them in its
context as a comma-separated `scopes` (absent: a key from before scopes, or the account's first key,
which may do everything).  `api_handler` and the WebApp check them before any route runs, so a
call outside its key's scopes is refused before it reads its body, and is never charged.  For paid
calls the reserve's key check (kyma.accounts.gate) confirms the scope on the key itself, so a
scope removed a moment ago stops paid work at once, whatever the authorizer cache still holds.
"""

from __future__ import annotations

from collections.abc import Mapping

from kyma.edge.errors import PermissionDenied

SPEECH, VOICES_WRITE, VOICES_READ, ACCOUNT_READ, WEBHOOKS, KEYS = (
    "speech", "voices:write", "voices:read", "account:read", "webhooks", "keys")
ALL_SCOPES = (SPEECH, VOICES_WRITE, VOICES_READ, ACCOUNT_READ, WEBHOOKS, KEYS)
DEFAULT_SCOPES = tuple(s for s in ALL_SCOPES if s != KEYS)       # a new key given no scopes

# (method, resource) → the scope it needs.  A route missing here needs no scope (no authorizer).
ROUTE_SCOPES: Mapping[tuple[str, str], str] = {
    ("POST", "/v1/audio/speech"): SPEECH,
    ("POST", "/v1/audio/speech/with-timestamps"): SPEECH,
    ("POST", "/v1/audio/speech/jobs"): SPEECH,
    ("GET", "/v1/audio/speech/jobs"): SPEECH,
    ("GET", "/v1/audio/speech/jobs/{job_id}"): SPEECH,
    ("DELETE", "/v1/audio/speech/jobs/{job_id}"): SPEECH,
    ("POST", "/v1/audio/voice-clone"): VOICES_WRITE,
    ("POST", "/v1/audio/voice-clone/uploads"): VOICES_WRITE,
    ("POST", "/v1/audio/voice-design"): VOICES_WRITE,
    ("DELETE", "/v1/audio/voices/{voice_id}"): VOICES_WRITE,
    ("GET", "/v1/audio/voices"): VOICES_READ,
    ("GET", "/v1/audio/voices/{voice_id}"): VOICES_READ,
    ("GET", "/v1/credits/balance"): ACCOUNT_READ,
    ("GET", "/v1/credits/ledger"): ACCOUNT_READ,
    ("GET", "/v1/usage"): ACCOUNT_READ,
    ("GET", "/v1/limits"): ACCOUNT_READ,
    ("POST", "/v1/keys"): KEYS,
    ("GET", "/v1/keys"): KEYS,
    ("PATCH", "/v1/keys/{key_id}"): KEYS,
    ("DELETE", "/v1/keys/{key_id}"): KEYS,
    ("POST", "/v1/webhooks"): WEBHOOKS,
    ("GET", "/v1/webhooks"): WEBHOOKS,
    ("GET", "/v1/webhooks/{webhook_id}"): WEBHOOKS,
    ("DELETE", "/v1/webhooks/{webhook_id}"): WEBHOOKS,
    ("POST", "/v1/webhooks/{webhook_id}/rotate-secret"): WEBHOOKS,
    ("GET", "/v1/webhooks/{webhook_id}/deliveries"): WEBHOOKS,
    ("POST", "/v1/webhooks/{webhook_id}/test"): WEBHOOKS,
}


def scopes_of(authorizer: Mapping) -> tuple[str, ...]:
    """The caller's scopes from the authorizer's context (absent: every scope)."""
    raw = authorizer.get("scopes")
    if not isinstance(raw, str) or not raw:
        return ALL_SCOPES
    return tuple(s for s in raw.split(",") if s)


def require(method: str, resource: str, authorizer: Mapping) -> None:
    """403 permission_denied if the route needs a scope the caller's key does not hold."""
    needed = ROUTE_SCOPES.get((method, resource))
    if needed is None or not authorizer.get("account_id"):
        return
    if needed not in scopes_of(authorizer):
        raise PermissionDenied(f"This API key does not have the '{needed}' scope that {method} {resource} needs.")
