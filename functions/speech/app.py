"""POST /v1/audio/speech: text in, audio out, billed per character; POST
/v1/audio/speech/with-timestamps: the same speech as one JSON answer with word and sentence
timings and captions (kyma.speech.timestamps).  Both here, behind the Web Adapter's response
streaming: no 6 MB response and no 29 s integration timeout, whatever the input's length.

The audio comes as one file, as raw chunks (`stream_format: "audio"` or `stream: true`)
or as Server-Sent Events (`stream_format: "sse"`), as MiniMax produces it.  The function
runs behind the AWS Lambda Web Adapter with response streaming (run.sh, template.yaml):
`kyma.edge.web_app` is the HTTP app, `kyma.speech.synthesis` the paid work, `kyma.speech.delivery` the
forms the audio takes.  With an Idempotency-Key the work runs once; a replay is answered
from the first request's audio, in the form the replay asks for.
"""

from typing import Any

from kyma.platform import init_phase

init_phase.begin()  # no cyclic GC passes while INIT imports (kyma/platform/init_phase.py)

from kyma.accounts import gate, upstream
from kyma.accounts.rate_limits import caller_check
from kyma.billing.idempotency import key_from
from kyma.edge import errors, scopes
from kyma.edge.web_app import Output, Request, WebApp
from kyma.providers.select import provider
from kyma.services import services
from kyma.speech import delivery as speech_delivery
from kyma.speech import request as speech_request
from kyma.speech import synthesis as speech
from kyma.speech import timestamps as speech_timestamps

svc = services()
provider()  # INIT: build the MiniMax client now (its imports), not on the first request


def speak(request: Request, out: Output) -> None:
    deliver(request, out, speech_request.parse(request.json()), scope="speech")


def speak_with_timestamps(request: Request, out: Output) -> None:
    """POST /v1/audio/speech/with-timestamps: the same paid work, one JSON answer with the timings."""
    deliver(request, out, speech_request.parse_with_timestamps(request.json()), scope="speech-timestamps")


def deliver(request: Request, out: Output, speech_input: speech_request.SpeechInput, *, scope: str) -> None:
    """Once per Idempotency-Key (`scope`): synthesize, or replay the first request's answer."""
    record, replayed = svc.idempotency.for_request(
        request, scope=scope, request_fingerprint=speech_request.fingerprint(speech_input),
        work=lambda guard: synthesize(request, speech_input, out, guard))
    if replayed:
        replay(record, speech_input, out)
    elif not out.started and not out.done:
        raise_charged_but_undelivered()


def delivery_for(speech_input: speech_request.SpeechInput, out: Output, *, replayable: bool) -> Any:
    """Where the audio goes: a timed delivery (kyma.speech.timestamps) when timings were asked for."""
    if speech_input.timestamps:
        return speech_timestamps.for_request(speech_input, out, replayable=replayable)
    return speech_delivery.for_request(speech_input.delivery, out, replayable=replayable)


def synthesize(request: Request, speech_input: speech_request.SpeechInput, out: Output, guard: str | None) -> dict:
    """The paid work, once per Idempotency-Key: reserve, synthesize into `out`, settle; the record to replay."""
    keep = key_from(request.headers) is not None
    return speech.synthesize(
        speech_input, account_id=request.account_id, request_id=request.request_id, deadline=request.deadline,
        svc=svc, provider=provider(), delivery=delivery_for(speech_input, out, replayable=keep),
        keep=keep, guard=guard,
        rate_limit=caller_check(svc.cfg, "speech", request.account_id, request.authorizer),
        upstream=upstream.check(svc.cfg, request.account_id),
        gate=gate.for_caller(svc.cfg, scopes.SPEECH, request.account_id, request.authorizer,
                             in_flight=gate.SPEECH_STREAM if speech_input.streamed else None))


def replay(record: dict, speech_input: speech_request.SpeechInput, out: Output) -> None:
    """A repeated Idempotency-Key: the first request's audio, in the form this request asks for."""
    if speech_input.timestamps:
        speech_timestamps.replay(record, speech_input, out, svc.audio)
        return
    speech_delivery.replay(record, speech_delivery.for_request(speech_input.delivery, out, replayed=True), svc.audio)


def raise_charged_but_undelivered() -> None:
    """Charged, but the audio could not be sent (logged)."""
    raise errors.InternalError(
        "This request was charged but its audio could not be sent. Retry with the same Idempotency-Key "
        "to receive it; without one, quote X-Request-Id to support for a refund.")


app = WebApp({("POST", "/v1/audio/speech"): speak,
              ("POST", "/v1/audio/speech/with-timestamps"): speak_with_timestamps},
             api_timeout=svc.cfg.stream_api_timeout_seconds)
make_server = app.make_server       # what the Lambda Web Adapter stand-in (make run) starts

init_phase.end()

if __name__ == "__main__":          # run.sh, in Lambda
    app.serve_forever()
