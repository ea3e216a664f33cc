"""What a function's INIT builds once: configuration, AWS clients and the domain services on them.

Every app.py calls `services()` at import time (the Lambda INIT phase) and passes
the pieces its routes need to the domain functions, so that no route builds a
client and tests can swap any piece.  S3 clients are created on first use: most
requests never touch S3 (cold start, bench/results.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from kyma.accounts.upstream import UpstreamBudget
from kyma.billing.accounting import Books
from kyma.billing.idempotency import Idempotency
from kyma.billing.ledger import Ledger
from kyma.billing.paid_call import PaidCalls
from kyma.jobs.store import Jobs
from kyma.platform.aws import bounded_s3, client, dynamodb, s3, sqs
from kyma.platform.config import Config, config
from kyma.speech.audio_store import AudioStore
from kyma.voices.lifecycle import Lifecycle
from kyma.voices.previews import Previews
from kyma.voices.store import Voices
from kyma.voices.uploads import Uploads
from kyma.webhooks.delivery import Deliverer, Dispatcher
from kyma.webhooks.endpoints import Endpoints


@dataclass(frozen=True)
class Services:
    cfg: Config
    ledger: Ledger
    books: Books
    paid: PaidCalls
    idempotency: Idempotency
    uploads: Uploads
    audio: AudioStore
    voices: Voices
    lifecycle: Lifecycle
    previews: Previews
    upstream: UpstreamBudget        # MiniMax's quota, for upstream work outside a reserve
    jobs: Jobs


def services() -> Services:
    """The process's services, for the process's configuration (tests change it: `config.cache_clear()`)."""
    return _services(config())


@lru_cache(maxsize=4)
def _services(cfg: Config) -> Services:
    ddb = dynamodb()
    ledger, books, voices = Ledger(ddb, cfg), Books(ddb, cfg), Voices(ddb, cfg)
    upstream = UpstreamBudget(ddb, cfg)
    return Services(cfg=cfg, ledger=ledger, books=books, paid=PaidCalls(ledger, books),
                    idempotency=Idempotency(ddb, cfg), uploads=Uploads(ddb, s3, cfg),
                    audio=AudioStore(s3, cfg.audio_bucket), voices=voices,
                    lifecycle=Lifecycle(voices, ledger, cfg, upstream),
                    previews=Previews(s3, cfg.audio_bucket, bounded_s3), upstream=upstream,
                    jobs=Jobs(ddb, s3, sqs, cfg))


@dataclass(frozen=True)
class WebhookServices:
    endpoints: Endpoints
    dispatcher: Dispatcher
    deliverer: Deliverer


def webhook_services() -> WebhookServices:
    """What the webhook functions build (only they need KMS and SQS clients)."""
    return _webhook_services(config())


@lru_cache(maxsize=4)
def _webhook_services(cfg: Config) -> WebhookServices:
    endpoints = Endpoints(dynamodb(), client("kms"), cfg)
    queue = client("sqs")
    return WebhookServices(endpoints=endpoints, dispatcher=Dispatcher(endpoints, queue, cfg),
                           deliverer=Deliverer(endpoints, queue, cfg))
