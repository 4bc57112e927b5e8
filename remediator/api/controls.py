"""The operators' controls (``/api/v1``): scoped pauses, maintenance windows, the jobs view.

A pause holds the jobs its matchers match (none: every job) until it ends; lifting it
early releases the held jobs at once. Its author is the token's name. Slack hears when
a pause starts and when it is lifted.
"""

from __future__ import annotations

import re
import secrets
import time

import structlog
from aiohttp import web

from remediator.api.admin import event_id_of, parse_body, parse_query, reply
from remediator.api.control_models import (
    PAUSE_ID_PATTERN,
    JobInfo,
    JobList,
    JobsQuery,
    PauseCreate,
    PauseInfo,
    PauseList,
    WindowInfo,
)
from remediator.api.errors import ApiError
from remediator.api.guards import admin, identity, reader
from remediator.api.pausing import announce, check_length, lifted
from remediator.api.service import Service
from remediator.store.values import Pause

log = structlog.get_logger("remediator.api.controls")


# ---- pauses --------------------------------------------------------------------------
@reader
async def list_pauses(_: web.Request, svc: Service) -> web.Response:
    now = time.time()
    windows = svc.rules.current().windows if svc.rules.loaded else ()
    pauses = [PauseInfo.of(p) for p in await svc.store.pauses.list_pauses()]
    return reply(PauseList(pauses=pauses, windows=[WindowInfo.of(w, now) for w in windows]))


@admin
async def add_pause(request: web.Request, svc: Service) -> web.Response:
    body = await parse_body(request, svc, PauseCreate)
    pause = await create_pause(svc, body, identity(request))
    return reply(PauseInfo.of(pause), status=201)


async def create_pause(svc: Service, body: PauseCreate, by: str) -> Pause:
    """Store a pause by ``by`` and tell Slack (the API and the console)."""
    now = time.time()
    try:
        until = body.end(now)
    except ValueError as exc:
        raise ApiError(400, "invalid request body", str(exc)) from exc
    check_length(svc, until - now)
    pause = Pause(
        reason=body.reason,
        until=until,
        by=by,
        id=f"p-{secrets.token_hex(4)}",
        matchers=tuple(body.matchers),
        created=now,
    )
    await svc.store.pauses.add_pause(pause)
    announce(svc, pause, started=True)
    log.warning("admin.pause_added", **pause.as_dict())
    return pause


@admin
async def remove_pause(request: web.Request, svc: Service) -> web.Response:
    pause = await end_pause(svc, request.match_info["pause_id"], identity(request))
    return reply(PauseInfo.of(pause))


async def end_pause(svc: Service, pause_id: str, by: str) -> Pause:
    """End a pause early as ``by``: its held jobs are released and Slack is told."""
    if not re.fullmatch(PAUSE_ID_PATTERN, pause_id):
        raise ApiError(400, "invalid pause id", "letters, digits, '_' and '-' only (max 64)")
    pause = await svc.store.pauses.remove_pause(pause_id)
    if pause is None:
        raise ApiError(404, "no such pause", pause_id)
    released = await lifted(svc, pause, by)
    log.warning("admin.pause_removed", id=pause_id, by=by, released=released)
    return pause


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
            since_iso=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(event.finished_at)),
            received_at=event.received_at,
            outcome=event.outcome_label,
        )
    )


def add_routes(app: web.Application) -> None:
    route = app.router
    route.add_get("/api/v1/pauses", list_pauses, allow_head=False)
    route.add_post("/api/v1/pauses", add_pause)
    route.add_delete("/api/v1/pauses/{pause_id}", remove_pause)
    route.add_get("/api/v1/jobs", list_jobs, allow_head=False)
    route.add_get("/api/v1/jobs/{event_id}", get_job, allow_head=False)
