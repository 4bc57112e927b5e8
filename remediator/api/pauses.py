"""Pauses (``/api/v1/pauses``): the one collection, the global pause among them.

A pause holds the jobs its matchers match (none: every job) until it ends; lifting it
early releases the held jobs at once. Its author is the token's name. Slack hears when a
pause starts and when it is lifted. Times are RFC 3339 UTC strings (``api/times.py``).

``/api/v1/pause`` is a deprecated alias for the pause with the id ``global`` (a pause
without matchers): it keeps its old request and response shapes, and every answer
carries ``Deprecation``, ``Sunset`` and a ``Link`` to its successor.
"""

from __future__ import annotations

import functools
import re
import secrets

import structlog
from aiohttp import web

from remediator import clock
from remediator.api.bodies import parse_body, reply
from remediator.api.control_models import PAUSE_ID_PATTERN, PauseCreate, PauseInfo, PauseList, WindowInfo
from remediator.api.errors import ApiError
from remediator.api.guards import Handler, admin, identity, reader
from remediator.api.schemas import PauseState
from remediator.api.service import Service
from remediator.durations import format_duration
from remediator.notify.notice import Notice, NoticeKind
from remediator.store.base import global_pause
from remediator.store.values import GLOBAL_PAUSE, Pause

log = structlog.get_logger("remediator.api.pauses")

# RFC 9745 (when it was deprecated: this release) and RFC 8594 (when it goes away).
DEPRECATION = {
    "Deprecation": "@1796601600",  # 2026-12-07T00:00:00Z
    "Sunset": "Wed, 30 Jun 2027 00:00:00 GMT",
    "Link": '</api/v1/pauses>; rel="successor-version"',
}


# ---- the collection -----------------------------------------------------------------
@reader
async def list_pauses(_: web.Request, svc: Service) -> web.Response:
    now = clock.now()
    windows = svc.rules.current().windows if svc.rules.loaded else ()
    pauses = [PauseInfo.of(p) for p in await svc.store.pauses.list_pauses()]
    return reply(PauseList(pauses=pauses, windows=[WindowInfo.of(w, now) for w in windows]))


@admin
async def add_pause(request: web.Request, svc: Service) -> web.Response:
    body = await parse_body(request, svc, PauseCreate)
    pause = await create_pause(svc, body, identity(request))
    return reply(PauseInfo.of(pause), status=201)


async def create_pause(svc: Service, body: PauseCreate, by: str, pause_id: str = "") -> Pause:
    """Store a pause by ``by`` and tell Slack (the API, the console, and the deprecated
    route with ``pause_id`` ``global``); a new pause gets a fresh id."""
    now = clock.now()
    try:
        until, seconds = body.length(now)
    except ValueError as exc:
        raise ApiError(400, "invalid request body", str(exc)) from exc
    check_length(svc, seconds)
    pause = Pause(
        reason=body.reason,
        until=until,
        by=by,  # the body's "by" is not trusted: the token says who this is
        id=pause_id or f"p-{secrets.token_hex(4)}",
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


# ---- what every pause route does ---------------------------------------------------------
def check_length(svc: Service, seconds: float) -> None:
    """400 unless the pause ends in the future and within REMEDIATOR_MAX_PAUSE."""
    if seconds <= 0:
        raise ApiError(400, "invalid request body", "the pause must end in the future")
    longest = svc.settings.max_pause
    if seconds > longest:
        raise ApiError(
            400,
            "pause too long",
            f"{format_duration(seconds)} is more than REMEDIATOR_MAX_PAUSE ({format_duration(longest)})",
        )


async def lifted(svc: Service, pause: Pause, by: str) -> int:
    """A pause was lifted early: release the held jobs (re-gated at once), tell Slack."""
    released = await svc.store.queue.release_held()
    announce(svc, pause, started=False, message=f"lifted by {by}; {released} held job(s) released")
    return released


def announce(svc: Service, pause: Pause, *, started: bool, message: str = "") -> None:
    kind: NoticeKind = "pause_started" if started else "pause_ended"
    svc.notifier.send(Notice(kind=kind, message=message, pause=pause.as_dict()))


# ---- the deprecated alias: the pause with the id ``global`` ----------------------------------
def deprecated(route: Handler) -> Handler:
    """Answers and refusals of ``route`` carry the deprecation headers."""

    @functools.wraps(route)
    async def answer(request: web.Request) -> web.Response:
        try:
            response = await route(request)
        except ApiError as exc:
            exc.headers.update(DEPRECATION)
            raise
        response.headers.update(DEPRECATION)
        return response

    return answer


@deprecated
@reader
async def get_global(_: web.Request, svc: Service) -> web.Response:
    pause = await global_pause(svc.store.pauses)
    if pause is None:
        return reply(PauseState(paused=False))
    return reply(PauseState.active(pause.reason, pause.until, pause.by))


@deprecated
@admin
async def set_global(request: web.Request, svc: Service) -> web.Response:
    """The collection's body and checks; no matchers (this pause holds every job)."""
    body = await parse_body(request, svc, PauseCreate)
    if body.matchers:
        raise ApiError(
            400,
            "invalid request body",
            "the global pause holds every job and takes no matchers: POST a pause with "
            "matchers to /api/v1/pauses",
        )
    pause = await create_pause(svc, body, identity(request), pause_id=GLOBAL_PAUSE)
    return reply(PauseState.active(pause.reason, pause.until, pause.by))


@deprecated
@admin
async def lift_global(request: web.Request, svc: Service) -> web.Response:
    pause = await svc.store.pauses.remove_pause(GLOBAL_PAUSE)
    if pause is not None:
        await lifted(svc, pause, identity(request))
    log.warning("admin.resumed", was_paused=pause is not None, by=identity(request))
    return reply(PauseState(paused=False, was_paused=pause is not None))


def add_routes(app: web.Application) -> None:
    route = app.router
    route.add_get("/api/v1/pauses", list_pauses, allow_head=False)
    route.add_post("/api/v1/pauses", add_pause)
    route.add_delete("/api/v1/pauses/{pause_id}", remove_pause)
    route.add_get("/api/v1/pause", get_global, allow_head=False)
    route.add_post("/api/v1/pause", set_global)
    route.add_delete("/api/v1/pause", lift_global)
