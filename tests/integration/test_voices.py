"""Voices that last: activation against MiniMax's 7-day deletion, expiry with refund, and the
voices endpoints, on the real handlers with moto and the MiniMax sandbox (issue 11)."""

from __future__ import annotations

import json
import time

import audio_fixtures as fx
import pytest
from helpers import START, SYSTEM_VOICE, api_event, body_of, clone_event, context, error_of

from kyma.platform.dynamo import from_item, to_item

MP3 = fx.mp3_cbr(12.0)
CLONE = 2_100_000


@pytest.fixture
def fns(minimax, load_handler):
    return {name: load_handler(fid) for name, fid in (
        ("clone", "VoiceCloneFunction"), ("speech", "SpeechFunction"), ("voices", "VoicesFunction"),
        ("activation", "VoiceActivationFunction"))}


def clone(fns, acct, name="narrator") -> str:
    response = fns["clone"](clone_event(acct, MP3, name=name), context())
    assert response["statusCode"] == 200, response
    return body_of(response)["voice_id"]


def row(ddb, cfg, voice_id) -> dict:
    return from_item(ddb.get_item(TableName=cfg.voices_table, Key=to_item({"voice_id": voice_id}),
                                  ConsistentRead=True)["Item"])


def stream_event(ddb, cfg, voice_id) -> dict:
    """What the Voices table's stream delivers for the new row (the event source mapping's batch)."""
    item = ddb.get_item(TableName=cfg.voices_table, Key=to_item({"voice_id": voice_id}))["Item"]
    return {"Records": [{"eventID": "1", "eventName": "INSERT", "eventSource": "aws:dynamodb",
                         "eventVersion": "1.1", "awsRegion": "us-east-1",
                         "dynamodb": {"Keys": {"voice_id": item["voice_id"]}, "NewImage": item,
                                      "SequenceNumber": "100", "StreamViewType": "NEW_IMAGE"},
                         "eventSourceARN": "arn:aws:dynamodb:us-east-1:123456789012:table/v/stream/x"}]}


def sweep_event() -> dict:
    return {"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}}


def speak(fns, acct, voice_id, text="Hello from my own voice."):
    return fns["speech"](api_event("POST", "/v1/audio/speech", account_id=acct,
                                   body=json.dumps({"input": text, "voice": voice_id}),
                                   headers={"Content-Type": "application/json"}), context())


def get(fns, acct, path, query=""):
    resource = "/v1/audio/voices/{voice_id}" if path.count("/") == 4 else "/v1/audio/voices"
    params = {"voice_id": path.rsplit("/", 1)[1]} if resource.endswith("}") else None
    event = api_event("GET", path, resource=resource, account_id=acct, query=query)
    event["pathParameters"] = params
    return fns["voices"](event, context())


def delete(fns, acct, voice_id):
    event = api_event("DELETE", f"/v1/audio/voices/{voice_id}", resource="/v1/audio/voices/{voice_id}",
                      account_id=acct)
    event["pathParameters"] = {"voice_id": voice_id}
    return fns["voices"](event, context())


# ── activation ───────────────────────────────────────────────────────────
def test_a_new_voice_is_activated_upstream_at_our_cost(fns, accounts, books, ddb, cfg, minimax, metrics_seen):
    acct = accounts.create(START).account_id
    voice = clone(fns, acct)
    assert row(ddb, cfg, voice)["status"] == "activating"
    assert minimax.calls_to("/v1/t2a_v2") == []             # the clone request itself makes no synthesis
    # When the stream delivers the new row
    result = fns["activation"](stream_event(ddb, cfg, voice), context("VoiceActivationFunction", 120))
    # Then one real synthesis upstream used the voice, and the voice is active
    assert result == {"batchItemFailures": []}
    (call,) = minimax.calls_to("/v1/t2a_v2")
    assert call.json["voice_setting"]["voice_id"] == voice and call.json["stream"] is False
    voice_row = row(ddb, cfg, voice)
    assert voice_row["status"] == "active" and voice_row["activated_at"] >= voice_row["created_at"]
    assert "activating" not in voice_row
    # And the customer paid the clone only: no entry, no charge for the activation
    assert books.balance(acct) == START - CLONE
    assert [e["type"] for e in books.entries(acct)] == ["topup", "hold"]
    assert metrics_seen.get("VoicesActivated") == 1


def test_activation_is_idempotent_and_ignores_voices_no_longer_activating(fns, accounts, ddb, cfg, minimax):
    acct = accounts.create(START).account_id
    voice = clone(fns, acct)
    event = stream_event(ddb, cfg, voice)
    fns["activation"](event, context("VoiceActivationFunction", 120))
    assert fns["activation"](event, context("VoiceActivationFunction", 120)) == {"batchItemFailures": []}
    assert len(minimax.calls_to("/v1/t2a_v2")) == 1          # a redelivered record does not synthesize again


def test_a_failed_activation_fails_only_its_record_and_is_recorded(fns, accounts, ddb, cfg, minimax, metrics_seen):
    acct = accounts.create(START).account_id
    ok, failing = clone(fns, acct, "ok"), clone(fns, acct, "failing")
    minimax.fail_when("/v1/t2a_v2", 1000, match=failing, times=None)      # MiniMax fails this voice only
    batch = stream_event(ddb, cfg, ok)
    batch["Records"] += stream_event(ddb, cfg, failing)["Records"]
    batch["Records"][1]["dynamodb"]["SequenceNumber"] = "200"
    result = fns["activation"](batch, context("VoiceActivationFunction", 120))
    assert result == {"batchItemFailures": [{"itemIdentifier": "200"}]}   # the stream retries that one alone
    assert row(ddb, cfg, ok)["status"] == "active"
    failed = row(ddb, cfg, failing)
    assert failed["status"] == "activating" and failed["activation_attempts"] == 1
    assert "1000" in failed["last_activation_error"]
    assert metrics_seen.get("VoiceActivationFailures") == 1
    # A batch whose every record fails is retried whole by the event source (Powertools raises)
    from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError

    with pytest.raises(BatchProcessingError):
        fns["activation"](stream_event(ddb, cfg, failing), context("VoiceActivationFunction", 120))


def test_a_customers_synthesis_activates_a_voice_still_activating(fns, accounts, books, ddb, cfg, minimax):
    acct = accounts.create(START).account_id
    voice = clone(fns, acct)
    response = speak(fns, acct, voice)
    assert response["statusCode"] == 200
    assert row(ddb, cfg, voice)["status"] == "active"
    assert books.audit(acct)["consistent"]
    # A second synthesis on the now active voice reserves once (the active check) and works
    assert speak(fns, acct, voice)["statusCode"] == 200


# ── expiry ───────────────────────────────────────────────────────────────
def test_a_voice_lost_before_activation_is_410_free_and_refunded_once(fns, accounts, books, ddb, cfg, minimax,
                                                                       metrics_seen):
    acct = accounts.create(START).account_id
    voice = clone(fns, acct)
    minimax.advance_clock(8 * 86_400)                        # MiniMax's 7-day rule deletes the unused clone
    error = error_of(speak(fns, acct, voice))
    assert (error.status, error.code) == (410, "voice_expired") and "refunded" in error.message
    assert row(ddb, cfg, voice)["status"] == "expired"
    refunds = [e for e in books.entries(acct) if e["type"] == "refund"]
    assert [(e["amount_micros"], e["voice_id"]) for e in refunds] == [(CLONE, voice)]
    assert books.balance(acct) == START                      # the clone's $2.10 is back; the speech was free
    assert books.audit(acct)["consistent"] and books.audit(acct)["refunds"] == CLONE
    # Speech again: refused at the reserve, before MiniMax, and never refunded twice
    upstream = len(minimax.calls_to("/v1/t2a_v2"))
    error = error_of(speak(fns, acct, voice))
    assert (error.status, error.code) == (410, "voice_expired")
    assert len(minimax.calls_to("/v1/t2a_v2")) == upstream and books.balance(acct) == START
    assert metrics_seen.get("VoicesRefunded") == 1


def test_an_active_voice_lost_upstream_expires_without_refund(fns, accounts, books, ddb, cfg, minimax):
    acct = accounts.create(START).account_id
    voice = clone(fns, acct)
    fns["activation"](stream_event(ddb, cfg, voice), context("VoiceActivationFunction", 120))
    minimax.fail_when("/v1/t2a_v2", 20132, times=1)
    error = error_of(speak(fns, acct, voice))
    assert (error.status, error.code) == (410, "voice_expired")
    assert row(ddb, cfg, voice)["status"] == "expired"
    assert books.balance(acct) == START - CLONE and books.audit(acct)["refunds"] == 0


def test_the_sweep_retries_alarms_and_expires_with_refund_once_minimax_has_lost_the_voice(
        configure, minimax, load_handler, accounts, books, ddb, cfg, metrics_seen):
    from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError

    configure(VOICE_ACTIVATION_ALARM_SECONDS=60, VOICE_SWEEP_MIN_AGE_SECONDS=0, VOICE_SWEEP_PACE_SECONDS=0)
    fns = {"clone": load_handler("VoiceCloneFunction"), "speech": load_handler("SpeechFunction"),
           "activation": load_handler("VoiceActivationFunction")}
    acct = accounts.create(START).account_id
    voice = clone(fns, acct)
    minimax.fail_when("/v1/t2a_v2", 1000, match="Hello.", times=None)    # every activation attempt fails
    # The stream's attempt fails (the whole one-record batch: the event source retries it)
    with pytest.raises(BatchProcessingError):
        fns["activation"](stream_event(ddb, cfg, voice), context("VoiceActivationFunction", 120))
    # Two minutes on: the sweep retries it, fails, and reports it stuck past the alarm threshold
    ddb.update_item(TableName=cfg.voices_table, Key=to_item({"voice_id": voice}),
                    UpdateExpression="SET created_at = :t",
                    ExpressionAttributeValues={":t": {"N": str(int(time.time()) - 120)}})
    swept = fns["activation"](sweep_event(), context("VoiceActivationFunction", 120))
    assert (swept["failed"], swept["stuck"]) == (1, 1)
    assert metrics_seen["VoicesActivatingOverOneDay"] >= 1
    assert row(ddb, cfg, voice)["activation_attempts"] >= 2
    # Eight days on MiniMax has deleted the unused clone: the sweep hears 20132, the voice expires
    # and the clone's price comes back, once
    minimax.advance_clock(8 * 86_400)
    minimax.clear_failures()
    swept = fns["activation"](sweep_event(), context("VoiceActivationFunction", 120))
    assert swept["expired"] == 1 and row(ddb, cfg, voice)["status"] == "expired"
    assert books.balance(acct) == START and books.audit(acct)["consistent"]
    assert fns["activation"](sweep_event(), context("VoiceActivationFunction", 120))["expired"] == 0
    # And speech with it is 410, free, before any upstream call
    upstream = len(minimax.calls_to("/v1/t2a_v2"))
    error = error_of(speak(fns, acct, voice))
    assert (error.status, error.code) == (410, "voice_expired")
    assert len(minimax.calls_to("/v1/t2a_v2")) == upstream and books.balance(acct) == START


def test_age_alone_never_expires_a_voice_a_customer_used_and_paid_for(
        configure, minimax, load_handler, accounts, books, ddb, cfg, monkeypatch):
    """The customer's own synthesis is charged without waiting for the activation; if marking the
    voice active then fails, the voice must still never be refunded: only MiniMax's answer
    expires a voice, and MiniMax keeps one that was used."""
    from kyma.voices.store import Voices

    configure(VOICE_SWEEP_MIN_AGE_SECONDS=0, VOICE_SWEEP_PACE_SECONDS=0)
    fns = {"clone": load_handler("VoiceCloneFunction"), "speech": load_handler("SpeechFunction"),
           "activation": load_handler("VoiceActivationFunction")}
    acct = accounts.create(START).account_id
    voice = clone(fns, acct)
    monkeypatch.setattr(Voices, "mark_active", lambda self, voice_id, now, **kwargs: False)   # e.g. lost to a race
    text = "Paid for and delivered."
    assert speak(fns, acct, voice, text)["statusCode"] == 200
    assert row(ddb, cfg, voice)["status"] == "activating"
    ddb.update_item(TableName=cfg.voices_table, Key=to_item({"voice_id": voice}),      # born 8 days ago
                    UpdateExpression="SET created_at = :t",
                    ExpressionAttributeValues={":t": {"N": str(int(time.time()) - 8 * 86_400)}})
    minimax.advance_clock(8 * 86_400)
    swept = fns["activation"](sweep_event(), context("VoiceActivationFunction", 120))
    assert swept["expired"] == 0 and row(ddb, cfg, voice)["status"] == "activating"
    assert books.audit(acct)["refunds"] == 0
    assert books.balance(acct) == START - CLONE - len(text) * 100
    monkeypatch.undo()
    assert fns["activation"](sweep_event(), context("VoiceActivationFunction", 120))["activated"] == 1
    assert row(ddb, cfg, voice)["status"] == "active" and books.audit(acct)["refunds"] == 0


def test_a_voice_used_in_a_paid_request_is_never_refunded_even_if_marking_it_active_failed(
        fns, accounts, books, ddb, cfg, minimax, monkeypatch):
    """The use is recorded with the charge (one transaction); the activation after it is best
    effort.  So MiniMax losing the voice later expires it, and the clone's price stays charged."""
    from kyma.voices.store import Voices

    acct = accounts.create(START).account_id
    voice = clone(fns, acct)

    def throttled(self, voice_id, now, **kwargs):
        raise RuntimeError("ProvisionedThroughputExceededException")      # or a crash right after the settle

    monkeypatch.setattr(Voices, "mark_active", throttled)
    text = "Paid for and delivered."
    assert speak(fns, acct, voice, text)["statusCode"] == 200
    monkeypatch.undo()
    used = row(ddb, cfg, voice)
    assert used["status"] == "activating" and "used_at" in used
    minimax.fail_when("/v1/t2a_v2", 20132, times=1)                 # later MiniMax has lost it anyway
    error = error_of(speak(fns, acct, voice))
    assert (error.status, error.code) == (410, "voice_expired") and "refunded" not in error.message
    assert row(ddb, cfg, voice)["status"] == "expired"
    assert books.audit(acct)["refunds"] == 0 and books.audit(acct)["consistent"]
    assert books.balance(acct) == START - CLONE - len(text) * 100


def test_an_activated_voice_outlives_the_sandbox_window(fns, accounts, books, ddb, cfg, minimax):
    acct = accounts.create(START).account_id
    voice = clone(fns, acct)
    fns["activation"](stream_event(ddb, cfg, voice), context("VoiceActivationFunction", 120))
    minimax.advance_clock(30 * 86_400)                       # a month later
    assert speak(fns, acct, voice)["statusCode"] == 200      # "reusable in unlimited TTS calls"


# ── the endpoints ────────────────────────────────────────────────────────
def test_list_pages_own_voices_newest_first_then_the_system_catalog(fns, accounts, minimax):
    acct = accounts.create(START * 2).account_id
    ids = []
    for n in range(3):
        ids.append(clone(fns, acct, name=f"v{n}"))
        time.sleep(1.05)                                     # created_at has second resolution
    first = body_of(get(fns, acct, "/v1/audio/voices", "limit=2"))
    assert [v["voice_id"] for v in first["voices"]] == ids[::-1][:2] and first["next_cursor"]
    assert {v["status"] for v in first["voices"]} <= {"activating", "active"}
    second = body_of(get(fns, acct, "/v1/audio/voices", f"limit=2&cursor={first['next_cursor']}"))
    assert second["voices"][0]["voice_id"] == ids[0] and second["voices"][1]["type"] == "system"
    cloned = body_of(get(fns, acct, "/v1/audio/voices", "type=cloned&limit=100"))
    assert [v["voice_id"] for v in cloned["voices"]] == ids[::-1] and cloned["next_cursor"] is None
    system = body_of(get(fns, acct, "/v1/audio/voices", "type=system&limit=100"))
    ids_system = [v["voice_id"] for v in system["voices"]]
    assert SYSTEM_VOICE in ids_system and all(v["type"] == "system" for v in system["voices"])
    assert any("（" in v or " " in v for v in ids_system)  # ids with full-width parentheses or spaces


def test_the_catalog_is_fetched_once_not_per_request(fns, accounts, minimax):
    acct = accounts.create(START).account_id
    for _ in range(3):
        assert get(fns, acct, "/v1/audio/voices", "type=system")["statusCode"] == 200
    assert len(minimax.calls_to("/v1/get_voice")) == 1


@pytest.mark.parametrize("query", ["type=mine", "limit=0", "limit=101", "limit=x", "cursor=%%%", "limit=%C2%B2",
                                   "cursor=eyJ0eXBlIjoiYWxsIn0", "type=cloned&cursor=eyJ0eXBlIjoiYWxsIn0"])
def test_bad_list_parameters_are_400(fns, accounts, query):
    acct = accounts.create(START).account_id
    error = error_of(get(fns, acct, "/v1/audio/voices", query))
    assert (error.status, error.code) == (400, "invalid_request")


def test_another_accounts_voice_is_invisible_and_undeletable(fns, accounts, minimax):
    a, b = accounts.create(START).account_id, accounts.create(START).account_id
    voice = clone(fns, a)
    assert error_of(get(fns, b, f"/v1/audio/voices/{voice}")).code == "voice_not_found"
    assert error_of(delete(fns, b, voice)).code == "voice_not_found"
    listed = body_of(get(fns, b, "/v1/audio/voices", "type=cloned"))
    assert listed["voices"] == []
    assert body_of(get(fns, a, f"/v1/audio/voices/{voice}"))["voice_id"] == voice
    assert minimax.calls_to("/v1/delete_voice") == []


def test_delete_removes_upstream_then_everywhere_here(fns, accounts, books, ddb, cfg, minimax):
    acct = accounts.create(START).account_id
    voice = clone(fns, acct)
    response = delete(fns, acct, voice)
    assert response["statusCode"] == 200 and body_of(response) == {"voice_id": voice, "deleted": True}
    (call,) = minimax.calls_to("/v1/delete_voice")
    assert call.json == {"voice_type": "voice_cloning", "voice_id": voice}
    assert row(ddb, cfg, voice)["status"] == "deleted"                 # a tombstone: the id is never reused
    assert error_of(get(fns, acct, f"/v1/audio/voices/{voice}")).code == "voice_not_found"
    assert error_of(speak(fns, acct, voice)).code == "voice_not_found"
    assert error_of(delete(fns, acct, voice)).status == 404
    assert body_of(get(fns, acct, "/v1/audio/voices", "type=cloned"))["voices"] == []
    assert books.balance(acct) == START - CLONE                        # no refund on deletion


def test_deleting_a_system_voice_is_400_and_getting_one_works(fns, accounts, minimax):
    acct = accounts.create(START).account_id
    assert error_of(delete(fns, acct, SYSTEM_VOICE)).status == 400
    voice = body_of(get(fns, acct, f"/v1/audio/voices/{SYSTEM_VOICE}"))
    assert voice["voice_id"] == SYSTEM_VOICE and voice["type"] == "system" and voice["created_at"] is None
    assert error_of(get(fns, acct, "/v1/audio/voices/Nobody_here")).code == "voice_not_found"


def test_an_activation_racing_a_deletion_never_refunds(fns, accounts, books, ddb, cfg, minimax, monkeypatch):
    from kyma.providers.minimax import MiniMaxClient

    acct = accounts.create(START).account_id
    voice = clone(fns, acct)
    event = stream_event(ddb, cfg, voice)
    real_delete = MiniMaxClient.delete_voice

    def delete_then_the_stream_arrives(self, voice_id, *, deadline, **kwargs):
        deleted = real_delete(self, voice_id, deadline=deadline, **kwargs)
        # The stream's activation runs between the upstream deletion and the tombstone: MiniMax
        # answers 20132 for the voice, and nothing may be refunded for a voice its owner deleted.
        fns["activation"](event, context("VoiceActivationFunction", 120))
        return deleted

    monkeypatch.setattr(MiniMaxClient, "delete_voice", delete_then_the_stream_arrives)
    assert delete(fns, acct, voice)["statusCode"] == 200
    assert row(ddb, cfg, voice)["status"] == "deleted"
    assert books.balance(acct) == START - CLONE and books.audit(acct)["refunds"] == 0


@pytest.mark.parametrize("failure", [
    {"mode": 1004},                                   # MiniMax refuses (our account's problem upstream)
    {"mode": "lost_answer", "then": "http_500"},      # MiniMax deletes it, the answer is lost, retries fail
], ids=["refused", "answer_lost"])
def test_a_deletion_minimax_does_not_confirm_is_final_here_and_finished_by_the_sweep(
        configure, minimax, load_handler, accounts, books, ddb, cfg, metrics_seen, failure):
    configure(VOICE_SWEEP_MIN_AGE_SECONDS=0, VOICE_SWEEP_PACE_SECONDS=0, VOICE_ACTIVATION_ALARM_SECONDS=60)
    fns = {name: load_handler(fid) for name, fid in (
        ("clone", "VoiceCloneFunction"), ("speech", "SpeechFunction"), ("voices", "VoicesFunction"),
        ("activation", "VoiceActivationFunction"))}
    acct = accounts.create(START).account_id
    voice = clone(fns, acct)
    event = stream_event(ddb, cfg, voice)                   # its activation is still to come
    if "then" in failure:
        minimax.fail_next("/v1/delete_voice", failure["mode"])
        minimax.fail_when("/v1/delete_voice", failure["then"], times=None)
    else:
        minimax.fail_when("/v1/delete_voice", failure["mode"], times=None)
    response = delete(fns, acct, voice)
    assert response["statusCode"] == 200 and body_of(response) == {"voice_id": voice, "deleted": True}
    assert row(ddb, cfg, voice)["status"] == "deleting"      # MiniMax did not confirm: nothing is undone
    # Gone for its owner at once, and never refunded, whatever MiniMax did
    assert error_of(get(fns, acct, f"/v1/audio/voices/{voice}")).code == "voice_not_found"
    assert body_of(get(fns, acct, "/v1/audio/voices", "type=cloned"))["voices"] == []
    assert error_of(speak(fns, acct, voice)).code == "voice_not_found"
    assert error_of(delete(fns, acct, voice)).status == 404
    fns["activation"](event, context("VoiceActivationFunction", 120))       # the stream's activation: skipped
    assert books.audit(acct)["refunds"] == 0
    # A day on, still unconfirmed: the sweep retries and raises the alarm
    ddb.update_item(TableName=cfg.voices_table, Key=to_item({"voice_id": voice}),
                    UpdateExpression="SET deleting_since = :t",
                    ExpressionAttributeValues={":t": {"N": str(int(time.time()) - 120)}})
    swept = fns["activation"](sweep_event(), context("VoiceActivationFunction", 120))
    assert (swept["deleted"], swept["failed"], swept["deletes_pending"]) == (0, 1, 1)
    assert metrics_seen["VoiceDeletesPendingOverOneDay"] == 1
    # MiniMax recovers: the sweep finishes the deletion (the voice there, or already gone)
    minimax.clear_failures()
    swept = fns["activation"](sweep_event(), context("VoiceActivationFunction", 120))
    assert (swept["deleted"], swept["deletes_pending"]) == (1, 0)
    assert row(ddb, cfg, voice)["status"] == "deleted" and "delete_pending" not in row(ddb, cfg, voice)
    assert voice not in minimax.voices
    assert books.balance(acct) == START - CLONE and books.audit(acct)["consistent"]


@pytest.mark.parametrize("voice_id", ["kyma_" + "a" * 3000, "kyma_0123", "KYMA_ZZZZZZZZZZZZZZZZ"])
def test_a_cloned_voice_id_that_could_never_have_been_issued_is_404_without_a_lookup(fns, accounts, minimax,
                                                                                     voice_id):
    acct = accounts.create(START).account_id
    assert error_of(get(fns, acct, f"/v1/audio/voices/{voice_id}")).code == "voice_not_found"
    assert error_of(delete(fns, acct, voice_id)).code == "voice_not_found"
    assert minimax.calls_to("/v1/delete_voice") == []


@pytest.mark.parametrize("stream_format", ["audio", "sse"])
def test_a_voice_deleted_while_its_first_synthesis_streams_does_not_make_the_audio_free(
        fns, accounts, books, ddb, cfg, minimax, monkeypatch, stream_format):
    """The synthesis activates a voice still activating, but only after the charge: the owner
    deleting the voice mid-stream cannot turn delivered audio into a release."""
    from helpers import sse_events

    from kyma.edge.web_app import Output

    acct = accounts.create(START).account_id
    voice = clone(fns, acct)
    real_write, deleted = Output.write, []

    def write_then_delete(self, data):
        real_write(self, data)
        if not deleted:
            deleted.append(delete(fns, acct, voice)["statusCode"])      # the owner deletes it mid-stream

    monkeypatch.setattr(Output, "write", write_then_delete)
    text = "Every byte of this is paid for. " * 4
    response = fns["speech"](api_event("POST", "/v1/audio/speech", account_id=acct,
                                       body=json.dumps({"input": text, "voice": voice,
                                                        "stream_format": stream_format}),
                                       headers={"Content-Type": "application/json"}), context())
    assert deleted == [200] and response["statusCode"] == 200 and response["complete"]
    if stream_format == "sse":
        assert sse_events(response)[-1]["type"] == "speech.audio.done"
    assert [e["status"] for e in books.entries(acct) if e["type"] == "hold"] == ["charged", "charged"]
    assert books.balance(acct) == START - CLONE - len(text) * 100
    assert row(ddb, cfg, voice)["status"] == "deleted" and books.audit(acct)["consistent"]
