"""Voice cloning: read and check the reference, then reserve → clone → settle.

Order (each step only if the previous passed):
1. read the request: model, name, the file (inline multipart or an upload),
2. check the reference: size, format sniffed from the bytes, duration,
3–5. `kyma.voices.purchase.buy_voice` (the protocol voice design shares): reserve $2.10 (402 if
   short); MiniMax upload + clone under a fresh kyma_<16 hex> id (502 → release); settle:
   ownership row + charge in one transaction (500 → release).
Nothing is charged and nothing is sent upstream unless 1–2 passed; nothing
is sent upstream unless 3 passed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kyma.audio import AudioInfo, inspect_audio
from kyma.billing.idempotency import fingerprint as hash_parts
from kyma.billing.paid_call import PaidCalls
from kyma.edge import errors
from kyma.edge.json_body import parse_object
from kyma.edge.multipart import parse_content_type, parse_form
from kyma.edge.schema import BodySchema
from kyma.platform.config import Config
from kyma.platform.dynamo import Check, ReserveGate
from kyma.platform.observability import MetricUnit, logger, metrics
from kyma.voices.purchase import Order, buy_voice
from kyma.voices.records import CLONED
from kyma.voices.uploads import Uploads

if TYPE_CHECKING:
    from kyma.providers.minimax import MiniMaxClient

CLONE_MODEL = "minimax-voice-clone"
MAX_NAME_CHARS = 64
MAX_REFERENCE_BYTES = 10 * 1024 * 1024          # 10 MB, as API Gateway counts it
MIN_SECONDS, MAX_SECONDS = 10.0, 300.0
# The largest multipart body accepted inline.  API Gateway passes the body to
# Lambda base64-encoded inside a 6 MB event (6,291,456 bytes): 4/3 growth plus
# the event's other fields put the physical ceiling near 4.7 MB (measured in
# tests/integration/test_voice_clone_limits.py).  4.5 MB leaves room for large
# headers; anything bigger uses the upload flow.
INLINE_MAX_BODY_BYTES = 4_500_000
UPLOAD_FLOW_HINT = ("For reference clips up to 10 MB use the upload flow: POST /v1/audio/voice-clone/uploads, "
                    "upload the file to the returned URL, then POST /v1/audio/voice-clone with upload_id.")


@dataclass(frozen=True)
class CloneInput:
    model: str
    name: str | None
    audio: bytes
    info: AudioInfo
    upload_id: str | None = None

    @property
    def filename(self) -> str:
        # Never the client's file name (it may lie); the format we sniffed.
        return f"reference.{self.info.format}"


@dataclass(frozen=True)
class UploadRef:
    """A clone request whose audio was uploaded to S3 beforehand (the two-step flow)."""

    model: str
    name: str | None
    upload_id: str


@dataclass(frozen=True)
class CloneResult:
    voice_id: str
    name: str | None
    model: str
    cost_micros: int
    balance_micros: int | None   # None only if the read after settle failed


# ── 1–2: reading and checking ────────────────────────────────────────────
def _field_error(field: str, rule: str, value: Any) -> errors.ApiError:
    if field == "model":
        return errors.NotAVoiceCloneModel(f"'{value}' is not a voice clone model; use {CLONE_MODEL}.")
    if field == "name" and rule == "type":
        return errors.InvalidRequest("name must be a string.")
    if field == "name" and rule == "maxLength":
        return errors.InvalidRequest(f"name is {len(value)} characters long; the limit is {MAX_NAME_CHARS}.")
    if field == "name":
        return errors.InvalidRequest("name must not contain control characters.")
    return errors.InvalidRequest("upload_id must be a non-empty string.")


# The clone request's fields besides the file, as a multipart form's text fields or a JSON body
# (null counts as absent); checked in this order, and published as they are checked.
FIELDS = BodySchema({"type": "object", "properties": {
    "model": {"type": "string", "enum": [CLONE_MODEL]},
    "name": {"type": "string", "maxLength": MAX_NAME_CHARS, "pattern": "^[^\\x00-\\x1f\\x7f]*$"},
    "upload_id": {"type": "string", "minLength": 1},
}}, _field_error)


def check_field(field: str, value: Any) -> Any:
    """One field of the request (None: absent), as FIELDS says, or the contract's error."""
    if value is not None:
        FIELDS.check({field: value})
    return value


def check_name(name: Any) -> str | None:
    """A voice's optional label (also a designed voice's: kyma.voices.design)."""
    return check_field("name", name)


def check_reference(audio: bytes) -> AudioInfo:
    """Size, format (from the bytes), duration.  Raises the contract's errors."""
    if not audio:
        raise errors.InvalidRequest("The reference file is empty.")
    if len(audio) > MAX_REFERENCE_BYTES:
        raise errors.PayloadTooLarge(f"The reference file is {len(audio):,} bytes; the limit is 10 MB.")
    info = inspect_audio(audio, stop_after_seconds=MAX_SECONDS + 1)
    if info.duration_seconds < MIN_SECONDS:
        # Rounded down, so that the message never contradicts the verdict (9.999 s is "9.99", not "10.0").
        shown = math.floor(info.duration_seconds * 100) / 100
        raise errors.ReferenceTooShort(f"The reference is {shown:.2f} s long; it must be at least {MIN_SECONDS:.0f} s.")
    if info.duration_seconds > MAX_SECONDS:
        raise errors.ReferenceTooLong(
            f"The reference is longer than {MAX_SECONDS:.0f} s (5 minutes); trim it and retry.")
    return info


def read_request(body: bytes, content_type: str) -> CloneInput | UploadRef:
    """The seed contract's multipart form (file, name, model), or the upload flow's
    reference to an uploaded file: `upload_id` as a form field or in a JSON body."""
    if parse_content_type(content_type or "")[0] == "application/json":
        data = parse_object(body)
        if "upload_id" not in data:
            raise errors.InvalidRequest("Send the reference as multipart/form-data 'file', or give an upload_id.")
        model, name = check_field("model", data.get("model")), check_field("name", data.get("name"))
        upload_id = check_field("upload_id", "" if data["upload_id"] is None else data["upload_id"])
        return UploadRef(model or CLONE_MODEL, name, upload_id)
    if len(body) > INLINE_MAX_BODY_BYTES:
        raise errors.PayloadTooLarge(f"The request is too large for an inline upload. {UPLOAD_FLOW_HINT}")
    form = parse_form(body, content_type)
    model = check_field("model", _single_text(form, "model")) or CLONE_MODEL
    name = check_field("name", _single_text(form, "name"))
    files = form.get("file", [])
    upload_id = check_field("upload_id", _single_text(form, "upload_id"))
    if files and upload_id is not None:
        raise errors.InvalidRequest("Send either a 'file' part or an upload_id, not both.")
    if upload_id is not None:
        return UploadRef(model, name, upload_id)
    if not files:
        raise errors.InvalidRequest("Missing the 'file' part with the reference audio.")
    if len(files) > 1:
        raise errors.InvalidRequest("Send exactly one 'file' part.")
    audio = bytes(files[0].data)  # the one copy: the body can be released after this
    return CloneInput(model, name, audio, check_reference(audio))


def from_upload(ref: UploadRef, audio: bytes) -> CloneInput:
    """The same checks as an inline upload, on the bytes fetched from S3."""
    return CloneInput(ref.model, ref.name, audio, check_reference(audio), upload_id=ref.upload_id)


def _single_text(form: dict, field: str) -> str | None:
    parts = form.get(field, [])
    if len(parts) > 1:
        raise errors.InvalidRequest(f"Send '{field}' at most once.")
    return parts[0].text() if parts else None


def fingerprint(parsed: CloneInput | UploadRef) -> str:
    """What identifies the request for its Idempotency-Key: the parsed fields and the file (or upload),
    never the multipart framing (a retried upload has a new random boundary)."""
    if isinstance(parsed, UploadRef):
        return hash_parts(parsed.model, parsed.name, "upload", parsed.upload_id)
    return hash_parts(parsed.model, parsed.name, parsed.audio)


# ── 3–5: billing around the provider ─────────────────────────────────────
def create(parsed: CloneInput | UploadRef, *, account_id: str, request_id: str, deadline: float,
           paid: PaidCalls, provider: MiniMaxClient, uploads: Uploads, cfg: Config,
           guard: str | None = None, rate_limit: Check | None = None,
           gate: ReserveGate | None = None) -> CloneResult:
    """The whole clone request: fetch an uploaded reference (same checks as inline), clone, and
    delete the used upload (best effort: nothing after the charge may fail the request)."""
    inp = from_upload(parsed, uploads.fetch(account_id, parsed.upload_id)) \
        if isinstance(parsed, UploadRef) else parsed
    result = clone(inp, account_id=account_id, request_id=request_id, deadline=deadline, paid=paid,
                   provider=provider, cfg=cfg, guard=guard, rate_limit=rate_limit, gate=gate)
    if inp.upload_id:
        uploads.discard(account_id, inp.upload_id)
    return result


def clone(inp: CloneInput, *, account_id: str, request_id: str, deadline: float,
          paid: PaidCalls, provider: MiniMaxClient, cfg: Config, guard: str | None = None,
          rate_limit: Check | None = None, gate: ReserveGate | None = None) -> CloneResult:
    price = cfg.voice_clone_price_micros
    voice_id, _ = buy_voice(
        Order(CLONED, inp.model, inp.name, price),
        lambda voice_id: provider.clone_voice(inp.audio, inp.filename, voice_id, deadline=deadline),
        account_id=account_id, request_id=request_id, deadline=deadline, paid=paid, provider=provider, cfg=cfg,
        guard=guard, rate_limit=rate_limit, upload_id=inp.upload_id, gate=gate)
    metrics.add_metric(name="VoiceClones", unit=MetricUnit.Count, value=1)
    logger.info("voice cloned", extra={"voice_id": voice_id, "account_id": account_id,
                                       "audio_format": inp.info.format,
                                       "duration_s": round(inp.info.duration_seconds, 2)})
    return CloneResult(voice_id, inp.name, inp.model, price, paid.balance_or_none(account_id))
