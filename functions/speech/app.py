"""POST /v1/audio/speech: text in, audio bytes out, billed per character.

Large audio (over a Lambda response's 6 MB with base64) is answered with
`303 See Other` to a short-lived presigned URL, which `curl -L` and the OpenAI
SDK follow without extra code.
"""

from kyma import init_phase

init_phase.begin()  # no cyclic GC passes while INIT imports (kyma/init_phase.py)

from kyma import speech, speech_request
from kyma.audio_store import URL_TTL_SECONDS
from kyma.http import Request, Response, api_handler, json_response, replay_marked
from kyma.idempotency import key_from
from kyma.observability import instrument
from kyma.providers.select import provider
from kyma.services import services

svc = services()
provider()  # INIT: build the MiniMax client now (its imports), not on the first request


def speak(request: Request) -> Response:
    speech_input = speech_request.parse(request.json())
    fresh: dict = {}

    def work(guard: str | None) -> dict:
        result = speech.synthesize(
            speech_input, account_id=request.account_id, request_id=request.request_id, deadline=request.deadline,
            svc=svc, provider=provider(), keep=key_from(request.headers) is not None, guard=guard)
        fresh["audio"] = result.audio
        return speech.record(result, provider().name)

    record, replayed = svc.idempotency.for_request(
        request, scope="speech", request_fingerprint=speech_request.fingerprint(speech_input), work=work)
    delivery = speech.deliver(record, fresh.get("audio"), svc.audio)
    if delivery.url is not None:
        response = json_response(303, {"url": delivery.url, "expires_in": URL_TTL_SECONDS},
                                 {**delivery.headers, "Location": delivery.url, "Content-Type": "application/json"})
    else:
        response = Response(200, delivery.audio or b"", delivery.headers, binary=True)
    return replay_marked(response, replayed)


lambda_handler = instrument(api_handler({("POST", "/v1/audio/speech"): speak}))

init_phase.end()
