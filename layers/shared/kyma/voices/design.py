"""Voice design: a voice from a description, with the preview MiniMax rendered of it.

Contract: shared/reference/voice-design.md.  Order (each step only if the previous passed):
1. read the request (JSON): model, description (alias `text`), name, preview_text and the hints
   `gender` and `age_group`, every limit checked here (400, nothing reserved, nothing sent),
2–4. `kyma.voices.purchase.buy_voice`, as a clone: reserve $4.20 (402 if short); MiniMax
   `/v1/voice_design` under a fresh kyma_<16 hex> id (a refusal of the description is 400
   content_rejected, any failure releases the hold); keep the preview in S3; settle with the
   voice row (`kind` designed, status activating, its preview's key) and the usage row.
A designed voice then lives exactly as a cloned one (kyma.voices.lifecycle).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kyma.billing.idempotency import fingerprint as hash_parts
from kyma.billing.paid_call import PaidCalls
from kyma.edge import errors
from kyma.edge.json_body import parse_object
from kyma.platform.config import Config
from kyma.platform.dynamo import Check, ReserveGate
from kyma.platform.observability import MetricUnit, logger, metrics
from kyma.voices.clone import check_name
from kyma.voices.previews import Previews
from kyma.voices.purchase import Order, buy_voice
from kyma.voices.records import DESIGNED

if TYPE_CHECKING:
    from kyma.providers.minimax import MiniMaxClient

DESIGN_MODEL = "minimax-voice-design"
MAX_DESCRIPTION_CHARS = 1000
MAX_PREVIEW_TEXT_CHARS = 500
# MiniMax requires a preview text; ours when the customer gives none.
DEFAULT_PREVIEW_TEXT = ("Hello! This is the voice you designed, reading a short sample so that you can "
                        "hear how it sounds before you use it.")
GENDERS = ("male", "female")
AGE_GROUPS = ("child", "young", "middle-aged", "elderly")


@dataclass(frozen=True)
class DesignInput:
    model: str
    name: str | None
    description: str
    preview_text: str
    gender: str | None = None
    age_group: str | None = None

    @property
    def prompt(self) -> str:
        """What MiniMax designs from: the description with the hints folded in (they are not
        fields of /v1/voice_design)."""
        hints = [f"{label}: {value}." for label, value in (("Gender", self.gender), ("Age group", self.age_group))
                 if value]
        return " ".join([self.description, *hints])


@dataclass(frozen=True)
class DesignResult:
    voice_id: str
    name: str | None
    model: str
    cost_micros: int
    balance_micros: int | None   # None only if the read after settle failed
    preview_key: str | None      # None only if MiniMax sent no usable preview, or S3 could not keep it


# ── 1: reading and checking ──────────────────────────────────────────────
def check_model(model: Any) -> str:
    if model is None:
        return DESIGN_MODEL
    if model != DESIGN_MODEL:
        raise errors.NotAVoiceDesignModel(f"'{model}' is not a voice design model; use {DESIGN_MODEL}.")
    return model


def check_description(data: dict) -> str:
    given = [data[f] for f in ("description", "text") if data.get(f) is not None]
    if not given:
        raise errors.InvalidRequest("description is required: describe the voice in words.")
    if len(given) == 2 and given[0] != given[1]:
        raise errors.InvalidRequest("Send the description once: description or its alias text, not both.")
    description = given[0]
    if not isinstance(description, str):
        raise errors.InvalidRequest("description must be a string.")
    if len(description) > MAX_DESCRIPTION_CHARS:
        raise errors.DescriptionTooLong(f"description is {len(description):,} characters long; the limit is "
                                        f"{MAX_DESCRIPTION_CHARS:,}.")
    if not description.strip():
        raise errors.InvalidRequest("description must not be empty.")
    return description


def check_preview_text(value: Any) -> str:
    if value is None:
        return DEFAULT_PREVIEW_TEXT
    if not isinstance(value, str) or not value.strip():
        raise errors.InvalidRequest("preview_text must be a non-empty string.")
    if len(value) > MAX_PREVIEW_TEXT_CHARS:
        raise errors.InvalidRequest(f"preview_text is {len(value)} characters long; the limit is "
                                    f"{MAX_PREVIEW_TEXT_CHARS}.")
    return value


def check_hint(field: str, value: Any, allowed: tuple[str, ...]) -> str | None:
    if value is None:
        return None
    if value not in allowed:
        raise errors.InvalidRequest(f"{field} must be one of {', '.join(allowed)}.")
    return str(value)


def read_request(body: bytes) -> DesignInput:
    """The JSON body, every field and limit of the contract checked (400 otherwise)."""
    data = parse_object(body)
    return DesignInput(model=check_model(data.get("model")), description=check_description(data),
                       name=check_name(data.get("name")), preview_text=check_preview_text(data.get("preview_text")),
                       gender=check_hint("gender", data.get("gender"), GENDERS),
                       age_group=check_hint("age_group", data.get("age_group"), AGE_GROUPS))


def fingerprint(inp: DesignInput) -> str:
    """What identifies the request for its Idempotency-Key: the parsed fields (`text` and
    `description` are the same request)."""
    return hash_parts(inp.model, inp.name, inp.description, inp.preview_text, inp.gender, inp.age_group)


# ── 2–4: billing around the provider ─────────────────────────────────────
def design(inp: DesignInput, *, account_id: str, request_id: str, deadline: float, paid: PaidCalls,
           provider: MiniMaxClient, previews: Previews, cfg: Config, guard: str | None = None,
           rate_limit: Check | None = None, gate: ReserveGate | None = None) -> DesignResult:
    price = cfg.voice_design_price_micros

    def make(voice_id: str) -> str | None:
        """Design upstream, then keep the preview (its S3 key, recorded on the voice row)."""
        preview = provider.design_voice(inp.prompt, inp.preview_text, voice_id, deadline=deadline)
        return previews.put(account_id, voice_id, preview, deadline=deadline) if preview else None

    voice_id, key = buy_voice(Order(DESIGNED, inp.model, inp.name, price), make, account_id=account_id,
                              request_id=request_id, deadline=deadline, paid=paid, provider=provider, cfg=cfg,
                              guard=guard, rate_limit=rate_limit, gate=gate, preview_key=lambda stored: stored)
    metrics.add_metric(name="VoiceDesigns", unit=MetricUnit.Count, value=1)
    # Never the description itself in logs: it is the customer's content.
    logger.info("voice designed", extra={"voice_id": voice_id, "account_id": account_id,
                                         "description_chars": len(inp.description), "preview": key is not None})
    return DesignResult(voice_id, inp.name, inp.model, price, paid.balance_or_none(account_id), key)
