"""POST /v1/audio/speech/jobs (202 + Location), GET /v1/audio/speech/jobs[/{job_id}] and
DELETE /v1/audio/speech/jobs/{job_id}: long-form speech, worked in the background
(kyma/jobs: one reserve transaction and one queue message here; the worker does the rest)."""

from kyma.platform import init_phase

init_phase.begin()  # no cyclic GC passes while INIT imports (kyma/platform/init_phase.py)

from kyma.accounts import gate
from kyma.accounts.rate_limits import RateLimiter, caller_check
from kyma.billing.money import micros_to_json
from kyma.edge import scopes
from kyma.edge.http import Request, Response, api_handler, json_response, query_limit, replay_marked
from kyma.jobs import submit as job_submit
from kyma.jobs import views
from kyma.jobs.worker import Worker
from kyma.platform.observability import instrument
from kyma.providers.select import provider
from kyma.services import services

svc = services()
limiter = RateLimiter(svc.ledger.ddb, svc.cfg)


def create_job(request: Request) -> Response:
    job = job_submit.parse(request.json())
    provider().check_key()          # a failing secret store fails here, before anything is reserved

    def work(guard: str | None) -> dict:
        record = job_submit.submit(job, account_id=request.account_id, request_id=request.request_id, svc=svc,
                                   store=svc.jobs, guard=guard, provider_name=provider().name,
                                   gate=gate.for_caller(svc.cfg, scopes.SPEECH, request.account_id, request.authorizer),
                                   rate_limit=caller_check(svc.cfg, "speech-jobs", request.account_id,
                                                           request.authorizer))
        balance = svc.paid.balance_or_none(request.account_id)
        return {**record, "balance_usd": micros_to_json(balance) if balance is not None else None}

    record, replayed = svc.idempotency.for_request(request, scope="speech-jobs",
                                                   request_fingerprint=job_submit.fingerprint(job), work=work)
    return replay_marked(json_response(202, record, {"Location": f"/v1/audio/speech/jobs/{record['job_id']}"}),
                         replayed)


def get_job(request: Request) -> Response:
    job = views.owned(svc.jobs, request.path_params["job_id"], request.account_id)
    return json_response(200, views.view(job, svc.jobs))


def list_jobs(request: Request) -> Response:
    status, start = views.parse_list_query(request.query)
    return json_response(200, views.list_page(svc.jobs, request.account_id,
                                              limit=query_limit(request.query, default=20, maximum=100),
                                              status=status, start=start))


def delete_job(request: Request) -> Response:
    job = views.owned(svc.jobs, request.path_params["job_id"], request.account_id)
    return json_response(200, views.delete(svc.jobs, Worker(svc, svc.jobs, provider()), job))


lambda_handler = instrument(api_handler({
    ("POST", "/v1/audio/speech/jobs"): create_job,
    ("GET", "/v1/audio/speech/jobs"): limiter.guard("jobs", list_jobs),
    ("GET", "/v1/audio/speech/jobs/{job_id}"): limiter.guard("jobs", get_job),
    ("DELETE", "/v1/audio/speech/jobs/{job_id}"): limiter.guard("jobs", delete_job),
}))

init_phase.end()
