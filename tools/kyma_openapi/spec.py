"""Builds the OpenAPI 3.1 document from the code's own vocabulary (see the package docstring).

One function per route keeps each operation readable; `_errors(...)` lists the
statuses an operation can answer with, all in the one error envelope whose
`code` is any code of `kyma.edge.errors` (the vocabulary is shared by every route).
"""

from __future__ import annotations

from typing import Any

from kyma.accounts.customer_keys import NAME_MAX
from kyma.accounts.gate import DEFAULT_CONCURRENCY
from kyma.billing.idempotency import HEADER as IDEMPOTENCY_HEADER
from kyma.billing.idempotency import MAX_KEY_LENGTH
from kyma.edge import errors
from kyma.edge.scopes import ALL_SCOPES, DEFAULT_SCOPES
from kyma.jobs.records import ACTIVE_STATES, TERMINAL_STATES
from kyma.jobs.submit import JOB_FORMATS, MAX_JOB_CHARS, MAX_METADATA_CHARS, MAX_METADATA_KEYS
from kyma.speech.request import (
    CAPTION_FORMATS,
    STREAMABLE_FORMATS,
)
from kyma.speech.request import SCHEMA as SPEECH_SCHEMA
from kyma.voices.catalog import DEFAULT_LIMIT, MAX_LIMIT, TYPES
from kyma.voices.clone import CLONE_MODEL
from kyma.voices.clone import FIELDS as CLONE_FIELDS
from kyma.voices.design import (
    AGE_GROUPS,
    DESIGN_MODEL,
    GENDERS,
    MAX_DESCRIPTION_CHARS,
    MAX_PREVIEW_TEXT_CHARS,
)
from kyma.voices.previews import PREVIEW_URL_SECONDS
from kyma.voices.records import SYSTEM_VOICE_PATTERN
from kyma.voices.uploads import CREATE_BODY as UPLOAD_BODY
from kyma.webhooks.events import TYPES as EVENT_TYPES

VERSION = "2.0.0"
JSON = "application/json"

# Statuses every authenticated operation can answer with, whatever it does: API Gateway's own
# (401 no/bad key, 403 key not allowed, 413 body too large, 429 throttled, 504 integration timeout)
# and ours (500 internal error, 503 a dependency unavailable).
GATEWAY = (401, 403, 413, 429, 500, 503, 504)
DESCRIPTIONS = {
    400: "Invalid request (nothing charged).", 401: "Missing, invalid or revoked API key.",
    402: "Balance below the price of this request, or the key's monthly spend limit reached (see error.code).",
    403: "Not allowed: outside the key's scopes, or not yours (see error.code).",
    404: "Not found (see error.code).", 405: "Method not allowed on this route (see Allow).",
    409: "Conflict with another request (see error.code).", 410: "Gone (see error.code).",
    413: "Body too large.", 415: "Unsupported audio format.",
    429: "Rate limited, or too many requests in flight (see error.code); see Retry-After.",
    500: "Our fault; quote X-Request-Id.", 502: "Upstream (MiniMax) failed; nothing charged.",
    503: "Temporarily unavailable; see Retry-After when present.", 504: "The gateway timed out.",
}


def _nullable(schema: Any) -> dict:
    """An optional field the API reads as absent when it is null (clients serialise unset fields so)."""
    return {"anyOf": [schema, {"type": "null"}]}


def _speech_rule(field: str, **documented: Any) -> dict:
    """A speech field as the API checks it (kyma.speech.request.SCHEMA, the schema it compiles), with
    what only the document says (defaults, descriptions): one rule, published as it runs."""
    return {**SPEECH_SCHEMA["properties"][field], **documented}


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _header(name: str) -> dict:
    return {"$ref": f"#/components/headers/{name}"}


def _errors(*statuses: int) -> dict[str, Any]:
    out = {}
    for status in sorted({*statuses, *GATEWAY}):
        headers = {"X-Request-Id": _header("XRequestId")}
        if status in (429, 503):
            headers["Retry-After"] = _header("RetryAfter")
        if status == 405:
            headers["Allow"] = {"description": "The methods this route has.", "schema": {"type": "string"}}
        out[str(status)] = {"description": DESCRIPTIONS[status], "headers": headers,
                            "content": {JSON: {"schema": _ref("Error")}}}
    return out


def _ok(description: str, schema: dict, *, headers: dict | None = None, status: int = 200,
        media: str = JSON) -> dict[str, Any]:
    return {str(status): {"description": description,
                          "headers": {"X-Request-Id": _header("XRequestId"), **(headers or {})},
                          "content": {media: {"schema": schema}}}}


IDEMPOTENCY_PARAMETER = {
    "name": IDEMPOTENCY_HEADER, "in": "header", "required": False,
    "description": "Makes a paid request safe to retry: the same key with the same request replays the first "
                   "response and charges once (see README).",
    "schema": {"type": "string", "minLength": 1, "maxLength": MAX_KEY_LENGTH, "pattern": "^[\\x20-\\x7e]+$"},
}
PAID_HEADERS = {
    "X-Kyma-Model": {"description": "The resolved model (SKU).", "schema": {"type": "string"}},
    "X-Kyma-Cost-USD": {"description": "Charged, USD decimal string.", "schema": {"type": "string"}},
    "X-Kyma-Balance-USD": {"description": "Balance after the charge (absent if it could not be read).",
                           "schema": {"type": "string"}},
    "X-Kyma-Provider": {"description": "minimax, or sandbox on the local stack.", "schema": {"type": "string"}},
    "Idempotent-Replayed": {"description": "true on a replay of an Idempotency-Key.",
                            "schema": {"type": "string", "enum": ["true"]}},
}


def balance() -> dict:
    return {"get": {
        "operationId": "getBalance", "summary": "The caller's prepaid balance", "tags": ["credits"],
        "responses": {**_ok("The balance.", _ref("Balance")), **_errors()},
    }}


def ledger() -> dict:
    return {"get": {
        "operationId": "getLedger", "summary": "Every change of your balance, newest first", "tags": ["credits"],
        "parameters": [
            {"name": "limit", "in": "query",
             "schema": {"type": "integer", "minimum": 1, "maximum": 100, "default": 20}},
            {"name": "cursor", "in": "query", "description": "next_cursor of the previous page, unchanged.",
             "schema": {"type": "string"}}],
        "responses": {**_ok("One page of entries.", _ref("LedgerPage")), **_errors(400)},
    }}


def usage_report() -> dict:
    day = {"type": "string", "format": "date", "description": "UTC day, YYYY-MM-DD"}
    return {"get": {
        "operationId": "getUsage", "summary": "What was charged per UTC day, endpoint and model",
        "tags": ["credits"],
        "parameters": [
            {"name": "start", "in": "query", "description": "First day (default: 29 days before end).",
             "schema": day},
            {"name": "end", "in": "query", "description": "Last day (default: today); at most 366 days.",
             "schema": day}],
        "responses": {**_ok("Usage rows, newest first.", _ref("UsageReport")), **_errors(400)},
    }}


def voice_clone() -> dict:
    rules = CLONE_FIELDS.schema["properties"]       # as kyma.voices.clone checks them
    fields = {
        "name": {**rules["name"], "description": "Optional label, at most 64 characters."},
        "model": {**rules["model"], "default": CLONE_MODEL},
    }
    return {"post": {
        "operationId": "cloneVoice", "summary": "Clone a voice from a 10 s – 5 min reference ($2.10)",
        "tags": ["voices"], "parameters": [IDEMPOTENCY_PARAMETER],
        "requestBody": {"required": True, "content": {
            "multipart/form-data": {"schema": {"type": "object", "properties": {
                "file": {"type": "string", "contentMediaType": "application/octet-stream",
                         "description": "MP3, WAV or M4A, at most 4.5 MB inline (10 MB with the upload flow)."},
                "upload_id": {**rules["upload_id"], "description": "Instead of file: an upload of the upload flow."},
                **fields}}},
            JSON: {"schema": {"type": "object", "required": ["upload_id"], "properties": {
                "upload_id": rules["upload_id"], **fields}}},
        }},
        "responses": {**_ok("The new voice and the charge.", _ref("ClonedVoice"), headers=PAID_HEADERS),
                      **_errors(400, 402, 404, 409, 410, 415, 502)},
    }}


def voice_design() -> dict:
    description = {"type": "string", "minLength": 1, "maxLength": MAX_DESCRIPTION_CHARS,
                   "description": "The voice in words, e.g. \"warm female narrator, slight British accent, calm\". "
                                  "Alias: text."}
    return {"post": {
        "operationId": "designVoice", "summary": "Design a voice from a description, with its preview ($4.20)",
        "tags": ["voices"], "parameters": [IDEMPOTENCY_PARAMETER],
        "requestBody": {"required": True, "content": {JSON: {"schema": {
            "type": "object", "anyOf": [{"required": ["description"]}, {"required": ["text"]}],
            "description": "Unknown fields are ignored; a field given as null counts as absent.",
            "properties": {name: _nullable(schema) for name, schema in {
                "description": description,
                "text": {"type": "string", "minLength": 1, "maxLength": MAX_DESCRIPTION_CHARS},
                "model": {"type": "string", "enum": [DESIGN_MODEL], "default": DESIGN_MODEL},
                "name": {**CLONE_FIELDS.schema["properties"]["name"],      # kyma.voices.clone.check_name
                         "description": "Optional label, at most 64 characters."},
                "preview_text": {"type": "string", "minLength": 1, "maxLength": MAX_PREVIEW_TEXT_CHARS,
                                 "description": "What the preview says (a default sentence when absent)."},
                "gender": {"type": "string", "enum": list(GENDERS), "description": "A hint, folded into the "
                                                                                  "description."},
                "age_group": {"type": "string", "enum": list(AGE_GROUPS),
                              "description": "A hint, folded into the description."},
            }.items()}}}}},
        "responses": {**_ok("The new voice, the charge and its preview.", _ref("DesignedVoice"),
                            headers=PAID_HEADERS),
                      **_errors(400, 402, 409, 502)},
    }}


def uploads() -> dict:
    return {"post": {
        "operationId": "createUpload", "summary": "A presigned S3 upload for a reference up to 10 MB",
        "tags": ["voices"],
        "requestBody": {"required": False, "content": {JSON: {"schema": {
            **UPLOAD_BODY.schema, "properties": {name: _nullable(rule)        # as kyma.voices.uploads checks it
                                                 for name, rule in UPLOAD_BODY.schema["properties"].items()}}}}},
        "responses": {**_ok("Where and how to upload the file.", _ref("Upload"), status=201), **_errors(400)},
    }}


# A word or sentence with its timing (inlined where an event's data is described: an event's
# contentSchema is read on its own, without the document's components).
TIMED_TEXT = {
    "type": "object", "required": ["text", "start_ms", "end_ms", "char_start", "char_end"],
    "properties": {
        "text": {"type": "string", "description": "input[char_start:char_end]"},
        "start_ms": {"type": "integer", "minimum": 0}, "end_ms": {"type": "integer", "minimum": 0},
        "char_start": {"type": "integer", "minimum": 0,
                       "description": "Index into the request's input, in code points."},
        "char_end": {"type": "integer", "minimum": 0}}}


def speech_with_timestamps() -> dict:
    headers = {
        "X-Kyma-Model": PAID_HEADERS["X-Kyma-Model"],
        "X-Kyma-Chars-Billed": {"description": "Characters billed (code points of input).",
                                "schema": {"type": "string"}},
        "X-Kyma-Cost-USD": PAID_HEADERS["X-Kyma-Cost-USD"],
        "X-Kyma-Balance-USD": PAID_HEADERS["X-Kyma-Balance-USD"],
        "X-Kyma-Provider": PAID_HEADERS["X-Kyma-Provider"],
        "Idempotent-Replayed": PAID_HEADERS["Idempotent-Replayed"],
    }
    responses = {**_ok("The audio (base64) with its timings, captions if asked for, and the billing facts. Sent "
                       "once the charge settled.", _ref("SpeechWithTimestamps"), headers=headers),
                 **_errors(400, 402, 403, 404, 409, 410, 502)}
    responses["502"]["description"] = ("provider_error: MiniMax failed, or its timings could not be read or do not "
                                       "match the input; nothing charged.")
    return {"post": {
        "operationId": "createSpeechWithTimestamps",
        "summary": "Text to speech with word and sentence timings and captions, as one JSON answer",
        "description": "The speech request (without stream flags) plus timestamps and captions. Same price, "
                       "billing and Idempotency-Key semantics as createSpeech. char_start/char_end index the "
                       "request's input in code points.",
        "tags": ["speech"], "parameters": [IDEMPOTENCY_PARAMETER],
        "requestBody": {"required": True, "content": {JSON: {"schema": _ref("SpeechWithTimestampsRequest")}}},
        "responses": responses,
    }}


def speech() -> dict:
    audio = {"type": "string", "contentMediaType": "application/octet-stream"}
    headers = {
        "X-Request-Id": _header("XRequestId"),
        "X-Kyma-Model": PAID_HEADERS["X-Kyma-Model"],
        "X-Kyma-Chars-Billed": {"description": "Characters billed (code points of input).",
                                "schema": {"type": "string"}},
        "X-Kyma-Cost-USD": PAID_HEADERS["X-Kyma-Cost-USD"],
        "X-Kyma-Balance-USD": {
            "description": "Balance after the charge, USD decimal string (the reserve debited it already). "
                           "Only on the whole-file response (no stream flag); absent on streamed "
                           "responses (their headers leave before the charge; SSE carries it in "
                           "speech.audio.done), and if it could not be read.",
            "schema": {"type": "string"}},
        "X-Kyma-Provider": PAID_HEADERS["X-Kyma-Provider"],
        "Idempotent-Replayed": PAID_HEADERS["Idempotent-Replayed"],
    }
    # One Server-Sent Event (OpenAPI 3.1 describes an event stream's events with `schema`; 3.2 would
    # call it itemSchema): its `data` is one JSON object, a delta, the done event or an error.
    event_data = {"oneOf": [
        {"type": "object", "required": ["type", "audio"], "properties": {
            "type": {"const": "speech.audio.delta"},
            "audio": {"type": "string", "contentEncoding": "base64",
                      "description": "The next bytes of the audio, base64."}}},
        {"type": "object", "required": ["type", "usage"], "properties": {
            "type": {"const": "speech.audio.done"},
            "usage": {"type": "object", "required": ["input_tokens", "output_tokens", "total_tokens",
                                                     "characters_billed", "cost_usd", "balance_usd"],
                      "properties": {
                          "input_tokens": {"type": "integer"}, "output_tokens": {"type": "integer"},
                          "total_tokens": {"type": "integer"}, "characters_billed": {"type": "integer"},
                          "cost_usd": {"type": "number"},
                          "balance_usd": {"type": ["number", "null"],
                                          "description": "null if it could not be read"}}}}},
        {"type": "object", "required": ["type", "sentences"], "properties": {
            "type": {"const": "speech.timestamps"},
            "words": {"type": "array", "items": TIMED_TEXT,
                      "description": "timestamps word: the words of the segment MiniMax just reported."},
            "sentences": {"type": "array", "items": TIMED_TEXT,
                          "description": "The segment's sentence (none for a segment without text)."}}},
        {"type": "object", "required": ["type", "error"], "properties": {
            "type": {"const": "error"},
            "error": {"type": "object", "required": ["code", "message"], "properties": {
                "code": {"type": "string"}, "message": {"type": "string"}}}}},
    ]}
    events = {
        "type": "object",
        "required": ["data"],
        "description": "Server-Sent Events (stream_format: sse), one JSON object per `data:` line: "
                       '`{"type": "speech.audio.delta", "audio": "<base64 of the next bytes>"}` per chunk, then '
                       '`{"type": "speech.audio.done", "usage": {"input_tokens": n, "output_tokens": 0, '
                       '"total_tokens": n, "characters_billed": n, "cost_usd": 0.0029, "balance_usd": 49.99}}` '
                       "once the charge settled (OpenAI's usage fields; n = characters billed; balance_usd null "
                       "if it could not be read). With timestamps, "
                       '`{"type": "speech.timestamps", "words": [...], "sentences": [...]}` follows the audio of '
                       "each segment (sentence) as MiniMax reports it, always before speech.audio.done. "
                       "A failure after the first event ends the stream with "
                       '`{"type": "error", "error": {"code": "...", "message": "..."}}` and nothing is charged. '
                       "This schema describes one event.",
        "properties": {
            "data": {"type": "string", "contentMediaType": "application/json", "contentSchema": event_data},
            "event": {"type": "string"}, "id": {"type": "string"}, "retry": {"type": "integer"},
        },
        "example": {"data": '{"type":"speech.audio.delta","audio":"SUQzBAAAAAAAI1RTU0UAAAAPAAADTGF2ZjYx"}'},
    }
    responses = {
        "200": {"description": "The audio: one whole file (no stream flag; with an Idempotency-Key sent once the "
                               "charge settled, without one sent first and charged only once it went out: a "
                               "client gone before it is released), raw "
                               "audio sent as MiniMax produces it (stream_format: audio, or stream: true), or "
                               "Server-Sent Events (stream_format: sse). Always bytes, never base64, whatever "
                               "the Accept header. The charge settles after the last byte; if the stream fails "
                               "or stops early nothing is charged: a raw stream then ends without its last "
                               "chunk (a truncated body), an event stream with an error event.",
                "headers": headers,
                "content": {**{media: {"schema": audio}
                               for media in ("audio/mpeg", "audio/wav", "audio/flac", "audio/pcm")},
                            "text/event-stream": {"schema": events}}},
        **_errors(400, 402, 403, 404, 409, 410, 502),
    }
    responses["410"]["description"] = ("Gone: voice_expired (MiniMax no longer has this cloned voice; nothing "
                                       "charged, the clone refunded if it was never used), or idempotency_expired.")
    responses["503"]["description"] = ("service_unavailable: MiniMax is at capacity or unavailable to us, or the "
                                       "platform's share of MiniMax's quota for this minute is in use (ours, not "
                                       "your limit: Retry-After says when the next minute starts); nothing "
                                       "charged. See Retry-After when present.")
    return {"post": {
        "operationId": "createSpeech", "summary": "Text to speech on MiniMax voices, billed per character",
        "description": "Streams with stream_format (audio or sse) or stream: true; an Idempotency-Key replay "
                       "returns the first request's audio in the form the replay asks for, charged once.",
        "tags": ["speech"], "parameters": [IDEMPOTENCY_PARAMETER],
        "requestBody": {"required": True, "content": {JSON: {"schema": _ref("SpeechRequest")}}},
        "responses": responses,
    }}


JOB_ID_PARAMETER = {"name": "job_id", "in": "path", "required": True, "description": "The job's id (job_...).",
                    "schema": {"type": "string", "minLength": 1, "maxLength": 64}}


def speech_jobs() -> dict:
    location = {"Location": {"description": "/v1/audio/speech/jobs/{job_id}", "schema": {"type": "string"}},
                "Idempotent-Replayed": PAID_HEADERS["Idempotent-Replayed"]}
    created = _ok("Queued; the whole price is reserved (charged only when the audio is delivered).",
                  _ref("SpeechJobCreated"), headers=location, status=202)
    post_errors = _errors(400, 402, 403, 404, 409, 410, 429, 502)
    post_errors["429"]["description"] = ("rate_limited, or too_many_jobs: the account already has its maximum "
                                         "of jobs queued or running. See Retry-After.")
    return {
        "post": {
            "operationId": "createSpeechJob", "summary": "Long-form speech (up to 200,000 characters) as a job",
            "description": "The whole price is reserved now and charged only when the joined audio is stored; a "
                           "job that fails, is canceled or runs out of time is never charged. Poll GET "
                           "/v1/audio/speech/jobs/{job_id} for its status and download URL.",
            "tags": ["speech"], "parameters": [IDEMPOTENCY_PARAMETER],
            "requestBody": {"required": True, "content": {JSON: {"schema": _ref("SpeechJobRequest")}}},
            "responses": {**created, **post_errors},
        },
        "get": {
            "operationId": "listSpeechJobs", "summary": "Your speech jobs, newest first", "tags": ["speech"],
            "parameters": [
                {"name": "status", "in": "query",
                 "schema": {"type": "string", "enum": [*ACTIVE_STATES, *TERMINAL_STATES]}},
                {"name": "limit", "in": "query",
                 "schema": {"type": "integer", "minimum": 1, "maximum": 100, "default": 20}},
                {"name": "cursor", "in": "query", "description": "next_cursor of the previous page, unchanged.",
                 "schema": {"type": "string"}}],
            "responses": {**_ok("One page of jobs (without download URLs).", _ref("SpeechJobList")),
                          **_errors(400)},
        },
    }


def speech_job() -> dict:
    return {
        "get": {"operationId": "getSpeechJob", "summary": "One speech job; when succeeded, a download URL",
                "tags": ["speech"], "parameters": [JOB_ID_PARAMETER],
                "responses": {**_ok("The job.", _ref("SpeechJob")), **_errors(404)}},
        "delete": {"operationId": "deleteSpeechJob",
                   "summary": "Cancel a queued or running job (nothing charged), or delete a finished job's files",
                   "tags": ["speech"], "parameters": [JOB_ID_PARAMETER],
                   "responses": {**_ok("The job after the cancel or the deletion.", _ref("SpeechJob")),
                                 **_errors(404)}},
    }


VOICE_ID_PARAMETER = {"name": "voice_id", "in": "path", "required": True,
                      "description": "A cloned kyma_ id, or a MiniMax system voice id (URL-encoded).",
                      "schema": {"type": "string", "minLength": 1, "maxLength": 256,
                                 "pattern": f"^(?:[Kk][Yy][Mm][Aa]_.*|{SYSTEM_VOICE_PATTERN.pattern[1:-1]})$"}}


def voices() -> dict:
    return {"get": {
        "operationId": "listVoices",
        "summary": "Your cloned and designed voices (newest first), then the system catalog",
        "tags": ["voices"],
        "parameters": [
            {"name": "type", "in": "query", "schema": {"type": "string", "enum": list(TYPES), "default": "all"}},
            {"name": "limit", "in": "query",
             "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT}},
            {"name": "cursor", "in": "query", "description": "next_cursor of the previous page, unchanged.",
             "schema": {"type": "string"}}],
        "responses": {**_ok("One page of voices.", _ref("VoiceList")), **_errors(400, 502)},
    }}


def voice() -> dict:
    return {
        "get": {"operationId": "getVoice", "summary": "One of your cloned or designed voices, or a system voice",
                "tags": ["voices"], "parameters": [VOICE_ID_PARAMETER],
                "responses": {**_ok("The voice.", _ref("Voice")), **_errors(404, 502)}},
        "delete": {"operationId": "deleteVoice", "summary": "Delete one of your cloned or designed voices (no refund)",
                   "tags": ["voices"], "parameters": [VOICE_ID_PARAMETER],
                   "responses": {**_ok("Deleted, here and at MiniMax.", _ref("DeletedVoice")),
                                 **_errors(400, 404, 502)}},
    }


KEY_ID_PARAMETER = {"name": "key_id", "in": "path", "required": True,
                    "schema": {"type": "string", "pattern": "^key_[0-9a-f]{24}$"}}


def _key_fields(creating: bool) -> dict:
    scopes = {"type": "array", "minItems": 1, "uniqueItems": True,
              "items": {"type": "string", "enum": list(ALL_SCOPES)},
              "description": "What the key may do" + (f" (default: {', '.join(DEFAULT_SCOPES)})." if creating
                                                      else ".")}
    return {"name": {"type": "string", "minLength": 1, "maxLength": NAME_MAX},
            "scopes": scopes,
            "monthly_spend_limit_usd": _nullable({"type": "number", "minimum": 0, "description":
                                                  "Most the key may spend per UTC month (charges + pending); "
                                                  "null: the balance is the limit."}),
            "expires_at": _nullable({"type": "string", "format": "date-time",
                                     "description": "UTC, like 2027-01-01T00:00:00Z; in the future."})}


def keys() -> dict:
    return {
        "post": {"operationId": "createKey", "summary": "Make an API key (shown once); needs the keys scope",
                 "tags": ["keys"],
                 "requestBody": {"required": True, "content": {JSON: {"schema": {
                     "type": "object", "required": ["name"], "additionalProperties": False,
                     "properties": _key_fields(True)}}}},
                 "responses": {**_ok("The new key; `key` is shown only now.", _ref("NewKey"), status=201),
                               **_errors(400)}},
        "get": {"operationId": "listKeys", "summary": "The account's keys (never the keys themselves)",
                "tags": ["keys"],
                "responses": {**_ok("The keys.", {"type": "object", "required": ["keys"], "properties": {
                    "keys": {"type": "array", "items": _ref("Key")}}}), **_errors()}},
    }


def key() -> dict:
    return {
        "patch": {"operationId": "updateKey", "summary": "Change a key's name, scopes, monthly limit or expiry",
                  "tags": ["keys"], "parameters": [KEY_ID_PARAMETER],
                  "requestBody": {"required": True, "content": {JSON: {"schema": {
                      "type": "object", "minProperties": 1, "additionalProperties": False,
                      "properties": _key_fields(False)}}}},
                  "responses": {**_ok("The key as it is now.", _ref("Key")), **_errors(400, 404, 409)}},
        "delete": {"operationId": "revokeKey",
                   "summary": "Revoke a key (at once for paid calls; 409 for the last key with the keys scope)",
                   "tags": ["keys"], "parameters": [KEY_ID_PARAMETER],
                   "responses": {**_ok("The key, revoked.", _ref("Key")), **_errors(404, 409)}},
    }


def limits() -> dict:
    return {"get": {
        "operationId": "getLimits", "summary": "The rate, concurrency and spend limits that apply to the caller now",
        "tags": ["keys"], "responses": {**_ok("The limits.", _ref("Limits")), **_errors()},
    }}



WEBHOOK_ID_PARAMETER = {"name": "webhook_id", "in": "path", "required": True, "description": "A wh_ id.",
                        "schema": {"type": "string", "minLength": 1, "maxLength": 64}}


def webhooks() -> dict:
    return {
        "post": {"operationId": "createWebhook", "summary": "Register an endpoint (its signing secret is shown once)",
                 "tags": ["webhooks"],
                 "requestBody": {"required": True, "content": {JSON: {"schema": _ref("WebhookCreate")}}},
                 "responses": {**_ok("Registered; keep the secret, it is not shown again.", _ref("WebhookWithSecret"),
                                     status=201), **_errors(400)}},
        "get": {"operationId": "listWebhooks", "summary": "Your endpoints (no secrets)", "tags": ["webhooks"],
                "responses": {**_ok("Your endpoints.", _ref("WebhookList")), **_errors()}},
    }


def webhook() -> dict:
    return {
        "get": {"operationId": "getWebhook", "summary": "One endpoint, its status (enabled or disabled)",
                "tags": ["webhooks"], "parameters": [WEBHOOK_ID_PARAMETER],
                "responses": {**_ok("The endpoint.", _ref("Webhook")), **_errors(404)}},
        "delete": {"operationId": "deleteWebhook", "summary": "Delete an endpoint", "tags": ["webhooks"],
                   "parameters": [WEBHOOK_ID_PARAMETER],
                   "responses": {**_ok("Deleted.", _ref("DeletedWebhook")), **_errors(404)}},
    }


def webhook_rotate() -> dict:
    return {"post": {"operationId": "rotateWebhookSecret",
                     "summary": "A new signing secret; the previous one keeps signing alongside for 24 h",
                     "tags": ["webhooks"], "parameters": [WEBHOOK_ID_PARAMETER],
                     "responses": {**_ok("The new secret, shown once.", _ref("WebhookWithSecret")), **_errors(404)}}}


def webhook_deliveries() -> dict:
    return {"get": {"operationId": "listWebhookDeliveries", "summary": "Recent delivery attempts, newest first",
                    "tags": ["webhooks"],
                    "parameters": [WEBHOOK_ID_PARAMETER,
                                   {"name": "limit", "in": "query",
                                    "schema": {"type": "integer", "minimum": 1, "maximum": 100, "default": 50}}],
                    "responses": {**_ok("Attempts.", _ref("WebhookDeliveries")), **_errors(400, 404)}}}


def webhook_test() -> dict:
    return {"post": {"operationId": "testWebhook", "summary": "Send a webhook.test event to this endpoint now",
                     "tags": ["webhooks"], "parameters": [WEBHOOK_ID_PARAMETER],
                     "responses": {**_ok("Queued for delivery.", _ref("WebhookTestQueued"), status=202),
                                   **_errors(404)}}}


def webhook_schemas() -> dict:
    events = {"type": "array", "items": {"type": "string", "enum": ["*", *EVENT_TYPES]}, "minItems": 1}
    required = ["webhook_id", "url", "events", "description", "status", "created_at"]
    properties: dict[str, Any] = {"webhook_id": {"type": "string"}, "url": {"type": "string"}, "events": events,
                              "description": {"type": "string"}, "status": {"type": "string",
                                                                            "enum": ["enabled", "disabled"]},
                              "created_at": {"type": "string", "format": "date-time"},
                              "disabled_at": {"type": "string", "format": "date-time"},
                              "failing_since": {"type": "string", "format": "date-time"}}
    webhook = {"type": "object", "required": required, "properties": properties}
    return {
        "WebhookCreate": {"type": "object", "required": ["url"], "additionalProperties": False, "properties": {
            "url": {"type": "string", "maxLength": 2048,
                    "description": "https, its host resolving only to public addresses (http://127.0.0.1 on "
                                   "the local stack)."},
            "events": {**events, "description": 'Event types, or ["*"] (the default): all.'},
            "description": {"type": "string", "maxLength": 500}}},
        "Webhook": webhook,
        "WebhookWithSecret": {"type": "object", "required": [*required, "secret"], "properties": {
            **properties, "secret": {"type": "string", "pattern": "^whsec_"},
            "previous_secret_expires_at": _nullable({"type": "string", "format": "date-time"})}},
        "WebhookList": {"type": "object", "required": ["webhooks"],
                        "properties": {"webhooks": {"type": "array", "items": _ref("Webhook")}}},
        "DeletedWebhook": {"type": "object", "required": ["webhook_id", "deleted"], "properties": {
            "webhook_id": {"type": "string"}, "deleted": {"const": True}}},
        "WebhookDeliveries": {"type": "object", "required": ["webhook_id", "deliveries"], "properties": {
            "webhook_id": {"type": "string"},
            "deliveries": {"type": "array", "items": {"type": "object", "properties": {
                "event_id": {"type": "string"}, "type": {"type": "string"}, "attempt": {"type": "integer"},
                "attempted_at": {"type": "string", "format": "date-time"},
                "status_code": _nullable({"type": "integer"}), "error": _nullable({"type": "string"}),
                "succeeded": {"type": "boolean"},
                "next_retry_at": _nullable({"type": "string", "format": "date-time"})}}}}},
        "WebhookTestQueued": {"type": "object", "required": ["webhook_id", "event_id", "type"], "properties": {
            "webhook_id": {"type": "string"}, "event_id": {"type": "string"}, "type": {"const": "webhook.test"}}},
    }

def openapi() -> dict:
    return {"get": {
        "operationId": "getOpenApi", "summary": "This document", "tags": ["meta"], "security": [],
        "responses": {**_ok("The OpenAPI 3.1 document of the API.", {"type": "object"}),
                      **{str(s): r for s, r in _errors().items() if s not in ("401", "403", "413")}},
    }}


def schemas() -> dict:
    usd = {"type": "number", "minimum": 0}
    return {
        "Error": {"type": "object", "required": ["error"], "additionalProperties": False, "properties": {
            "error": {"type": "object", "required": ["code", "message"], "additionalProperties": False,
                      "properties": {"code": {"type": "string", "enum": sorted(errors.codes())},
                                     "message": {"type": "string"}}}}},
        "Balance": {"type": "object", "required": ["balance_usd"], "properties": {"balance_usd": usd}},
        "Key": {"type": "object", "required": ["key_id", "name", "hint", "scopes", "monthly_spend_limit_usd",
                                               "spent_this_month_usd", "expires_at", "status", "created_at"],
                "properties": {
                    "key_id": {"type": "string", "pattern": "^key_[0-9a-f]{24}$"},
                    "name": _nullable({"type": "string"}),
                    "hint": _nullable({"type": "string", "description": "sk-kyma-…a1b2: never the key."}),
                    "scopes": {"type": "array", "items": {"type": "string", "enum": list(ALL_SCOPES)}},
                    "monthly_spend_limit_usd": _nullable(usd), "spent_this_month_usd": usd,
                    "month_resets_at": {"type": "string", "format": "date-time"},
                    "expires_at": _nullable({"type": "string", "format": "date-time"}),
                    "status": {"type": "string", "enum": ["active", "revoked", "expired"]},
                    "created_at": _nullable({"type": "string", "format": "date-time"})}},
        "NewKey": {"type": "object", "required": ["key_id", "key", "name", "scopes", "monthly_spend_limit_usd",
                                                  "expires_at", "created_at"],
                   "properties": {
                       "key_id": {"type": "string", "pattern": "^key_[0-9a-f]{24}$"},
                       "key": {"type": "string", "pattern": "^sk-kyma-", "description": "Shown once."},
                       "name": {"type": "string"},
                       "scopes": {"type": "array", "items": {"type": "string", "enum": list(ALL_SCOPES)}},
                       "monthly_spend_limit_usd": _nullable(usd),
                       "month_resets_at": {"type": "string", "format": "date-time"},
                       "expires_at": _nullable({"type": "string", "format": "date-time"}),
                       "created_at": {"type": "string", "format": "date-time"}}},
        "Limits": {"type": "object", "required": ["rate_limits", "concurrency", "key"], "properties": {
            "rate_limits": {"type": "object", "additionalProperties": {
                "type": "object", "required": ["per_minute", "burst"],
                "properties": {"per_minute": {"type": "integer"}, "burst": {"type": "integer"}}}},
            "concurrency": {"type": "object", "description": "Requests in flight per kind: "
                            + ", ".join(f"{k} (default {v})" for k, v in DEFAULT_CONCURRENCY.items()) + ".",
                            "additionalProperties": {"type": "object", "required": ["limit", "in_flight"],
                                                     "properties": {"limit": {"type": "integer"},
                                                                    "in_flight": {"type": "integer"}}}},
            "key": _nullable({"type": "object", "properties": {
                "key_id": {"type": "string"}, "status": {"type": "string"},
                "scopes": {"type": "array", "items": {"type": "string"}},
                "monthly_spend_limit_usd": _nullable(usd), "spent_this_month_usd": usd,
                "remaining_this_month_usd": _nullable(usd),
                "month_resets_at": {"type": "string", "format": "date-time"}}})}},
        "ClonedVoice": {"type": "object", "required": ["voice_id", "name", "model", "cost_usd", "balance_usd"],
                        "properties": {
                            "voice_id": {"type": "string", "pattern": "^kyma_[0-9a-f]{16}$"},
                            "name": {"type": ["string", "null"]}, "model": {"type": "string"},
                            "cost_usd": usd, "balance_usd": {"type": ["number", "null"], "minimum": 0}}},
        "DesignedVoice": {
            "type": "object",
            "required": ["voice_id", "name", "model", "cost_usd", "balance_usd", "preview_url", "preview_expires_at"],
            "properties": {
                "voice_id": {"type": "string", "pattern": "^kyma_[0-9a-f]{16}$"},
                "name": {"type": ["string", "null"]}, "model": {"type": "string", "enum": [DESIGN_MODEL]},
                "cost_usd": usd, "balance_usd": {"type": ["number", "null"], "minimum": 0},
                "preview_url": {"type": ["string", "null"], "format": "uri",
                                "description": f"The preview MiniMax rendered, presigned for "
                                               f"{PREVIEW_URL_SECONDS // 3600} h (null in the rare case "
                                               "MiniMax sent none). A replay with the same Idempotency-Key "
                                               "signs a fresh URL to the same preview."},
                "preview_expires_at": {"type": ["string", "null"], "format": "date-time"}}},
        "Upload": {"type": "object", "required": ["upload_id", "url", "fields", "expires_at", "max_bytes"],
                   "properties": {"upload_id": {"type": "string"}, "url": {"type": "string"},
                                  "fields": {"type": "object", "additionalProperties": {"type": "string"}},
                                  "expires_at": {"type": "integer"}, "max_bytes": {"type": "integer"}}},
        "LedgerEntry": {"type": "object", "required": ["entry_id", "type", "status", "amount_usd", "created_at"],
                        "properties": {
                            "entry_id": {"type": "string"},
                            "type": {"type": "string", "enum": ["charge", "topup", "refund"]},
                            "status": {"type": "string", "enum": ["pending", "charged", "released", "posted"]},
                            "amount_usd": usd, "endpoint": {"type": ["string", "null"]},
                            "model": {"type": ["string", "null"]}, "reference": {"type": "object"},
                            "request_id": {"type": ["string", "null"]}, "note": {"type": "string"},
                            "reason": {"type": ["string", "null"]},
                            "created_at": {"type": "string", "format": "date-time"}}},
        "LedgerPage": {"type": "object", "required": ["entries", "next_cursor"], "properties": {
            "entries": {"type": "array", "items": _ref("LedgerEntry")},
            "next_cursor": {"type": ["string", "null"]}}},
        "UsageReport": {"type": "object", "required": ["start", "end", "usage"], "properties": {
            "start": {"type": "string", "format": "date"}, "end": {"type": "string", "format": "date"},
            "usage": {"type": "array", "items": {
                "type": "object", "required": ["date", "endpoint", "model", "requests", "characters", "cost_usd"],
                "properties": {"date": {"type": "string", "format": "date"}, "endpoint": {"type": "string"},
                               "model": {"type": "string"}, "requests": {"type": "integer", "minimum": 1},
                               "characters": {"type": "integer", "minimum": 0}, "cost_usd": usd}}}}},
        "Voice": {"type": "object", "required": ["voice_id", "type", "name", "status", "created_at"],
                  "properties": {
                      "voice_id": {"type": "string"},
                      "type": {"type": "string", "enum": [t for t in TYPES if t != "all"]},
                      "name": {"type": ["string", "null"]}, "model": {"type": ["string", "null"]},
                      "status": {"type": "string", "enum": ["activating", "active", "expired"]},
                      "created_at": {"type": ["string", "null"], "format": "date-time"}}},
        "VoiceList": {"type": "object", "required": ["voices", "next_cursor"], "properties": {
            "voices": {"type": "array", "items": _ref("Voice")}, "next_cursor": {"type": ["string", "null"]}}},
        "DeletedVoice": {"type": "object", "required": ["voice_id", "deleted"], "properties": {
            "voice_id": {"type": "string"}, "deleted": {"const": True}}},
        "SpeechJobRequest": {
            "type": "object",
            "description": "The speech request's fields (without stream and stream_format), up to "
                           f"{MAX_JOB_CHARS:,} characters, in a format that joins exactly, and metadata.",
            "allOf": [{"anyOf": [{"required": ["input"]}, {"required": ["text"]}]},
                      {"anyOf": [{"required": ["voice_id"]}, {"required": ["voice"]}]}],
            "properties": {name: _nullable(schema) for name, schema in {
                "model": _speech_rule("model", default="minimax-speech-hd"),      # kyma.speech.request.parse
                "input": {"type": "string", "minLength": 1, "maxLength": MAX_JOB_CHARS,
                          "description": "Billed per code point. Alias: text."},
                "text": {"type": "string", "minLength": 1, "maxLength": MAX_JOB_CHARS},
                "voice_id": _speech_rule("voice"),
                "voice": {"oneOf": [_speech_rule("voice"), {"type": "object", "required": ["id"],
                                                            "properties": {"id": _speech_rule("voice")}}]},
                "response_format": {"type": "string", "pattern": "^(?:" + "|".join(JOB_FORMATS) + ")(?:_[0-9_]+)?$",
                                    "default": "mp3",
                                    "description": "mp3, wav or pcm, optionally codec_samplerate[_bitrate]."},
                "speed": _speech_rule("speed", default=1.0),
                "voice_settings": _speech_rule("voice_settings"),
                "language_boost": _speech_rule("language_boost"),
                "pronunciation_dict": _speech_rule("pronunciation_dict"),
                "metadata": {"type": "object", "maxProperties": MAX_METADATA_KEYS,
                             "additionalProperties": {"type": "string", "maxLength": MAX_METADATA_CHARS},
                             "description": "Echoed in the job."},
            }.items()},
        },
        "SpeechJobCreated": {
            "type": "object", "required": ["job_id", "status", "model", "voice_id", "characters", "cost_usd",
                                           "created_at"],
            "properties": {"job_id": {"type": "string"}, "status": {"const": "queued"}, "model": {"type": "string"},
                           "voice_id": {"type": "string"}, "characters": {"type": "integer", "minimum": 1},
                           "cost_usd": usd, "balance_usd": {"type": ["number", "null"]},
                           "metadata": {"type": "object"},
                           "created_at": {"type": "string", "format": "date-time"}}},
        "SpeechJob": {
            "type": "object", "required": ["job_id", "status", "progress", "characters", "cost_usd", "created_at",
                                           "output", "error"],
            "properties": {
                "job_id": {"type": "string"},
                "status": {"type": "string", "enum": [*ACTIVE_STATES, *TERMINAL_STATES]},
                "progress": {"type": "object", "properties": {"parts_done": {"type": "integer"},
                                                              "parts_total": {"type": "integer"}}},
                "model": {"type": "string"}, "voice_id": {"type": "string"},
                "characters": {"type": "integer"}, "cost_usd": usd,
                "created_at": {"type": "string", "format": "date-time"},
                "finished_at": {"type": ["string", "null"], "format": "date-time"},
                "output": {"anyOf": [{"type": "null"}, {"type": "object", "properties": {
                    "audio_url": {"type": ["string", "null"], "description": "Presigned, short-lived; minted on "
                                                                             "each GET."},
                    "subtitles_url": {"type": ["string", "null"], "description": "Sentence cues on the joined "
                                                                                "timeline (MiniMax's JSON)."},
                    "srt_url": {"type": ["string", "null"]}, "vtt_url": {"type": ["string", "null"]},
                    "content_type": {"type": "string"}, "duration_ms": {"type": "integer"},
                    "bytes": {"type": "integer"}, "expires_at": {"type": ["string", "null"]}}}]},
                "error": {"anyOf": [{"type": "null"}, {"type": "object", "required": ["code", "message"],
                                                       "properties": {"code": {"type": "string"},
                                                                      "message": {"type": "string"}}}]},
                "metadata": {"type": "object"},
                "canceled": {"type": "boolean"}, "files_deleted": {"type": "boolean"}}},
        "SpeechJobList": {"type": "object", "required": ["data", "next_cursor", "has_more"], "properties": {
            "data": {"type": "array", "items": _ref("SpeechJob")}, "next_cursor": {"type": ["string", "null"]},
            "has_more": {"type": "boolean"}}},
        "SpeechRequest": {
            "type": "object",
            "description": "OpenAI audio.speech shape; unknown fields are ignored, and a field given as null "
                           "counts as absent.",
            "allOf": [{"anyOf": [{"required": ["input"]}, {"required": ["text"]}]},
                      {"anyOf": [{"required": ["voice_id"]}, {"required": ["voice"]}]}],
            "properties": {name: _nullable(schema) for name, schema in {
                "model": _speech_rule("model", default="minimax-speech-hd"),
                "input": _speech_rule("input", description="Billed per code point. Alias: text."),
                "text": _speech_rule("input"),
                "voice_id": _speech_rule("voice", description="A cloned kyma_ id or a MiniMax system voice. "
                                                              "Alias: voice."),
                "voice": {"oneOf": [_speech_rule("voice"), {"type": "object", "required": ["id"],
                                                            "properties": {"id": _speech_rule("voice")}}]},
                "response_format": _speech_rule("response_format", default="mp3"),
                "speed": _speech_rule("speed", default=1.0),
                "voice_settings": _speech_rule("voice_settings"),
                "language_boost": _speech_rule("language_boost"),
                "stream_format": _speech_rule("stream_format", description=(
                    "Stream the audio as MiniMax produces it: audio (raw bytes) or sse (Server-Sent Events). "
                    f"Formats: {', '.join(STREAMABLE_FORMATS)} (not wav).")),
                "stream": _speech_rule("stream", default=False, description=(
                    "true: the same as stream_format audio (stream_format wins if both are given).")),
                "timestamps": _speech_rule("timestamps", description=(
                    "Only with stream_format sse: speech.timestamps events with the words (word) or only the "
                    "sentences (sentence).")),
                "pronunciation_dict": _speech_rule("pronunciation_dict"),
            }.items()},
        },
        "SpeechWithTimestampsRequest": {
            "type": "object",
            "description": "The speech request without stream or stream_format, plus timestamps and captions.",
            "allOf": [{"anyOf": [{"required": ["input"]}, {"required": ["text"]}]},
                      {"anyOf": [{"required": ["voice_id"]}, {"required": ["voice"]}]}],
            "properties": {name: _nullable(schema) for name, schema in {
                "model": _speech_rule("model", default="minimax-speech-hd"),
                "input": _speech_rule("input", description="Billed per code point. Alias: text."),
                "text": _speech_rule("input"),
                "voice_id": _speech_rule("voice"),
                "voice": {"oneOf": [_speech_rule("voice"), {"type": "object", "required": ["id"],
                                                            "properties": {"id": _speech_rule("voice")}}]},
                "response_format": _speech_rule("response_format", default="mp3"),
                "speed": _speech_rule("speed", default=1.0),
                "voice_settings": _speech_rule("voice_settings"),
                "language_boost": _speech_rule("language_boost"),
                "timestamps": _speech_rule("timestamps", default="word"),
                "captions": {"type": "string", "enum": list(CAPTION_FORMATS),
                             "description": "Also return captions: SRT or WebVTT, a cue per sentence (longer "
                                            "ones split), at most two lines of about 42 characters."},
                "pronunciation_dict": _speech_rule("pronunciation_dict"),
            }.items()},
        },
        "TimedText": TIMED_TEXT,
        "SpeechWithTimestamps": {
            "type": "object",
            "required": ["audio_base64", "content_type", "duration_ms", "sentences", "characters_billed",
                         "cost_usd", "balance_usd"],
            "properties": {
                "audio_base64": {"type": "string", "contentEncoding": "base64"},
                "content_type": {"type": "string"},
                "duration_ms": {"type": "integer", "minimum": 0, "description": "Measured from the audio."},
                "words": {"type": "array", "items": _ref("TimedText"), "description": "timestamps word only."},
                "sentences": {"type": "array", "items": _ref("TimedText")},
                "captions": {"type": "string", "description": "SRT or WebVTT, when captions was given."},
                "characters_billed": {"type": "integer", "minimum": 1},
                "cost_usd": usd, "balance_usd": {"type": ["number", "null"], "minimum": 0}}},
    }


def build() -> dict:
    return {
        "openapi": "3.1.0",
        "info": {"title": "Kyma voice API", "version": VERSION,
                 "description": "Prepaid voice cloning and text-to-speech on MiniMax voices. Every error uses "
                                "one envelope; every response carries X-Request-Id."},
        "servers": [{"url": "https://{api}.execute-api.{region}.amazonaws.com/{stage}",
                     "variables": {"api": {"default": "api"}, "region": {"default": "us-east-1"},
                                   "stage": {"default": "dev"}}},
                    {"url": "http://127.0.0.1:3000", "description": "make run"}],
        "security": [{"bearer": []}],
        "paths": {
            "/v1/credits/balance": balance(),
            "/v1/credits/ledger": ledger(),
            "/v1/usage": usage_report(),
            "/v1/audio/voice-clone": voice_clone(),
            "/v1/audio/voice-clone/uploads": uploads(),
            "/v1/audio/voice-design": voice_design(),
            "/v1/audio/speech": speech(),
            "/v1/audio/speech/with-timestamps": speech_with_timestamps(),
            "/v1/audio/speech/jobs": speech_jobs(),
            "/v1/audio/speech/jobs/{job_id}": speech_job(),
            "/v1/audio/voices": voices(),
            "/v1/audio/voices/{voice_id}": voice(),
            "/v1/keys": keys(),
            "/v1/keys/{key_id}": key(),
            "/v1/limits": limits(),
            "/v1/webhooks": webhooks(),
            "/v1/webhooks/{webhook_id}": webhook(),
            "/v1/webhooks/{webhook_id}/rotate-secret": webhook_rotate(),
            "/v1/webhooks/{webhook_id}/deliveries": webhook_deliveries(),
            "/v1/webhooks/{webhook_id}/test": webhook_test(),
            "/v1/openapi.json": openapi(),
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                           "description": "Authorization: Bearer <API key>"}},
            "headers": {
                "XRequestId": {"description": "This request's id; quote it to support.",
                               "schema": {"type": "string"}},
                "RetryAfter": {"description": "Seconds to wait before retrying.", "schema": {"type": "string"}},
            },
            "schemas": {**schemas(), **webhook_schemas()},
        },
    }
