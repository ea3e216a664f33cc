"""POST /v1/audio/speech: text in, audio bytes out, billed per character.

Audio up to INLINE_AUDIO_MAX_BYTES comes back in the response body.  Larger
audio (a Lambda response is capped at 6 MB including base64) is stored in S3
and answered with `303 See Other` to a short-lived presigned URL, which
`curl -L` and the OpenAI SDK follow without extra code.
"""

from kyma import init_phase

init_phase.begin()  # no cyclic GC passes while INIT imports (kyma/init_phase.py)

from kyma import idempotency, speech
from kyma.audio_store import URL_TTL_SECONDS, AudioStore, speech_key
from kyma.aws import dynamodb, s3
from kyma.billing import Billing
from kyma.config import config
from kyma.errors import IdempotencyExpired
from kyma.http import Request, Response, api_handler, json_response
from kyma.money import micros_to_header
from kyma.observability import instrument
from kyma.providers.select import provider

# 4.4 MB of audio is 5.87 MB as base64: under Lambda's 6 MB response limit with room for headers.
INLINE_AUDIO_MAX_BYTES = 4_400_000

cfg = config()
billing = Billing(dynamodb(), cfg)
provider()  # INIT: build the MiniMax client now (its imports), not on the first request
store = AudioStore(s3, cfg.audio_bucket)


def speak(request: Request) -> Response:
    speech_input = speech.parse(request.json())
    key = idempotency.key_from(request.headers)

    def stash(audio: bytes) -> str | None:
        """Runs before the charge settles: audio that must outlive this response goes to S3."""
        if key is None and len(audio) <= INLINE_AUDIO_MAX_BYTES:
            return None
        s3_key = speech_key(request.account_id, request.request_id, speech_input.audio_format)
        store.put(s3_key, audio, speech_input.content_type)
        return s3_key

    fresh: dict = {}

    def work() -> dict:
        result = speech.synthesize(speech_input, account_id=request.account_id, request_id=request.request_id,
                                   deadline=request.deadline, billing=billing, provider=provider(), cfg=cfg,
                                   store=stash, guard=idempotency.guard_id("speech", key) if key else None)
        fresh["audio"] = result.audio
        return {"headers": _billing_headers(result), "audio_key": result.stored_key,
                "inline": len(result.audio) <= INLINE_AUDIO_MAX_BYTES}

    if key is None:
        return _deliver(work(), fresh["audio"])
    record, replayed = idempotency.Idempotency(dynamodb(), cfg).run(
        scope="speech", account_id=request.account_id, key=key,
        request_fingerprint=idempotency.fingerprint(speech_input.canonical()),
        deadline=request.deadline, lambda_context=request.lambda_context, work=work)
    response = _deliver(record, fresh.get("audio"))
    if replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return response


def _deliver(record: dict, audio: bytes | None) -> Response:
    headers = dict(record["headers"])
    if not record["inline"]:
        url = store.url(record["audio_key"])
        return json_response(303, {"url": url, "expires_in": URL_TTL_SECONDS},
                             {**headers, "Location": url, "Content-Type": "application/json"})
    if audio is None:  # a replay: the audio was kept in S3 for exactly this
        audio = store.get(record["audio_key"])
        if audio is None:
            raise IdempotencyExpired("The audio of this Idempotency-Key has expired; send a new request.")
    return Response(200, audio, headers, binary=True)


def _billing_headers(result: speech.SpeechResult) -> dict:
    return {
        "Content-Type": result.content_type,
        "X-Kyma-Model": result.sku,
        "X-Kyma-Chars-Billed": str(result.chars),
        "X-Kyma-Cost-USD": micros_to_header(result.cost_micros),
        **({"X-Kyma-Balance-USD": micros_to_header(result.balance_micros)}
           if result.balance_micros is not None else {}),   # unknown only if the read after the charge failed
        "X-Kyma-Provider": provider().name,
    }


lambda_handler = instrument(api_handler({("POST", "/v1/audio/speech"): speak}))

init_phase.end()
