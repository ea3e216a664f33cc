"""Money visible to customers: GET /v1/credits/ledger (every balance change, newest first) and
GET /v1/usage (what was charged per UTC day, endpoint and model), exact by construction."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import audio_fixtures as fx
import pytest
from helpers import START, SYSTEM_VOICE, api_event, body_of, clone_event, context, error_of

TODAY = datetime.now(UTC).strftime("%Y-%m-%d")


@pytest.fixture
def fns(minimax, load_handler):
    return {"account": load_handler("AccountFunction"), "clone": load_handler("VoiceCloneFunction"),
            "speech": load_handler("SpeechFunction")}


def get(fns, acct, path, query=""):
    return fns["account"](api_event("GET", path, account_id=acct, query=query), context())


def speak(fns, acct, text, model="minimax-speech-hd"):
    return fns["speech"](api_event("POST", "/v1/audio/speech", account_id=acct, headers={
        "Content-Type": "application/json"}, body=json.dumps({"input": text, "voice": SYSTEM_VOICE,
                                                              "model": model})), context())


def test_the_ledger_shows_each_balance_change_newest_first(fns, accounts, ledger, minimax):
    acct = accounts.create(START).account_id
    voice = body_of(fns["clone"](clone_event(acct, fx.mp3_cbr(12.0)), context()))["voice_id"]
    assert speak(fns, acct, "Hello there.")["statusCode"] == 200            # 12 characters, hd
    minimax.fail_when("/v1/t2a_v2", 1000, times=None)
    assert speak(fns, acct, "This one fails.")["statusCode"] == 502         # held, then released
    ledger.top_up(acct, 5_000_000, note="invoice 7")
    page = body_of(get(fns, acct, "/v1/credits/ledger"))
    assert [(e["type"], e["status"]) for e in page["entries"]] == [
        ("topup", "posted"), ("charge", "released"), ("charge", "charged"), ("charge", "charged"), ("topup", "posted")]
    topup, _released, speech, clone, opening = page["entries"]
    assert topup["amount_usd"] == 5.0 and topup["note"] == "invoice 7"
    assert (speech["endpoint"], speech["model"], speech["amount_usd"]) == ("speech", "minimax-speech-2.8-hd", 0.0012)
    assert speech["reference"] == {"voice_id": SYSTEM_VOICE, "characters": 12} and speech["request_id"]
    assert (clone["endpoint"], clone["amount_usd"], clone["reference"]) == ("voice-clone", 2.1, {"voice_id": voice})
    assert opening["amount_usd"] == 50.0 and page["next_cursor"] is None
    assert all(e["created_at"].endswith("Z") for e in page["entries"])
    assert "idempotency" not in json.dumps(page)                             # bookkeeping rows are never shown


def test_the_ledger_pages_with_limit_and_cursor(fns, accounts, ledger):
    acct = accounts.create(START).account_id
    for n in range(4):
        ledger.top_up(acct, 1_000_000 * (n + 1))
    seen, cursor = [], None
    while True:
        query = "limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = body_of(get(fns, acct, "/v1/credits/ledger", query))
        assert len(page["entries"]) <= 2
        seen += page["entries"]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert [e["amount_usd"] for e in seen] == [4.0, 3.0, 2.0, 1.0, 50.0]


@pytest.mark.parametrize("query", ["limit=0", "limit=101", "limit=ten", "cursor=bm9wZQ", "cursor=%ff",
                                   "limit=%C2%B2", "limit=%D9%A3", "limit=" + "9" * 5000])   # ², Arabic-Indic 3
def test_bad_ledger_parameters_are_400(fns, accounts, query):
    acct = accounts.create(START).account_id
    assert error_of(get(fns, acct, "/v1/credits/ledger", query)).status == 400


def test_a_cursor_with_a_trailing_newline_is_400_and_the_cursor_itself_pages(fns, accounts, ledger):
    """The cursor must be exactly an entry id: a `$` regex would also take "<id>\\n"."""
    import base64

    acct = accounts.create(START).account_id
    for usd in (1, 2, 3):
        ledger.top_up(acct, usd * 1_000_000)
    cursor = body_of(get(fns, acct, "/v1/credits/ledger", "limit=1"))["next_cursor"]
    entry_id = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    with_newline = base64.urlsafe_b64encode((entry_id + "\n").encode()).decode().rstrip("=")
    refused = error_of(get(fns, acct, "/v1/credits/ledger", f"limit=1&cursor={with_newline}"))
    assert (refused.status, refused.code) == (400, "invalid_request")
    assert [e["amount_usd"] for e in body_of(get(fns, acct, "/v1/credits/ledger",
                                                 f"limit=1&cursor={cursor}"))["entries"]] == [2.0]


@pytest.mark.parametrize("query, says", [
    ("start=2026-13-01", "start and end must be dates as YYYY-MM-DD, e.g. 2026-11-01."),
    ("end=2026-02-30", "start and end must be dates as YYYY-MM-DD, e.g. 2026-11-01."),
    ("end=0001-01-05", "0001-01-05 has no 30 days before it: send start too."),
])
def test_usage_date_errors_say_what_is_wrong(fns, accounts, query, says):
    acct = accounts.create(START).account_id
    error = error_of(get(fns, acct, "/v1/usage", query))
    assert error.status == 400 and says in error.message and "0001-01-30" not in error.message
    assert body_of(get(fns, acct, "/v1/usage", "start=0001-01-01&end=0001-01-05"))["usage"] == []


def test_usage_is_what_was_charged_today_per_endpoint_and_model(fns, accounts, minimax):
    acct = accounts.create(START).account_id
    fns["clone"](clone_event(acct, fx.mp3_cbr(12.0)), context())
    for text in ("Hello there.", "A second line!"):                          # 12 + 14 characters, hd
        assert speak(fns, acct, text)["statusCode"] == 200
    assert speak(fns, acct, "Turbo.", model="minimax-speech-turbo")["statusCode"] == 200
    minimax.fail_when("/v1/t2a_v2", 1026, times=None)
    assert speak(fns, acct, "Refused upstream.")["statusCode"] == 400      # released: not usage
    report = body_of(get(fns, acct, "/v1/usage"))
    rows = {(r["endpoint"], r["model"]): r for r in report["usage"]}
    assert set(rows) == {("speech", "minimax-speech-2.8-hd"), ("speech", "minimax-speech-2.8-turbo"),
                         ("voice-clone", "minimax-voice-clone")}
    hd = rows[("speech", "minimax-speech-2.8-hd")]
    assert (hd["date"], hd["requests"], hd["characters"], hd["cost_usd"]) == (TODAY, 2, 26, 0.0026)
    assert rows[("voice-clone", "minimax-voice-clone")] == {
        "date": TODAY, "endpoint": "voice-clone", "model": "minimax-voice-clone", "requests": 1,
        "characters": 0, "cost_usd": 2.1}
    assert report["end"] == TODAY
    assert report["start"] == (datetime.now(UTC) - timedelta(days=29)).strftime("%Y-%m-%d")
    yesterday = (datetime.now(UTC) - timedelta(days=1)).strftime("%Y-%m-%d")
    assert body_of(get(fns, acct, "/v1/usage", f"start={yesterday}&end={yesterday}"))["usage"] == []


@pytest.mark.parametrize("query", ["start=2026-13-01", "start=yesterday", "start=2026-11-25&end=2026-11-01",
                                   "start=2024-01-01&end=2026-01-01", "end=0001-01-05", "start=20261101",
                                   "start=2026-W44-1", "start=%D9%A2026-11-01"])
def test_bad_usage_ranges_are_400(fns, accounts, query):
    acct = accounts.create(START).account_id
    assert error_of(get(fns, acct, "/v1/usage", query)).status == 400


def test_a_charge_whose_request_spans_midnight_is_on_the_same_day_in_usage_and_ledger(
        fns, accounts, ledger, monkeypatch):
    """A long stream reserves at 23:59:55 UTC and settles after midnight: both views date the
    charge by its request."""
    import time

    acct = accounts.create(START).account_id
    midnight = (int(time.time()) // 86_400 - 1) * 86_400              # the start of yesterday, UTC
    with monkeypatch.context() as clock:
        clock.setattr(time, "time", lambda: midnight - 5.0)            # the reserve, 23:59:55
        hold = ledger.reserve(acct, 2_900, kind="speech", request_id="r-midnight",
                              reference={"model": "minimax-speech-2.8-hd", "chars": 29})
        clock.setattr(time, "time", lambda: midnight + 5.0)            # the stream ends, 00:00:05
        ledger.settle(hold)
    day_before = datetime.fromtimestamp(midnight - 5, UTC).strftime("%Y-%m-%d")
    day_after = datetime.fromtimestamp(midnight + 5, UTC).strftime("%Y-%m-%d")
    (charge,) = [e for e in body_of(get(fns, acct, "/v1/credits/ledger"))["entries"] if e["type"] == "charge"]
    assert charge["created_at"].startswith(day_before)
    usage = body_of(get(fns, acct, "/v1/usage", f"start={day_before}&end={day_after}"))["usage"]
    assert [(r["date"], r["requests"], r["characters"]) for r in usage] == [(day_before, 1, 29)]


def test_reads_of_everything_follow_every_page(accounts, ledger, ddb, cfg):
    # kyma.platform.dynamo.rows / pages: botocore's paginator follows LastEvaluatedKey to the end.
    from kyma.platform.dynamo import pages, rows, values

    acct = accounts.create(50_000_000).account_id
    for n in range(11):
        ledger.top_up(acct, 1_000 + n, note=f"n{n}")
    query = {"TableName": cfg.ledger_table, "KeyConditionExpression": "account_id = :a",
             "ExpressionAttributeValues": values(a=acct), "Limit": 4}
    assert [len(page["Items"]) for page in pages(ddb, "query", **query)][:3] == [4, 4, 4]
    notes = sorted(r["note"] for r in rows(ddb, "query", **query) if r.get("note", "").startswith("n"))
    assert notes == sorted(f"n{n}" for n in range(11))
    everything = list(rows(ddb, "query", **query))          # this account is the table's only one
    assert len(list(rows(ddb, "scan", TableName=cfg.ledger_table, Limit=3))) == len(everything) == 12
