"""POST /v1/audio/speech, streamed: raw audio chunks and Server-Sent Events from the real function (its
app run as the Lambda Web Adapter runs it), moto and the MiniMax sandbox.  Billing as the contract says:
reserve first, settle after the last byte was handed on, release (nothing charged) when MiniMax fails
or stops early or the client goes away; replays of streamed requests; every clock."""

from __future__ import annotations

import base64
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from helpers import START, SYSTEM_VOICE, api_event, body_of, context, error_of, raising, sse_events

from kyma_local.sandbox import PATH_T2A

TEXT = "Hello from the Kyma voice API"      # 29 code points: 2.0 s of sandbox audio, 13 chunks of 160 ms
COST = 2_900
RAW = {"stream_format": "audio"}
SSE = {"stream_format": "sse"}


@pytest.fixture
def handler(minimax, load_handler):
    return load_handler("SpeechFunction")


@pytest.fixture
def paced(minimax):
    """MiniMax's own pace: the first chunk after 150 ms, then one every 40 ms."""
    minimax.first_chunk_ms, minimax.chunk_interval_ms = 150, 40
    return minimax


def speech_event(account_id: str, body: dict, headers: dict | None = None) -> dict:
    import json

    return api_event("POST", "/v1/audio/speech", body=json.dumps(body), account_id=account_id,
                     headers={"Content-Type": "application/json", **(headers or {})})


def speak(handler, account_id, body, headers=None):
    return handler(speech_event(account_id, body, headers), context("SpeechFunction"))


def decoded(events: list[dict]) -> bytes:
    return b"".join(base64.b64decode(e["audio"]) for e in events if e["type"] == "speech.audio.delta")


def holds(books, acct) -> list[str]:
    return [e["status"] for e in books.entries(acct) if e["type"] == "hold"]


def assert_free(books, acct):
    assert books.balance(acct) == START and holds(books, acct) == ["released"]
    assert books.audit(acct)["consistent"]


def eventually(check, seconds: float = 10.0):
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.05)


# ── the formats ──────────────────────────────────────────────────────────
@pytest.mark.parametrize("flag", [RAW, {"stream": True}], ids=["stream_format=audio", "stream=true"])
def test_raw_audio_arrives_chunk_by_chunk_as_minimax_produces_it(handler, accounts, books, paced, flag):
    acct = accounts.create(START).account_id
    response = speak(handler, acct, {"input": TEXT, "voice": SYSTEM_VOICE, **flag})
    assert response["statusCode"] == 200 and response["complete"]
    assert body_of(response) == paced.last_audio                          # byte-identical
    arrivals = [t for t, _ in response["chunks"]]
    assert len(arrivals) >= 10 and arrivals[-1] - arrivals[0] > 0.3       # not buffered
    headers = response["headers"]
    assert headers["Content-Type"] == "audio/mpeg" and headers["X-Kyma-Chars-Billed"] == "29"
    assert headers["X-Kyma-Cost-USD"] == "0.0029" and headers["X-Kyma-Model"] == "minimax-speech-2.8-hd"
    assert headers["X-Kyma-Provider"] == "minimax" and headers["X-Request-Id"]
    assert "X-Kyma-Balance-USD" not in headers                            # not known when headers go
    (call,) = paced.calls_to(PATH_T2A)
    assert call.json["stream"] is True and call.json["stream_options"] == {"exclude_aggregated_audio": True}
    assert books.balance(acct) == START - COST and holds(books, acct) == ["charged"]


def test_sse_deltas_then_done_with_the_billing_facts(handler, accounts, books, paced):
    acct = accounts.create(START).account_id
    response = speak(handler, acct, {"input": TEXT, "voice": SYSTEM_VOICE, **SSE})
    assert response["statusCode"] == 200 and response["complete"]
    assert response["headers"]["Content-Type"] == "text/event-stream"
    assert response["headers"]["X-Kyma-Cost-USD"] == "0.0029"
    events = sse_events(response)
    assert [e["type"] for e in events[:-1]] == ["speech.audio.delta"] * (len(events) - 1)
    assert len(events) >= 10 and decoded(events) == paced.last_audio
    assert events[-1] == {"type": "speech.audio.done", "usage": {
        "input_tokens": 29, "output_tokens": 0, "total_tokens": 29,                 # OpenAI's usage shape
        "characters_billed": 29, "cost_usd": 0.0029, "balance_usd": 49.9971}}     # our billing facts
    assert books.balance(acct) == START - COST and books.audit(acct)["consistent"]


@pytest.mark.parametrize("fmt, content_type", [("mp3_44100_256", "audio/mpeg"), ("flac", "audio/flac"),
                                               ("pcm_16000", "audio/pcm")])
@pytest.mark.parametrize("flag", [RAW, SSE])
def test_every_streaming_format(handler, accounts, minimax, fmt, content_type, flag):
    acct = accounts.create(START).account_id
    response = speak(handler, acct, {"input": TEXT, "voice": SYSTEM_VOICE, "response_format": fmt, **flag})
    audio = decoded(sse_events(response)) if flag == SSE else body_of(response)
    assert response["statusCode"] == 200 and audio == minimax.last_audio
    if flag == RAW:
        assert response["headers"]["Content-Type"] == content_type


def test_the_charge_settles_only_after_the_last_byte_was_handed_on(handler, accounts, books, paced, aws):
    from kyma_local.web_adapter import WebAdapterPool

    acct = accounts.create(START).account_id
    pool = WebAdapterPool(aws.functions["SpeechFunction"])
    app = pool.invoke_stream(speech_event(acct, {"input": TEXT * 2, "voice": SYSTEM_VOICE, **RAW}), wait=30)
    try:
        assert app.status == 200 and app.read(10)                       # the first audio is here
        assert holds(books, acct) == ["open"] and books.balance(acct) == START - 2 * COST    # reserved
        while app.read(10):
            pass
        eventually(lambda: holds(books, acct) == ["charged"])
    finally:
        app.close(reusable=False)
        pool.close()
    assert books.audit(acct)["consistent"]


def test_a_cloned_voice_streams_for_its_owner_only_and_its_first_stream_activates_it(minimax, load_handler,
                                                                                      accounts, books, ddb, cfg):
    import audio_fixtures as fx
    from helpers import clone_event

    from kyma.platform.dynamo import from_item, to_item

    clone, handler = load_handler("VoiceCloneFunction"), load_handler("SpeechFunction")
    owner, other = accounts.create(START).account_id, accounts.create(START).account_id
    voice = body_of(clone(clone_event(owner, fx.mp3_cbr(12.0)), context()))["voice_id"]

    def status():
        return from_item(ddb.get_item(TableName=cfg.voices_table, Key=to_item({"voice_id": voice}),
                                      ConsistentRead=True)["Item"])["status"]

    assert status() == "activating"
    error = error_of(speak(handler, other, {"input": TEXT, "voice": voice, **SSE}))
    assert (error.status, error.code) == (403, "voice_not_owned") and books.balance(other) == START
    response = speak(handler, owner, {"input": TEXT, "voice": voice, **SSE})
    assert sse_events(response)[-1]["type"] == "speech.audio.done" and status() == "active"
    assert books.audit(owner)["consistent"]


# ── failures: partial audio is free, and the client can tell ─────────────
@pytest.mark.parametrize("mode", ["stream_error", "stream_drop"])
def test_minimax_failing_mid_stream_cuts_a_raw_stream_and_charges_nothing(handler, accounts, books, minimax,
                                                                          mode):
    acct = accounts.create(START).account_id
    minimax.fail_next(PATH_T2A, mode, code=1000, after_chunks=4)
    response = speak(handler, acct, {"input": TEXT, "voice": SYSTEM_VOICE, **RAW})
    assert response["statusCode"] == 200 and response["chunks"]
    assert not response["complete"]                         # no last chunk: a truncated body, not a file
    assert_free(books, acct)
    assert len(minimax.calls_to(PATH_T2A)) == 1             # nothing is retried once audio went out
    partial = body_of(response)                             # (how TCP cut it into reads is not ours)
    speak(handler, acct, {"input": TEXT, "voice": SYSTEM_VOICE, **RAW})
    assert 0 < len(partial) < len(minimax.last_audio) and minimax.last_audio.startswith(partial)


@pytest.mark.parametrize("mode", ["stream_error", "stream_drop"])
def test_minimax_failing_mid_stream_ends_sse_with_an_error_event(handler, accounts, books, minimax, mode):
    acct = accounts.create(START).account_id
    minimax.fail_next(PATH_T2A, mode, code=1000, after_chunks=3)
    response = speak(handler, acct, {"input": TEXT, "voice": SYSTEM_VOICE, **SSE})
    events = sse_events(response)
    assert response["statusCode"] == 200 and response["complete"]
    assert [e["type"] for e in events] == ["speech.audio.delta"] * 3 + ["error"]
    assert set(events[-1]) == {"type", "error"} and set(events[-1]["error"]) == {"code", "message"}
    assert events[-1]["error"]["code"] == "provider_error"               # the error envelope, as an event
    assert_free(books, acct)


@pytest.mark.parametrize("flag", [RAW, SSE])
def test_a_failure_before_the_first_byte_is_an_ordinary_error_response(handler, accounts, books, minimax, flag):
    acct = accounts.create(START).account_id
    minimax.fail_next(PATH_T2A, "stream_error", code=1026, after_chunks=0)      # refused before any audio
    error = error_of(speak(handler, acct, {"input": TEXT, "voice": SYSTEM_VOICE, **flag}))
    assert (error.status, error.code) == (400, "content_rejected")
    assert_free(books, acct)


@pytest.mark.parametrize("flag", [RAW, SSE])
def test_a_failed_settle_after_the_stream_charges_nothing_and_the_client_can_tell(handler, accounts, books,
                                                                                  minimax, monkeypatch, flag):
    from botocore.exceptions import ClientError

    from kyma.billing.ledger import Ledger

    acct = accounts.create(START).account_id
    monkeypatch.setattr(Ledger, "settle", raising(
        ClientError({"Error": {"Code": "InternalServerError", "Message": "x"}}, "TransactWriteItems")))
    response = speak(handler, acct, {"input": TEXT, "voice": SYSTEM_VOICE, **flag})
    if flag == SSE:
        assert response["complete"] and sse_events(response)[-1]["error"]["code"] == "internal_error"
    else:
        assert not response["complete"] and body_of(response) == minimax.last_audio   # all audio, no last chunk
    assert_free(books, acct)


@pytest.mark.parametrize("flag", [RAW, SSE])
def test_a_client_that_goes_away_mid_stream_is_not_charged(handler, accounts, books, paced, aws, flag):
    from kyma_local.web_adapter import WebAdapterPool

    acct = accounts.create(START).account_id
    pool = WebAdapterPool(aws.functions["SpeechFunction"])
    app = pool.invoke_stream(speech_event(acct, {"input": TEXT * 3, "voice": SYSTEM_VOICE, **flag}), wait=30)
    try:
        assert app.status == 200 and app.read(10)
    finally:
        app.close(reusable=False)                         # the client hangs up after the first audio
    eventually(lambda: holds(books, acct) == ["released"])
    pool.close()
    (hold,) = [e for e in books.entries(acct) if e["type"] == "hold"]
    assert hold["release_reason"] == "client_gone"
    assert_free(books, acct)
    (call,) = paced.calls_to(PATH_T2A)
    eventually(lambda: call.client_closed or call.finished)    # the upstream stream was let go
    assert not call.finished


# ── clocks ───────────────────────────────────────────────────────────────
def test_a_stream_that_outlives_the_hold_timeout_is_charged_once_with_the_reconciler_running(
        configure, minimax, load_handler, accounts, books):
    # Given today's 300 s hold timeout shortened to 1 s, a reconciler running all along, and a stream
    # that takes about 4 s
    configure(HOLD_TIMEOUT_SECONDS=1, STREAM_API_TIMEOUT_SECONDS=20)
    handler, reconciler = load_handler("SpeechFunction"), load_handler("ReconcilerFunction")
    minimax.first_chunk_ms, minimax.chunk_interval_ms = 100, 100
    acct = accounts.create(START).account_id
    released: list[int] = []
    done = threading.Event()

    def reconcile():
        while not done.is_set():
            released.append(reconciler({}, context("ReconcilerFunction"))["released"])
            time.sleep(0.2)

    thread = threading.Thread(target=reconcile)
    thread.start()
    try:
        started = time.monotonic()
        response = speak(handler, acct, {"input": TEXT * 3, "voice": SYSTEM_VOICE, **SSE})
        elapsed = time.monotonic() - started
    finally:
        done.set()
        thread.join()
    # Then it was delivered and charged exactly once; the reconciler never touched its hold
    assert elapsed > 3 and len(released) > 10 and sum(released) == 0
    assert sse_events(response)[-1]["type"] == "speech.audio.done"
    assert holds(books, acct) == ["charged"] and books.balance(acct) == START - 3 * COST
    assert books.audit(acct)["consistent"]
    # And a crashed stream's hold is still released soon after the longest request could have ended
    (hold,) = [e for e in books.entries(acct) if e["type"] == "hold"]
    from kyma.billing.paid_call import HOLD_GRACE_SECONDS

    assert 20 < hold["expires_at"] - hold["created_at"] <= 20 + HOLD_GRACE_SECONDS + 1


@pytest.mark.parametrize("flag", [RAW, SSE])
def test_minimax_silent_past_the_gateways_idle_timeout_is_a_502_before_the_gateway_gives_up(
        configure, minimax, load_handler, accounts, books, flag):
    configure(STREAM_IDLE_TIMEOUT_SECONDS=3)                 # 30 s on the edge-optimized API; 1 s to spare here
    handler = load_handler("SpeechFunction")
    minimax.first_chunk_ms = 2500
    acct = accounts.create(START).account_id
    started = time.monotonic()
    error = error_of(speak(handler, acct, {"input": TEXT, "voice": SYSTEM_VOICE, **flag}))
    assert (error.status, error.code) == (502, "provider_error") and time.monotonic() - started < 2
    assert_free(books, acct)


@pytest.mark.parametrize("limit", ["integration timeout", "function timeout"])
def test_a_stream_is_cut_and_released_before_its_deadline(configure, minimax, aws, accounts, books, limit):
    from helpers import lwa_call

    from kyma_local.web_adapter import WebAdapterPool

    if limit == "integration timeout":
        configure(STREAM_API_TIMEOUT_SECONDS=4)                      # TimeoutInMillis
    pool = WebAdapterPool(aws.functions["SpeechFunction"],
                          timeout_override=4 if limit == "function timeout" else None)   # x-amzn-lambda-context
    minimax.first_chunk_ms, minimax.chunk_interval_ms = 50, 150       # 13 chunks would take ~2 s, 40 take 6 s
    acct = accounts.create(START).account_id
    started = time.monotonic()
    try:
        response = lwa_call(pool, speech_event(acct, {"input": TEXT * 3, "voice": SYSTEM_VOICE, **RAW}))
    finally:
        pool.close()
    assert response["statusCode"] == 200 and response["chunks"] and not response["complete"]
    assert 1.5 < time.monotonic() - started < 3.5                     # 2 s before the 4 s limit
    assert_free(books, acct)


@pytest.mark.parametrize("flag", [RAW, SSE])
def test_a_slow_reader_who_got_every_byte_is_charged_even_past_the_deadline(minimax, aws, accounts, books,
                                                                             monkeypatch, flag):
    """The last chunk was handed on, but the write returned after the request's deadline (the
    client read the end slowly, within the grace): the client has the whole audio, so it is charged."""
    from helpers import lwa_call

    from kyma.edge import web_app
    from kyma.edge.web_app import Output
    from kyma_local.web_adapter import WebAdapterPool

    real_write, sent, deadlines = Output.write, [], []
    real_deadline = web_app.request_deadline

    def recorded_deadline(*args):
        deadlines.append(real_deadline(*args))
        return deadlines[-1]

    def slow_at_the_end(self, data):
        real_write(self, data)
        if data.startswith(b"data: "):
            event = json.loads(data[6:])
            data = base64.b64decode(event["audio"]) if event["type"] == "speech.audio.delta" else b""
        sent.append(data)
        if data and len(b"".join(sent)) == len(minimax.last_audio):
            # The last audio chunk: its write returns 0.4 s past the request's deadline (2 s here:
            # 4 s timeout - 2 s margin), within the upstream's deadline (0.2 s earlier) + 1 s grace.
            time.sleep(max(0.0, deadlines[-1] + 0.4 - time.monotonic()))

    monkeypatch.setattr(web_app, "request_deadline", recorded_deadline)
    monkeypatch.setattr(Output, "write", slow_at_the_end)
    minimax.first_chunk_ms, minimax.chunk_interval_ms = 5, 5
    pool = WebAdapterPool(aws.functions["SpeechFunction"], timeout_override=4)
    acct = accounts.create(START).account_id
    try:
        response = lwa_call(pool, speech_event(acct, {"input": TEXT, "voice": SYSTEM_VOICE, **flag}))
    finally:
        pool.close()
    audio = decoded(sse_events(response)) if flag == SSE else body_of(response)
    assert response["statusCode"] == 200 and audio == minimax.last_audio
    assert holds(books, acct) == ["charged"] and books.balance(acct) == START - COST


def test_a_streams_upstream_ends_early_enough_to_settle_and_finish_the_response(minimax, aws, accounts, books,
                                                                                 monkeypatch):
    """MiniMax's stream is bounded by an earlier deadline than the request's: the S3 copy for a
    replay, the settle and the end of the response have time after the last chunk (a tenth of the
    request's time here, 10 s at most), so Lambda's timeout never falls between charge and end."""
    from helpers import lwa_call

    from kyma.edge import web_app
    from kyma.providers.minimax import MiniMaxClient
    from kyma.speech import synthesis as speech
    from kyma_local.web_adapter import WebAdapterPool

    request_deadlines, upstream_deadlines = [], []
    real_deadline, real_stream = web_app.request_deadline, MiniMaxClient.synthesize_stream

    def recorded_deadline(*args):
        request_deadlines.append(real_deadline(*args))
        return request_deadlines[-1]

    def recorded_stream(self, request, *, deadline, **kwargs):
        upstream_deadlines.append(deadline)
        return real_stream(self, request, deadline=deadline, **kwargs)

    monkeypatch.setattr(web_app, "request_deadline", recorded_deadline)
    monkeypatch.setattr(MiniMaxClient, "synthesize_stream", recorded_stream)
    pool = WebAdapterPool(aws.functions["SpeechFunction"], timeout_override=30)
    acct = accounts.create(START).account_id
    try:
        started = time.monotonic()
        response = lwa_call(pool, speech_event(acct, {"input": TEXT, "voice": SYSTEM_VOICE, **RAW}))
    finally:
        pool.close()
    assert response["statusCode"] == 200 and response["complete"]
    (request_deadline,), (upstream_deadline,) = request_deadlines, upstream_deadlines
    budget = request_deadline - started                        # about 28 s: 30 s timeout - 2 s margin
    assert request_deadline - upstream_deadline >= min(speech.AFTER_STREAM_SECONDS, budget / 10) - 0.5
    assert holds(books, acct) == ["charged"]


def test_a_whole_file_whose_client_left_before_the_headers_can_still_be_replayed(handler, accounts, books,
                                                                                  minimax, monkeypatch):
    """Charged (the settle comes before a whole file is sent), then the connection is gone when
    the status line goes out: the Idempotency-Key record is kept, so a retry gets the audio."""
    from kyma.edge.web_app import Output
    from kyma_local.web_adapter import InvocationFailed

    real_head, broken = Output._head, []

    def head(self, status, headers):
        if status == 200 and "X-Kyma-Model" in headers and not broken:
            broken.append(status)

            def reset() -> None:                          # the adapter's connection is gone
                raise BrokenPipeError(32, "Broken pipe")
            self._handler.end_headers = reset
        return real_head(self, status, headers)

    monkeypatch.setattr(Output, "_head", head)
    acct = accounts.create(START).account_id
    key = {"Idempotency-Key": "whole-file-client-left"}
    with pytest.raises(InvocationFailed):              # the adapter got no response at all
        speak(handler, acct, {"input": TEXT, "voice": SYSTEM_VOICE}, key)
    assert broken
    assert holds(books, acct) == ["charged"]
    again = speak(handler, acct, {"input": TEXT, "voice": SYSTEM_VOICE}, key)
    assert again["statusCode"] == 200 and again["headers"]["Idempotent-Replayed"] == "true"
    assert body_of(again) == minimax.last_audio and books.balance(acct) == START - COST


def test_a_whole_file_that_fails_to_go_out_after_the_charge_says_so_and_stays_replayable(
        handler, accounts, books, minimax, monkeypatch):
    from kyma.speech import delivery as speech_delivery
    monkeypatch.setattr(speech_delivery.Buffered, "end", raising(RuntimeError("a bug after the charge")))
    acct = accounts.create(START).account_id
    key = {"Idempotency-Key": "failed-after-charge"}
    error = error_of(speak(handler, acct, {"input": TEXT, "voice": SYSTEM_VOICE}, key))
    assert (error.status, error.code) == (500, "internal_error") and "was charged" in error.message
    assert holds(books, acct) == ["charged"]
    monkeypatch.undo()
    again = speak(handler, acct, {"input": TEXT, "voice": SYSTEM_VOICE}, key)
    assert again["statusCode"] == 200 and again["headers"]["Idempotent-Replayed"] == "true"
    assert body_of(again) == minimax.last_audio and books.balance(acct) == START - COST


# ── Idempotency-Key: the same audio, charged once, in the form asked ─────
@pytest.mark.parametrize("first, again", [(SSE, SSE), (RAW, RAW), (SSE, RAW), (RAW, {}), ({}, SSE)],
                         ids=["sse/sse", "audio/audio", "sse/audio", "audio/whole", "whole/sse"])
def test_a_replay_of_a_streamed_request_is_the_same_audio_charged_once(handler, accounts, books, minimax,
                                                                        first, again):
    acct = accounts.create(START).account_id
    key = {"Idempotency-Key": f"replay-{first}-{again}"}
    responses = [speak(handler, acct, {"input": TEXT, "voice": SYSTEM_VOICE, **flag}, key) for flag in (first, again)]

    def audio_of(response, flag):
        return decoded(sse_events(response)) if flag == SSE else body_of(response)

    assert audio_of(responses[0], first) == audio_of(responses[1], again) == minimax.last_audio
    assert responses[1]["headers"]["Idempotent-Replayed"] == "true" and responses[1]["complete"]
    assert responses[1]["headers"]["X-Kyma-Cost-USD"] == "0.0029"
    if again == SSE:
        assert sse_events(responses[1])[-1]["usage"]["balance_usd"] == 49.9971     # the recorded facts
    assert len(minimax.calls_to(PATH_T2A)) == 1 and books.balance(acct) == START - COST
    assert books.audit(acct)["consistent"]


@pytest.mark.parametrize("wait, outcome", [(0.3, 409), (20, 200)], ids=["gives-up", "waits-and-replays"])
def test_a_twin_of_a_stream_in_progress_is_409_or_waits_and_replays(configure, minimax, load_handler, accounts,
                                                                     books, wait, outcome):
    configure(IDEMPOTENCY_WAIT_SECONDS=wait)
    handler = load_handler("SpeechFunction")
    minimax.first_chunk_ms, minimax.chunk_interval_ms = 300, 60
    acct = accounts.create(START).account_id
    key = {"Idempotency-Key": "twin"}
    body = {"input": TEXT, "voice": SYSTEM_VOICE, **SSE}
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(speak, handler, acct, body, key)
        time.sleep(0.15)                                          # the first is streaming
        twin = pool.submit(speak, handler, acct, body, key).result()
        first = first.result()
    if outcome == 409:
        error = error_of(twin)
        assert (error.status, error.code) == (409, "idempotency_in_progress")
    else:
        assert twin["headers"]["Idempotent-Replayed"] == "true"
        assert decoded(sse_events(twin)) == decoded(sse_events(first))
    assert len(minimax.calls_to(PATH_T2A)) == 1 and books.balance(acct) == START - COST
