"""POST /v1/audio/voice-design (shared/reference/voice-design.md) on the real handlers, moto and the
MiniMax sandbox: the contract's fields, hints, limits and error table, billing as clone (reserve
→ design → settle, or release), the preview in S3, Idempotency-Key, and a designed voice's life."""

from __future__ import annotations

import json
import re
import time
from urllib.parse import parse_qs, urlparse

import boto3
import pytest
from botocore.exceptions import ClientError
from helpers import (
    START,
    api_event,
    assert_books_balance,
    body_of,
    context,
    design_event,
    error_of,
    raising,
    voices_of,
)
from integration.conftest import MINIMAX_KEY

from kyma.audio import inspect_audio
from kyma.billing.accounting import Books
from kyma.billing.ledger import Ledger
from kyma.platform.dynamo import from_item, to_item
from kyma.voices.design import DEFAULT_PREVIEW_TEXT
from kyma.voices.previews import Previews

DESIGN = 4_200_000
DESCRIPTION = "A warm female narrator, slight British accent, calm."
PATH = "/v1/voice_design"


@pytest.fixture
def fns(minimax, load_handler):
    return {name: load_handler(fid) for name, fid in (
        ("design", "VoiceDesignFunction"), ("speech", "SpeechFunction"), ("voices", "VoicesFunction"),
        ("activation", "VoiceActivationFunction"), ("account", "AccountFunction"))}


def design(fns, acct, body=None, headers=None):
    return fns["design"](design_event(acct, body, headers=headers), context("VoiceDesignFunction"))


def designed(fns, acct, body=None) -> dict:
    response = design(fns, acct, body)
    assert response["statusCode"] == 200, response
    return body_of(response)


def row(ddb, cfg, voice_id) -> dict:
    return from_item(ddb.get_item(TableName=cfg.voices_table, Key=to_item({"voice_id": voice_id}),
                                  ConsistentRead=True)["Item"])


def preview_object(cfg, url: str) -> bytes:
    """The object a presigned preview URL points at (moto serves it to boto3, not to plain HTTP)."""
    key = urlparse(url).path.split(f"/{cfg.audio_bucket}/", 1)[-1].lstrip("/")
    return boto3.client("s3").get_object(Bucket=cfg.audio_bucket, Key=key)["Body"].read()


def speak(fns, acct, voice_id, text="Hello from my designed voice."):
    return fns["speech"](api_event("POST", "/v1/audio/speech", account_id=acct,
                                   body=json.dumps({"input": text, "voice": voice_id}),
                                   headers={"Content-Type": "application/json"}), context())


def voices_get(fns, acct, path, query=""):
    resource = "/v1/audio/voices/{voice_id}" if path.count("/") == 4 else "/v1/audio/voices"
    event = api_event("GET", path, resource=resource, account_id=acct, query=query)
    event["pathParameters"] = {"voice_id": path.rsplit("/", 1)[1]} if resource.endswith("}") else None
    return fns["voices"](event, context())


def assert_free(books, minimax, acct, balance=START):
    assert books.balance(acct) == balance
    assert [e["status"] for e in books.entries(acct) if e["type"] == "hold"] in ([], ["released"])
    assert books.audit(acct)["consistent"]


# ── success ──────────────────────────────────────────────────────────────
def test_a_design_charges_4_20_once_and_returns_the_voice_with_its_preview(fns, accounts, books, ddb, cfg,
                                                                          minimax):
    acct = accounts.create(START).account_id
    response = design(fns, acct, {"description": DESCRIPTION, "name": "calm-narrator", "gender": "female",
                                  "age_group": "middle-aged", "preview_text": "Welcome back to the show."})
    assert response["statusCode"] == 200, response
    body = body_of(response)
    assert list(body) == ["voice_id", "name", "model", "cost_usd", "balance_usd", "preview_url",
                          "preview_expires_at"]
    assert re.fullmatch(r"kyma_[0-9a-f]{16}", body["voice_id"])
    assert (body["name"], body["model"], body["cost_usd"], body["balance_usd"]) == (
        "calm-narrator", "minimax-voice-design", 4.2, 45.8)
    headers = response["headers"]
    assert (headers["X-Kyma-Model"], headers["X-Kyma-Cost-USD"], headers["X-Kyma-Balance-USD"],
            headers["X-Kyma-Provider"]) == ("minimax-voice-design", "4.20", "45.80", "minimax")
    # MiniMax got our id, the description with the hints folded in, and the preview text
    (call,) = minimax.calls_to(PATH)
    assert call.json == {"prompt": f"{DESCRIPTION} Gender: female. Age group: middle-aged.",
                         "preview_text": "Welcome back to the show.", "voice_id": body["voice_id"]}
    # The preview: MiniMax's trial_audio, decoded, kept in S3, presigned for 24 h
    url = urlparse(body["preview_url"])
    assert parse_qs(url.query)["X-Amz-Expires"] == ["86400"] and f"{body['voice_id']}.mp3" in url.path
    preview = preview_object(cfg, body["preview_url"])
    assert inspect_audio(preview).format == "mp3"
    assert preview == bytes.fromhex(json.loads(minimax_answer_of(minimax, call)))
    expires = time.mktime(time.strptime(body["preview_expires_at"], "%Y-%m-%dT%H:%M:%SZ")) - time.timezone
    assert abs(expires - (time.time() + 86_400)) < 5
    # The voice row: written with the charge, designed, activating, at its own price
    voice = row(ddb, cfg, body["voice_id"])
    assert (voice["owner_id"], voice["kind"], voice["status"], voice["price_micros"], voice["model"]) == (
        acct, "designed", "activating", DESIGN, "minimax-voice-design")
    assert voice["preview_key"] == f"previews/{acct}/{body['voice_id']}.mp3"
    assert assert_books_balance(books, ddb, cfg, acct)["charged"] == DESIGN
    (hold,) = [e for e in books.entries(acct) if e["type"] == "hold"]
    assert (hold["kind"], hold["status"], hold["amount_micros"]) == ("voice_design", "charged", DESIGN)


def minimax_answer_of(minimax, call) -> str:
    """The hex preview the sandbox rendered for `call` (the same request renders the same audio)."""
    from kyma.providers.minimax import MiniMaxClient

    again = MiniMaxClient(minimax.base_url, lambda: MINIMAX_KEY).design_voice(
        call.json["prompt"], call.json["preview_text"], "kyma_f000000000000001", deadline=time.monotonic() + 10)
    return json.dumps(again.hex())


def test_the_ledger_and_usage_show_it_under_voice_design(fns, accounts, minimax):
    acct = accounts.create(START).account_id
    voice = designed(fns, acct)["voice_id"]
    ledger = body_of(fns["account"](api_event("GET", "/v1/credits/ledger", account_id=acct), context()))
    (charge,) = [e for e in ledger["entries"] if e["type"] == "charge"]
    assert (charge["endpoint"], charge["model"], charge["amount_usd"], charge["reference"]) == (
        "voice-design", "minimax-voice-design", 4.2, {"voice_id": voice})
    usage = body_of(fns["account"](api_event("GET", "/v1/usage", account_id=acct), context()))["usage"]
    assert [(u["endpoint"], u["model"], u["requests"], u["cost_usd"]) for u in usage] == [
        ("voice-design", "minimax-voice-design", 1, 4.2)]


def test_defaults_and_the_text_alias(fns, accounts, minimax):
    acct = accounts.create(START).account_id
    body = designed(fns, acct, {"text": "A gravelly old sailor."})
    assert body["name"] is None and body["model"] == "minimax-voice-design"
    (call,) = minimax.calls_to(PATH)
    assert call.json["prompt"] == "A gravelly old sailor." and call.json["preview_text"] == DEFAULT_PREVIEW_TEXT
    same = designed(fns, acct, {"description": "Same.", "text": "Same.", "model": "minimax-voice-design"})
    assert same["voice_id"] != body["voice_id"]


def test_the_limits_themselves_are_fine(fns, accounts, minimax):
    acct = accounts.create(START).account_id
    body = designed(fns, acct, {"description": "d" * 1000, "preview_text": "p" * 500, "name": "n" * 64})
    assert body["name"] == "n" * 64 and len(minimax.calls_to(PATH)[0].json["preview_text"]) == 500


# ── the contract's error table: every row, none charges ──────────────────
@pytest.mark.parametrize("body, status, code", [
    ({"description": DESCRIPTION, "model": "minimax-voice-clone"}, 400, "not_a_voice_design_model"),
    ({"description": DESCRIPTION, "model": ""}, 400, "not_a_voice_design_model"),
    ({"description": "d" * 1001}, 400, "description_too_long"),
    ({"text": "t" * 1001}, 400, "description_too_long"),
    ({}, 400, "invalid_request"),                                                  # missing description
    ({"name": "no description"}, 400, "invalid_request"),
    ({"description": "   "}, 400, "invalid_request"),
    ({"description": 42}, 400, "invalid_request"),
    ({"description": "a", "text": "b"}, 400, "invalid_request"),
    ({"description": DESCRIPTION, "gender": "other"}, 400, "invalid_request"),   # bad hint values
    ({"description": DESCRIPTION, "age_group": "teen"}, 400, "invalid_request"),
    ({"description": DESCRIPTION, "gender": ["female"]}, 400, "invalid_request"),
    ({"description": DESCRIPTION, "name": "n" * 65}, 400, "invalid_request"),
    ({"description": DESCRIPTION, "name": "bad\x07name"}, 400, "invalid_request"),
    ({"description": DESCRIPTION, "preview_text": "p" * 501}, 400, "invalid_request"),
    ({"description": DESCRIPTION, "preview_text": ""}, 400, "invalid_request"),
    (b"not json at all", 400, "invalid_request"),
    (b'["a", "list"]', 400, "invalid_request"),
    (b"", 400, "invalid_request"),
])
def test_refused_requests_are_neither_charged_nor_sent_upstream(fns, accounts, books, minimax, body, status,
                                                                code):
    acct = accounts.create(START).account_id
    response = design(fns, acct, body)
    error = error_of(response)
    assert (error.status, error.code) == (status, code), error.message
    assert [e["type"] for e in books.entries(acct)] == ["topup"] and books.balance(acct) == START
    assert minimax.calls == []


@pytest.mark.parametrize("code", [1026, 1027])
def test_a_sensitive_description_is_400_content_rejected_and_free(fns, accounts, books, ddb, cfg, minimax, code):
    acct = accounts.create(START).account_id
    minimax.fail_when(PATH, code, msg="input new_sensitive")
    error = error_of(design(fns, acct, {"description": "Something MiniMax refuses."}))
    assert (error.status, error.code) == (400, "content_rejected")
    assert len(minimax.calls_to(PATH)) == 1                      # a refusal is not retried
    assert voices_of(ddb, cfg, acct) == set()
    assert_free(books, minimax, acct)


def test_insufficient_credits_is_402_and_nothing_goes_upstream(fns, accounts, books, minimax):
    acct = accounts.create(DESIGN - 1).account_id
    error = error_of(design(fns, acct))
    assert (error.status, error.code) == (402, "insufficient_credits") and "4.20" in error.message
    assert books.balance(acct) == DESIGN - 1 and minimax.calls == []


def test_over_the_accounts_limit_is_429_with_retry_after_and_free(fns, accounts, books, minimax):
    acct = accounts.create(START).account_id

    def limited():
        event = design_event(acct)
        event["requestContext"]["authorizer"]["rate_limits"] = json.dumps({"voice-design": {"rpm": 1, "burst": 1}})
        return fns["design"](event, context("VoiceDesignFunction"))

    assert limited()["statusCode"] == 200
    refused = limited()
    error = error_of(refused)
    assert (error.status, error.code) == (429, "rate_limited") and "voice-design" in error.message
    assert int(refused["headers"]["Retry-After"]) >= 1
    assert books.balance(acct) == START - DESIGN and len(minimax.calls_to(PATH)) == 1


@pytest.mark.parametrize("failure, options, status, code", [
    ("http_500", {}, 502, "provider_error"),
    ("malformed_json", {}, 502, "provider_error"),
    ("connection_drop", {}, 502, "provider_error"),
    ("missing_field", {}, 502, "provider_error"),
    (1000, {"msg": "unknown error"}, 502, "provider_error"),
    (2039, {"msg": "voice id already exists"}, 502, "provider_error"),
    (1002, {"msg": "rate limit exceeded"}, 503, "service_unavailable"),     # MiniMax's 20 RPM
    (1008, {"msg": "insufficient balance"}, 503, "service_unavailable"),   # our MiniMax account
])
def test_upstream_failures_release_the_hold(fns, accounts, books, ddb, cfg, minimax, failure, options, status,
                                            code):
    acct = accounts.create(START).account_id
    minimax.fail_when(PATH, failure, **options)
    response = design(fns, acct)
    error = error_of(response)
    assert (error.status, error.code) == (status, code)
    assert MINIMAX_KEY not in error.message and "balance" not in error.message.lower()
    if status == 503 and failure == 1002:
        assert response["headers"]["Retry-After"] == "5"
    assert [e["status"] for e in books.entries(acct) if e["type"] == "hold"] == ["released"]
    assert voices_of(ddb, cfg, acct) == set()
    assert_free(books, minimax, acct)


def test_a_failed_settle_is_500_ownership_write_failed_released_and_safe_to_retry(fns, accounts, books, ddb, cfg,
                                                                                   minimax, monkeypatch):
    acct = accounts.create(START).account_id
    monkeypatch.setattr(Ledger, "settle", raising(ClientError(
        {"Error": {"Code": "InternalServerError", "Message": "injected"}}, "TransactWriteItems")))
    error = error_of(design(fns, acct))
    assert (error.status, error.code) == (500, "ownership_write_failed")
    assert "designed" in error.message and "no charge" in error.message.lower()
    assert len(minimax.calls_to(PATH)) == 1                      # designed upstream, not ours
    assert voices_of(ddb, cfg, acct) == set()
    assert_free(books, minimax, acct)
    monkeypatch.undo()
    assert design(fns, acct)["statusCode"] == 200                # the retry works, and is charged once
    assert books.balance(acct) == START - DESIGN


def test_an_unknown_settle_outcome_is_500_billing_outcome_unknown_never_no_charge(fns, accounts, books,
                                                                                   monkeypatch):
    acct = accounts.create(START).account_id
    boom = ClientError({"Error": {"Code": "InternalServerError", "Message": "x"}}, "TransactWriteItems")
    monkeypatch.setattr(Ledger, "settle", raising(boom))
    monkeypatch.setattr(Ledger, "release", raising(boom))
    monkeypatch.setattr(Books, "hold_status", raising(boom))
    error = error_of(design(fns, acct))
    assert (error.status, error.code) == (500, "billing_outcome_unknown")
    assert "no charge" not in error.message.lower() and "balance" in error.message


def test_a_preview_s3_cannot_keep_still_delivers_the_paid_voice(fns, accounts, books, ddb, cfg, monkeypatch):
    acct = accounts.create(START).account_id
    monkeypatch.setattr(Previews, "store", property(lambda self: type("Broken", (), {
        "put_object": raising(ClientError({"Error": {"Code": "ServiceUnavailable", "Message": "x"}}, "PutObject"))
    })()))
    body = designed(fns, acct)
    assert body["preview_url"] is None and body["preview_expires_at"] is None and body["cost_usd"] == 4.2
    assert "preview_key" not in row(ddb, cfg, body["voice_id"])
    assert assert_books_balance(books, ddb, cfg, acct)["charged"] == DESIGN


def test_a_preview_url_that_cannot_be_signed_still_delivers_the_paid_voice(fns, accounts, books, ddb, cfg,
                                                                          monkeypatch):
    from botocore.exceptions import NoCredentialsError

    acct = accounts.create(START).account_id
    real_s3 = Previews.s3

    class Unsigned:
        def __init__(self, s3):
            self.put_object = s3.put_object

        def generate_presigned_url(self, *args, **kwargs):
            raise NoCredentialsError()

    monkeypatch.setattr(Previews, "s3", property(lambda self: Unsigned(real_s3.fget(self))))
    body = designed(fns, acct)
    assert body["preview_url"] is None and body["voice_id"] and body["cost_usd"] == 4.2
    assert row(ddb, cfg, body["voice_id"])["preview_key"]          # kept: a replay signs it later
    assert assert_books_balance(books, ddb, cfg, acct)["charged"] == DESIGN


def test_a_lost_answer_retried_is_one_voice_one_charge(fns, accounts, books, ddb, cfg, minimax):
    acct = accounts.create(START).account_id
    minimax.fail_next(PATH, "lost_answer")                       # designed upstream, the answer lost
    body = designed(fns, acct)
    assert [c.status_code for c in minimax.calls_to(PATH)][1:] == [2039]     # the retry: "already exists"
    assert body["preview_url"] is None                           # MiniMax renders no preview for it then
    assert voices_of(ddb, cfg, acct) == {body["voice_id"]}
    assert assert_books_balance(books, ddb, cfg, acct)["charged"] == DESIGN


# ── Idempotency-Key ──────────────────────────────────────────────────────
def test_the_same_key_twice_is_one_charge_and_a_fresh_url_to_the_same_preview(fns, accounts, books, ddb, cfg,
                                                                              minimax):
    acct = accounts.create(START).account_id
    key = {"Idempotency-Key": "design-0001"}
    first = design(fns, acct, headers=key)
    time.sleep(1.1)                                              # a URL signed a second later differs
    second = design(fns, acct, headers=key)
    assert second["headers"].get("Idempotent-Replayed") == "true"
    one, two = body_of(first), body_of(second)
    assert {k: v for k, v in one.items() if not k.startswith("preview_")} == \
           {k: v for k, v in two.items() if not k.startswith("preview_")}
    assert one["preview_url"] != two["preview_url"] and two["preview_expires_at"] > one["preview_expires_at"]
    assert urlparse(one["preview_url"]).path == urlparse(two["preview_url"]).path
    assert preview_object(cfg, two["preview_url"]) == preview_object(cfg, one["preview_url"])
    assert len(minimax.calls_to(PATH)) == 1 and voices_of(ddb, cfg, acct) == {one["voice_id"]}
    assert assert_books_balance(books, ddb, cfg, acct)["charged"] == DESIGN
    # The same key with another description is a conflict, free
    error = error_of(design(fns, acct, {"description": "Another voice."}, headers=key))
    assert (error.status, error.code) == (409, "idempotency_conflict")
    assert books.balance(acct) == START - DESIGN


def test_the_same_key_ten_times_concurrently_is_one_charge_one_voice(minimax, aws, accounts, books, ddb, cfg):
    from concurrent.futures import ThreadPoolExecutor

    from kyma_local.runtime import FunctionPool

    acct = accounts.create(START).account_id
    pool = FunctionPool(aws.functions["VoiceDesignFunction"], max_environments=10)
    with ThreadPoolExecutor(10) as executor:
        responses = list(executor.map(lambda _: pool.invoke(design_event(
            acct, headers={"Idempotency-Key": "design-race"})).payload, range(10)))
    assert {r["statusCode"] for r in responses} == {200}, [body_of(r) for r in responses]
    assert len({body_of(r)["voice_id"] for r in responses}) == 1
    assert len(minimax.calls_to(PATH)) == 1 and len(voices_of(ddb, cfg, acct)) == 1
    assert assert_books_balance(books, ddb, cfg, acct)["charged"] == DESIGN


def test_text_and_description_are_the_same_request_for_a_key(fns, accounts, books):
    acct = accounts.create(START).account_id
    key = {"Idempotency-Key": "design-alias"}
    first = body_of(design(fns, acct, {"description": DESCRIPTION}, headers=key))
    second = body_of(design(fns, acct, {"text": DESCRIPTION}, headers=key))
    assert first["voice_id"] == second["voice_id"] and books.balance(acct) == START - DESIGN


# ── a designed voice lives the life of a cloned one ──────────────────────
def stream_event(ddb, cfg, voice_id) -> dict:
    item = ddb.get_item(TableName=cfg.voices_table, Key=to_item({"voice_id": voice_id}))["Item"]
    return {"Records": [{"eventID": "1", "eventName": "INSERT", "eventSource": "aws:dynamodb",
                         "eventVersion": "1.1", "awsRegion": "us-east-1",
                         "dynamodb": {"Keys": {"voice_id": item["voice_id"]}, "NewImage": item,
                                      "SequenceNumber": "100", "StreamViewType": "NEW_IMAGE"},
                         "eventSourceARN": "arn:aws:dynamodb:us-east-1:123456789012:table/v/stream/x"}]}


def test_a_designed_voice_is_activated_by_the_stream_and_outlives_minimaxs_window(fns, accounts, books, ddb, cfg,
                                                                                 minimax):
    acct = accounts.create(START).account_id
    voice = designed(fns, acct)["voice_id"]
    assert minimax.registry.get(voice).first_used_at is None     # the preview does not count as use
    fns["activation"](stream_event(ddb, cfg, voice), context("VoiceActivationFunction", 120))
    assert row(ddb, cfg, voice)["status"] == "active"
    minimax.advance_clock(8 * 86_400)
    assert speak(fns, acct, voice)["statusCode"] == 200          # used within the window: kept
    assert books.balance(acct) < START - DESIGN and books.audit(acct)["refunds"] == 0


def test_a_designed_voice_lost_before_activation_is_410_free_and_its_4_20_refunded_once(
        fns, accounts, books, ddb, cfg, minimax):
    acct = accounts.create(START).account_id
    voice = designed(fns, acct)["voice_id"]
    minimax.advance_clock(8 * 86_400)                            # MiniMax deleted it, unused
    error = error_of(speak(fns, acct, voice))
    assert (error.status, error.code) == (410, "voice_expired")
    assert "the voice's price was refunded" in error.message and "clone" not in error.message
    assert row(ddb, cfg, voice)["status"] == "expired"
    refunds = [e for e in books.entries(acct) if e["type"] == "refund"]
    assert [(e["amount_micros"], e["voice_id"]) for e in refunds] == [(DESIGN, voice)]   # its own price
    assert books.balance(acct) == START and books.audit(acct)["consistent"]
    assert error_of(speak(fns, acct, voice)).code == "voice_expired" and books.balance(acct) == START
    assert voices_get(fns, acct, f"/v1/audio/voices/{voice}") and \
        body_of(voices_get(fns, acct, f"/v1/audio/voices/{voice}"))["status"] == "expired"


def test_a_designed_row_without_a_recorded_price_is_refunded_the_design_price_not_the_clones(
        fns, accounts, books, ddb, cfg, minimax):
    acct = accounts.create(START).account_id
    voice = designed(fns, acct)["voice_id"]
    ddb.update_item(TableName=cfg.voices_table, Key=to_item({"voice_id": voice}),
                    UpdateExpression="REMOVE price_micros")
    minimax.advance_clock(8 * 86_400)
    assert error_of(speak(fns, acct, voice)).code == "voice_expired"
    assert [e["amount_micros"] for e in books.entries(acct) if e["type"] == "refund"] == [DESIGN]
    assert books.balance(acct) == START


def test_the_sweep_expires_an_unused_designed_voice_with_its_4_20(configure, minimax, load_handler, accounts,
                                                                  books, ddb, cfg):
    configure(VOICE_SWEEP_MIN_AGE_SECONDS=0, VOICE_SWEEP_PACE_SECONDS=0)
    fns = {"design": load_handler("VoiceDesignFunction"), "activation": load_handler("VoiceActivationFunction")}
    acct = accounts.create(START).account_id
    voice = designed(fns, acct)["voice_id"]
    minimax.advance_clock(8 * 86_400)
    assert not minimax.registry.is_live(voice)
    swept = fns["activation"]({"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}},
                              context("VoiceActivationFunction", 120))
    assert swept["expired"] == 1 and books.balance(acct) == START
    assert [e["amount_micros"] for e in books.entries(acct) if e["type"] == "refund"] == [DESIGN]


def test_designed_voices_are_listed_designed_and_filtered_by_type(fns, accounts, minimax, load_handler):
    import audio_fixtures as fx
    from helpers import clone_event

    acct = accounts.create(START).account_id
    first = designed(fns, acct, {"description": DESCRIPTION, "name": "made"})["voice_id"]
    clone = load_handler("VoiceCloneFunction")(clone_event(acct, fx.mp3_cbr(12.0)), context())
    cloned = body_of(clone)["voice_id"]
    time.sleep(1.05)                                             # newest first: one second apart
    second = designed(fns, acct, {"description": "A second designed voice."})["voice_id"]

    def own(query):
        page = body_of(voices_get(fns, acct, "/v1/audio/voices", query))
        return [(v["voice_id"], v["type"]) for v in page["voices"] if v["type"] != "system"], page["next_cursor"]

    assert set(own("")[0]) == {(first, "designed"), (cloned, "cloned"), (second, "designed")}
    assert own("type=cloned") == ([(cloned, "cloned")], None)
    assert own("type=designed") == ([(second, "designed"), (first, "designed")], None)
    page, cursor = own("type=designed&limit=1")                  # paged, the filter kept across pages
    assert page == [(second, "designed")] and cursor
    assert own(f"type=designed&limit=1&cursor={cursor}")[0] == [(first, "designed")]
    assert error_of(voices_get(fns, acct, "/v1/audio/voices", f"type=cloned&cursor={cursor}")).code == \
        "invalid_request"                                        # a cursor belongs to its own filter
    one = body_of(voices_get(fns, acct, f"/v1/audio/voices/{first}"))
    assert (one["type"], one["name"], one["model"], one["status"]) == (
        "designed", "made", "minimax-voice-design", "activating")


def test_another_account_gets_403_in_speech_and_404_in_voices(fns, accounts, books, minimax):
    owner, other = accounts.create(START).account_id, accounts.create(START).account_id
    voice = designed(fns, owner)["voice_id"]
    error = error_of(speak(fns, other, voice))
    assert (error.status, error.code) == (403, "voice_not_owned")
    assert error_of(voices_get(fns, other, f"/v1/audio/voices/{voice}")).code == "voice_not_found"
    assert body_of(voices_get(fns, other, "/v1/audio/voices", "type=designed"))["voices"] == []
    assert books.balance(other) == START


def test_deleting_a_designed_voice_deletes_it_upstream_as_voice_generation(fns, accounts, books, ddb, cfg,
                                                                          minimax):
    acct = accounts.create(START).account_id
    voice = designed(fns, acct)["voice_id"]
    event = api_event("DELETE", f"/v1/audio/voices/{voice}", resource="/v1/audio/voices/{voice_id}",
                      account_id=acct)
    event["pathParameters"] = {"voice_id": voice}
    response = fns["voices"](event, context())
    assert response["statusCode"] == 200 and body_of(response) == {"voice_id": voice, "deleted": True}
    (call,) = minimax.calls_to("/v1/delete_voice")
    assert call.json == {"voice_type": "voice_generation", "voice_id": voice} and call.status_code == 0
    assert voice not in minimax.voices                           # gone at MiniMax, not just here
    assert row(ddb, cfg, voice)["status"] == "deleted"
    assert error_of(speak(fns, acct, voice)).code == "voice_not_found"
    assert books.balance(acct) == START - DESIGN                 # no refund on deletion


def test_a_deletion_the_sweep_finishes_uses_voice_generation_too(configure, minimax, load_handler, accounts, ddb,
                                                                 cfg):
    configure(VOICE_SWEEP_MIN_AGE_SECONDS=0, VOICE_SWEEP_PACE_SECONDS=0)
    fns = {"design": load_handler("VoiceDesignFunction"), "voices": load_handler("VoicesFunction"),
           "activation": load_handler("VoiceActivationFunction")}
    acct = accounts.create(START).account_id
    voice = designed(fns, acct)["voice_id"]
    minimax.fail_next("/v1/delete_voice", "http_500", times=3)    # MiniMax cannot confirm now
    event = api_event("DELETE", f"/v1/audio/voices/{voice}", resource="/v1/audio/voices/{voice_id}",
                      account_id=acct)
    event["pathParameters"] = {"voice_id": voice}
    assert fns["voices"](event, context())["statusCode"] == 200
    assert row(ddb, cfg, voice)["status"] == "deleting"
    ddb.update_item(TableName=cfg.voices_table, Key=to_item({"voice_id": voice}),
                    UpdateExpression="SET deleting_since = :t",
                    ExpressionAttributeValues={":t": {"N": str(int(time.time()) - 60)}})
    swept = fns["activation"]({"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}},
                              context("VoiceActivationFunction", 120))
    assert swept["deleted"] == 1 and row(ddb, cfg, voice)["status"] == "deleted"
    assert minimax.calls_to("/v1/delete_voice")[-1].json == {"voice_type": "voice_generation", "voice_id": voice}
    assert voice not in minimax.voices


def test_a_design_answered_with_little_time_left_keeps_the_paid_voice_without_storing_its_preview(
        fns, accounts, books, ddb, cfg, minimax):
    """Storing the preview must never run the request past its deadline: that would release the hold
    and lose a voice MiniMax already made (found by a review: S3's retries took ~20 s)."""
    acct = accounts.create(START).account_id
    # 3 s of Lambda time: the request's deadline is about 1 s away once MiniMax has answered.
    response = fns["design"](design_event(acct), context("VoiceDesignFunction", 3))
    assert response["statusCode"] == 200, error_of(response)
    body = body_of(response)
    assert body["preview_url"] is None
    s3 = boto3.client("s3")
    assert s3.list_objects_v2(Bucket=cfg.audio_bucket, Prefix=f"previews/{acct}/").get("KeyCount") == 0
    assert row(ddb, cfg, body["voice_id"])["status"] == "activating"
    assert books.balance(acct) == START - DESIGN and books.audit(acct)["consistent"]
    assert len(minimax.calls_to("/v1/voice_design")) == 1


def test_the_preview_store_cannot_outlast_the_time_it_is_given():
    """The bounded client's worst case (every attempt connecting and reading to its timeout) fits in
    PREVIEW_STORE_SECONDS, the time the design keeps free for it before the deadline."""
    from kyma.platform.aws import bounded_s3
    from kyma.voices.previews import PREVIEW_STORE_SECONDS

    config = bounded_s3().meta.config
    attempts = config.retries["total_max_attempts"] if "total_max_attempts" in config.retries \
        else config.retries["max_attempts"]
    backoff = 1.0 * (attempts - 1)          # standard mode: at most 1 s base backoff between attempts
    assert attempts * (config.connect_timeout + config.read_timeout) + backoff <= PREVIEW_STORE_SECONDS


def test_listing_one_designed_voice_among_hundreds_of_clones_takes_a_few_queries(aws, ddb, cfg):
    """DynamoDB applies Limit before the filter: a `type=designed&limit=1` page among 250 newer
    clones must not cost a query per clone (a review found 201), and its cursor must continue right
    after the row shown."""
    from kyma.voices.records import voice_put
    from kyma.voices.store import Voices

    owner, now = "acct_many", int(time.time())
    designed_rows = []
    for n in range(2):
        item = voice_put(cfg, voice_id=f"kyma_d{n:015x}", owner_id=owner, name=None, model="minimax-voice-design",
                         provider="minimax", request_id="r", price_micros=DESIGN, kind="designed")["Put"]["Item"]
        item["created_at"] = {"N": str(now - 10_000 - n)}
        ddb.put_item(TableName=cfg.voices_table, Item=item)
        designed_rows.append(f"kyma_d{n:015x}")
    for n in range(250):
        item = voice_put(cfg, voice_id=f"kyma_c{n:015x}", owner_id=owner, name=None, model="minimax-voice-clone",
                         provider="minimax", request_id="r", price_micros=2_100_000)["Put"]["Item"]
        item["created_at"] = {"N": str(now - n)}
        ddb.put_item(TableName=cfg.voices_table, Item=item)
    queries = []

    class Counting:
        def __getattr__(self, name):
            return getattr(ddb, name)

        def query(self, **kw):
            queries.append(kw["Limit"])
            return ddb.query(**kw)

    voices = Voices(Counting(), cfg)
    rows, cursor = voices.owned_page(owner, limit=1, start=None, kind="designed")
    assert [r["voice_id"] for r in rows] == [designed_rows[0]] and len(queries) <= 4
    assert cursor is not None
    rows, cursor = voices.owned_page(owner, limit=1, start=cursor, kind="designed")
    assert [r["voice_id"] for r in rows] == [designed_rows[1]] and cursor is None     # the oldest: the end
    # Unfiltered pages still come in order, each continuing after the last row shown.
    seen, cursor = [], None
    while True:
        rows, cursor = voices.owned_page(owner, limit=40, start=cursor)
        seen += [r["voice_id"] for r in rows]
        if cursor is None:
            break
    assert seen == [f"kyma_c{n:015x}" for n in range(250)] + designed_rows
