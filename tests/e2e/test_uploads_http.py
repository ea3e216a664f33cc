"""The two-step upload flow over HTTP against the local stack: a real presigned POST
to the embedded S3, then a clone by upload_id.

The embedded S3 (moto) does NOT enforce presigned-POST policy conditions: it
accepts an object of any size under any key.  The tests below show it doing so,
and show the server's own size check refusing what the policy should have.
"""

from __future__ import annotations

import json

import audio_fixtures as fx
import boto3
import requests

TEN_MB = 10 * 1024 * 1024


def create_upload(stack, key: str) -> dict:
    response = requests.post(f"{stack.api_url}/v1/audio/voice-clone/uploads",
                             headers={"Authorization": f"Bearer {key}"}, json={"filename": "ref.wav"})
    assert response.status_code == 201, response.text
    return response.json()


def upload(form: dict, data: bytes) -> requests.Response:
    """What a browser or curl -F does with the presigned form."""
    return requests.post(form["url"], data=form["fields"], files={"file": ("ref.wav", data, "audio/wav")},
                         timeout=120)


def clone(stack, key: str, upload_id: str, **extra) -> requests.Response:
    return requests.post(f"{stack.api_url}/v1/audio/voice-clone", headers={"Authorization": f"Bearer {key}"},
                         json={"upload_id": upload_id, **extra}, timeout=120)


def wav_of_size(target: int) -> bytes:
    """A real mono 16-bit WAV of exactly `target` bytes (44-byte header + samples)."""
    import io
    import wave

    seconds_at_44k = (target - 44) / 2 / 44100
    base = fx.wav(1.0, rate=44100)[44:]
    frames = (base * (int(seconds_at_44k) + 2))[: target - 44]
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(44100)
        w.writeframes(frames)
    data = out.getvalue()
    assert len(data) == target
    return data


def test_six_and_nearly_ten_mb_references_clone_like_inline_ones(stack):
    account, key = stack.new_account("50")
    for size in (6_000_000, 9_900_000):          # 68 s and 112 s of 44.1 kHz WAV
        form = create_upload(stack, key)
        assert upload(form, wav_of_size(size)).status_code == 204
        response = clone(stack, key, form["upload_id"], name=f"{size}")
        assert response.status_code == 200, response.text
        body = response.json()
        assert list(body) == ["voice_id", "name", "model", "cost_usd", "balance_usd"]
        assert body["cost_usd"] == 2.1 and response.headers["X-Kyma-Cost-USD"] == "2.10"
        assert response.headers["X-Kyma-Model"] == "minimax-voice-clone"
    assert body["balance_usd"] == 45.8 and response.headers["X-Kyma-Balance-USD"] == "45.80"
    assert "consistent" in stack.admin("ledger", account).stdout


def test_the_embedded_s3_ignores_the_policy_so_the_server_checks_the_size(stack):
    _, key = stack.new_account("50")
    form = create_upload(stack, key)
    policy = json.loads(__import__("base64").b64decode(form["fields"]["policy"]))
    assert ["content-length-range", 1, TEN_MB] in policy["conditions"]
    # moto accepts 10 MB + 1 byte although the policy forbids it (AWS S3 would answer 400 EntityTooLarge)
    assert upload(form, wav_of_size(TEN_MB + 1)).status_code == 204
    # ...and the server refuses it before reading it: 413, nothing charged
    response = clone(stack, key, form["upload_id"])
    assert response.status_code == 413 and response.json()["error"]["code"] == "invalid_request"
    assert stack.balance(key) == 50.0


def test_a_nine_second_upload_is_too_short_and_free(stack):
    _, key = stack.new_account("50")
    form = create_upload(stack, key)
    upload(form, fx.wav(9.0))
    response = clone(stack, key, form["upload_id"])
    assert response.status_code == 400 and response.json()["error"]["code"] == "reference_too_short"
    assert stack.balance(key) == 50.0


def test_foreign_reused_and_expired_upload_ids_are_refused_for_free(stack):
    _, owner = stack.new_account("50")
    _, other = stack.new_account("50")
    form = create_upload(stack, owner)
    upload(form, fx.wav(12.0))
    # another account's upload_id
    foreign = clone(stack, other, form["upload_id"])
    assert foreign.status_code == 404 and foreign.json()["error"]["code"] == "upload_not_found"
    # used once, then reused
    assert clone(stack, owner, form["upload_id"]).status_code == 200
    reused = clone(stack, owner, form["upload_id"])
    assert reused.status_code == 410 and reused.json()["error"]["code"] == "upload_used"
    # expired: move the row's expiry into the past in the stack's own DynamoDB
    late = create_upload(stack, owner)
    upload(late, fx.wav(12.0))
    state = json.loads(stack.state_file.read_text())
    boto3.client("dynamodb", endpoint_url=state["aws_endpoint"], region_name="us-east-1",
                 aws_access_key_id="x", aws_secret_access_key="x").update_item(
        TableName=state["tables"]["UploadsTable"], Key={"upload_id": {"S": late["upload_id"]}},
        UpdateExpression="SET expires_at = :p", ExpressionAttributeValues={":p": {"N": "1"}})
    expired = clone(stack, owner, late["upload_id"])
    assert expired.status_code == 410 and expired.json()["error"]["code"] == "upload_expired"
    assert [stack.balance(k) for k in (owner, other)] == [47.9, 50.0]


def test_an_oversized_inline_request_names_the_upload_flow(stack):
    _, key = stack.new_account("50")
    response = requests.post(f"{stack.api_url}/v1/audio/voice-clone", headers={"Authorization": f"Bearer {key}"},
                             files={"file": ("big.wav", wav_of_size(6_000_000), "audio/wav")}, timeout=60)
    assert response.status_code == 413
    assert "/v1/audio/voice-clone/uploads" in response.json()["error"]["message"]
