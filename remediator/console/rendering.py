"""The console's plumbing: the templates and their filters (times in UTC, 24 hours, the
local time on hover; durations as a person reads them), the security headers, the error
pages, and the ``page`` decorator that signs a route in (and checks CSRF on a POST)."""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

import jinja2
import structlog
from aiohttp import web
from aiohttp.typedefs import Handler
from markupsafe import Markup

from remediator.api.errors import ApiError
from remediator.api.service import SERVICE, Service
from remediator.console.session import COOKIE, Session, Signer, current_session
from remediator.durations import human_duration
from remediator.errors import StoreUnavailable
from remediator.models import Gathered

log = structlog.get_logger("remediator.console")
SIGNER = web.AppKey("console_signer", Signer)
TEMPLATES = web.AppKey("console_templates", jinja2.Environment)
SESSION = web.RequestKey("console_session", Session)
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}
Page = Callable[[web.Request, Service, Session], Awaitable[web.StreamResponse]]


def utc(epoch: float | None) -> Markup:
    """A ``<time>``: UTC in 24 hours as its text, ISO in ``datetime`` (the script adds the
    local time as a tooltip)."""
    if epoch is None:
        return Markup("")
    iso = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))
    text = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(epoch))
    return Markup('<time datetime="{0}">{1}</time>').format(iso, text)


def duration(seconds: float | None) -> str:
    """``16h 47m``; "-" for none."""
    return "-" if seconds is None else human_duration(seconds)


def left(until: float | None) -> str:
    """``59m left`` until ``until`` (epoch seconds), or ``ended``."""
    if until is None:
        return ""
    remaining = until - time.time()
    return f"{human_duration(remaining)} left" if remaining > 0 else "ended"


def safe_link(url: str | None) -> str | None:
    """An http(s) URL from an alert, or None (a ``javascript:`` link is never rendered)."""
    if not url:
        return None
    try:
        scheme = urlsplit(url).scheme.lower()
    except ValueError:
        return None
    return url if scheme in ("http", "https") else None


def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("remediator.console", "templates"),
        autoescape=jinja2.select_autoescape(["html"], default_for_string=True),
        undefined=jinja2.StrictUndefined,
    )
    env.filters["utc"] = utc
    env.filters["duration"] = duration
    env.filters["left"] = left
    env.filters["tojson_pretty"] = lambda v: json.dumps(v, indent=1, sort_keys=True, default=str)
    env.filters["policy"] = lambda rule: rule.model_dump(
        mode="json", exclude={"name", "description", "matchers", "handler", "inhibited_by"}
    )
    env.filters["gathered"] = lambda entries: [Gathered.model_validate(entry) for entry in entries]
    env.filters["badge"] = lambda outcome: str(outcome).split(":", 1)[0]
    return env


def render(request: web.Request, template: str, status: int = 200, **context: Any) -> web.Response:
    session = request.get(SESSION)
    signer = request.app[SIGNER]
    body = (
        request.app[TEMPLATES]
        .get_template(template)
        .render(
            session=session,
            csrf=signer.csrf(session.value) if session else "",
            path=request.path,
            **context,
        )
    )
    return web.Response(text=body, status=status, content_type="text/html", charset="utf-8")


@web.middleware
async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Security headers on every answer; HTML error pages instead of the API's JSON."""
    try:
        response = await handler(request)
    except ApiError as exc:
        response = render(request, "error.html", exc.status, error=exc.error, detail=exc.detail)
    except web.HTTPException as exc:
        if exc.status < 400:
            exc.headers.update(HEADERS)
            raise
        response = render(request, "error.html", exc.status, error=exc.reason, detail=exc.text)
    except StoreUnavailable as exc:
        log.error("console.store_unavailable", path=request.path, error=str(exc))
        response = render(
            request, "error.html", 503, error="the state store is unavailable; retry", detail=""
        )
    except ConnectionError:
        raise  # the client went away: nobody to answer
    except Exception:  # a bug: logged once here, a page with the headers for the browser
        log.exception("console.internal_error", method=request.method, path=request.path)
        response = render(request, "error.html", 500, error="internal error", detail="the error is logged")
    response.headers.update(HEADERS)
    return response


def page(*, acts: bool = False) -> Callable[[Page], Handler]:
    """A route for a signed-in session; ``acts``: a POST that needs full access and a CSRF token."""

    def wrap(route: Page) -> Handler:
        async def handler(request: web.Request) -> web.StreamResponse:
            svc = request.config_dict[SERVICE]
            value = request.cookies.get(COOKIE, "")
            signer = request.app[SIGNER]
            session = (
                await current_session(signer, svc.store.sessions, value, svc.credentials) if value else None
            )
            if session is None:
                raise web.HTTPSeeOther(location="/ui/signin")
            request[SESSION] = session
            if request.method == "POST":
                form = await request.post()
                if not request.app[SIGNER].csrf_ok(session.value, str(form.get("csrf", ""))):
                    raise ApiError(403, "missing or wrong CSRF token", "reload the page and try again")
                if acts and not session.can_act:
                    raise ApiError(403, "read-only", f"{session.name!r} may look but not act")
            return await route(request, svc, session)

        return handler

    return wrap
