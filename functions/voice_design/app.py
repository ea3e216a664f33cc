"""POST /v1/audio/voice-design: a description in, a voice_id and its preview out, $4.20 charged once.

Its own function, not the voice-clone one: it needs what clone does not (writing and presigning
previews in AudioBucket) and none of what clone needs (the upload rows and objects, 1 GB of
memory for inline multipart), so each keeps least privilege, and MiniMax's tighter design quota
(20 a minute) is throttled on its own route."""

from kyma.platform import init_phase

init_phase.begin()  # no cyclic GC passes while INIT imports (kyma/platform/init_phase.py)

from kyma.accounts import gate
from kyma.accounts.rate_limits import caller_check
from kyma.edge import scopes
from kyma.edge.http import Request, Response, api_handler, json_response, replay_marked
from kyma.platform.observability import instrument
from kyma.providers.select import provider
from kyma.services import services
from kyma.voices import design as voice_design
from kyma.voices.catalog import iso
from kyma.voices.purchase import receipt

svc = services()
provider()  # INIT: build the MiniMax client now (its imports), not on the first request


def create_voice(request: Request) -> Response:
    design_request = voice_design.read_request(request.body)
    record, replayed = svc.idempotency.for_request(
        request, scope="voice-design", request_fingerprint=voice_design.fingerprint(design_request),
        work=lambda guard: design(request, design_request, guard))
    return replay_marked(_response(record), replayed)


def design(request: Request, design_request: voice_design.DesignInput, guard: str | None) -> dict:
    """The paid work, once per Idempotency-Key: reserve, design at MiniMax, keep the preview, settle.
    The record to replay holds the preview's key, never a URL: each answer signs a fresh one."""
    result = voice_design.design(
        design_request, account_id=request.account_id, request_id=request.request_id, deadline=request.deadline,
        paid=svc.paid, provider=provider(), previews=svc.previews, cfg=svc.cfg, guard=guard,
        rate_limit=caller_check(svc.cfg, "voice-design", request.account_id, request.authorizer),
        gate=gate.for_caller(svc.cfg, scopes.VOICES_WRITE, request.account_id, request.authorizer))
    fields, headers = receipt(voice_id=result.voice_id, name=result.name, model=result.model,
                              cost_micros=result.cost_micros, balance_micros=result.balance_micros,
                              provider_name=provider().name)
    return {"fields": fields, "headers": headers, "preview_key": result.preview_key}


def _response(record: dict) -> Response:
    """The contract's body: the clone response's fields, then the preview's URL, signed now."""
    signed = svc.previews.url(record["preview_key"]) if record.get("preview_key") else None
    url, expires = signed if signed is not None else (None, None)
    return json_response(200, {**record["fields"], "preview_url": url,
                               "preview_expires_at": None if expires is None else iso(expires)}, record["headers"])


lambda_handler = instrument(api_handler({
    ("POST", "/v1/audio/voice-design"): create_voice,
}))

init_phase.end()
