"""The backbone's promises, over HTTP against the local stack."""

from __future__ import annotations

import json
import subprocess
import sys

import requests

from e2e.conftest import ROOT


def envelope(response) -> tuple[int, str]:
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body
    assert response.headers["Content-Type"] == "application/json"
    return response.status_code, body["error"]["code"]


def test_banner_prints_the_demo_key_on_its_own_line_and_a_curl_to_try(stack):
    assert f"KYMA_API_KEY={stack.api_key}" in stack.output.splitlines()
    assert f"curl -H \"Authorization: Bearer {stack.api_key}\" {stack.api_url}/v1/credits/balance" in stack.output
    assert stack.api_url.startswith("http://127.0.0.1:")


def test_curl_gets_the_demo_balance(stack, curl):
    out = subprocess.run([curl, "-s", "-i", "-H", f"Authorization: Bearer {stack.api_key}",
                          f"{stack.api_url}/v1/credits/balance"], capture_output=True, timeout=30)
    head, _, body = out.stdout.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    assert b"X-Request-Id:" in head
    assert json.loads(body) == {"balance_usd": 50.0}


def test_curl_gets_the_published_openapi_document_without_a_key(stack, curl):
    from openapi_spec_validator import validate

    out = subprocess.run([curl, "-s", "-i", f"{stack.api_url}/v1/openapi.json"], capture_output=True, timeout=30)
    head, _, body = out.stdout.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and b"Content-Type: application/json" in head
    document = json.loads(body)
    validate(document)                                   # a valid OpenAPI 3.1 document
    assert document["openapi"] == "3.1.0" and "/v1/audio/speech" in document["paths"]


def test_missing_wrong_and_revoked_keys_are_401_auth_error(stack):
    url = f"{stack.api_url}/v1/credits/balance"
    _account, key = stack.new_account("3")
    assert requests.get(url, headers={"Authorization": f"Bearer {key}"}).json() == {"balance_usd": 3.0}
    stack.admin("revoke-key", "--key", key)
    for headers in ({}, {"Authorization": "Bearer sk-kyma-wrong"}, {"Authorization": f"Bearer {key}"},
                    {"Authorization": "Basic Zm9vOmJhcg=="}):
        response = requests.get(url, headers=headers)
        assert envelope(response) == (401, "auth_error"), headers
        assert response.headers["X-Request-Id"]


def test_unknown_route_404_and_wrong_method_405_in_the_envelope(stack):
    auth = {"Authorization": f"Bearer {stack.api_key}"}
    missing = requests.get(f"{stack.api_url}/v1/nothing-here", headers=auth)
    assert envelope(missing) == (404, "not_found") and missing.headers["X-Request-Id"]
    root = requests.get(f"{stack.api_url}/")
    assert envelope(root) == (404, "not_found")
    wrong = requests.delete(f"{stack.api_url}/v1/credits/balance", headers=auth)
    assert envelope(wrong) == (405, "method_not_allowed")
    assert wrong.headers["Allow"] == "GET" and wrong.headers["X-Request-Id"]


def test_admin_cli_top_up_and_ledger_against_the_running_stack(stack):
    account, key = stack.new_account("10")
    stack.admin("top-up", account, "2.50", "--note", "test")
    assert stack.admin("balance", account).stdout.strip() == f"{account}: 12.50 USD"
    ledger = stack.admin("ledger", account).stdout
    assert ledger.count("topup") == 2 and "consistent" in ledger and "INCONSISTENT" not in ledger
    response = requests.get(f"{stack.api_url}/v1/credits/balance", headers={"Authorization": f"Bearer {key}"})
    assert response.json() == {"balance_usd": 12.5}
    bad = stack.admin("top-up", account, "0.0000001", check=False)
    assert bad.returncode != 0 and "6 decimal places" in bad.stderr


def test_make_invoke_runs_the_account_function_on_its_event(stack):
    # Against the running stack (its state file): the demo account's real balance.
    result = subprocess.run([sys.executable, "-m", "kyma_local.invoke", "AccountFunction",
                             "events/account-balance.json"], cwd=ROOT, env=stack.env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    response = json.loads(result.stdout)
    assert response["statusCode"] == 200
    assert json.loads(response["body"]) == {"balance_usd": 50.0}
    assert "using the running local stack" in result.stderr


def test_the_stack_never_logs_api_keys_or_audio(stack):
    # Given an account used for paid, failing and unauthorized calls
    _, key = stack.new_account("10")
    auth = {"Authorization": f"Bearer {key}"}
    from kyma_local.sample import reference_mp3

    mp3 = reference_mp3()
    requests.post(f"{stack.api_url}/v1/audio/voice-clone", headers=auth,
                  files={"file": ("r.mp3", mp3, "audio/mpeg")}, timeout=60)
    requests.post(f"{stack.api_url}/v1/audio/voice-clone", headers=auth,
                  files={"file": ("r.png", b"\x89PNG" + mp3[:500], "image/png")}, timeout=60)
    speech = requests.post(f"{stack.api_url}/v1/audio/speech", headers=auth,
                           json={"input": "secret words", "voice": "English_expressive_narrator"}, timeout=60)
    requests.get(f"{stack.api_url}/v1/credits/balance", headers={"Authorization": f"Bearer {key}x"})
    # Then nothing the stack printed (function logs, access log) contains the key or audio bytes
    import base64
    output = stack.output
    assert key not in output
    assert base64.b64encode(mp3[1000:1048]).decode() not in output
    assert base64.b64encode(speech.content[200:248]).decode() not in output
    assert "voice cloned" in output              # it does log, just not secrets
