"""POST /v1/audio/voice-clone: a reference clip in, a voice_id out, $2.10 charged once."""

from kyma import idempotency, voice_clone
from kyma.aws import dynamodb
from kyma.billing import Billing
from kyma.config import config
from kyma.http import Request, Response, api_handler, json_response
from kyma.money import micros_to_header, micros_to_json
from kyma.observability import instrument
from kyma.providers.select import provider

cfg = config()
billing = Billing(dynamodb(), cfg)


def create_voice(request: Request) -> Response:
    clone_input = voice_clone.read_inline(request.body, request.headers.get("content-type", ""))

    def work() -> dict:
        result = voice_clone.clone(clone_input, account_id=request.account_id, request_id=request.request_id,
                                   deadline=request.deadline, billing=billing, provider=provider(), cfg=cfg)
        return _response(result)

    key = idempotency.key_from(request.headers)
    if key is None:
        return Response(**work())
    stored, replayed = idempotency.Idempotency(dynamodb(), cfg).run(
        scope="voice-clone", account_id=request.account_id, key=key,
        request_fingerprint=idempotency.fingerprint(clone_input.model, clone_input.name, clone_input.audio),
        deadline=request.deadline, lambda_context=request.lambda_context, work=work)
    response = Response(**stored)
    if replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return response


def _response(result: voice_clone.CloneResult) -> dict:
    """The seed page's response, as a plain dict (it is what an idempotency record stores)."""
    response = json_response(200, {
        "voice_id": result.voice_id, "name": result.name, "model": result.model,
        "cost_usd": micros_to_json(result.cost_micros), "balance_usd": micros_to_json(result.balance_micros),
    }, {
        "X-Kyma-Model": result.model,
        "X-Kyma-Cost-USD": micros_to_header(result.cost_micros),
        "X-Kyma-Balance-USD": micros_to_header(result.balance_micros),
        "X-Kyma-Provider": provider().name,
    })
    return {"status": response.status, "body": response.body, "headers": response.headers}


lambda_handler = instrument(api_handler({("POST", "/v1/audio/voice-clone"): create_voice}))
