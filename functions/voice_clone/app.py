"""POST /v1/audio/voice-clone: a reference clip in, a voice_id out, $2.10 charged once.
POST /v1/audio/voice-clone/uploads: a presigned S3 upload for clips up to 10 MB."""

from kyma import init_phase

init_phase.begin()  # no cyclic GC passes while INIT imports (kyma/init_phase.py)

from kyma import errors, idempotency, voice_clone
from kyma.aws import dynamodb, s3
from kyma.billing import Billing
from kyma.config import config
from kyma.http import Request, Response, api_handler, json_response
from kyma.money import micros_to_header, micros_to_json
from kyma.observability import instrument
from kyma.providers.select import provider
from kyma.uploads import Uploads

cfg = config()
billing = Billing(dynamodb(), cfg)
provider()  # INIT: build the MiniMax client now (its imports), not on the first request
uploads = Uploads(dynamodb(), s3, cfg)


def create_voice(request: Request) -> Response:
    parsed = voice_clone.read_request(request.body, request.headers.get("content-type", ""))
    if isinstance(parsed, voice_clone.UploadRef):
        fingerprint = idempotency.fingerprint(parsed.model, parsed.name, "upload", parsed.upload_id)

        def load() -> voice_clone.CloneInput:
            return voice_clone.from_upload(parsed, uploads.fetch(request.account_id, parsed.upload_id))
    else:
        fingerprint = idempotency.fingerprint(parsed.model, parsed.name, parsed.audio)

        def load() -> voice_clone.CloneInput:
            return parsed

    key = idempotency.key_from(request.headers)

    def work() -> dict:
        clone_input = load()
        result = voice_clone.clone(clone_input, account_id=request.account_id, request_id=request.request_id,
                                   deadline=request.deadline, billing=billing, provider=provider(), cfg=cfg,
                                   guard=idempotency.guard_id("voice-clone", key) if key else None)
        if clone_input.upload_id:
            uploads.discard(request.account_id, clone_input.upload_id)
        return _response(result)

    if key is None:
        return Response(**work())
    stored, replayed = idempotency.Idempotency(dynamodb(), cfg).run(
        scope="voice-clone", account_id=request.account_id, key=key, request_fingerprint=fingerprint,
        deadline=request.deadline, lambda_context=request.lambda_context, work=work)
    response = Response(**stored)
    if replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return response


def create_upload(request: Request) -> Response:
    body = request.json() if request.body.strip() else {}
    filename, content_type = body.get("filename"), body.get("content_type")
    if filename is not None and (not isinstance(filename, str) or len(filename) > 255):
        raise errors.InvalidRequest("filename must be a string of at most 255 characters.")
    if content_type is not None and (not isinstance(content_type, str) or len(content_type) > 100
                                     or not content_type.startswith(("audio/", "application/octet-stream"))):
        raise errors.InvalidRequest("content_type must be an audio/* type (or application/octet-stream).")
    return json_response(201, uploads.create(request.account_id, filename=filename, content_type=content_type))


def _response(result: voice_clone.CloneResult) -> dict:
    """The seed page's response, as a plain dict (it is what an idempotency record stores)."""
    known = result.balance_micros is not None   # unknown only if the read after the charge failed
    response = json_response(200, {
        "voice_id": result.voice_id, "name": result.name, "model": result.model,
        "cost_usd": micros_to_json(result.cost_micros),
        "balance_usd": micros_to_json(result.balance_micros) if known else None,
    }, {
        "X-Kyma-Model": result.model,
        "X-Kyma-Cost-USD": micros_to_header(result.cost_micros),
        **({"X-Kyma-Balance-USD": micros_to_header(result.balance_micros)} if known else {}),
        "X-Kyma-Provider": provider().name,
    })
    return {"status": response.status, "body": response.body, "headers": response.headers}


lambda_handler = instrument(api_handler({
    ("POST", "/v1/audio/voice-clone"): create_voice,
    ("POST", "/v1/audio/voice-clone/uploads"): create_upload,
}))

init_phase.end()
