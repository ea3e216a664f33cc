"""Timestamps, captions and pronunciation over HTTP against the local stack (`make run` in a
subprocess): POST /v1/audio/speech/with-timestamps through the API Gateway and Lambda Web Adapter
stand-ins, SSE speech.timestamps events checked against the published contract, the MiniMax
sandbox's call log and failure injection driven from outside, the OpenAI SDK on plain speech."""

from __future__ import annotations

import base64
import io
import itertools
import json

import av
import openai
import pytest
import requests
import srt
import webvtt
from helpers import SYSTEM_VOICE
from jsonschema import Draft202012Validator

from kyma.audio import inspect_audio
from kyma_local.sandbox import PATH_T2A
from kyma_local.sandbox.control import SandboxControl

THREE_SENTENCES = "Kyma speaks your brand's names. Every word has its time! Captions follow the sentences?"


def post(stack, key: str, path: str, body: dict, **kwargs) -> requests.Response:
    return requests.post(f"{stack.api_url}{path}", headers={"Authorization": f"Bearer {key}"}, json=body,
                         timeout=60, **kwargs)


def decoded_ms(audio: bytes) -> float:
    """The audio's duration as a decoder plays it: every decoded sample, counted (PyAV)."""
    with av.open(io.BytesIO(audio)) as container:
        stream = container.streams.audio[0]
        samples = sum(frame.samples for frame in container.decode(stream))
        return samples * 1000 / stream.codec_context.sample_rate


def test_with_timestamps_for_three_sentences_matches_the_input_and_the_audio(stack):
    _, key = stack.new_account("5")
    response = post(stack, key, "/v1/audio/speech/with-timestamps",
                    {"model": "minimax-speech-hd", "input": THREE_SENTENCES, "voice_id": SYSTEM_VOICE})
    assert response.status_code == 200, response.text
    answer = response.json()
    words = answer["words"]
    # Words cover the input in order, and char_start/char_end slice the input back into them
    assert [w["text"] for w in words] == THREE_SENTENCES.split()
    assert all(THREE_SENTENCES[w["char_start"]:w["char_end"]] == w["text"] for w in words)
    assert [w["char_start"] for w in words] == sorted(w["char_start"] for w in words)
    # Timings increase monotonically
    assert all(a["start_ms"] <= a["end_ms"] <= b["start_ms"] < b["end_ms"] for a, b in itertools.pairwise(words))
    # The last word ends within 50 ms of the audio's decoded duration, measured from the audio itself
    audio = base64.b64decode(answer["audio_base64"])
    played = decoded_ms(audio)
    print(f"last word ends {words[-1]['end_ms']} ms; decoded {played:.1f} ms")
    assert abs(words[-1]["end_ms"] - played) <= 50, (words[-1], played)
    assert abs(answer["duration_ms"] - inspect_audio(audio).duration_seconds * 1000) <= 1
    assert len(answer["sentences"]) == 3
    # Billing: speech's price, headers and body agree, the balance moved by exactly that
    assert answer["characters_billed"] == len(THREE_SENTENCES) == int(response.headers["X-Kyma-Chars-Billed"])
    assert answer["cost_usd"] == pytest.approx(len(THREE_SENTENCES) * 0.0001)
    assert stack.balance(key) == pytest.approx(5 - answer["cost_usd"], abs=1e-9) == answer["balance_usd"]


@pytest.mark.parametrize("fmt", ["srt", "vtt"])
def test_srt_and_vtt_captions_parse_with_the_libraries_one_cue_per_sentence(stack, fmt):
    _, key = stack.new_account("5")
    response = post(stack, key, "/v1/audio/speech/with-timestamps",
                    {"input": THREE_SENTENCES, "voice": SYSTEM_VOICE, "captions": fmt})
    answer = response.json()
    if fmt == "srt":
        texts = [cue.content for cue in srt.parse(answer["captions"])]
    else:
        texts = [cue.text for cue in webvtt.from_buffer(io.StringIO(answer["captions"]))]
    assert texts == ["Kyma speaks your brand's names.", "Every word has its time!", "Captions follow the sentences?"]
    assert all(len(line) <= 42 for text in texts for line in text.split("\n"))


def test_the_openai_sdk_still_works_on_plain_speech(stack):
    _, key = stack.new_account("5")
    client = openai.OpenAI(base_url=f"{stack.api_url}/v1", api_key=key, max_retries=0)
    result = client.audio.speech.create(model="minimax-speech-hd", voice=SYSTEM_VOICE, input=THREE_SENTENCES)
    assert inspect_audio(result.content).format == "mp3"
    assert result.response.headers["x-kyma-chars-billed"] == str(len(THREE_SENTENCES))


def test_sse_timestamps_events_parse_against_the_published_schema_words_before_done(stack):
    _, key = stack.new_account("5")
    document = requests.get(f"{stack.api_url}/v1/openapi.json", timeout=30).json()
    event_schema = (document["paths"]["/v1/audio/speech"]["post"]["responses"]["200"]["content"]
                    ["text/event-stream"]["schema"]["properties"]["data"]["contentSchema"])
    validator = Draft202012Validator(event_schema)
    response = post(stack, key, "/v1/audio/speech", {"input": THREE_SENTENCES, "voice": SYSTEM_VOICE,
                                                     "stream_format": "sse", "timestamps": "word"}, stream=True)
    assert response.status_code == 200 and response.headers["Content-Type"].startswith("text/event-stream")
    events = [json.loads(line[len("data: "):]) for line in response.iter_lines(decode_unicode=True)
              if line.startswith("data: ")]
    for event in events:
        validator.validate(event)
    kinds = [e["type"] for e in events]
    assert kinds[-1] == "speech.audio.done" and "speech.timestamps" in kinds
    words = [w for e in events if e["type"] == "speech.timestamps" for w in e["words"]]
    assert [w["text"] for w in words] == THREE_SENTENCES.split()
    assert max(i for i, k in enumerate(kinds) if k == "speech.timestamps") < kinds.index("speech.audio.done")


def test_pronunciation_dict_reaches_the_sandbox_and_a_malformed_one_is_400_free(stack):
    _, key = stack.new_account("5")
    sandbox = SandboxControl(stack.sandbox_url)
    tone = ["Kyma/KEE-ma", "brand's/BRANDS"]
    ok = post(stack, key, "/v1/audio/speech/with-timestamps",
              {"input": THREE_SENTENCES, "voice": SYSTEM_VOICE, "pronunciation_dict": {"tone": tone}})
    assert ok.status_code == 200, ok.text
    sent = [c for c in sandbox.calls() if c["path"] == PATH_T2A][-1]["json"]
    assert sent["pronunciation_dict"] == {"tone": tone} and sent["text"] == THREE_SENTENCES
    balance, calls = stack.balance(key), len(sandbox.calls())
    bad = post(stack, key, "/v1/audio/speech", {"input": THREE_SENTENCES, "voice": SYSTEM_VOICE,
                                                "pronunciation_dict": {"tone": ["Kyma"]}})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_request"
    assert "pronunciation_dict" in bad.json()["error"]["message"]
    assert stack.balance(key) == balance and len(sandbox.calls()) == calls


def test_a_broken_subtitle_file_upstream_is_502_and_nothing_is_charged(stack):
    account, key = stack.new_account("5")
    sandbox = SandboxControl(stack.sandbox_url)
    sandbox.fail_next(PATH_T2A, "subtitle_broken")
    response = post(stack, key, "/v1/audio/speech/with-timestamps", {"input": THREE_SENTENCES, "voice": SYSTEM_VOICE})
    assert response.status_code == 502 and response.json()["error"]["code"] == "provider_error"
    assert stack.balance(key) == 5
    assert [c for c in sandbox.calls() if c["path"] == PATH_T2A][-1]["injected"] == "subtitle_broken"
    ledger = stack.admin("ledger", account).stdout
    assert "released" in ledger and "consistent" in ledger
