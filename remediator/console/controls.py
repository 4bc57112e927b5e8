"""The operators' pages: what waits (and deciding approvals), pauses, and the rules
with their last day, open circuits and open brakes (with their release form)."""

from __future__ import annotations

import time

from aiohttp import web
from pydantic import ValidationError

from remediator.api import stats
from remediator.api.admin import rules_info
from remediator.api.approvals import decide_as
from remediator.api.brakes import brakes_of, release_brake
from remediator.api.control_models import PauseCreate, WindowInfo
from remediator.api.errors import ApiError
from remediator.api.pauses import create_pause, end_pause
from remediator.api.schemas import valid_event_id
from remediator.api.service import Service
from remediator.console.attention import approvals_by_job, open_circuits
from remediator.console.events import event_id_of
from remediator.console.rendering import page, render
from remediator.console.session import Session


@page()
async def waiting(request: web.Request, svc: Service, _: Session) -> web.StreamResponse:
    jobs = await svc.store.jobs.job_states(None, 500)
    approvals = await approvals_by_job(svc, jobs)
    return render(request, "waiting.html", jobs=jobs, approvals=approvals, refresh=True)


@page(acts=True)
async def decide(request: web.Request, svc: Service, session: Session) -> web.StreamResponse:
    event_id = event_id_of(request)
    form = await request.post()
    decision = str(form.get("decision", ""))
    if decision not in ("approve", "reject"):
        raise ApiError(400, "decision must be approve or reject", decision)
    await decide_as(svc, event_id, decision, session.name, str(form.get("note", "")).strip()[:500])
    raise web.HTTPSeeOther(location="/ui/waiting")


@page()
async def pauses(request: web.Request, svc: Service, _: Session) -> web.StreamResponse:
    now = time.time()
    windows = svc.rules.current().windows if svc.rules.loaded else ()
    return render(
        request,
        "pauses.html",
        pauses=await svc.store.pauses.list_pauses(),
        windows=[WindowInfo.of(w, now) for w in windows],
    )


@page(acts=True)
async def add_pause(request: web.Request, svc: Service, session: Session) -> web.StreamResponse:
    form = await request.post()
    matchers = [line.strip() for line in str(form.get("matchers", "")).splitlines() if line.strip()]
    try:
        body = PauseCreate.model_validate(
            {"matchers": matchers, "reason": str(form.get("reason", "")), "for": str(form.get("for", ""))}
        )
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ApiError(400, "invalid pause", problems) from exc
    await create_pause(svc, body, session.name)
    raise web.HTTPSeeOther(location="/ui/pauses")


@page(acts=True)
async def remove_pause(request: web.Request, svc: Service, session: Session) -> web.StreamResponse:
    await end_pause(svc, request.match_info["pause_id"], session.name)
    raise web.HTTPSeeOther(location="/ui/pauses")


@page()
async def rules(request: web.Request, svc: Service, _: Session) -> web.StreamResponse:
    info = rules_info(svc)
    computed = await stats.compute(svc.store.audit, "24h", 86400.0)
    by_rule = {s.rule: s for s in computed.rules}
    brakes = {b.rule: b for b in await brakes_of(svc)}
    return render(
        request, "rules.html", info=info, stats=by_rule, circuits=await open_circuits(svc), brakes=brakes
    )


@page(acts=True)
async def release(request: web.Request, svc: Service, session: Session) -> web.StreamResponse:
    """Release a rule's held jobs: the ones ticked, or every one (``all``)."""
    form = await request.post()
    ids = [str(value) for value in form.getall("event_id", [])]
    if form.get("all") != "1" and not ids:
        raise ApiError(400, "nothing to release", "tick the held jobs to release, or release all")
    for event_id in ids:
        if not valid_event_id(event_id):
            raise ApiError(400, "invalid event id", event_id[:80])
    chosen = None if form.get("all") == "1" else ids
    await release_brake(svc, request.match_info["rule"], chosen, session.name)
    raise web.HTTPSeeOther(location="/ui/rules")
