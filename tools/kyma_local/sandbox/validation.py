"""Every request body checked like MiniMax checks it; a refusal raises `wire.Reject` (2013 mostly).

t2a_v2: models, text < 10,000 characters, emotions per model, ``language_boost``
from MiniMax's list, invisible characters over 10 % (1042), formats / sample
rates / bitrates / channels (``wav`` cannot stream).  voice_clone: the id's
shape, the flags, the preview text.  voice_design: the prompt, the preview text (required, at
most 500 characters), the optional id and watermark flag.  Not checked (the service does it, or only
injection produces it): the reference clip's duration and format (2037,
1043/1044 -- the upload takes any bytes).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Any

from kyma_local.sandbox import catalog
from kyma_local.sandbox.wire import Reject


def invalid(detail: str) -> Reject:
    """MiniMax's answer to a malformed request: 2013, "invalid params, <detail>"."""
    return Reject(2013, f"invalid params, {detail}")


def json_object(body: Any) -> dict:
    """The request body, if it is a JSON object (2013 if not)."""
    if not isinstance(body, dict):
        raise invalid("body is not a JSON object")
    return body

MODELS = frozenset({
    "speech-2.8-hd", "speech-2.8-turbo", "speech-2.6-hd", "speech-2.6-turbo",
    "speech-02-hd", "speech-02-turbo", "speech-01-hd", "speech-01-turbo",
})
BASE_EMOTIONS = frozenset({"happy", "sad", "angry", "fearful", "disgusted", "surprised", "calm"})
# `fluent` and `whisper` exist only on the speech-2.6 models (speech-2.8 takes no whisper).
EMOTIONS_2_6 = BASE_EMOTIONS | {"fluent", "whisper"}


def emotions_for(model: str) -> frozenset[str]:
    return EMOTIONS_2_6 if model.startswith("speech-2.6-") else BASE_EMOTIONS


# MiniMax's fixed language_boost list: "auto" and 40 languages.
LANGUAGE_BOOSTS = frozenset({
    "auto", "Chinese", "Chinese,Yue", "English", "Arabic", "Russian", "Spanish", "French",
    "Portuguese", "German", "Turkish", "Dutch", "Ukrainian", "Vietnamese", "Indonesian", "Japanese",
    "Italian", "Korean", "Thai", "Polish", "Romanian", "Greek", "Czech", "Finnish", "Hindi",
    "Bulgarian", "Danish", "Hebrew", "Malay", "Persian", "Slovak", "Swedish", "Croatian",
    "Filipino", "Hungarian", "Norwegian", "Slovenian", "Catalan", "Nynorsk", "Tamil", "Afrikaans",
})
FORMATS = frozenset({"mp3", "wav", "flac", "pcm"})
STREAM_FORMATS = frozenset({"mp3", "flac", "pcm"})
SAMPLE_RATES = frozenset({8000, 16000, 22050, 24000, 32000, 44100})
BITRATES = frozenset({32000, 64000, 128000, 256000})
MAX_TEXT = 10_000               # text must be shorter than this
MAX_CLONE_PREVIEW_TEXT = 1000
MAX_DESIGN_PREVIEW_TEXT = 500
MAX_INVISIBLE_RATIO = 0.10
MAX_UPLOAD = 20 * 1024 * 1024   # MiniMax's own cap on a clone reference

_VOICE_ID = re.compile(r"[A-Za-z][A-Za-z0-9_-]{6,254}[A-Za-z0-9]")


@dataclass
class Synthesis:
    """A validated t2a_v2 request."""

    body: dict
    model: str
    text: str
    voice_id: str
    fmt: str
    rate: int
    bitrate: int
    channels: int
    stream: bool
    exclude_aggregated: bool
    invisible_ratio: float
    subtitles: str | None = None            # subtitle_type, when subtitle_enable is true
    pronunciation: list[str] | None = None  # pronunciation_dict.tone


def validate_upload(parts: dict | None) -> dict:
    """The uploaded file (filename, content_type, content) of a ``purpose=voice_clone`` form."""
    if parts is None:
        raise invalid("expected multipart/form-data")
    if parts["fields"].get("purpose") != "voice_clone":
        raise invalid("purpose must be voice_clone")
    upload = parts["file"]
    if upload is None or not upload["content"]:
        raise invalid("file is empty")
    if len(upload["content"]) > MAX_UPLOAD:
        raise invalid("file too large")
    return upload


def validate_clone(body: Any) -> tuple[int, str]:
    """(file_id, voice_id) of a voice_clone request."""
    body = json_object(body)
    file_id = body.get("file_id")
    voice_id = body.get("voice_id")
    if not isinstance(file_id, int) or isinstance(file_id, bool):
        raise invalid("file_id must be an integer")
    if not isinstance(voice_id, str) or not _VOICE_ID.fullmatch(voice_id):
        raise invalid("voice_id: 8-256 characters, starting with a "
                           "letter, letters/digits/-/_ only, not ending with - or _")
    for flag in ("need_noise_reduction", "need_volume_normalization"):
        if flag in body and not isinstance(body[flag], bool):
            raise invalid(f"{flag} must be a boolean")
    if body.get("text") is not None:        # the preview: rendered upstream, never counts as use
        text = body["text"]
        if not isinstance(text, str) or len(text) > MAX_CLONE_PREVIEW_TEXT:
            raise invalid(f"text: at most {MAX_CLONE_PREVIEW_TEXT} characters")
        if body.get("model") not in MODELS:
            raise invalid("model is required with text")
    return file_id, voice_id


@dataclass
class Design:
    """A validated voice_design request."""

    prompt: str
    preview_text: str
    voice_id: str | None


def validate_design(body: Any) -> Design:
    body = json_object(body)
    prompt, preview_text, voice_id = body.get("prompt"), body.get("preview_text"), body.get("voice_id")
    if not isinstance(prompt, str) or not prompt.strip():
        raise invalid("prompt is required")
    if not isinstance(preview_text, str) or not preview_text.strip():
        raise invalid("preview_text is required")
    if len(preview_text) > MAX_DESIGN_PREVIEW_TEXT:
        raise invalid(f"preview_text: at most {MAX_DESIGN_PREVIEW_TEXT} characters")
    if voice_id is not None and (not isinstance(voice_id, str) or not _VOICE_ID.fullmatch(voice_id)):
        raise invalid("voice_id: 8-256 characters, starting with a "
                           "letter, letters/digits/-/_ only, not ending with - or _")
    if "aigc_watermark" in body and not isinstance(body["aigc_watermark"], bool):
        raise invalid("aigc_watermark must be a boolean")
    return Design(prompt, preview_text, voice_id)


def validate_get_voice(body: Any) -> str:
    """The ``voice_type`` of a get_voice request."""
    voice_type = body.get("voice_type") if isinstance(body, dict) else None
    if voice_type not in ("system", "voice_cloning", "voice_generation", "all"):
        raise invalid("voice_type: system, voice_cloning, voice_generation or all")
    return voice_type


def validate_delete_voice(body: Any) -> tuple[str, str]:
    """(voice_type, voice_id) of a delete_voice request (never a system voice's)."""
    body = json_object(body)
    voice_type, voice_id = body.get("voice_type"), body.get("voice_id")
    if voice_type not in ("voice_cloning", "voice_generation"):
        raise invalid("voice_type must be voice_cloning or voice_generation")
    if not isinstance(voice_id, str) or not voice_id:
        raise invalid("voice_id is required")
    if catalog.is_system_voice(voice_id):
        raise invalid("system voices cannot be deleted")
    return voice_type, voice_id


def validate_t2a(body: Any) -> Synthesis:
    body = json_object(body)
    model, text = body.get("model"), body.get("text")
    if model not in MODELS:
        raise invalid(f"model {model!r} is not supported")
    if not isinstance(text, str) or not text.strip():
        raise invalid("text is empty")
    if len(text) >= MAX_TEXT:
        raise invalid(f"text must be shorter than {MAX_TEXT} characters")
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise invalid("stream must be a boolean")
    options = body.get("stream_options") or {}
    if not isinstance(options, dict):
        raise invalid("stream_options must be an object")
    if not stream and body.get("output_format", "hex") != "hex":
        raise invalid("the sandbox only answers output_format hex")
    voice = body.get("voice_setting")
    if not isinstance(voice, dict) or not isinstance(voice.get("voice_id"), str) or not voice["voice_id"]:
        raise invalid("voice_setting.voice_id is required")
    _check_number(voice, "speed", 0.5, 2.0)
    _check_number(voice, "vol", 0.0, 10.0, low_open=True)
    _check_number(voice, "pitch", -12, 12, integer=True)
    if "emotion" in voice and voice["emotion"] not in emotions_for(model):
        raise invalid(f"emotion {voice['emotion']!r} is not supported by {model}")
    boost = body.get("language_boost")
    if boost is not None and boost not in LANGUAGE_BOOSTS:
        raise invalid(f"language_boost {boost!r}")
    setting = body.get("audio_setting") or {}
    if not isinstance(setting, dict):
        raise invalid("audio_setting must be an object")
    fmt = setting.get("format", "mp3")
    rate = setting.get("sample_rate", 32000)
    bitrate = setting.get("bitrate", 128000)
    channels = setting.get("channel", 1)
    if fmt not in FORMATS:
        raise invalid(f"audio_setting.format {fmt!r}")
    if stream and fmt not in STREAM_FORMATS:
        raise invalid(f"format {fmt} does not support streaming")
    if rate not in SAMPLE_RATES or isinstance(rate, bool):
        raise invalid(f"audio_setting.sample_rate {rate!r}")
    if bitrate not in BITRATES or isinstance(bitrate, bool):
        raise invalid(f"audio_setting.bitrate {bitrate!r}")
    if channels not in (1, 2) or isinstance(channels, bool):
        raise invalid(f"audio_setting.channel {channels!r}")
    ratio = invisible_ratio(text)
    if ratio > MAX_INVISIBLE_RATIO:
        raise Reject(1042)
    return Synthesis(body, model, text, voice["voice_id"], fmt, rate, bitrate, channels, stream,
                     options.get("exclude_aggregated_audio") is True, ratio, _subtitles(body, stream),
                     _pronunciation(body))


SUBTITLE_TYPES = ("sentence", "word", "word_streaming")
MAX_TONE_ENTRIES = 100


def _subtitles(body: dict, stream: bool) -> str | None:
    enabled = body.get("subtitle_enable", False)
    if not isinstance(enabled, bool):
        raise invalid("subtitle_enable must be a boolean")
    kind = body.get("subtitle_type", "sentence")
    if kind not in SUBTITLE_TYPES or (kind == "word_streaming" and not stream):
        raise invalid(f"subtitle_type {kind!r}")
    return kind if enabled else None


def _pronunciation(body: dict) -> list[str] | None:
    """``pronunciation_dict``: ``{"tone": ["original/replacement", ...]}`` (the documented field)."""
    if body.get("pronunciation_dict") is None:
        return None
    tone = body["pronunciation_dict"].get("tone") if isinstance(body["pronunciation_dict"], dict) else None
    if (not isinstance(tone, list) or len(tone) > MAX_TONE_ENTRIES
            or not all(isinstance(t, str) and "/" in t.strip("/") for t in tone)):
        raise invalid("pronunciation_dict.tone: a list of 'original/replacement' strings")
    return tone


_VISIBLE_CONTROLS = frozenset("\n\r\t")


def invisible_ratio(text: str) -> float:
    """The share of characters that render as nothing: control and format characters
    (zero-width spaces, joiners, BOMs...), private-use, surrogates and unassigned
    code points.  Line breaks and tabs are ordinary text."""
    if not text:
        return 0.0
    hidden = sum(1 for ch in text if ch not in _VISIBLE_CONTROLS
                 and unicodedata.category(ch) in ("Cc", "Cf", "Co", "Cs", "Cn"))
    return hidden / len(text)


def _check_number(obj: dict, name: str, low: float, high: float, *, integer: bool = False,
                  low_open: bool = False) -> None:
    if name not in obj:
        return
    value = obj[name]
    kinds = (int,) if integer else (int, float)
    ok = isinstance(value, kinds) and not isinstance(value, bool)
    if ok:
        ok = (low < value if low_open else low <= value) and value <= high
    if not ok:
        raise invalid(f"voice_setting.{name} {value!r}")
