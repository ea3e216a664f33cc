"""The shared upstream budget (kyma/accounts/upstream.py): MiniMax's 60 T2A calls a minute for the
whole platform, counted in the reserve transaction.  No account within its own limits can take it
from a quiet one; when it is truly full every refusal is 503 service_unavailable with Retry-After,
never 429, and leaves no hold, no count and no upstream call."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from botocore.exceptions import ClientError
from helpers import START, SYSTEM_VOICE, api_event, context, error_of

MINUTE_START = 1_796_000_040.0          # a UTC minute's first second (1796000040 % 60 == 0)
PRICE = 600                             # micro-dollars: any positive hold


@pytest.fixture
def budget(configure, aws):
    configure(UPSTREAM_SPEECH_RPM=60)
    from kyma.platform.config import config

    return config()


def reserve(ledger, cfg, account_id, *, second=5.0, rate_limit=None):
    """One speech reserve at `second` of the fixed minute, with its share of the upstream budget."""
    from kyma.accounts import upstream
    from kyma.edge import errors

    try:
        ledger.reserve(account_id, PRICE, kind="speech", request_id="r", rate_limit=rate_limit,
                       upstream=upstream.check(cfg, account_id, now=MINUTE_START + second))
    except errors.ApiError as refused:
        return refused
    return None


def test_the_budget_is_derived_from_the_upstream_quota(budget, configure):
    from kyma.accounts.upstream import Budget
    from kyma.platform.config import config

    configure(RATE_LIMIT_DEFAULTS="")                   # the deployment's own defaults, not the tests'

    b = Budget.of(budget)
    assert (b.per_minute, b.open, b.reserve, b.light_below, b.batch_share) == (60, 40, 20, 15, 10)
    assert ("speech", 30, 10) in config().rate_limit_defaults   # one account alone: the open part less batch's


def test_two_busy_accounts_leave_a_quiet_one_served_and_are_refused_with_503(budget, ledger, books, accounts):
    a, b, quiet = (accounts.create(START).account_id for _ in range(3))
    outcomes: dict[str, list] = {a: [], b: [], quiet: []}
    for _ in range(8):                                   # the quiet account's earlier requests this minute
        outcomes[quiet].append(reserve(ledger, budget, quiet))
    for tick in range(40):                               # 8 a second for 5 s each, within their own limits
        for busy in (a, b):
            outcomes[busy].append(reserve(ledger, budget, busy, second=5 + tick / 8))
        if tick % 8 == 4:
            outcomes[quiet].append(reserve(ledger, budget, quiet, second=5 + tick / 8))
    assert outcomes[quiet] == [None] * 13                # never refused
    busy_refused = [r for r in outcomes[a] + outcomes[b] if r is not None]
    assert busy_refused and {(r.status, r.code) for r in busy_refused} == {(503, "service_unavailable")}
    assert {r.headers["Retry-After"] for r in busy_refused} <= {str(60 - s) for s in range(5, 11)}
    served_busy = sum(r is None for r in outcomes[a] + outcomes[b])
    assert served_busy + 13 <= 60 and served_busy == 40 - 8 - 2       # the open part, less the quiet's share
    for account in (a, b, quiet):                        # a refusal leaves no hold
        holds = [e for e in books.entries(account) if e["type"] == "hold"]
        assert len(holds) == sum(r is None for r in outcomes[account])
        assert books.balance(account) == START - PRICE * len(holds) and books.audit(account)["consistent"]


def test_the_reserve_is_only_for_light_accounts_and_a_full_quota_refuses_everyone(budget, ledger, accounts):
    from kyma.accounts.upstream import UpstreamBudget

    busy, *light = (accounts.create(START).account_id for _ in range(3))
    assert [reserve(ledger, budget, busy) for _ in range(40)] == [None] * 40          # the open part
    assert reserve(ledger, budget, busy).status == 503                               # not light: no reserve
    with pytest.raises(Exception) as batch:               # batch work (a job's part) never takes the reserve
        UpstreamBudget(ledger.ddb, budget).take(light[0], now=MINUTE_START + 5)
    assert getattr(batch.value, "code", None) == "service_unavailable"
    first = [reserve(ledger, budget, light[0]) for _ in range(16)]
    assert first[:15] == [None] * 15 and first[15].status == 503                      # light while under 15
    second = [reserve(ledger, budget, light[1]) for _ in range(6)]
    assert second[:5] == [None] * 5                                                   # 40 + 15 + 5 = 60
    assert [(r.status, r.headers["Retry-After"]) for r in second[5:]] == [(503, "55")]  # full: everyone
    newcomer = accounts.create(START).account_id
    assert reserve(ledger, budget, newcomer).code == "service_unavailable"
    assert reserve(ledger, budget, newcomer, second=65) is None                      # the next minute


def test_an_account_over_its_own_limit_is_429_and_a_503_counts_nowhere(budget, ledger, accounts, ddb):
    from kyma.accounts import rate_limits

    acct = accounts.create(START).account_id
    others = accounts.create(START).account_id
    for _ in range(40):
        assert reserve(ledger, budget, others) is None
    for _ in range(15):
        assert reserve(ledger, budget, acct) is None     # light: from the reserve
    limit = rate_limits.Limit("speech", per_minute=16, burst=100)
    now = MINUTE_START + 5
    check = rate_limits.check(budget, acct, limit, now=now)
    assert reserve(ledger, budget, acct, rate_limit=check).code == "service_unavailable"   # ours: 503
    counter = ddb.get_item(TableName=budget.rate_counters_table,
                           Key={"counter_id": {"S": f"{acct}#speech#{int(now) // 60}"}}).get("Item")
    assert counter is None                                # the refused request did not count against it
    ddb.put_item(TableName=budget.rate_counters_table, Item={
        "counter_id": {"S": f"{acct}#speech#{int(now) // 60}"}, "n": {"N": "16"}})     # its own minute is full
    assert reserve(ledger, budget, acct, rate_limit=check).code == "rate_limited"         # its own: 429 first


def test_a_speech_request_refused_by_the_full_quota_is_a_503_envelope_free_and_never_sent_upstream(
        configure, aws, minimax, load_handler, accounts, books, monkeypatch):
    from kyma.accounts import upstream

    configure(UPSTREAM_SPEECH_RPM=3)                   # open part 2, then light accounts (fewer than 1)
    monkeypatch.setattr(upstream, "time", SimpleNamespace(time=lambda: MINUTE_START + 20))
    handler = load_handler("SpeechFunction")
    a, b = (accounts.create(START).account_id for _ in range(2))

    def speak(acct):
        return handler(api_event("POST", "/v1/audio/speech", account_id=acct, headers={
            "Content-Type": "application/json"}, body=json.dumps({"input": "Hello.", "voice": SYSTEM_VOICE})),
            context("SpeechFunction"))

    assert [speak(a)["statusCode"] for _ in range(2)] == [200, 200]
    refused = speak(a)
    error = error_of(refused)
    assert (error.status, error.code, refused["headers"]["Retry-After"]) == (503, "service_unavailable", "40")
    assert "nothing was charged" in error.message
    assert speak(b)["statusCode"] == 200               # light: the last of the minute
    assert error_of(speak(b)).status == 503
    assert len(minimax.calls_to("/v1/t2a_v2")) == 3    # refusals never reach MiniMax
    assert books.balance(a) == START - 2 * 600 and books.balance(b) == START - 600
    for acct in (a, b):
        assert all(e["status"] == "charged" for e in books.entries(acct) if e["type"] == "hold")
        assert books.audit(acct)["consistent"]


def test_batch_work_takes_at_most_its_share_so_a_customer_within_its_limit_is_served(budget, ledger, accounts):
    from kyma.accounts.upstream import UpstreamBudget
    from kyma.platform.aws import dynamodb
    from kyma.voices.lifecycle import ACTIVATION_TENANT

    up = UpstreamBudget(dynamodb(), budget)
    taken = 0
    for i in range(50):                                 # a stream batch of new clones / a sweep run
        try:
            up.take(ACTIVATION_TENANT, light=False, now=MINUTE_START + 1 + i / 100)
            taken += 1
        except Exception:
            break
    acct = accounts.create(START).account_id
    refused = [reserve(ledger, budget, acct, second=10 + i / 10) for i in range(20)]   # 20 < its 40 limit
    served = sum(r is None for r in refused)
    assert served == 20, f"activations took {taken} of the minute; the customer got {served} of 20, then {refused[-1]}"


def test_take_survives_a_transaction_conflict_on_the_hot_counter(budget):
    from kyma.accounts.upstream import UpstreamBudget
    from kyma.platform.aws import dynamodb

    real = dynamodb()
    calls = {"n": 0}

    class OnceInConflict:
        def update_item(self, **kw):
            calls["n"] += 1
            if calls["n"] == 1:          # a speech reserve's transaction holds the item right now
                raise ClientError({"Error": {"Code": "TransactionConflictException",
                                             "Message": "Transaction is ongoing for the item"}}, "UpdateItem")
            return real.update_item(**kw)

    try:
        UpstreamBudget(OnceInConflict(), budget).take("kyma_platform_activation", now=MINUTE_START + 1)
    except ClientError as exc:
        pytest.fail(f"take() raised {exc.response['Error']['Code']} instead of retrying (sweep aborts on it)")
