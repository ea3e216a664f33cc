"""Lookups that happen before money moves fail fast: the MiniMax key from SSM (looked up before
the reserve, with short timeouts) and the authorizer's DynamoDB read (inside its 5 s)."""

from __future__ import annotations

import json
import socket
import threading
import time

import boto3
import pytest
from helpers import START, SYSTEM_VOICE, api_event, context, error_of


@pytest.fixture
def blackhole():
    """A TCP endpoint that accepts connections and never answers (a hung dependency)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    threading.Thread(target=accept, daemon=True).start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    stop.set()
    for conn in held:
        conn.close()
    server.close()


def test_a_hung_ssm_fails_the_speech_request_fast_with_no_hold_opened(minimax, load_handler, accounts, books,
                                                                      blackhole, monkeypatch):
    from kyma.platform.aws import fast_client
    from kyma.providers.select import _ssm

    handler = load_handler("SpeechFunction")
    acct = accounts.create(START).account_id
    hung_ssm = boto3.client("ssm", endpoint_url=blackhole, config=fast_client("ssm").meta.config)
    monkeypatch.setattr(_ssm(), "client", hung_ssm)
    _ssm().clear_cache()
    started = time.monotonic()
    response = handler(api_event("POST", "/v1/audio/speech", account_id=acct,
                                 body=json.dumps({"input": "Hello.", "voice": SYSTEM_VOICE}),
                                 headers={"Content-Type": "application/json"}), context())
    elapsed = time.monotonic() - started
    error = error_of(response)
    assert (error.status, error.code) == (503, "service_unavailable")
    assert elapsed < 8, elapsed                                    # bounded: 2 × (0.5 s + 1 s) + backoff
    assert [e["type"] for e in books.entries(acct)] == ["topup"]   # no hold was ever opened
    assert books.balance(acct) == START and minimax.calls == []


def test_the_authorizers_lookup_gives_up_well_inside_its_timeout(aws, blackhole, monkeypatch):
    from kyma.accounts.keys import ApiKeys
    from kyma.platform.aws import fast_client
    from kyma.platform.config import config

    hung = boto3.client("dynamodb", endpoint_url=blackhole, config=fast_client("dynamodb").meta.config)
    authorizer_timeout = aws.functions["AuthorizerFunction"].timeout
    started = time.monotonic()
    with pytest.raises(Exception, match=r"timeout|Timeout|timed out"):
        ApiKeys(hung, config()).account_for_key("sk-kyma-anything")
    assert time.monotonic() - started < authorizer_timeout - 0.5
