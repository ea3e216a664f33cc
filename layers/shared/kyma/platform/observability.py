"""One place for logging and metrics, reused by every function.

- `logger`: Powertools structured JSON logger.  The correlation id is the
  API Gateway request id.  Never log the Authorization header, API keys,
  MiniMax keys or audio bytes: log ids, sizes and outcomes.
- `metrics`: Powertools EMF metrics (namespace from POWERTOOLS_METRICS_NAMESPACE).
- `instrument(handler)`: the decorator stack every API function uses.

X-Ray: the template turns on active tracing, so Lambda records each
invocation segment.  The Powertools Tracer (aws-xray-sdk) is deliberately not
imported: it costs about 0.8x a bare boto3 cold start (bench/results.md).
"""

from __future__ import annotations

import warnings
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

# A request that fails validation emits no metric; that is normal, not worth a warning per call.
warnings.filterwarnings("ignore", message="No application metrics to publish")

# Named after POWERTOOLS_SERVICE_NAME, "kyma" in template.yaml: the layer's stdlib loggers
# (kyma.providers.minimax, kyma.billing.paid_call) are its children and so come out as its JSON
# (tests/unit/test_logging.py fails if the service name and their names part).
logger = Logger(log_uncaught_exceptions=True)
metrics = Metrics()

__all__ = ["MetricUnit", "instrument", "logger", "metrics", "upstream_failure"]


def instrument(handler, *, with_metrics: bool = True):
    """Lambda context in every log line (never the event), then EMF metrics flushed per call."""
    if with_metrics:
        handler = metrics.log_metrics(handler)
    return logger.inject_lambda_context(log_event=False, clear_state=True)(handler)


def upstream_failure(exc: Any, step: str, **context: Any) -> None:
    """Count and log one MiniMax failure (a kyma.edge.errors.UpstreamError) with its trace_id.  Our
    account's problems (bad key, no balance, no permission) also count as ProviderOperatorErrors,
    which pages the operator; the customer only learns that the service is unavailable."""
    metrics.add_metric(name="ProviderErrors", unit=MetricUnit.Count, value=1)
    if exc.operator:
        metrics.add_metric(name="ProviderOperatorErrors", unit=MetricUnit.Count, value=1)
    logger.warning(f"{step} provider failure", extra={
        "provider_code": exc.provider_code, "trace_id": exc.trace_id, "error_code": exc.code,
        "operator_problem": exc.operator, **context})
