"""Voices that last, over HTTP against `make run`: a clone is activated by the stack's own
stream + activation function, listed, paged, private to its owner, and deletable."""

from __future__ import annotations

import time

import requests
from helpers import SYSTEM_VOICE

from kyma_local.sample import reference_mp3


def auth(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


def clone(stack, key: str, name: str) -> str:
    response = requests.post(f"{stack.api_url}/v1/audio/voice-clone", headers=auth(key), timeout=60,
                             files={"file": ("reference.mp3", reference_mp3(), "audio/mpeg")}, data={"name": name})
    assert response.status_code == 200, response.text
    return response.json()["voice_id"]


def voice(stack, key: str, voice_id: str) -> requests.Response:
    return requests.get(f"{stack.api_url}/v1/audio/voices/{voice_id}", headers=auth(key), timeout=30)


def test_a_clone_is_listed_then_active_within_a_minute(stack):
    _, key = stack.new_account("10")
    voice_id = clone(stack, key, "narrator")
    listed = requests.get(f"{stack.api_url}/v1/audio/voices", headers=auth(key), timeout=30).json()
    mine = [v for v in listed["voices"] if v["type"] == "cloned"]
    assert [(v["voice_id"], v["name"]) for v in mine] == [(voice_id, "narrator")]
    assert mine[0]["status"] in ("activating", "active") and mine[0]["created_at"].endswith("Z")
    deadline = time.monotonic() + 60
    while voice(stack, key, voice_id).json()["status"] != "active":
        assert time.monotonic() < deadline, "the stack's activation did not run within a minute"
        time.sleep(0.5)
    assert stack.balance(key) == 7.9                           # activation was not billed


def test_pages_with_limit_and_cursor_then_the_system_catalog(stack):
    _, key = stack.new_account("10")
    ids = []
    for n in range(3):
        ids.append(clone(stack, key, f"v{n}"))
        time.sleep(1.05)
    seen, cursor = [], None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = requests.get(f"{stack.api_url}/v1/audio/voices", headers=auth(key), params=params, timeout=30).json()
        assert len(page["voices"]) <= 2
        seen += page["voices"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert [v["voice_id"] for v in seen[:3]] == ids[::-1]             # own voices first, newest first
    assert {v["type"] for v in seen[3:]} == {"system"} and SYSTEM_VOICE in [v["voice_id"] for v in seen]
    system = requests.get(f"{stack.api_url}/v1/audio/voices", params={"type": "system", "limit": 100},
                          headers=auth(key), timeout=30).json()["voices"]
    assert system and all(v["type"] == "system" for v in system)


def test_another_accounts_voice_is_not_found_and_not_listed(stack):
    _, owner = stack.new_account("10")
    _, other = stack.new_account("10")
    voice_id = clone(stack, owner, "private")
    assert voice(stack, other, voice_id).status_code == 404
    deleted = requests.delete(f"{stack.api_url}/v1/audio/voices/{voice_id}", headers=auth(other), timeout=30)
    assert deleted.status_code == 404 and deleted.json()["error"]["code"] == "voice_not_found"
    listed = requests.get(f"{stack.api_url}/v1/audio/voices", params={"type": "cloned"}, headers=auth(other),
                          timeout=30).json()
    assert listed == {"voices": [], "next_cursor": None}
    assert voice(stack, owner, voice_id).status_code == 200


def test_delete_then_get_speech_and_a_second_delete_are_404(stack):
    _, key = stack.new_account("10")
    voice_id = clone(stack, key, "short-lived")
    first = requests.delete(f"{stack.api_url}/v1/audio/voices/{voice_id}", headers=auth(key), timeout=30)
    assert first.status_code == 200 and first.json() == {"voice_id": voice_id, "deleted": True}
    assert voice(stack, key, voice_id).status_code == 404
    speech = requests.post(f"{stack.api_url}/v1/audio/speech", headers=auth(key), timeout=30,
                           json={"input": "Still there?", "voice": voice_id})
    assert speech.status_code == 404 and speech.json()["error"]["code"] == "voice_not_found"
    again = requests.delete(f"{stack.api_url}/v1/audio/voices/{voice_id}", headers=auth(key), timeout=30)
    assert again.status_code == 404
    assert stack.balance(key) == 7.9                            # a delete is never refunded, never charged
