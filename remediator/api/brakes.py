"""The blast-radius brakes (``/api/v1/brakes``): each rule's ``max_targets``, the jobs it
holds (``held:brake``), and their release by an operator, all of them or some.

A released job runs through every gate again at once (a resolved alert still ends
``skipped:resolved``); the window's end never releases anything by itself.
"""

from __future__ import annotations

import structlog
from aiohttp import web

from remediator.api.bodies import parse_body, reply
from remediator.api.brake_models import BrakeInfo, BrakeList, BrakeRelease, BrakeReleased, HeldInfo
from remediator.api.errors import ApiError
from remediator.api.guards import admin, identity, reader
from remediator.api.service import Service
from remediator.notify.notice import Notice
from remediator.store.base import brake_state

log = structlog.get_logger("remediator.api.brakes")


async def brakes_of(svc: Service) -> list[BrakeInfo]:
    """Every loaded rule with a brake, its state read from the store."""
    if not svc.rules.loaded:
        return []
    found = []
    for rule in svc.rules.current().rules:
        if (brake := rule.policy.brake) is not None:
            count, within = brake
            found.append(BrakeInfo.of(await brake_state(svc.store, rule.name, within), count, within))
    return found


async def release_brake(svc: Service, rule_name: str, event_ids: list[str] | None, by: str) -> BrakeReleased:
    """Let held jobs of ``rule_name`` go (None: all); they are re-gated at once."""
    rule = svc.rules.current().get(rule_name) if svc.rules.loaded else None
    if rule is None or (brake := rule.policy.brake) is None:
        raise ApiError(404, "no such brake", f"no loaded rule {rule_name!r} with max_targets")
    released = await svc.store.brakes.release(rule_name, event_ids)
    if released:
        await svc.store.queue.release_held()  # due now: each passes the brake once
    state = await brake_state(svc.store, rule_name, brake[1])
    if released:
        svc.notifier.send(released_notice(rule_name, len(released), len(state.held), by))
    log.info(
        "brake.released",
        rule=rule_name,
        by=by,
        released=[job.event_id for job in released],
        still_held=len(state.held),
    )
    return BrakeReleased(
        rule=rule_name, released=[HeldInfo.of(job) for job in released], still_held=len(state.held)
    )


def released_notice(rule: str, released: int, still_held: int, by: str) -> Notice:
    """Slack hears each release; PagerDuty's incident resolves once nothing is held."""
    rest = "nothing is held: the brake is closed" if still_held == 0 else f"{still_held} still held"
    message = f"{by or 'an operator'} released {released} held job(s) of `{rule}`; {rest}"
    return Notice(kind="brake_released", rule=rule, message=message, details={"still_held": still_held})


@reader
async def list_brakes(_: web.Request, svc: Service) -> web.Response:
    return reply(BrakeList(brakes=await brakes_of(svc)))


@admin
async def release(request: web.Request, svc: Service) -> web.Response:
    body = await parse_body(request, svc, BrakeRelease, optional=True)
    rule = request.match_info["rule"]
    return reply(await release_brake(svc, rule, body.event_ids, identity(request)))


def add_routes(app: web.Application) -> None:
    route = app.router
    route.add_get("/api/v1/brakes", list_brakes, allow_head=False)
    route.add_post("/api/v1/brakes/{rule}/release", release)
