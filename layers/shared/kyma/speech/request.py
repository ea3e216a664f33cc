"""A speech request: the JSON body read, validated and priced, before anything is charged.

Contract: shared/reference/speech.md and speech-streaming.md (OpenAI `audio.speech`
request shape on MiniMax voices).  Validation is JSON Schema, compiled once per process with
fastjsonschema (`_validator`), each failure mapped to the contract's error
code.  Characters billed = code points of `input` (fewer than 10,000, MiniMax's own
limit); the price per 1,000 characters comes from configuration, rounded up to the
micro-dollar.

How the audio is delivered (`SpeechInput.delivery`): `stream_format` "audio" or "sse" as
given, `stream: true` alone means "audio", neither means the whole audio at once
("buffered").  MiniMax streams mp3, flac and pcm, not wav.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import cache
from typing import Any

import fastjsonschema

from kyma.billing.idempotency import fingerprint as hash_parts
from kyma.billing.money import per_thousand_cost
from kyma.edge import errors
from kyma.platform.config import Config
from kyma.voices.records import is_valid_voice_id

DEFAULT_MODEL = "minimax-speech-hd"
# Public SKU → (MiniMax model, price tier)
SKUS: dict[str, tuple[str, str]] = {
    "minimax-speech-2.8-hd": ("speech-2.8-hd", "hd"),
    "minimax-speech-2.8-turbo": ("speech-2.8-turbo", "turbo"),
    "minimax-speech-2.6-hd": ("speech-2.6-hd", "hd"),
    "minimax-speech-2.6-turbo": ("speech-2.6-turbo", "turbo"),
    "minimax-speech-02-hd": ("speech-02-hd", "hd"),
    "minimax-speech-02-turbo": ("speech-02-turbo", "turbo"),
}
# Aliases resolve to the newest SKU of their tier.
ALIASES = {"minimax-speech-hd": "minimax-speech-2.8-hd", "minimax-speech-turbo": "minimax-speech-2.8-turbo"}
MAX_INPUT_CHARS = 9999           # MiniMax: text < 10,000 characters
BUFFERED, AUDIO, SSE = "buffered", "audio", "sse"
TIMED = "timed"                  # POST /v1/audio/speech/with-timestamps: one JSON answer (kyma.speech.timestamps)
STREAM_FORMATS = (AUDIO, SSE)
STREAMABLE_FORMATS = ("mp3", "flac", "pcm")
CONTENT_TYPES = {"mp3": "audio/mpeg", "wav": "audio/wav", "flac": "audio/flac", "pcm": "audio/pcm"}
SAMPLE_RATES = (8000, 16000, 22050, 24000, 32000, 44100)
MP3_KBPS = (32, 64, 128, 256)
DEFAULT_SAMPLE_RATE, DEFAULT_BITRATE = 32000, 128000
EMOTIONS = ("happy", "sad", "angry", "fearful", "disgusted", "surprised", "calm", "fluent", "whisper")
# MiniMax takes `fluent` and `whisper` on the speech-2.6 models only (2.8 refuses whisper: 2013).
EMOTIONS_ONLY_ON_2_6 = ("fluent", "whisper")
# MiniMax's language_boost values (another value is 2013 upstream: refused here, before any charge).
LANGUAGE_BOOSTS = (
    "auto", "Chinese", "Chinese,Yue", "English", "Arabic", "Russian", "Spanish", "French", "Portuguese",
    "German", "Turkish", "Dutch", "Ukrainian", "Vietnamese", "Indonesian", "Japanese", "Italian", "Korean",
    "Thai", "Polish", "Romanian", "Greek", "Czech", "Finnish", "Hindi", "Bulgarian", "Danish", "Hebrew",
    "Malay", "Persian", "Slovak", "Swedish", "Croatian", "Filipino", "Hungarian", "Norwegian", "Slovenian",
    "Catalan", "Nynorsk", "Tamil", "Afrikaans")

# Timings (shared/reference/timestamps.md): word (with-timestamps' default) or sentence; captions.
TIMESTAMP_LEVELS = ("word", "sentence")
CAPTION_FORMATS = ("srt", "vtt")
# MiniMax's pronunciation_dict: {"tone": ["original/replacement", ...]}, at most 100 entries of at most
# 200 characters, each an original and its replacement around the first "/" (no control characters).
MAX_PRONUNCIATIONS, MAX_PRONUNCIATION_CHARS = 100, 200
PRONUNCIATION_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["tone"],
    "additionalProperties": False,
    "properties": {"tone": {"type": "array", "minItems": 1, "maxItems": MAX_PRONUNCIATIONS, "items": {
        "type": "string", "maxLength": MAX_PRONUNCIATION_CHARS,
        "pattern": r"^[^/\x00-\x1f\x7f]+/[^\x00-\x1f\x7f]*[^/\s\x00-\x1f\x7f][^\x00-\x1f\x7f]*$"}}},
}

_RATES = "|".join(map(str, SAMPLE_RATES))
FORMAT_PATTERN = (rf"^(?:mp3(?:_(?:{_RATES})(?:_(?:{'|'.join(map(str, MP3_KBPS))}))?)?"
                  rf"|(?:wav|flac|pcm)(?:_(?:{_RATES}))?)$")

# The request after aliases are resolved (input/text, voice_id/voice), in contract terms.
# Property order matters: the first failing rule is the one reported.
SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["voice", "input"],
    "properties": {
        "model": {"type": "string", "enum": [*SKUS, *ALIASES]},
        "voice": {"type": "string", "minLength": 1, "maxLength": 256, "pattern": r"^[^\x00-\x1f\x7f]+$"},
        "input": {"type": "string", "minLength": 1, "maxLength": MAX_INPUT_CHARS},
        "response_format": {"type": "string", "pattern": FORMAT_PATTERN},
        "speed": {"type": "number", "minimum": 0.5, "maximum": 2.0},
        "voice_settings": {
            "type": "object",
            "properties": {
                "vol": {"type": "number", "exclusiveMinimum": 0, "maximum": 10},
                "pitch": {"type": "integer", "minimum": -12, "maximum": 12},
                "emotion": {"type": "string", "enum": list(EMOTIONS)},
            },
        },
        "language_boost": {"type": "string", "enum": list(LANGUAGE_BOOSTS)},
        "stream": {"type": "boolean"},
        "stream_format": {"type": "string", "enum": list(STREAM_FORMATS)},
        "timestamps": {"type": "string", "enum": list(TIMESTAMP_LEVELS)},
        "pronunciation_dict": PRONUNCIATION_SCHEMA,
    },
}


@dataclass(frozen=True)
class SpeechInput:
    sku: str                     # resolved SKU, e.g. minimax-speech-2.8-hd
    text: str
    voice_id: str
    audio_format: str
    sample_rate: int
    bitrate: int
    speed: float
    vol: float
    pitch: int
    emotion: str | None
    language_boost: str | None
    delivery: str = BUFFERED     # BUFFERED, AUDIO (raw chunks), SSE or TIMED: how, not what (not in the fingerprint)
    timestamps: str | None = None          # "word" | "sentence": timings wanted (SSE events, or TIMED)
    pronunciation: tuple[str, ...] = ()    # pronunciation_dict.tone, passed to MiniMax as given
    captions: str | None = None            # TIMED only: "srt" | "vtt"

    @property
    def streamed(self) -> bool:
        return self.delivery in STREAM_FORMATS

    @property
    def chars(self) -> int:
        return len(self.text)   # code points

    @property
    def content_type(self) -> str:
        return CONTENT_TYPES[self.audio_format]



def parse(body: dict, *, max_chars: int = MAX_INPUT_CHARS) -> SpeechInput:
    """The JSON body → SpeechInput, or the contract's 400 for the first problem found.
    `max_chars`: the longest `input` (a speech job takes more than MiniMax's synchronous limit)."""
    # An alias given as null counts as absent (some clients serialise unset fields as null).  When both
    # names are given, the one not used must still be valid: a request is valid as written, or refused.
    shadowed = {}
    if body.get("input") is not None and body.get("text") is not None:
        shadowed["input"] = body["text"]
    if body.get("voice_id") is not None and body.get("voice") is not None:
        other = body["voice"]
        shadowed["voice"] = other.get("id") if isinstance(other, dict) else other
    _check(shadowed, partial=True, max_chars=max_chars)
    text = body.get("input") if body.get("input") is not None else body.get("text")
    voice = body.get("voice_id") if body.get("voice_id") is not None else body.get("voice")
    if isinstance(voice, dict):          # the OpenAI SDK's custom-voice form: {"id": "..."}
        voice = voice.get("id")
    if voice is None or voice == "":
        raise errors.VoiceRequired("voice_id (or voice) is required.")
    request = {"model": body.get("model") if body.get("model") is not None else DEFAULT_MODEL,
               "voice": voice, "input": text}
    for field in ("response_format", "speed", "voice_settings", "language_boost", "stream", "stream_format",
                  "timestamps", "pronunciation_dict"):
        if body.get(field) is not None:
            request[field] = body[field]
    if text is None:
        raise errors.InvalidRequest("input (or text) is required.")
    _check(request, max_chars=max_chars)

    if not is_valid_voice_id(voice):
        raise errors.InvalidRequest(f"voice_id '{voice[:64]}' is not a valid voice id.")
    sku = ALIASES.get(request["model"], request["model"])
    codec, rate, kbps = _format(request.get("response_format", "mp3"))
    settings = request.get("voice_settings") or {}
    if settings.get("emotion") in EMOTIONS_ONLY_ON_2_6 and not SKUS[sku][0].startswith("speech-2.6-"):
        raise errors.InvalidRequest(f"emotion '{settings['emotion']}' is only available on the "
                                    "minimax-speech-2.6 models.")
    delivery = request.get("stream_format") or (AUDIO if request.get("stream") else BUFFERED)
    if delivery != BUFFERED and codec not in STREAMABLE_FORMATS:
        raise errors.UnsupportedFormat(f"response_format '{request['response_format']}' cannot be streamed "
                                       f"(MiniMax streams {', '.join(STREAMABLE_FORMATS)}); choose one of those, "
                                       "or ask for the whole file without stream or stream_format.")
    if request.get("timestamps") and delivery != SSE:
        raise errors.InvalidRequest("timestamps come with stream_format 'sse' (speech.timestamps events), or from "
                                    "POST /v1/audio/speech/with-timestamps; raw audio and whole files carry none.")
    return SpeechInput(sku=sku, text=text, voice_id=voice, audio_format=codec, sample_rate=rate,
                       bitrate=kbps * 1000, speed=float(request.get("speed", 1.0)),
                       vol=float(settings.get("vol", 1.0)), pitch=int(settings.get("pitch", 0)),
                       emotion=settings.get("emotion"), language_boost=request.get("language_boost"),
                       delivery=delivery, timestamps=request.get("timestamps"),
                       pronunciation=tuple((request.get("pronunciation_dict") or {}).get("tone", ())))


def parse_with_timestamps(body: dict) -> SpeechInput:
    """POST /v1/audio/speech/with-timestamps: the speech request plus `timestamps` (default word) and
    `captions`; one JSON answer, so no stream flags."""
    if not isinstance(body, dict):
        raise errors.InvalidRequest("The body must be a JSON object.")
    if body.get("stream_format") is not None or body.get("stream"):
        raise errors.InvalidRequest("with-timestamps answers one JSON document: send no stream or stream_format "
                                    "(for streamed timings use POST /v1/audio/speech with stream_format 'sse' and "
                                    "timestamps).")
    captions = body.get("captions")
    if captions is not None and captions not in CAPTION_FORMATS:
        raise errors.InvalidRequest(f"captions must be one of {', '.join(CAPTION_FORMATS)}.")
    level = body.get("timestamps") if body.get("timestamps") is not None else "word"
    inp = parse({**body, "timestamps": None, "stream": None})
    if level not in TIMESTAMP_LEVELS:
        raise errors.InvalidRequest(f"timestamps must be one of {', '.join(TIMESTAMP_LEVELS)}.")
    return replace(inp, delivery=TIMED, timestamps=level, captions=captions)


def fingerprint(inp: SpeechInput) -> str:
    """What identifies the request for its Idempotency-Key: the request after aliases are resolved.
    How the audio is delivered is not part of it: a retry may ask for the same audio as raw
    bytes, events or one file, and is answered from the first request's audio."""
    # The fields added with timings count only when set, so a request without them keeps its fingerprint.
    optional = ("timestamps", "pronunciation", "captions")
    return hash_parts({k: getattr(inp, k) for k in inp.__dataclass_fields__
                       if k != "delivery" and not (k in optional and not getattr(inp, k))})


def _format(value: str) -> tuple[str, int, int]:
    codec, *rest = value.split("_")
    rate = int(rest[0]) if rest else DEFAULT_SAMPLE_RATE
    kbps = int(rest[1]) if len(rest) > 1 else DEFAULT_BITRATE // 1000
    return codec, rate, kbps


@cache
def _validator(partial: bool, max_chars: int = MAX_INPUT_CHARS) -> Callable[[Any], Any]:
    """The schema compiled once per process, on first use (not in INIT: cold start).  Powertools'
    `validate` compiles it on every call (fastjsonschema.validate is compile + check): 6.8 ms of
    CPU per speech request here against 0.007 ms compiled, and the largest share of the local
    stack's time to the first audio byte (found with yappi through `make run`; bench/results.md)."""
    schema = {**SCHEMA, "properties": {**SCHEMA["properties"],
                                       "input": {**SCHEMA["properties"]["input"], "maxLength": max_chars}}}
    return fastjsonschema.compile({**schema, "required": []} if partial else schema)


def _check(data: dict, *, partial: bool = False, max_chars: int = MAX_INPUT_CHARS) -> None:
    try:
        _validator(partial, max_chars)(data)
    except fastjsonschema.JsonSchemaValueException as exc:
        raise _contract_error(exc, max_chars) from exc


def _contract_error(exc: fastjsonschema.JsonSchemaValueException,
                    max_chars: int = MAX_INPUT_CHARS) -> errors.ApiError:
    """Map a JSON Schema failure onto the contract's error codes (never a generic 422)."""
    field = (exc.name or "").removeprefix("data.").split(".")[0]
    rule = exc.rule
    if field == "model":
        return errors.NotATtsModel(f"'{exc.value}' is not a speech model; use one of {', '.join([*ALIASES, *SKUS])}.")
    if field == "input" and rule == "maxLength":
        return errors.InputTooLong(f"input is {len(exc.value)} characters; the limit is {max_chars}.")
    if field == "response_format":
        return errors.UnsupportedFormat(f"response_format '{exc.value}' is not supported; use mp3, wav, flac or "
                                        "pcm, optionally as codec_samplerate[_bitrate] (e.g. mp3_44100_128).")
    if field == "input":
        return errors.InvalidRequest("input must be a non-empty string.")
    if field == "voice":
        return errors.InvalidRequest("voice_id must be a non-empty string without control characters.")
    if field == "speed":
        return errors.InvalidRequest("speed must be a number from 0.5 to 2.0.")
    if field == "voice_settings":
        return errors.InvalidRequest("voice_settings: vol in (0, 10], pitch an integer in [-12, 12], "
                                     f"emotion one of {', '.join(EMOTIONS)}.")
    if field == "stream":
        return errors.InvalidRequest("stream must be true or false.")
    if field == "stream_format":
        return errors.InvalidRequest(f"stream_format must be one of {', '.join(STREAM_FORMATS)}.")
    if field == "timestamps":
        return errors.InvalidRequest(f"timestamps must be one of {', '.join(TIMESTAMP_LEVELS)}.")
    if field == "pronunciation_dict":
        return errors.InvalidRequest(f"pronunciation_dict must be {{\"tone\": [...]}}: 1 to {MAX_PRONUNCIATIONS} "
                                     "strings 'original/replacement' (e.g. 'Kyma/KEE-ma'), each at most "
                                     f"{MAX_PRONUNCIATION_CHARS} characters, without control characters.")
    if field == "language_boost":
        return errors.InvalidRequest(f"language_boost must be one of MiniMax's: {', '.join(LANGUAGE_BOOSTS)}.")
    return errors.InvalidRequest(f"Invalid request: {exc.message}.")


def price_micros(inp: SpeechInput, cfg: Config) -> int:
    tier = SKUS[inp.sku][1]
    per_1k = cfg.speech_price_hd_micros_per_1k if tier == "hd" else cfg.speech_price_turbo_micros_per_1k
    return per_thousand_cost(inp.chars, per_1k)


