"""The seed page's curl command, verbatim but for URL and key, against the local stack."""

from __future__ import annotations

import json
import re
import subprocess

import requests

from e2e.conftest import ROOT

SEED_COMMAND = """curl -X POST {url}/v1/audio/voice-clone \\
  -H "Authorization: Bearer $KYMA_API_KEY" \\
  -F file=@reference.mp3 \\
  -F name="brand-narrator\""""


def test_the_seed_pages_curl_command_works(stack, curl, tmp_path):
    # Given the sample clip the README tells you how to make (make sample)
    subprocess.run([str(ROOT / ".venv" / "bin" / "python"), "-m", "kyma_local.sample",
                    str(tmp_path / "reference.mp3")], check=True, capture_output=True)
    account, key = stack.new_account("50")
    # When the seed page's command runs in a shell (only the URL and the key differ)
    command = SEED_COMMAND.format(url=stack.api_url)
    result = subprocess.run(["bash", "-c", command + " -i"], cwd=tmp_path, capture_output=True,
                            env={"KYMA_API_KEY": key, "PATH": "/usr/bin:/bin"}, timeout=60)
    head, _, body = result.stdout.partition(b"\r\n\r\n")
    # Then it answers as the seed page shows
    assert head.startswith(b"HTTP/1.1 200"), result.stdout
    payload = json.loads(body)
    assert list(payload) == ["voice_id", "name", "model", "cost_usd", "balance_usd"]
    assert re.fullmatch(r"kyma_[0-9a-f]{16}", payload["voice_id"])
    assert payload["name"] == "brand-narrator" and payload["model"] == "minimax-voice-clone"
    assert payload["cost_usd"] == 2.1 and payload["balance_usd"] == 47.9
    headers = head.decode().lower()
    for line in ("x-kyma-model: minimax-voice-clone", "x-kyma-cost-usd: 2.10", "x-kyma-balance-usd: 47.90",
                 "x-request-id: "):
        assert line in headers
    assert "consistent" in stack.admin("ledger", account).stdout


def test_bad_uploads_over_http_are_4xx_envelopes_and_free(stack):
    _account, key = stack.new_account("10")
    url = f"{stack.api_url}/v1/audio/voice-clone"
    auth = {"Authorization": f"Bearer {key}"}
    cases = [
        ({"files": {"file": ("voice.mp3", b"\x89PNG\r\n\x1a\n" + b"\0" * 100, "audio/mpeg")}}, 415),
        ({"files": {"file": ("empty.mp3", b"", "audio/mpeg")}}, 400),
        ({"data": {"name": "x"}, "files": {"other": ("a", b"a")}}, 400),
        ({"data": b"garbage", "headers": {"Content-Type": "multipart/form-data"}}, 400),
        ({"json": {"name": "x"}}, 400),
    ]
    for kwargs, status in cases:
        headers = {**auth, **kwargs.pop("headers", {})}
        response = requests.post(url, headers=headers, **kwargs, timeout=30)
        assert response.status_code == status, (kwargs, response.text)
        assert set(response.json()["error"]) == {"code", "message"}
    assert stack.balance(key) == 10.0
