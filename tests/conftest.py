"""Shared fixtures.

Tiers (STYLE.md): tests/unit (no AWS, no network), tests/integration (real
handlers on real events, moto in-process, the MiniMax sandbox over loopback HTTP),
tests/e2e (the local stack in a subprocess, real HTTP clients).
"""

from __future__ import annotations

import json
import os
import tempfile

import pytest

from kyma_local import aws_calls

RATE_LIMITED_ENDPOINTS = ("speech", "voice-clone", "voice-design", "uploads", "voices", "account", "speech-jobs",
                          "jobs")

# Never reach a real AWS account or a developer's running stack from tests.
os.environ.pop("AWS_ENDPOINT_URL", None)
os.environ.pop("AWS_PROFILE", None)
os.environ.update({
    "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1",
    "POWERTOOLS_SERVICE_NAME": "kyma", "POWERTOOLS_METRICS_NAMESPACE": "Kyma",
    "POWERTOOLS_LOG_LEVEL": "WARNING", "POWERTOOLS_METRICS_DISABLED": "true",
})

# Every AWS call a function makes in this run is recorded, with the function that made it: here
# (installed before any boto3 client exists), and in each local stack a test starts in a
# subprocess, which appends to AWS_CALLS_FILE.  The IAM grant check runs after every other test
# (tests/integration/test_iam_grants.py) and checks them all against the template's policies.
# `make test` runs the suite in parallel workers (pytest-xdist), then the grant check on its own:
# it names both files for the run; each worker appends its in-process calls to the one
# KYMA_TEST_WORKER_CALLS_FILE names when it finishes, and the check reads them (a plain `pytest`
# runs the check last, in-process).
aws_calls.install()
_OWN_CALLS_FILE = aws_calls.CALLS_FILE_ENV not in os.environ
AWS_CALLS_FILE = os.environ.setdefault(aws_calls.CALLS_FILE_ENV,
                                       os.path.join(tempfile.gettempdir(), f"kyma-aws-calls-{os.getpid()}.jsonl"))


def pytest_collection_modifyitems(items):
    """The IAM grant check last: it checks the calls every other test recorded.  The files marked
    `long` first, so that parallel workers (`make test`) do not end on one of them alone."""
    items.sort(key=lambda item: (item.get_closest_marker("aws_grants") is not None,
                                 item.get_closest_marker("long") is None))


def pytest_sessionfinish(session):
    if os.environ.get(aws_calls.WORKER_CALLS_FILE_ENV):
        aws_calls.write_file(os.environ[aws_calls.WORKER_CALLS_FILE_ENV], aws_calls.recorded())


def pytest_unconfigure(config):
    if _OWN_CALLS_FILE and os.path.exists(AWS_CALLS_FILE) and not os.environ.get("PYTEST_XDIST_WORKER"):
        os.remove(AWS_CALLS_FILE)


@pytest.fixture
def aws(monkeypatch):
    """A fresh moto AWS with every table and bucket of template.yaml, and the
    functions' environment pointing at them.  Yields the Template."""
    from moto import mock_aws

    from kyma.platform.config import config
    from kyma_local.aws import apply_local_webhooks, create_resources, serialize_dynamodb
    from kyma_local.template import Template

    serialize_dynamodb()
    template = Template()
    env = template.environment()
    apply_local_webhooks(env, template, allow_loopback=False)   # tests that receive on loopback allow it
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("MINIMAX_API_KEY_PARAMETER", "")
    # Concurrency and money tests send bursts from one account: per-account rate limits are out of
    # their way here, and tested on their own (test_rate_limits.py sets an account's limits low).
    monkeypatch.setenv("RATE_LIMIT_DEFAULTS", json.dumps({e: [100_000, 10_000] for e in RATE_LIMITED_ENDPOINTS}))
    # ... and so is the shared upstream budget (test_upstream_budget.py sets it to MiniMax's 60).
    monkeypatch.setenv("UPSTREAM_SPEECH_RPM", "1000000")
    config.cache_clear()
    with mock_aws():
        create_resources(template)
        yield template
    config.cache_clear()


@pytest.fixture
def configure(monkeypatch):
    """Set function environment variables, then load handlers (config is read once per process)."""
    from kyma.platform.config import config

    def apply(**env):
        for name, value in env.items():
            monkeypatch.setenv(name, str(value))
        config.cache_clear()

    return apply


@pytest.fixture
def cfg(aws):
    from kyma.platform.config import config

    return config()


@pytest.fixture
def ddb(aws):
    from kyma.platform.aws import dynamodb

    return dynamodb()


@pytest.fixture
def ledger(ddb, cfg):
    from kyma.billing.ledger import Ledger

    return Ledger(ddb, cfg)


@pytest.fixture
def books(ddb, cfg):
    from kyma.billing.accounting import Books

    return Books(ddb, cfg)


@pytest.fixture
def accounts(ddb, cfg):
    from kyma.accounts.store import Accounts

    return Accounts(ddb, cfg)


@pytest.fixture
def load_handler(aws):
    """load_handler("AccountFunction") → a freshly imported handler (a cold Lambda environment)
    whose API responses are checked against the published contract (tests/contract.py).
    A Lambda Web Adapter function (SpeechFunction) runs its app in a warm environment, each
    event an HTTP request to it (helpers.lwa_call: the response read as a stream)."""
    import contract
    from helpers import lwa_call

    from kyma_local.runtime import FunctionPool
    from kyma_local.web_adapter import WebAdapterPool

    pools: list[WebAdapterPool] = []

    def load(logical_id: str):
        function = aws.functions[logical_id]
        if function.web_adapter:
            pool = WebAdapterPool(function)
            pools.append(pool)
            handler = lambda event, context: lwa_call(pool, event)  # noqa: E731
        else:
            handler = FunctionPool(function).environment()

        def checked(event, context):
            with aws_calls.invoking(logical_id):   # its AWS calls are this function's
                response = handler(event, context)
            if isinstance(event, dict) and "httpMethod" in event and "statusCode" in (response or {}):
                contract.check(event["httpMethod"], event["resource"], response)
            return response

        checked.routes = getattr(handler, "routes", None)
        return checked

    yield load
    for pool in pools:
        pool.close()


@pytest.fixture
def metrics_seen(monkeypatch):
    """Every EMF metric the code adds while the test runs: name → summed value."""
    from kyma.platform.observability import metrics

    seen: dict[str, float] = {}
    original = metrics.add_metric

    def record(name, unit, value, **kwargs):
        seen[name] = seen.get(name, 0) + value
        return original(name=name, unit=unit, value=value, **kwargs)

    monkeypatch.setattr(metrics, "add_metric", record)
    return seen
