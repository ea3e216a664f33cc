"""Configuration, read once from the environment into a typed object.

Every function gets the same variables (template.yaml `Globals`), so one
`Config` describes the whole deployment.  Logic never reads `os.environ`:
it calls `config()`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache

# Speech price table: USD micro-dollars per 1,000 characters, by MiniMax tier.
# Overridable per deployment with SPEECH_PRICE_HD_PER_1K / _TURBO_PER_1K.
DEFAULT_SPEECH_PRICE_HD_MICROS_PER_1K = 100_000      # $0.10 / 1k chars
DEFAULT_SPEECH_PRICE_TURBO_MICROS_PER_1K = 60_000    # $0.06 / 1k chars
DEFAULT_VOICE_CLONE_PRICE_MICROS = 2_100_000         # $2.10 flat
DEFAULT_VOICE_DESIGN_PRICE_MICROS = 4_200_000        # $4.20 flat


@dataclass(frozen=True)
class Config:
    stage: str
    accounts_table: str
    api_keys_table: str
    voices_table: str
    ledger_table: str
    idempotency_table: str
    uploads_table: str
    rate_counters_table: str
    usage_table: str
    jobs_table: str
    jobs_queue_url: str
    jobs_bucket: str
    uploads_bucket: str
    audio_bucket: str
    # Upstream.  An empty parameter name means "no MiniMax key configured":
    # the sandbox provider answers instead (local stack only).
    minimax_base_url: str
    minimax_api_key_parameter: str
    minimax_connect_timeout: float
    minimax_read_timeout: float
    # Local stack only: the key itself, never stored in the embedded AWS (a developer's real key
    # or the sandbox's).  Empty in AWS, where the key comes from SSM.
    minimax_api_key_local: str
    # What X-Kyma-Provider says: "minimax", or "sandbox" for the local stand-in.
    provider_name: str
    # Per-account rate limits by endpoint: (per minute, burst per second), DEFAULT_RATE_LIMITS
    # unless RATE_LIMIT_DEFAULTS (JSON {"speech": [60, 10], ...}) says otherwise for this deployment.
    rate_limit_defaults: tuple[tuple[str, int, int], ...]     # (endpoint, per minute, burst)
    # MiniMax's T2A quota for the whole platform, per minute (template parameter UpstreamSpeechRpm):
    # the shared upstream budget (kyma.accounts.upstream) and the per-account speech default.
    upstream_speech_rpm: int
    # Prices (integer micro-dollars).
    voice_clone_price_micros: int
    voice_design_price_micros: int
    speech_price_hd_micros_per_1k: int
    speech_price_turbo_micros_per_1k: int
    # How long a hold may stay open before the reconciler releases it.
    hold_timeout_seconds: int
    # Voices activating longer than this page the operator (metric VoicesActivatingOverOneDay).
    voice_activation_alarm_seconds: int
    # The sweep leaves voices younger than this to the stream, and calls MiniMax at most once
    # per pace (its T2A quota is shared with customers).
    voice_sweep_min_age_seconds: int
    voice_sweep_pace_seconds: float
    # API Gateway's integration timeout; handlers finish (and release) before it.
    api_timeout_seconds: float
    # The same for a streamed (RESPONSE_STREAM) route: its TimeoutInMillis / 1000, up to 900.
    stream_api_timeout_seconds: float
    # How long a streamed response may send nothing before API Gateway closes it (5 min
    # regional, 30 s edge-optimized): a whole file must be ready within it.
    stream_idle_timeout_seconds: float
    # How long a request waits for an in-flight twin with the same Idempotency-Key.
    idempotency_wait_seconds: float
    idempotency_ttl_seconds: int
    # Long-form speech jobs (kyma.jobs): the longest part one MiniMax async task gets, how many
    # jobs one account may have queued or running, how long a job may take before it fails
    # (its hold lives JOB_HOLD_GRACE_SECONDS longer), how many async tasks may run upstream at
    # once for our MiniMax account (kyma.jobs.slots), and the worker's pacing.
    job_part_max_chars: int
    job_max_active: int
    job_deadline_seconds: int
    job_upstream_slots: int
    job_poll_seconds: int
    job_slot_retry_seconds: int
    job_stuck_seconds: int
    job_output_url_seconds: int
    # Webhooks (kyma.webhooks): endpoints and attempts, the outbox of events (its stream feeds the
    # dispatcher), the delivery queue, the KMS key the signing secrets are encrypted with.
    webhooks_table: str = ""
    webhook_events_table: str = ""
    webhook_queue_url: str = ""
    webhook_secrets_key: str = ""
    # Local stack only (never set by template.yaml): http:// to loopback is allowed, so tests receive.
    webhooks_allow_loopback: bool = False
    # Seconds before each retry (the contract's schedule: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h).
    webhook_retry_delays: tuple[int, ...] = (5, 300, 1800, 7200, 18000, 36000, 36000)
    webhook_timeout_seconds: float = 10.0
    # An endpoint failing every attempt for this long is disabled (5 days).
    webhook_disable_after_seconds: int = 432_000

    @property
    def provider(self) -> str:
        return "minimax" if self.minimax_api_key_parameter else "sandbox"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Config:
        def num(name: str, default: float) -> float:
            return float(env.get(name) or default)

        def integer(name: str, default: int) -> int:
            return int(env.get(name) or default)

        upstream_rpm = max(1, integer("UPSTREAM_SPEECH_RPM", DEFAULT_UPSTREAM_SPEECH_RPM))
        return cls(
            stage=env.get("STAGE", "dev"),
            accounts_table=env.get("ACCOUNTS_TABLE", ""),
            api_keys_table=env.get("API_KEYS_TABLE", ""),
            voices_table=env.get("VOICES_TABLE", ""),
            ledger_table=env.get("LEDGER_TABLE", ""),
            idempotency_table=env.get("IDEMPOTENCY_TABLE", ""),
            uploads_table=env.get("UPLOADS_TABLE", ""),
            rate_counters_table=env.get("RATE_COUNTERS_TABLE", ""),
            usage_table=env.get("USAGE_TABLE", ""),
            jobs_table=env.get("JOBS_TABLE", ""),
            jobs_queue_url=env.get("JOBS_QUEUE_URL", ""),
            jobs_bucket=env.get("JOBS_BUCKET", ""),
            uploads_bucket=env.get("UPLOADS_BUCKET", ""),
            audio_bucket=env.get("AUDIO_BUCKET", ""),
            minimax_base_url=env.get("MINIMAX_BASE_URL", "https://api.minimax.io").rstrip("/"),
            minimax_api_key_parameter=env.get("MINIMAX_API_KEY_PARAMETER", ""),
            minimax_connect_timeout=num("MINIMAX_CONNECT_TIMEOUT", 3.05),
            minimax_read_timeout=num("MINIMAX_READ_TIMEOUT", 120.0),   # capped by each request's deadline
            minimax_api_key_local=env.get("KYMA_LOCAL_MINIMAX_API_KEY", ""),
            provider_name=env.get("KYMA_PROVIDER_NAME", "minimax"),
            rate_limit_defaults=_limits(env.get("RATE_LIMIT_DEFAULTS", ""), upstream_rpm),
            upstream_speech_rpm=upstream_rpm,
            voice_clone_price_micros=integer("VOICE_CLONE_PRICE_MICROS", DEFAULT_VOICE_CLONE_PRICE_MICROS),
            voice_design_price_micros=integer("VOICE_DESIGN_PRICE_MICROS", DEFAULT_VOICE_DESIGN_PRICE_MICROS),
            speech_price_hd_micros_per_1k=integer("SPEECH_PRICE_HD_PER_1K_MICROS",
                                                  DEFAULT_SPEECH_PRICE_HD_MICROS_PER_1K),
            speech_price_turbo_micros_per_1k=integer("SPEECH_PRICE_TURBO_PER_1K_MICROS",
                                                     DEFAULT_SPEECH_PRICE_TURBO_MICROS_PER_1K),
            hold_timeout_seconds=integer("HOLD_TIMEOUT_SECONDS", 300),
            voice_activation_alarm_seconds=integer("VOICE_ACTIVATION_ALARM_SECONDS", 86_400),
            voice_sweep_min_age_seconds=integer("VOICE_SWEEP_MIN_AGE_SECONDS", 300),
            voice_sweep_pace_seconds=num("VOICE_SWEEP_PACE_SECONDS", 1.0),
            api_timeout_seconds=num("API_TIMEOUT_SECONDS", 29.0),
            stream_api_timeout_seconds=num("STREAM_API_TIMEOUT_SECONDS", 900.0),
            stream_idle_timeout_seconds=num("STREAM_IDLE_TIMEOUT_SECONDS", 300.0),
            idempotency_wait_seconds=num("IDEMPOTENCY_WAIT_SECONDS", 8.0),
            idempotency_ttl_seconds=integer("IDEMPOTENCY_TTL_SECONDS", 86_400),
            job_part_max_chars=integer("JOB_PART_MAX_CHARS", 50_000),
            job_max_active=integer("JOB_MAX_ACTIVE", 3),
            job_deadline_seconds=integer("JOB_DEADLINE_SECONDS", 21_600),
            job_upstream_slots=integer("JOB_UPSTREAM_SLOTS", 4),
            job_poll_seconds=integer("JOB_POLL_SECONDS", 15),
            job_slot_retry_seconds=integer("JOB_SLOT_RETRY_SECONDS", 10),
            job_stuck_seconds=integer("JOB_STUCK_SECONDS", 900),
            job_output_url_seconds=integer("JOB_OUTPUT_URL_SECONDS", 3600),
            webhooks_table=env.get("WEBHOOKS_TABLE", ""),
            webhook_events_table=env.get("WEBHOOK_EVENTS_TABLE", ""),
            webhook_queue_url=env.get("WEBHOOK_QUEUE_URL", ""),
            webhook_secrets_key=env.get("WEBHOOK_SECRETS_KEY", ""),
            webhooks_allow_loopback=env.get("WEBHOOKS_ALLOW_LOOPBACK", "").lower() == "true",
            webhook_retry_delays=tuple(int(s) for s in (env.get("WEBHOOK_RETRY_DELAYS") or
                                                        "5,300,1800,7200,18000,36000,36000").split(",")),
            webhook_timeout_seconds=num("WEBHOOK_TIMEOUT_SECONDS", 10.0),
            webhook_disable_after_seconds=integer("WEBHOOK_DISABLE_AFTER_SECONDS", 432_000),
        )


# MiniMax's international T2A quota: 60 calls a minute per MiniMax account, i.e. for the platform.
DEFAULT_UPSTREAM_SPEECH_RPM = 60


def speech_default_limit(upstream_rpm: int) -> tuple[int, int]:
    """The per-account speech default (per minute, burst per second) for an upstream quota: the
    open part of the shared budget less batch work's share (kyma.accounts.upstream.Budget:
    Q - Q/3 - Q/6, 30 of MiniMax's 60), so an account alone within its own limit is never refused
    by the shared quota, even while activations and job parts take their share."""
    return upstream_rpm - upstream_rpm // 3 - max(1, upstream_rpm // 6), 10


# Per-account rate limits by endpoint: (requests per minute, burst per second).  Here, not in
# kyma.accounts.rate_limits, so that configuration depends on nothing above it.  Speech follows
# the upstream quota (speech_default_limit); this is its value for MiniMax's 60.
DEFAULT_RATE_LIMITS: dict[str, tuple[int, int]] = {
    "speech": speech_default_limit(DEFAULT_UPSTREAM_SPEECH_RPM),
    "speech-jobs": (10, 3),        # POST /v1/audio/speech/jobs
    "jobs": (120, 20),             # GET / DELETE /v1/audio/speech/jobs[/{job_id}]
    "voice-clone": (10, 3),
    "voice-design": (5, 2),        # a quarter of MiniMax's 20 designs a minute for the whole platform
    "uploads": (30, 5),
    "voices": (120, 20),
    "account": (120, 20),          # balance, ledger, usage
}


def _limits(text: str, upstream_rpm: int = DEFAULT_UPSTREAM_SPEECH_RPM) -> tuple[tuple[str, int, int], ...]:
    overrides = json.loads(text) if text else {}
    merged = {**DEFAULT_RATE_LIMITS, "speech": speech_default_limit(upstream_rpm),
              **{k: (int(v[0]), int(v[1])) for k, v in overrides.items()}}
    return tuple((endpoint, rpm, burst) for endpoint, (rpm, burst) in sorted(merged.items()))


@lru_cache(maxsize=1)
def config() -> Config:
    """The process's configuration (read once; tests call `config.cache_clear()`)."""
    return Config.from_env(os.environ)
