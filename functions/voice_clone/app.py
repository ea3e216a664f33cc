"""POST /v1/audio/voice-clone: a reference clip in, a voice_id out, $2.10 charged once.
POST /v1/audio/voice-clone/uploads: a presigned S3 upload for clips up to 10 MB."""

from kyma.platform import init_phase

init_phase.begin()  # no cyclic GC passes while INIT imports (kyma/platform/init_phase.py)

from kyma.accounts import gate
from kyma.accounts.rate_limits import RateLimiter, caller_check
from kyma.edge import scopes
from kyma.edge.http import Request, Response, api_handler, json_response, replay_marked
from kyma.platform.observability import instrument
from kyma.providers.select import provider
from kyma.services import services
from kyma.voices import clone as voice_clone
from kyma.voices import uploads
from kyma.voices.purchase import receipt

svc = services()
limiter = RateLimiter(svc.ledger.ddb, svc.cfg)
provider()  # INIT: build the MiniMax client now (its imports), not on the first request


def create_voice(request: Request) -> Response:
    clone_request = voice_clone.read_request(request.body, request.headers.get("content-type", ""))
    record, replayed = svc.idempotency.for_request(
        request, scope="voice-clone", request_fingerprint=voice_clone.fingerprint(clone_request),
        work=lambda guard: clone(request, clone_request, guard))
    return replay_marked(Response(**record), replayed)


def clone(request: Request, clone_request: voice_clone.CloneInput | voice_clone.UploadRef, guard: str | None) -> dict:
    """The paid work, once per Idempotency-Key: reserve, clone at MiniMax, settle; the record to replay."""
    result = voice_clone.create(
        clone_request, account_id=request.account_id, request_id=request.request_id, deadline=request.deadline,
        paid=svc.paid, provider=provider(), uploads=svc.uploads, cfg=svc.cfg, guard=guard,
        rate_limit=caller_check(svc.cfg, "voice-clone", request.account_id, request.authorizer),
        gate=gate.for_caller(svc.cfg, scopes.VOICES_WRITE, request.account_id, request.authorizer))
    return _record(result)


def create_upload(request: Request) -> Response:
    filename, content_type = uploads.parse_create(request.json() if request.body else {})   # no body: no options
    return json_response(201, svc.uploads.create(request.account_id, filename=filename, content_type=content_type))


def _record(result: voice_clone.CloneResult) -> dict:
    """The seed page's response as a plain dict: what an Idempotency-Key record stores and replays."""
    fields, headers = receipt(voice_id=result.voice_id, name=result.name, model=result.model,
                              cost_micros=result.cost_micros, balance_micros=result.balance_micros,
                              provider_name=provider().name)
    response = json_response(200, fields, headers)
    return {"status": response.status, "body": response.body, "headers": response.headers}


lambda_handler = instrument(api_handler({
    ("POST", "/v1/audio/voice-clone"): create_voice,
    ("POST", "/v1/audio/voice-clone/uploads"): limiter.guard("uploads", create_upload),
}))

init_phase.end()
