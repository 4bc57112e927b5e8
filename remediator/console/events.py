"""An event's page (its outcome, timeline, alert, links and Slack thread) and its replay."""

from __future__ import annotations

import re
from dataclasses import dataclass

from aiohttp import web
from pydantic import ValidationError

from remediator.api.admin import replay_stored
from remediator.api.audit_models import context_of
from remediator.api.errors import ApiError
from remediator.api.schemas import ReplayRequest, valid_event_id
from remediator.api.service import Service
from remediator.console.rendering import page, render, safe_link
from remediator.console.session import Session
from remediator.models import SOURCE_NAMES, AuditEvent

SLACK_TS = re.compile(r"[0-9]{1,12}\.[0-9]{1,8}")
SLACK_CHANNEL_ID = re.compile(r"[CGD][A-Z0-9]{6,20}")


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
        made_by, sent_by = SOURCE_NAMES.get(event.source, SOURCE_NAMES["alertmanager"])
        for title, url in (
            (made_by, alert.generator_url),
            ("Runbook", alert.annotations.get("runbook_url") or alert.annotations.get("runbook")),
            (sent_by, event.external_url or legacy),
            *alert.grafana_links(),
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
        context=context_of(event) if event is not None else [],
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
    rule = svc.rules.current().get(event.rule) if svc.rules.loaded else None
    channel = (rule.policy.slack_channel if rule is not None else None) or svc.settings.slack_channel or ""
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
