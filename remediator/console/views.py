"""The console's routes: read pages for any signed-in credential, actions for full access.

Every answer carries a strict Content-Security-Policy; every form carries a CSRF token
derived from the session; labels and annotations are escaped by the templates.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.resources import files
from typing import Any
from urllib.parse import urlencode, urlsplit

import jinja2
import structlog
from aiohttp import web
from aiohttp.typedefs import Handler
from markupsafe import Markup
from pydantic import ValidationError

from remediator.api import stats
from remediator.api.admin import replay_stored, rules_info
from remediator.api.approvals import decide_as
from remediator.api.clients import client_address
from remediator.api.control_models import PauseCreate, WindowInfo
from remediator.api.errors import ApiError
from remediator.api.limits import Caller, Refused
from remediator.api.pauses import create_pause, end_pause
from remediator.api.schemas import ReplayRequest, valid_event_id
from remediator.api.service import SERVICE, Service
from remediator.console.session import (
    COOKIE,
    LIFETIME,
    PRE_COOKIE,
    Session,
    Signer,
    current_session,
    open_session,
)
from remediator.errors import StoreUnavailable
from remediator.models import AuditEvent
from remediator.settings import Settings

log = structlog.get_logger("remediator.console")
SIGNER = web.AppKey("console_signer", Signer)
TEMPLATES = web.AppKey("console_templates", jinja2.Environment)
SESSION = web.RequestKey("console_session", Session)
PAGE = 50
SLACK_TS = re.compile(r"[0-9]{1,12}\.[0-9]{1,8}")
SLACK_CHANNEL_ID = re.compile(r"[CGD][A-Z0-9]{6,20}")
SEARCH_PAGES = 10
CIRCUIT_EVENTS = 500  # the Rules page looks for open circuits among these events' targets
CIRCUIT_PAIRS = 100
SCAN_PAGES = 20  # a target or time filter reads at most this many pages of PAGE events
SINCE = {"1h": 3600.0, "6h": 6 * 3600.0, "24h": 86400.0, "7d": 7 * 86400.0}
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
    """A ``<time>`` element: ISO UTC in ``datetime``, readable UTC text; the script localises it."""
    if epoch is None:
        return Markup("")
    iso = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))
    text = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(epoch))
    return Markup('<time datetime="{0}" title="{1}">{1}</time>').format(iso, text)


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
    env.filters["tojson_pretty"] = lambda v: json.dumps(v, indent=1, sort_keys=True, default=str)
    env.filters["policy"] = lambda rule: rule.model_dump(
        mode="json", exclude={"name", "description", "matchers", "handler", "inhibited_by"}
    )
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


# ---- sign-in -----------------------------------------------------------------------
async def signin_form(request: web.Request, error: str = "", status: int = 200) -> web.Response:
    nonce = request.cookies.get(PRE_COOKIE) or secrets.token_urlsafe(16)
    svc = request.config_dict[SERVICE]
    response = render(
        request,
        "signin.html",
        status,
        signin_csrf=request.app[SIGNER].csrf(nonce),
        error=error,
        enabled=bool(svc.credentials),
    )
    response.set_cookie(
        PRE_COOKIE, nonce, path="/ui/", httponly=True, samesite="Strict", secure=request.secure, max_age=3600
    )
    return response


async def signin_page(request: web.Request) -> web.StreamResponse:
    return await signin_form(request)


async def signin(request: web.Request) -> web.StreamResponse:
    """Failed sign-ins count against the client's address (``api/limits.py``): too many
    and the form answers 429 with Retry-After, before the token is even looked at."""
    svc = request.config_dict[SERVICE]
    caller = Caller(client_address(request, svc.settings.trusted_proxies))
    try:
        await svc.limits.check("console", caller)
        form = await request.post()
        nonce = request.cookies.get(PRE_COOKIE, "")
        if not request.app[SIGNER].csrf_ok(nonce, str(form.get("csrf", ""))):
            raise ApiError(403, "missing or wrong CSRF token", "reload the sign-in page and try again")
        token = str(form.get("token", "")).strip()
        credential = svc.credentials.identify(f"Bearer {token}") if token else None
        if credential is None:
            if token:
                await svc.limits.failed("console", caller)
            return await signin_form(request, "Unknown token.", 401)
    except Refused as exc:
        wait = f"Too many failed sign-ins from your address: try again in {exc.seconds} s."
        refused = await signin_form(request, wait, 429)
        refused.headers.update(exc.headers)
        return refused
    session = await open_session(request.app[SIGNER], svc.store.sessions, credential.name, credential.access)
    log.info("console.signed_in", by=credential.name, access=credential.access)
    response = web.HTTPSeeOther(location="/ui/")
    response.set_cookie(
        COOKIE,
        session.value,
        path="/ui/",
        httponly=True,
        samesite="Strict",
        secure=request.secure,
        max_age=int(LIFETIME),
    )
    response.del_cookie(PRE_COOKIE, path="/ui/")
    raise response


@page()
async def signout(request: web.Request, svc: Service, session: Session) -> web.StreamResponse:
    await svc.store.sessions.close_session(session.record)  # a copy of the cookie ends too
    log.info("console.signed_out", by=session.name)
    response = web.HTTPSeeOther(location="/ui/signin")
    response.del_cookie(COOKIE, path="/ui/")
    raise response


# ---- pages ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Filters:
    """The Activity page's filters: rule and outcome go to the store; the rest are applied here."""

    rule: str | None = None
    outcome: str | None = None
    target: str = ""
    since: str = ""
    start: float | None = None  # finished at or after (epoch seconds)
    end: float | None = None  # finished before
    from_text: str = ""
    to_text: str = ""

    @property
    def local(self) -> bool:
        """Whether some filter is applied by the console rather than the store."""
        return bool(self.target) or self.start is not None or self.end is not None

    def wants(self, event: AuditEvent) -> bool:
        if self.target and self.target not in event.target:
            return False
        if self.start is not None and event.finished_at < self.start:
            return False
        return self.end is None or event.finished_at < self.end

    def query(self) -> dict[str, str]:
        """The filters as query parameters, for the next page's link."""
        pairs = (
            ("rule", self.rule or ""),
            ("outcome", self.outcome or ""),
            ("target", self.target),
            ("since", self.since),
            ("from", self.from_text),
            ("to", self.to_text),
        )
        return {k: v for k, v in pairs if v}


def utc_input(value: str, name: str) -> float | None:
    """A ``datetime-local`` value (``2026-11-30T12:00``), read as UTC; empty: None."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise ApiError(400, f"invalid {name!r} time", "use YYYY-MM-DDTHH:MM (UTC)") from exc
    return parsed.replace(tzinfo=parsed.tzinfo or UTC).timestamp()


def filters_of(request: web.Request, now: float) -> Filters:
    q = request.query
    since = q.get("since", "").strip()
    if since and since not in SINCE:
        raise ApiError(400, "invalid time range", f"since: one of {', '.join(SINCE)}")
    from_text, to_text = q.get("from", "").strip(), q.get("to", "").strip()
    start = utc_input(from_text, "from")
    if since:
        start = max(start or 0.0, now - SINCE[since])
    return Filters(
        rule=q.get("rule", "").strip() or None,
        outcome=q.get("outcome", "").strip() or None,
        target=q.get("target", "").strip()[:200],
        since=since,
        start=start,
        end=utc_input(to_text, "to"),
        from_text=from_text,
        to_text=to_text,
    )


async def scan(
    svc: Service, filters: Filters, cursor: str | None
) -> tuple[list[AuditEvent], str | None, int]:
    """Events that pass the console's filters: whole store pages, at most ``SCAN_PAGES`` of them.

    Returns the events, the cursor after the last page read (None: nothing older), and how
    many events were read. The stream is newest first, so an event that finished before
    ``start`` ends the scan.
    """
    found: list[AuditEvent] = []
    read = 0
    for _ in range(SCAN_PAGES):
        events, cursor = await svc.store.audit.list_events(
            PAGE, cursor=cursor, rule=filters.rule, outcome=filters.outcome
        )
        read += len(events)
        found += [e for e in events if filters.wants(e)]
        if filters.start is not None and any(e.finished_at < filters.start for e in events):
            return found, None, read
        if cursor is None or len(found) >= PAGE:
            break
    return found, cursor, read


@page()
async def activity(request: web.Request, svc: Service, _: Session) -> web.StreamResponse:
    filters = filters_of(request, time.time())
    search = request.query.get("q", "").strip()
    cursor = request.query.get("cursor") or None
    next_cursor: str | None = None
    read = 0
    try:
        if search:
            events = [e for e in await find(svc, search, filters.rule, filters.outcome) if filters.wants(e)]
        elif filters.local:
            events, next_cursor, read = await scan(svc, filters, cursor)
        else:
            events, next_cursor = await svc.store.audit.list_events(
                PAGE, cursor=cursor, rule=filters.rule, outcome=filters.outcome
            )
    except ValueError as exc:
        raise ApiError(400, "invalid cursor", str(exc)) from exc
    more = "/ui/?" + urlencode({**filters.query(), "cursor": next_cursor}) if next_cursor else None
    rules = [r.name for r in svc.rules.current().rules] if svc.rules.loaded else []
    return render(
        request,
        "activity.html",
        events=events,
        filters=filters,
        presets=list(SINCE),
        q=search,
        more=more,
        scanned=read if filters.local and next_cursor else 0,
        rules=rules,
        refresh=not cursor and not search,
    )


async def find(svc: Service, search: str, rule: str | None, outcome: str | None) -> list[AuditEvent]:
    """Events whose id or fingerprint is ``search`` (ids: a direct read; fingerprints: recent pages)."""
    found: list[AuditEvent] = []
    if valid_event_id(search):
        event = await svc.store.audit.get_event(search)
        if event is not None:
            found.append(event)
    cursor: str | None = None
    for _ in range(SEARCH_PAGES):
        events, cursor = await svc.store.audit.list_events(200, cursor=cursor, rule=rule, outcome=outcome)
        found += [e for e in events if e.fingerprint == search and e.event_id != search]
        if cursor is None or len(found) >= PAGE:
            break
    return found[:PAGE]


def event_id_of(request: web.Request) -> str:
    event_id = request.match_info["event_id"]
    if not valid_event_id(event_id):
        raise ApiError(400, "invalid event id", "letters, digits, '_' and '-' only (max 64)")
    return event_id


@page()
async def event_page(request: web.Request, svc: Service, _: Session) -> web.StreamResponse:
    event_id = event_id_of(request)
    event = await svc.store.audit.get_event(event_id)
    job = await svc.store.jobs.job_state(event_id)
    if event is None and job is None:
        raise ApiError(404, "no such event", event_id)
    links: list[tuple[str, str]] = []
    alert = event.alert if event is not None else None
    if event is not None and alert is not None:
        legacy = str(event.details.get("external_url", ""))  # where some handlers put it before
        for title, url in (
            ("Prometheus", alert.generator_url),
            ("Runbook", alert.annotations.get("runbook_url") or alert.annotations.get("runbook")),
            ("Alertmanager", event.external_url or legacy),
        ):
            if checked := safe_link(url):
                links.append((title, checked))
    thread = await slack_thread(svc, event) if event is not None else None
    return render(
        request,
        "event.html",
        event=event,
        job=job,
        alert=alert,
        links=links,
        event_id=event_id,
        thread=thread,
    )


@dataclass(frozen=True)
class Thread:
    """The Slack thread of an event's (rule, target): its ``ts``, and a permalink when one can be built."""

    channel: str
    ts: str
    url: str | None


async def slack_thread(svc: Service, event: AuditEvent) -> Thread | None:
    """The thread the store keeps for (rule, target), while it does (the rule's cooldown at least).

    A permalink is ``<workspace>/archives/<channel id>/p<ts without the dot>``: it needs
    ``REMEDIATOR_SLACK_WORKSPACE_URL`` and a channel given by its id; otherwise the
    channel and ``ts`` are shown as text.
    """
    channel = svc.settings.slack_channel or ""
    if not event.target or not channel or svc.settings.slack_bot_token is None:
        return None
    ts = await svc.store.threads.get_thread(event.rule, event.target)
    if ts is None or not SLACK_TS.fullmatch(ts):
        return None
    workspace = svc.settings.slack_workspace_url
    url = None
    if workspace and SLACK_CHANNEL_ID.fullmatch(channel):
        url = f"{workspace}/archives/{channel}/p{ts.replace('.', '')}"
    return Thread(channel, ts, url)


@page(acts=True)
async def replay(request: web.Request, svc: Service, session: Session) -> web.StreamResponse:
    event_id = event_id_of(request)
    form = await request.post()
    try:
        body = ReplayRequest(
            note=str(form.get("note", "")).strip(),
            ignore_cooldown=form.get("ignore_cooldown") == "on",
            ignore_circuit=form.get("ignore_circuit") == "on",
        )
    except ValidationError as exc:
        raise ApiError(400, "invalid replay", str(exc)) from exc
    accepted = await replay_stored(svc, event_id, body, session.name)
    raise web.HTTPSeeOther(location=f"/ui/events/{accepted.event_ids[0]}")


@page()
async def waiting(request: web.Request, svc: Service, _: Session) -> web.StreamResponse:
    jobs = await svc.store.jobs.job_states(None, 500)
    return render(request, "waiting.html", jobs=jobs, refresh=True)


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
    return render(request, "rules.html", info=info, stats=by_rule, circuits=await open_circuits(svc))


async def open_circuits(svc: Service) -> dict[str, list[tuple[str, float]]]:
    """Open circuits per rule: (target, seconds left), for the (rule, target) pairs of the
    last ``CIRCUIT_EVENTS`` events only (one audit read and one store read per pair)."""
    events, _ = await svc.store.audit.list_events(CIRCUIT_EVENTS)
    pairs = list(dict.fromkeys((e.rule, e.target) for e in events if e.target))[:CIRCUIT_PAIRS]
    left = await asyncio.gather(*(svc.store.gates.circuit_remaining(rule, target) for rule, target in pairs))
    found: dict[str, list[tuple[str, float]]] = {}
    for (rule, target), seconds in zip(pairs, left, strict=True):
        if seconds > 0:
            found.setdefault(rule, []).append((target, seconds))
    return found


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
    r.add_get("/", activity, allow_head=False)
    r.add_get("/signin", signin_page, allow_head=False)
    r.add_post("/signin", signin)
    r.add_post("/signout", signout)
    r.add_get("/events/{event_id}", event_page, allow_head=False)
    r.add_post("/events/{event_id}/replay", replay)
    r.add_get("/waiting", waiting, allow_head=False)
    r.add_post("/approvals/{event_id}", decide)
    r.add_get("/pauses", pauses, allow_head=False)
    r.add_post("/pauses", add_pause)
    r.add_post("/pauses/{pause_id}/end", remove_pause)
    r.add_get("/rules", rules, allow_head=False)
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
