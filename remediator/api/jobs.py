"""The jobs view (``/api/v1/jobs``): every job from the moment the webhook accepted it,
what it does or waits for, and since when."""

from __future__ import annotations

import structlog
from aiohttp import web

from remediator.api.bodies import event_id_of, parse_query, reply
from remediator.api.control_models import (
    JobInfo,
    JobList,
    JobsQuery,
)
from remediator.api.errors import ApiError
from remediator.api.guards import reader
from remediator.api.service import Service

log = structlog.get_logger("remediator.api.jobs")


# ---- the jobs view ---------------------------------------------------------------------
@reader
async def list_jobs(request: web.Request, svc: Service) -> web.Response:
    query = parse_query(request, JobsQuery)
    jobs = await svc.store.jobs.job_states(query.state, query.limit)
    return reply(JobList(jobs=[JobInfo.of(job) for job in jobs]))


@reader
async def get_job(request: web.Request, svc: Service) -> web.Response:
    """A job from the moment the webhook accepted it: waiting, running, or done."""
    event_id = event_id_of(request)  # the same check as every other event route
    job = await svc.store.jobs.job_state(event_id)
    if job is not None:
        return reply(JobInfo.of(job))
    event = await svc.store.audit.get_event(event_id)
    if event is None:
        raise ApiError(404, "no such job", event_id)
    return reply(
        JobInfo(
            event_id=event.event_id,
            rule=event.rule,
            target=event.target,
            alertname=event.alertname,
            fingerprint=event.fingerprint,
            manual=event.manual,
            state="done",
            why="",
            since=event.finished_at,
            received_at=event.received_at,
            outcome=event.outcome_label,
        )
    )


def add_routes(app: web.Application) -> None:
    route = app.router
    route.add_get("/api/v1/jobs", list_jobs, allow_head=False)
    route.add_get("/api/v1/jobs/{event_id}", get_job, allow_head=False)
