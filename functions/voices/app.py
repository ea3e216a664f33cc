"""GET /v1/audio/voices, GET and DELETE /v1/audio/voices/{voice_id}: the caller's cloned voices
(then MiniMax's system catalog), one voice, and deleting one (upstream too)."""

from kyma.platform import init_phase

init_phase.begin()  # no cyclic GC passes while INIT imports (kyma/platform/init_phase.py)

from kyma.accounts.rate_limits import RateLimiter
from kyma.edge import errors
from kyma.edge.http import Request, Response, api_handler, json_response
from kyma.platform.observability import instrument
from kyma.providers.select import provider
from kyma.services import services
from kyma.voices import catalog as voice_catalog
from kyma.voices.records import is_cloned_voice_id

svc = services()
catalog = voice_catalog.SystemCatalog()
limiter = RateLimiter(svc.ledger.ddb, svc.cfg)


def list_voices(request: Request) -> Response:
    kind, limit, cursor = voice_catalog.parse_query(request.query)
    return json_response(200, voice_catalog.list_page(
        request.account_id, kind=kind, limit=limit, cursor=cursor, voices=svc.voices, catalog=catalog,
        provider=provider(), deadline=request.deadline))


def get_voice(request: Request) -> Response:
    return json_response(200, voice_catalog.get_one(
        request.account_id, request.path_params["voice_id"], voices=svc.voices, catalog=catalog,
        provider=provider(), deadline=request.deadline))


def delete_voice(request: Request) -> Response:
    voice_id = request.path_params["voice_id"]
    if not is_cloned_voice_id(voice_id):
        raise errors.InvalidRequest(f"{voice_id} is a system voice; only your cloned (kyma_) voices can be deleted.")
    svc.lifecycle.delete(voice_id, request.account_id, provider(), deadline=request.deadline)
    return json_response(200, {"voice_id": voice_id, "deleted": True})


lambda_handler = instrument(api_handler({
    ("GET", "/v1/audio/voices"): limiter.guard("voices", list_voices),
    ("GET", "/v1/audio/voices/{voice_id}"): limiter.guard("voices", get_voice),
    ("DELETE", "/v1/audio/voices/{voice_id}"): limiter.guard("voices", delete_voice),
}))

init_phase.end()
