"""The console's routes: read pages for any signed-in credential, actions for full access.

Every answer carries a strict Content-Security-Policy; every form carries a CSRF token
derived from the session; labels and annotations are escaped by the templates. The pages
live in ``activity.py``, ``events.py``, ``controls.py`` and ``signin.py``; the templates'
plumbing in ``rendering.py``.
"""

from __future__ import annotations

from importlib.resources import files

from aiohttp import web

from remediator.console import activity, controls, events, signin
from remediator.console.rendering import SIGNER, TEMPLATES, environment, guard
from remediator.console.session import Signer
from remediator.settings import Settings


async def static(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    kinds = {"console.css": "text/css", "console.js": "text/javascript"}
    if name not in kinds:
        raise web.HTTPNotFound()
    data = files("remediator.console").joinpath("static", name).read_bytes()
    response = web.Response(body=data, content_type=kinds[name])
    response.headers["Cache-Control"] = "max-age=300"
    return response


def subapp(settings: Settings) -> web.Application:
    ui = web.Application(middlewares=[guard])
    ui[SIGNER] = Signer.for_settings(settings)
    ui[TEMPLATES] = environment()
    r = ui.router
    r.add_get("/", activity.activity, allow_head=False)
    r.add_get("/signin", signin.signin_page, allow_head=False)
    r.add_post("/signin", signin.signin)
    r.add_post("/signout", signin.signout)
    r.add_get("/events/{event_id}", events.event_page, allow_head=False)
    r.add_post("/events/{event_id}/replay", events.replay)
    r.add_get("/waiting", controls.waiting, allow_head=False)
    r.add_post("/approvals/{event_id}", controls.decide)
    r.add_get("/pauses", controls.pauses, allow_head=False)
    r.add_post("/pauses", controls.add_pause)
    r.add_post("/pauses/{pause_id}/end", controls.remove_pause)
    r.add_get("/rules", controls.rules, allow_head=False)
    r.add_post("/brakes/{rule}/release", controls.release)
    r.add_get("/static/{name}", static, allow_head=False)
    return ui


def add_routes(app: web.Application, settings: Settings) -> None:
    """Mount the console under ``/ui/`` (only called when ``REMEDIATOR_UI=true``)."""

    async def to_ui(_: web.Request) -> web.StreamResponse:
        raise web.HTTPPermanentRedirect(location="/ui/")

    # First: the sub-application's prefix resource answers /ui too (with its 404) if it comes first.
    app.router.add_get("/ui", to_ui, allow_head=False)
    app.add_subapp("/ui/", subapp(settings))


__all__ = ["add_routes"]
