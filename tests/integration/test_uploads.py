"""The two-step upload flow on the real handler with moto (in-process S3).

The presigned POST itself is exercised over HTTP in tests/e2e/test_uploads_http.py;
here the object is written with put_object, which is what the form upload does.
"""

from __future__ import annotations

import base64
import json
import time
from concurrent.futures import ThreadPoolExecutor

import audio_fixtures as fx
import boto3
import pytest
from helpers import (
    START,
    ProcessDied,
    api_event,
    assert_books_balance,
    body_of,
    context,
    error_of,
    multipart,
    raising,
    voices_of,
)

from kyma.platform.dynamo import to_item, values

WAV = fx.wav(12.0)


@pytest.fixture
def handler(minimax, load_handler):
    return load_handler("VoiceCloneFunction")


def call(handler, event):
    return handler(event, context("VoiceCloneFunction"))


def create_upload(handler, account_id, body=None) -> dict:
    raw = json.dumps(body) if body is not None else ""
    response = call(handler, api_event("POST", "/v1/audio/voice-clone/uploads", body=raw, account_id=account_id,
                                       headers={"Content-Type": "application/json"}))
    assert response["statusCode"] == 201, response
    return body_of(response)


def put(cfg, upload: dict, data: bytes) -> None:
    boto3.client("s3").put_object(Bucket=cfg.uploads_bucket, Key=upload["fields"]["key"], Body=data)


def clone_json(account_id, upload_id, **fields) -> dict:
    return api_event("POST", "/v1/audio/voice-clone", body=json.dumps({"upload_id": upload_id, **fields}),
                     account_id=account_id, headers={"Content-Type": "application/json"})


def test_an_upload_is_a_presigned_post_pinned_to_the_callers_prefix_and_10_mb(handler, accounts, cfg):
    acct = accounts.create(START).account_id
    upload = create_upload(handler, acct, {"filename": "narrator.wav", "content_type": "audio/wav"})
    assert set(upload) == {"upload_id", "url", "fields", "expires_at", "max_bytes"}
    assert upload["upload_id"].startswith("up_") and upload["max_bytes"] == 10 * 1024 * 1024
    assert 850 < upload["expires_at"] - time.time() <= 900
    assert upload["fields"]["key"] == f"uploads/{acct}/{upload['upload_id']}"
    policy = json.loads(base64.b64decode(upload["fields"]["policy"]))
    assert ["content-length-range", 1, 10 * 1024 * 1024] in policy["conditions"]
    assert {"key": upload["fields"]["key"]} in policy["conditions"]
    assert {"Content-Type": "audio/wav"} in policy["conditions"]
    assert cfg.uploads_bucket in upload["url"]


def test_create_upload_needs_no_body_and_refuses_odd_fields(handler, accounts):
    acct = accounts.create(START).account_id
    assert create_upload(handler, acct)["upload_id"]
    for body in ({"content_type": "image/png"}, {"filename": 7}, {"filename": "x" * 256}):
        response = call(handler, api_event("POST", "/v1/audio/voice-clone/uploads", body=json.dumps(body),
                                           account_id=acct, headers={"Content-Type": "application/json"}))
        assert error_of(response).status == 400


@pytest.mark.parametrize("as_form", [False, True])
def test_cloning_from_an_upload_matches_an_inline_clone(handler, accounts, books, ddb, cfg, minimax, as_form):
    acct = accounts.create(START).account_id
    upload = create_upload(handler, acct)
    put(cfg, upload, WAV)
    if as_form:
        body, ctype = multipart([("upload_id", upload["upload_id"]), ("name", "from-s3")])
        event = api_event("POST", "/v1/audio/voice-clone", body=body, account_id=acct,
                          headers={"Content-Type": ctype})
    else:
        event = clone_json(acct, upload["upload_id"], name="from-s3")
    response = call(handler, event)
    assert response["statusCode"] == 200, body_of(response)
    body = body_of(response)
    assert list(body) == ["voice_id", "name", "model", "cost_usd", "balance_usd"]
    assert (body["name"], body["cost_usd"], body["balance_usd"]) == ("from-s3", 2.1, 47.9)
    assert response["headers"]["X-Kyma-Cost-USD"] == "2.10" and response["headers"]["X-Kyma-Balance-USD"] == "47.90"
    assert minimax.calls_to("/v1/files/upload")[0].file_bytes == WAV
    # The object is gone and the upload is spent
    keys = boto3.client("s3").list_objects_v2(Bucket=cfg.uploads_bucket).get("KeyCount", 0)
    assert keys == 0
    again = error_of(call(handler, clone_json(acct, upload["upload_id"])))
    assert (again.status, again.code) == (410, "upload_used")
    assert books.balance(acct) == START - 2_100_000
    assert_books_balance(books, ddb, cfg, acct)


def refused(handler, books, minimax, acct, event, status, code):
    error = error_of(call(handler, event))
    assert (error.status, error.code) == (status, code), error.message
    assert books.balance(acct) == START and minimax.calls == []
    return error


def test_another_accounts_upload_is_not_found(handler, accounts, books, minimax, cfg):
    owner = accounts.create(START).account_id
    thief = accounts.create(START).account_id
    upload = create_upload(handler, owner)
    put(cfg, upload, WAV)
    refused(handler, books, minimax, thief, clone_json(thief, upload["upload_id"]), 404, "upload_not_found")


def test_an_expired_upload_is_410(handler, accounts, books, minimax, cfg, ddb):
    acct = accounts.create(START).account_id
    upload = create_upload(handler, acct)
    put(cfg, upload, WAV)
    ddb.update_item(TableName=cfg.uploads_table, Key=to_item({"upload_id": upload["upload_id"]}),
                    UpdateExpression="SET expires_at = :past", ExpressionAttributeValues=values(past=1))
    error = refused(handler, books, minimax, acct, clone_json(acct, upload["upload_id"]), 410, "upload_expired")
    assert "create a new upload" in error.message


@pytest.mark.parametrize("upload_id, status", [("up_nope", 404), ("", 400), ("../../etc", 404), (42, 400),
                                               ("up_" + "f" * 80, 404)])
def test_unknown_or_malformed_upload_ids_are_refused(handler, accounts, books, minimax, upload_id, status):
    acct = accounts.create(START).account_id
    error = error_of(call(handler, clone_json(acct, upload_id)))
    assert error.status == status
    assert books.balance(acct) == START and minimax.calls == []


def test_nothing_uploaded_yet_is_404_with_a_clear_message(handler, accounts, books, minimax):
    acct = accounts.create(START).account_id
    upload = create_upload(handler, acct)
    error = refused(handler, books, minimax, acct, clone_json(acct, upload["upload_id"]), 404, "upload_not_found")
    assert "No file has been uploaded" in error.message


def test_an_object_over_10_mb_is_413_whatever_the_policy_said(handler, accounts, books, minimax, cfg):
    # moto does not enforce presigned-POST conditions: an object of any size can land.  The
    # server checks the object's size itself before reading it.
    acct = accounts.create(START).account_id
    upload = create_upload(handler, acct)
    put(cfg, upload, b"\0" * (10 * 1024 * 1024 + 1))
    refused(handler, books, minimax, acct, clone_json(acct, upload["upload_id"]), 413, "invalid_request")


@pytest.mark.parametrize("data, status, code", [
    (fx.wav(9.0), 400, "reference_too_short"),
    (fx.png(), 415, "invalid_request"),
    (fx.wav(12.0)[:-1000] + b"", 400, "audio_unreadable"),
])
def test_uploaded_bytes_get_the_same_checks_as_inline_ones(handler, accounts, books, minimax, cfg, data, status,
                                                           code):
    acct = accounts.create(START).account_id
    upload = create_upload(handler, acct)
    put(cfg, upload, data)
    refused(handler, books, minimax, acct, clone_json(acct, upload["upload_id"]), status, code)


def test_file_and_upload_id_together_are_400(handler, accounts, books, minimax):
    acct = accounts.create(START).account_id
    body, ctype = multipart([("upload_id", "up_x"), ("file", ("a.wav", WAV, "audio/wav"))])
    event = api_event("POST", "/v1/audio/voice-clone", body=body, account_id=acct, headers={"Content-Type": ctype})
    refused(handler, books, minimax, acct, event, 400, "invalid_request")


def test_a_failed_clone_gives_the_upload_back_for_a_retry(handler, accounts, books, minimax, cfg, ddb):
    acct = accounts.create(START).account_id
    upload = create_upload(handler, acct)
    put(cfg, upload, WAV)
    minimax.fail_when("/v1/voice_clone", "http_500")               # every attempt of this request
    assert error_of(call(handler, clone_json(acct, upload["upload_id"]))).code == "provider_error"
    minimax.clear_failures()
    assert call(handler, clone_json(acct, upload["upload_id"]))["statusCode"] == 200
    assert books.balance(acct) == START - 2_100_000
    assert_books_balance(books, ddb, cfg, acct)


def test_two_clones_racing_for_one_upload_charge_once(minimax, aws, accounts, books, ddb, cfg, load_handler):
    from kyma_local.runtime import FunctionPool

    acct = accounts.create(START).account_id
    upload = create_upload(load_handler("VoiceCloneFunction"), acct)
    put(cfg, upload, WAV)
    pool = FunctionPool(aws.functions["VoiceCloneFunction"], max_environments=6)
    with ThreadPoolExecutor(6) as executor:
        responses = list(executor.map(lambda _: pool.invoke(clone_json(acct, upload["upload_id"])).payload,
                                      range(6)))
    statuses = sorted(r["statusCode"] for r in responses)
    assert statuses.count(200) == 1, [body_of(r) for r in responses]
    assert {error_of(r).code for r in responses if r["statusCode"] != 200} <= {
        "upload_in_use", "upload_used", "upload_not_found"}
    assert books.balance(acct) == START - 2_100_000 and len(voices_of(ddb, cfg, acct)) == 1
    assert_books_balance(books, ddb, cfg, acct)


def test_the_reconciler_gives_a_crashed_clones_upload_back(configure, minimax, load_handler, accounts, books,
                                                           cfg, ddb, monkeypatch):
    from kyma.providers.minimax import MiniMaxClient

    configure(HOLD_TIMEOUT_SECONDS=0)
    handler = load_handler("VoiceCloneFunction")
    acct = accounts.create(START).account_id
    upload = create_upload(handler, acct)
    put(cfg, upload, WAV)

    with monkeypatch.context() as crash:
        crash.setattr(MiniMaxClient, "clone_voice", raising(ProcessDied()))
        with pytest.raises(ProcessDied):
            call(handler, clone_json(acct, upload["upload_id"]))
    busy = error_of(call(handler, clone_json(acct, upload["upload_id"])))
    assert (busy.status, busy.code) == (409, "upload_in_use")
    assert load_handler("ReconcilerFunction")({}, context())["released"] == 1
    assert call(handler, clone_json(acct, upload["upload_id"]))["statusCode"] == 200
    assert books.balance(acct) == START - 2_100_000
    assert_books_balance(books, ddb, cfg, acct)


def test_an_idempotent_upload_clone_replays_after_the_object_is_gone(handler, accounts, books, cfg):
    acct = accounts.create(START).account_id
    upload = create_upload(handler, acct)
    put(cfg, upload, WAV)
    headers = {"Content-Type": "application/json", "Idempotency-Key": "upload-clone-1"}
    event = api_event("POST", "/v1/audio/voice-clone", body=json.dumps({"upload_id": upload["upload_id"]}),
                      account_id=acct, headers=headers)
    first, again = call(handler, event), call(handler, event)
    assert first["statusCode"] == again["statusCode"] == 200 and first["body"] == again["body"]
    assert again["headers"]["Idempotent-Replayed"] == "true"
    assert books.balance(acct) == START - 2_100_000
