"""The jobs view (``/api/v1/jobs``): every job from the moment the webhook accepted it,
what it does or waits for, and since when; 404 only for an id never accepted (or aged out
of the audit), 410 for one accepted before the store was wiped."""

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
from remediator.api.times import rfc3339

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
        await lost_before_the_store(svc, event_id)
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


async def lost_before_the_store(svc: Service, event_id: str) -> None:
    """410 for an id accepted before the store's data began (its generation marker's
    ``created``): the store was wiped since (or the id is from another store). An event id
    starts with the milliseconds it was accepted at (``models.new_event_id``)."""
    accepted = accepted_at(event_id)
    marker = await svc.store.generation.marker()
    if accepted is None or marker is None or accepted >= marker.created:
        return
    raise ApiError(
        410,
        "job lost",
        f"{event_id} was accepted at {rfc3339(accepted)}, before the state store's data began at "
        f"{rfc3339(marker.created)}: the store was wiped since (a Redis without persistence "
        "restarted?), and this job with it",
    )


def accepted_at(event_id: str) -> float | None:
    """When an event id was made (epoch seconds), or None for an id not made by us."""
    stamp = event_id[:12]
    if len(event_id) != 22 or not all(c in "0123456789abcdef" for c in event_id):
        return None
    return int(stamp, 16) / 1000


def add_routes(app: web.Application) -> None:
    route = app.router
    route.add_get("/api/v1/jobs", list_jobs, allow_head=False)
    route.add_get("/api/v1/jobs/{event_id}", get_job, allow_head=False)
