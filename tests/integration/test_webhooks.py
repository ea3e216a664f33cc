"""Webhooks on the real handlers with moto (issue 22): endpoints and their limits, events recorded
with their facts, the outbox stream → dispatcher → delivery queue → receiver on loopback, retries
with the same webhook-id, SSRF refusals at registration and at delivery (DNS rebinding), rotation,
disabling, and a crash between the fact and the delivery."""

from __future__ import annotations

import json
import socket
import time

import audio_fixtures as fx
import boto3
import pytest
from helpers import api_event, body_of, clone_event, context, error_of
from standardwebhooks.webhooks import Webhook
from webhook_receiver import Receiver

from kyma.platform.dynamo import from_item, to_item

START = 50_000_000
ITEM = "/v1/webhooks/{webhook_id}"


@pytest.fixture
def env(configure):
    # Retries a second apart (the schedule itself is checked below); loopback receivers allowed
    # only where a test says so.
    configure(WEBHOOK_RETRY_DELAYS="1,1,1,1,1,1,1")
    return configure


@pytest.fixture
def fns(request, env, load_handler):
    if "loopback" in request.fixturenames:           # before INIT reads the configuration
        env(WEBHOOKS_ALLOW_LOOPBACK="true")
    return {name: load_handler(fid) for name, fid in (
        ("api", "WebhooksFunction"), ("dispatch", "WebhookDispatchFunction"), ("deliver", "WebhookDeliveryFunction"))}


@pytest.fixture
def loopback(configure):
    configure(WEBHOOKS_ALLOW_LOOPBACK="true", WEBHOOK_RETRY_DELAYS="1,1,1,1,1,1,1")


class Pipeline:
    """The outbox's stream and the delivery queue, run as their event source mappings would."""

    def __init__(self, cfg, fns) -> None:
        self.cfg, self.fns = cfg, fns
        self.ddb, self.sqs = boto3.client("dynamodb"), boto3.client("sqs")
        self.seen: set[str] = set()

    def stream_batch(self) -> list[dict]:
        """The INSERT records the outbox's stream holds, as the event source mapping hands them over
        (moto serves the Streams API only in its server: tests/integration/test_triggers.py and the
        e2e tier run the real stream; here each new outbox row is its record)."""
        rows = self.ddb.scan(TableName=self.cfg.webhook_events_table, ConsistentRead=True)["Items"]
        return [{"eventID": row["event_id"]["S"], "eventName": "INSERT", "eventSource": "aws:dynamodb",
                 "eventVersion": "1.1", "awsRegion": "us-east-1",
                 "dynamodb": {"Keys": {"event_id": row["event_id"]}, "NewImage": row,
                              "SequenceNumber": row["event_id"]["S"], "StreamViewType": "NEW_IMAGE"},
                 "eventSourceARN": "arn:aws:dynamodb:us-east-1:123456789012:table/e/stream/x"}
                for row in rows if row["event_id"]["S"] not in self.seen]

    def dispatch(self) -> dict:
        batch = self.stream_batch()
        if not batch:
            return {"batchItemFailures": []}
        result = self.fns["dispatch"]({"Records": batch}, context("WebhookDispatchFunction", 60))
        failed = {f["itemIdentifier"] for f in result["batchItemFailures"]}
        self.seen |= {r["dynamodb"]["SequenceNumber"] for r in batch} - failed
        return result

    def deliver(self, *, wait: float = 0.0) -> int:
        """Deliver what the queue holds now (waiting up to `wait` s for delayed messages)."""
        deadline, done = time.monotonic() + wait, 0
        while True:
            got = self.sqs.receive_message(QueueUrl=self.cfg.webhook_queue_url, MaxNumberOfMessages=10,
                                           AttributeNames=["All"]).get("Messages", [])
            if got:
                records = [{"messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"],
                            "attributes": m.get("Attributes", {}), "messageAttributes": {}, "md5OfBody": "",
                            "eventSource": "aws:sqs", "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:q",
                            "awsRegion": "us-east-1"} for m in got]
                result = self.fns["deliver"]({"Records": records}, context("WebhookDeliveryFunction", 120))
                failed = {f["itemIdentifier"] for f in result["batchItemFailures"]}
                for m in got:
                    if m["MessageId"] not in failed:
                        self.sqs.delete_message(QueueUrl=self.cfg.webhook_queue_url, ReceiptHandle=m["ReceiptHandle"])
                done += len(got)
                continue
            if time.monotonic() >= deadline:
                return done
            time.sleep(0.2)

    def run(self, *, wait: float = 0.0) -> None:
        self.dispatch()
        self.deliver(wait=wait)


@pytest.fixture
def pipe(cfg, fns):
    return Pipeline(cfg, fns)


def call(fns, method, path, acct, body=None, query=""):
    parts = path.split("/")
    resource = path if len(parts) == 3 else ITEM + ("/" + parts[4] if len(parts) > 4 else "")
    params = {"webhook_id": parts[3]} if len(parts) > 3 else None
    event = api_event(method, path, resource=resource, account_id=acct, query=query,
                      body=json.dumps(body) if body is not None else b"",
                      headers={"Content-Type": "application/json"} if body is not None else None)
    event["pathParameters"] = params
    return fns["api"](event, context("WebhooksFunction"))


def create(fns, acct, url, **extra):
    response = call(fns, "POST", "/v1/webhooks", acct, {"url": url, **extra})
    assert response["statusCode"] == 201, response
    return body_of(response)


def deliveries(fns, acct, webhook_id):
    response = call(fns, "GET", f"/v1/webhooks/{webhook_id}/deliveries", acct)
    assert response["statusCode"] == 200, response
    return body_of(response)["deliveries"]


@pytest.fixture
def dns(monkeypatch):
    """Names resolved as the test says (numeric hosts go to the real resolver): DNS that can change."""
    table: dict[str, list[str]] = {}
    real = socket.getaddrinfo

    def getaddrinfo(host, port, *args, **kwargs):
        if host in table:
            return [(socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port))
                    for a in table[host]]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return table


@pytest.fixture
def no_connections(monkeypatch):
    """Every outbound connection attempt, recorded (and refused)."""
    attempts: list = []

    def create_connection(address, *args, **kwargs):
        attempts.append(address)
        raise ConnectionRefusedError("test: no connection may be made")

    monkeypatch.setattr(socket, "create_connection", create_connection)
    return attempts


# ── endpoints ───────────────────────────────────────────────────────────
def test_create_shows_the_secret_once_stores_only_ciphertext_and_list_and_get_never_show_it(
        fns, accounts, ddb, cfg, dns, capsys):
    dns["hooks.example.com"] = ["93.184.216.34"]
    acct = accounts.create(START).account_id
    made = create(fns, acct, "https://hooks.example.com/kyma", events=["voice.expired"], description="prod")
    assert made["webhook_id"].startswith("wh_") and made["secret"].startswith("whsec_")
    assert made["events"] == ["voice.expired"] and made["status"] == "enabled"
    listed = body_of(call(fns, "GET", "/v1/webhooks", acct))["webhooks"]
    got = body_of(call(fns, "GET", f"/v1/webhooks/{made['webhook_id']}", acct))
    assert [w["webhook_id"] for w in listed] == [made["webhook_id"]]
    assert "secret" not in listed[0] and "secret" not in got and got["description"] == "prod"
    item = ddb.get_item(TableName=cfg.webhooks_table, Key=to_item({"pk": acct, "sk": made["webhook_id"]}))["Item"]
    raw = json.dumps(item, default=str)
    assert made["secret"] not in raw and made["secret"][6:] not in raw      # ciphertext only
    assert made["secret"] not in capsys.readouterr().out                    # and never in a log line


def test_another_accounts_endpoint_is_404_on_every_route(fns, accounts, dns):
    dns["hooks.example.com"] = ["93.184.216.34"]
    mine, theirs = accounts.create(START).account_id, accounts.create(START).account_id
    webhook_id = create(fns, mine, "https://hooks.example.com/kyma")["webhook_id"]
    for method, suffix in (("GET", ""), ("DELETE", ""), ("POST", "/rotate-secret"), ("GET", "/deliveries"),
                           ("POST", "/test")):
        error = error_of(call(fns, method, f"/v1/webhooks/{webhook_id}{suffix}", theirs))
        assert (error.status, error.code) == (404, "not_found"), (method, suffix)
    assert body_of(call(fns, "GET", "/v1/webhooks", theirs))["webhooks"] == []
    assert call(fns, "GET", f"/v1/webhooks/{webhook_id}", mine)["statusCode"] == 200


def test_at_most_ten_endpoints_per_account_and_a_deleted_one_frees_its_place(fns, accounts, dns):
    dns["hooks.example.com"] = ["93.184.216.34"]
    acct = accounts.create(START).account_id
    ids = [create(fns, acct, f"https://hooks.example.com/{i}")["webhook_id"] for i in range(10)]
    error = error_of(call(fns, "POST", "/v1/webhooks", acct, {"url": "https://hooks.example.com/11"}))
    assert (error.status, error.code) == (400, "invalid_request") and "At most 10" in error.message
    deleted = call(fns, "DELETE", f"/v1/webhooks/{ids[0]}", acct)
    assert body_of(deleted) == {"webhook_id": ids[0], "deleted": True}
    assert error_of(call(fns, "DELETE", f"/v1/webhooks/{ids[0]}", acct)).status == 404
    create(fns, acct, "https://hooks.example.com/11")
    assert len(body_of(call(fns, "GET", "/v1/webhooks", acct))["webhooks"]) == 10


@pytest.mark.parametrize("body", [
    {}, {"url": 5}, {"url": "https://hooks.example.com/", "events": []},
    {"url": "https://hooks.example.com/", "events": ["speech.job.exploded"]},
    {"url": "https://hooks.example.com/", "events": ["*", "voice.active"]},
    {"url": "https://hooks.example.com/", "description": "x" * 501},
    {"url": "https://hooks.example.com/", "secret": "whsec_mine"},
])
def test_bad_create_bodies_are_400_invalid_request(fns, accounts, dns, body):
    dns["hooks.example.com"] = ["93.184.216.34"]
    error = error_of(call(fns, "POST", "/v1/webhooks", accounts.create(START).account_id, body))
    assert (error.status, error.code) == (400, "invalid_request")


# The address forms refused at registration and at delivery (issue 22's "at least 15").
HOSTILE = [
    ("https://127.0.0.1/", None), ("https://localhost/", ["127.0.0.1"]), ("https://[::1]/", None),
    ("https://10.0.0.8/", None), ("https://172.16.0.1/", None), ("https://192.168.0.10/", None),
    ("https://169.254.169.254/latest/meta-data/", None), ("https://2852039166/", None),
    ("https://0xA9FEA9FE/", None), ("https://0251.0376.0251.0376/", None), ("https://169.254.43518/", None),
    ("https://[::ffff:169.254.169.254]/", None), ("https://100.64.0.1/", None), ("https://[fd00::1]/", None),
    ("https://[fe80::1]/", None), ("https://0.0.0.0/", None), ("https://017700000001/", None),
    ("https://metadata.internal.example/", ["169.254.169.254"]), ("https://cgnat.example/", ["100.100.1.1"]),
    ("https://v6private.example/", ["fc00::5"]), ("https://mapped.example/", ["::ffff:10.0.0.1"]),
    ("https://mixed.example/", ["93.184.216.34", "192.168.1.1"]), ("http://hooks.example.com/", ["93.184.216.34"]),
]


@pytest.mark.parametrize(("url", "addresses"), HOSTILE)
def test_registration_refuses_every_non_public_form_without_connecting(fns, accounts, dns, no_connections,
                                                                      url, addresses):
    host = url.split("/")[2].strip("[]")
    if addresses:
        dns[host] = addresses
    error = error_of(call(fns, "POST", "/v1/webhooks", accounts.create(START).account_id, {"url": url}))
    assert (error.status, error.code) == (400, "invalid_request") and "url refused" in error.message
    assert no_connections == []


def test_the_template_never_allows_loopback_receivers():
    from kyma.platform.config import Config
    from kyma_local.template import Template

    assert "WEBHOOKS_ALLOW_LOOPBACK" not in Template().environment()
    assert Config.from_env({}).webhooks_allow_loopback is False


# ── delivery ─────────────────────────────────────────────────────────────
def test_a_test_event_arrives_signed_and_the_standardwebhooks_library_verifies_it(fns, pipe, accounts, loopback):
    acct = accounts.create(START).account_id
    with Receiver() as receiver:
        made = create(fns, acct, receiver.url)
        queued = call(fns, "POST", f"/v1/webhooks/{made['webhook_id']}/test", acct)
        assert queued["statusCode"] == 202
        event_id = body_of(queued)["event_id"]
        pipe.run()
        (got,) = receiver.wait_for(1)
    payload = Webhook(made["secret"]).verify(got.body, got.headers)
    assert payload["type"] == "webhook.test" and payload["data"] == {}
    assert got.headers["webhook-id"] == event_id and got.path == "/hooks/kyma"
    assert abs(int(got.headers["webhook-timestamp"]) - time.time()) < 30
    with pytest.raises(Exception, match="signature"):
        Webhook("whsec_" + "QUFB" * 8).verify(got.body, got.headers)       # another secret does not verify


def test_a_receiver_failing_twice_gets_the_same_webhook_id_three_times_and_deliveries_shows_them(
        fns, pipe, accounts, loopback):
    acct = accounts.create(START).account_id
    with Receiver([500, 500, 200]) as receiver:
        made = create(fns, acct, receiver.url)
        call(fns, "POST", f"/v1/webhooks/{made['webhook_id']}/test", acct)
        pipe.dispatch()
        pipe.deliver(wait=6)
        got = receiver.wait_for(3)
    assert len(got) == 3 and len({r.headers["webhook-id"] for r in got}) == 1
    assert len({r.body for r in got}) == 1                         # the same bytes every time
    for r in got:
        Webhook(made["secret"]).verify(r.body, r.headers)
    attempts = deliveries(fns, acct, made["webhook_id"])
    assert [(a["attempt"], a["status_code"], a["succeeded"]) for a in attempts] == [
        (3, 200, True), (2, 500, False), (1, 500, False)]
    assert attempts[1]["error"] == "HTTP 500" and attempts[1]["next_retry_at"] and attempts[0]["next_retry_at"] is None
    assert {a["event_id"] for a in attempts} == {got[0].headers["webhook-id"]}


def test_retries_follow_the_contracts_schedule_then_the_event_is_dropped_as_failed(
        accounts, configure, load_handler, cfg, monkeypatch):
    from kyma.platform.config import config
    from kyma.webhooks.delivery import Deliverer
    from kyma.webhooks.endpoints import Endpoints
    from kyma.webhooks.ssrf import Answer

    configure(WEBHOOK_RETRY_DELAYS="")
    cfg = config()
    assert cfg.webhook_retry_delays == (5, 300, 1800, 7200, 18000, 36000, 36000)
    endpoints = Endpoints(boto3.client("dynamodb"), boto3.client("kms"), cfg)
    acct = accounts.create(START).account_id
    monkeypatch.setattr(socket, "getaddrinfo", lambda host, port, *a, **k: [(2, 1, 6, "", ("93.184.216.34", port))])
    made = endpoints.create(acct, "https://hooks.example.com/", ["*"], "")
    sent: list[dict] = []

    class Sqs:
        def send_message(self, QueueUrl, MessageBody, DelaySeconds):  # noqa: N803
            sent.append({**json.loads(MessageBody), "delay": DelaySeconds})

    deliverer = Deliverer(endpoints, Sqs(), cfg, send=lambda *a, **k: Answer(503, b""))
    message = {"event_id": "msg_x", "type": "webhook.test", "account_id": acct, "webhook_id": made["webhook_id"],
               "body": "{}", "attempt": 1, "due": 0}
    outcomes, delays = [], []
    for _ in range(8):
        outcomes.append(deliverer.attempt(message))
        if not sent:
            break
        nxt = sent.pop()
        delays.append(nxt["due"] - int(time.time()))
        assert nxt["delay"] == min(900, nxt["due"] - int(time.time())) or abs(nxt["delay"] - 900) <= 1
        message = {**nxt, "due": 0}
    assert outcomes == ["retrying"] * 7 + ["failed"]
    assert [round(d, -1) if d > 10 else d for d in delays] == [5, 300, 1800, 7200, 18000, 36000, 36000]
    # A message that arrives before its time (SQS delays at most 15 min) is put back, not attempted
    assert deliverer.attempt({**message, "due": int(time.time()) + 7200}) == "waiting"
    assert sent[-1]["delay"] == 900


@pytest.mark.parametrize(("url", "addresses"), [(u, a) for u, a in HOSTILE if not u.startswith("http:")])
def test_dns_rebinding_public_at_registration_private_at_delivery_is_refused_without_connecting(
        fns, pipe, accounts, cfg, dns, url, addresses, monkeypatch):
    # Registered while rebind.example resolves to a public address
    dns["rebind.example"] = ["93.184.216.34"]
    acct = accounts.create(START).account_id
    made = create(fns, acct, "https://rebind.example/hook")
    call(fns, "POST", f"/v1/webhooks/{made['webhook_id']}/test", acct)
    pipe.dispatch()
    # Then the name is pointed at a non-public address (this form's), and the delivery runs
    host = url.split("/")[2].strip("[]")
    dns["rebind.example"] = addresses or [socket.getaddrinfo(host, 443)[0][4][0]]
    connections: list = []
    monkeypatch.setattr(socket, "create_connection", lambda address, *a, **k: connections.append(address))
    pipe.deliver()
    assert connections == []                                        # nothing was connected to
    (attempt,) = deliveries(fns, acct, made["webhook_id"])
    assert attempt["error"].startswith("refused: ") and "non-public" in attempt["error"]
    assert attempt["status_code"] is None and attempt["next_retry_at"]


def test_a_rotated_secret_signs_alongside_the_new_one_for_24_hours(fns, pipe, accounts, loopback, cfg):
    from kyma.services import webhook_services

    acct = accounts.create(START).account_id
    with Receiver() as receiver:
        made = create(fns, acct, receiver.url)
        rotated = body_of(call(fns, "POST", f"/v1/webhooks/{made['webhook_id']}/rotate-secret", acct))
        assert rotated["secret"] != made["secret"] and rotated["previous_secret_expires_at"]
        call(fns, "POST", f"/v1/webhooks/{made['webhook_id']}/test", acct)
        pipe.run()
        (got,) = receiver.wait_for(1)
    assert len(got.headers["webhook-signature"].split(" ")) == 2
    Webhook(made["secret"]).verify(got.body, got.headers)           # receivers not switched yet
    Webhook(rotated["secret"]).verify(got.body, got.headers)        # receivers already switched
    endpoints = webhook_services().endpoints
    row = endpoints.get_row(acct, made["webhook_id"])
    assert endpoints.signing_secrets(row, time.time() + 86_401) == [rotated["secret"]]


def test_an_endpoint_failing_for_five_days_is_disabled_and_shown_so(fns, pipe, accounts, loopback, ddb, cfg):
    acct = accounts.create(START).account_id
    with Receiver([500] * 10) as receiver:
        made = create(fns, acct, receiver.url)
        # It has failed every attempt since just over 5 days ago
        ddb.update_item(TableName=cfg.webhooks_table, Key=to_item({"pk": acct, "sk": made["webhook_id"]}),
                        UpdateExpression="SET failing_since = :t",
                        ExpressionAttributeValues={":t": {"N": str(int(time.time()) - 5 * 86_400 - 60)}})
        call(fns, "POST", f"/v1/webhooks/{made['webhook_id']}/test", acct)
        pipe.run(wait=3)
        assert len(receiver.received) == 1                          # no retry once disabled
        shown = body_of(call(fns, "GET", f"/v1/webhooks/{made['webhook_id']}", acct))
        assert shown["status"] == "disabled" and shown["disabled_at"]
        assert body_of(call(fns, "GET", "/v1/webhooks", acct))["webhooks"][0]["status"] == "disabled"
        call(fns, "POST", f"/v1/webhooks/{made['webhook_id']}/test", acct)
        pipe.run(wait=2)
        assert len(receiver.received) == 1                          # a disabled endpoint gets nothing


def test_a_success_clears_the_failing_clock(fns, pipe, accounts, loopback, ddb, cfg):
    acct = accounts.create(START).account_id
    with Receiver([500]) as receiver:
        made = create(fns, acct, receiver.url)
        call(fns, "POST", f"/v1/webhooks/{made['webhook_id']}/test", acct)
        pipe.dispatch()
        pipe.deliver()
        assert "failing_since" in body_of(call(fns, "GET", f"/v1/webhooks/{made['webhook_id']}", acct))
        pipe.deliver(wait=4)
        receiver.wait_for(2)
    assert "failing_since" not in body_of(call(fns, "GET", f"/v1/webhooks/{made['webhook_id']}", acct))


# ── events from facts ────────────────────────────────────────────────────
MP3 = fx.mp3_cbr(12.0)


@pytest.fixture
def voice_fns(minimax, load_handler):
    return {"clone": load_handler("VoiceCloneFunction"), "activation": load_handler("VoiceActivationFunction")}


def new_voice(voice_fns, acct) -> str:
    response = voice_fns["clone"](clone_event(acct, MP3, name="narrator"), context())
    assert response["statusCode"] == 200, response
    return body_of(response)["voice_id"]


def activation_record(ddb, cfg, voice_id) -> dict:
    item = ddb.get_item(TableName=cfg.voices_table, Key=to_item({"voice_id": voice_id}))["Item"]
    return {"Records": [{"eventID": "1", "eventName": "INSERT", "eventSource": "aws:dynamodb", "eventVersion": "1.1",
                         "awsRegion": "us-east-1", "dynamodb": {"Keys": {"voice_id": item["voice_id"]},
                                                                "NewImage": item, "SequenceNumber": "100",
                                                                "StreamViewType": "NEW_IMAGE"},
                         "eventSourceARN": "arn:aws:dynamodb:us-east-1:123456789012:table/v/stream/x"}]}


def outbox(ddb, cfg) -> list[dict]:
    return [from_item(i) for i in ddb.scan(TableName=cfg.webhook_events_table, ConsistentRead=True)["Items"]]


def test_voice_active_and_voice_expired_with_refund_usd_reach_the_subscribed_receiver(
        fns, voice_fns, pipe, accounts, loopback, ddb, cfg, minimax):
    acct = accounts.create(START).account_id
    with Receiver() as receiver:
        made = create(fns, acct, receiver.url, events=["voice.active", "voice.expired"])
        active_voice = new_voice(voice_fns, acct)
        voice_fns["activation"](activation_record(ddb, cfg, active_voice), context("VoiceActivationFunction", 120))
        lost_voice = new_voice(voice_fns, acct)
        minimax.advance_clock(8 * 86_400)                 # MiniMax's 7-day rule: the unused clone is gone
        voice_fns["activation"](activation_record(ddb, cfg, lost_voice), context("VoiceActivationFunction", 120))
        pipe.run()
        got = receiver.wait_for(2)
    events = {(p := Webhook(made["secret"]).verify(r.body, r.headers))["type"]: p for r in got}
    assert set(events) == {"voice.active", "voice.expired"} and len(got) == 2
    assert events["voice.active"]["data"]["voice_id"] == active_voice
    assert events["voice.active"]["data"]["status"] == "active"
    expired = events["voice.expired"]["data"]
    assert (expired["voice_id"], expired["status"], expired["refund_usd"]) == (lost_voice, "expired", 2.1)
    assert expired["type"] == "cloned" and expired["name"] == "narrator"


def test_an_expiry_without_refund_says_no_refund_and_a_repeated_change_emits_no_second_event(
        fns, voice_fns, accounts, ddb, cfg, minimax):
    from kyma.services import services

    acct = accounts.create(START).account_id
    voice = new_voice(voice_fns, acct)
    voice_fns["activation"](activation_record(ddb, cfg, voice), context("VoiceActivationFunction", 120))
    lifecycle = services().lifecycle
    assert lifecycle.mark_active(voice) is True                     # already active: no second event
    assert lifecycle.expire(voice, reason="lost_upstream") == "expired"
    assert lifecycle.expire(voice, reason="lost_upstream") == "unchanged"
    kinds = sorted((e["type"], "refund_usd" in json.loads(e["data"])) for e in outbox(ddb, cfg))
    assert kinds == [("voice.active", False), ("voice.expired", False)]


def test_an_event_only_goes_to_endpoints_subscribed_to_its_type(fns, voice_fns, pipe, accounts, loopback, ddb,
                                                                cfg, minimax):
    acct, other = accounts.create(START).account_id, accounts.create(START).account_id
    with Receiver() as expired_only, Receiver() as everything, Receiver() as someone_else:
        create(fns, acct, expired_only.url, events=["voice.expired"])
        create(fns, acct, everything.url)
        create(fns, other, someone_else.url)
        voice = new_voice(voice_fns, acct)
        voice_fns["activation"](activation_record(ddb, cfg, voice), context("VoiceActivationFunction", 120))
        pipe.run()
        everything.wait_for(1)
        time.sleep(0.3)
    assert [json.loads(r.body)["type"] for r in everything.received] == ["voice.active"]
    assert expired_only.received == [] and someone_else.received == []


def test_a_crash_between_the_fact_and_the_delivery_loses_no_event(fns, voice_fns, accounts, loopback, ddb, cfg,
                                                                 minimax, load_handler, monkeypatch):
    acct = accounts.create(START).account_id
    with Receiver() as receiver:
        made = create(fns, acct, receiver.url)
        voice = new_voice(voice_fns, acct)
        minimax.advance_clock(8 * 86_400)
        # The fact: the voice expires and is refunded; the event is in the same transaction.  The
        # process stops right there (nothing of ours sends anything after it).
        voice_fns["activation"](activation_record(ddb, cfg, voice), context("VoiceActivationFunction", 120))
        assert [e["type"] for e in outbox(ddb, cfg)] == ["voice.expired"]
        assert receiver.received == []
        # The first dispatcher dies while fanning out (its SQS send fails): the stream keeps the record
        crashing = Pipeline(cfg, fns)
        from kyma.services import webhook_services
        monkeypatch.setattr(webhook_services().dispatcher.sqs, "send_message",
                            lambda **k: (_ for _ in ()).throw(ConnectionResetError("process died")))
        with pytest.raises(Exception, match="process died"):     # the whole batch failed: Lambda retries it
            crashing.dispatch()
        assert crashing.seen == set()
        monkeypatch.undo()
        # A fresh environment (a cold start) picks the stream up where the mapping left it
        fresh = Pipeline(cfg, {**fns, "dispatch": load_handler("WebhookDispatchFunction"),
                               "deliver": load_handler("WebhookDeliveryFunction")})
        fresh.seen = set(crashing.seen)
        fresh.run()
        (got,) = receiver.wait_for(1)
    payload = Webhook(made["secret"]).verify(got.body, got.headers)
    assert payload["type"] == "voice.expired" and payload["data"]["refund_usd"] == 2.1


def test_a_fact_that_does_not_happen_records_no_event(voice_fns, accounts, ddb, cfg, minimax, monkeypatch):
    """The event is an item of the fact's own transaction: if the transaction fails, neither exists."""
    from kyma.platform import dynamo
    from kyma.services import services

    acct = accounts.create(START).account_id
    voice = new_voice(voice_fns, acct)
    real = dynamo.Transaction.run

    def fail_once(self):
        if any("Put" in i and i["Put"]["TableName"] == cfg.webhook_events_table for i in self.items):
            raise ConnectionResetError("DynamoDB unreachable")
        return real(self)

    monkeypatch.setattr(dynamo.Transaction, "run", fail_once)
    with pytest.raises(ConnectionResetError):
        services().lifecycle.expire(voice, reason="lost_upstream")
    monkeypatch.undo()
    assert outbox(ddb, cfg) == []
    row = from_item(ddb.get_item(TableName=cfg.voices_table, Key=to_item({"voice_id": voice}))["Item"])
    assert row["status"] == "activating"


def test_every_webhooks_route_needs_the_webhooks_scope(fns, accounts, dns):
    dns["hooks.example.com"] = ["93.184.216.34"]
    acct = accounts.create(START).account_id
    webhook_id = create(fns, acct, "https://hooks.example.com/kyma")["webhook_id"]
    for method, path in (("POST", "/v1/webhooks"), ("GET", "/v1/webhooks"), ("GET", f"/v1/webhooks/{webhook_id}"),
                         ("POST", f"/v1/webhooks/{webhook_id}/rotate-secret"),
                         ("GET", f"/v1/webhooks/{webhook_id}/deliveries"), ("POST", f"/v1/webhooks/{webhook_id}/test"),
                         ("DELETE", f"/v1/webhooks/{webhook_id}")):
        parts = path.split("/")
        resource = path if len(parts) == 3 else ITEM + ("/" + parts[4] if len(parts) > 4 else "")
        event = api_event(method, path, resource=resource, account_id=acct,
                          body=json.dumps({"url": "https://hooks.example.com/x"}) if method == "POST" else b"")
        event["pathParameters"] = {"webhook_id": parts[3]} if len(parts) > 3 else None
        event["requestContext"]["authorizer"]["scopes"] = "speech,voices:read"
        error = error_of(fns["api"](event, context("WebhooksFunction")))
        assert (error.status, error.code) == (403, "permission_denied"), (method, path)
    assert call(fns, "GET", f"/v1/webhooks/{webhook_id}", acct)["statusCode"] == 200   # still there
