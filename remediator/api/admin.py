"""The admin API (``/api/v1``): audit events, stats, manual replay, rules; bearer-protected.

With ``REMEDIATOR_ADMIN_TOKEN`` unset every admin route answers 404; a missing or
wrong token is a 401. Every answer is JSON; client mistakes are 4xx, a store
outage is 503, and nothing a client sends can cause a 5xx.
"""

from __future__ import annotations

import os
from typing import Any, Literal

import structlog
from aiohttp import web
from pydantic import ValidationError

from remediator.api import openapi, stats
from remediator.api.audit_models import EventDetail, EventPage, EventSummary
from remediator.api.bodies import (
    event_id_of,
    parse_body,
    parse_query,
    read_json_body,
    reply,
    validation_detail,
)
from remediator.api.errors import ApiError
from remediator.api.guards import admin, identity, reader
from remediator.api.schemas import (
    Accepted,
    EventsQuery,
    ManualAlert,
    ReloadInfo,
    ReplayQuery,
    ReplayRequest,
    RuleInfo,
    RulesInfo,
    StatsQuery,
    StepInfo,
)
from remediator.api.service import SERVICE, Service
from remediator.intake import ManualOptions
from remediator.models import WebhookPayload
from remediator.rules.ruleset import Rule

log = structlog.get_logger("remediator.api.admin")


def require_rules(svc: Service) -> None:
    if not svc.rules.loaded:
        raise ApiError(503, "no rules loaded", svc.rules.last.as_dict() if svc.rules.last else None)


# ---- events ------------------------------------------------------------------
@reader
async def list_events(request: web.Request, svc: Service) -> web.Response:
    query = parse_query(request, EventsQuery)
    try:
        events, cursor = await svc.store.audit.list_events(
            query.limit, cursor=query.cursor, rule=query.rule, outcome=query.outcome
        )
    except ValueError as exc:  # a store that rejects a malformed cursor
        raise ApiError(400, "invalid cursor", str(exc)) from exc
    return reply(EventPage(events=[EventSummary.of(e) for e in events], next_cursor=cursor))


@reader
async def get_event(request: web.Request, svc: Service) -> web.Response:
    event_id = event_id_of(request)
    event = await svc.store.audit.get_event(event_id)
    if event is None:
        raise ApiError(404, "no such event", event_id)
    return reply(EventDetail.of(event))


@reader
async def get_stats(request: web.Request, svc: Service) -> web.Response:
    query = parse_query(request, StatsQuery)
    return reply(await stats.compute(svc.store.audit, query.window, query.seconds))


# ---- replay ------------------------------------------------------------------
@admin
async def replay_event(request: web.Request, svc: Service) -> web.Response:
    event_id = event_id_of(request)
    body = await parse_body(request, svc, ReplayRequest, optional=True)
    accepted = await replay_stored(svc, event_id, body, identity(request))
    return reply(accepted, status=202)


async def replay_stored(svc: Service, event_id: str, body: ReplayRequest, by: str) -> Accepted:
    """Run a stored event's alert through the rules again, as ``by`` (the API and the console)."""
    require_rules(svc)
    event = await svc.store.audit.get_event(event_id)
    if event is None:
        raise ApiError(404, "no such event", event_id)
    if event.alert is None:
        raise ApiError(409, "the event has no stored alert to replay", event_id)
    payload = WebhookPayload.model_validate(
        {"version": "4", "status": event.alert.status, "alerts": [event.alert]}
    )
    note = f"replay of {event_id}" + (f": {body.note}" if body.note else "")
    options = ManualOptions(
        note=note,
        dry_run=body.dry_run or None,
        ignore_cooldown=body.ignore_cooldown,
        ignore_circuit=body.ignore_circuit,
        requested_by=by,
    )
    accepted = await svc.intake.accept(payload, options)
    if not accepted.event_ids:
        raise ApiError(
            409,
            "no loaded rule matches the stored alert; nothing replayed",
            {"alertname": event.alertname, "rules_hash": svc.rules.current().hash},
        )
    log.info(
        "admin.replay",
        by=by,
        replay_of=event_id,
        event_ids=accepted.event_ids,
        note=body.note,
        dry_run=body.dry_run,
        ignore_cooldown=body.ignore_cooldown,
        ignore_circuit=body.ignore_circuit,
    )
    return Accepted(accepted=len(accepted.event_ids), event_ids=accepted.event_ids, replay_of=event_id)


@admin
async def replay_payload(request: web.Request, svc: Service) -> web.Response:
    query = parse_query(request, ReplayQuery)
    data = await read_json_body(request, svc.settings.max_body_bytes, svc.settings.body_timeout)
    payload = manual_payload(data)
    require_rules(svc)
    options = ManualOptions(
        note=query.note or "manual replay",
        dry_run=query.dry_run or None,
        ignore_cooldown=query.ignore_cooldown,
        ignore_circuit=query.ignore_circuit,
        requested_by=identity(request),
    )
    accepted = await svc.intake.accept(payload, options)
    log.info(
        "admin.replay_payload",
        by=identity(request),
        alerts=len(payload.alerts),
        event_ids=accepted.event_ids,
        note=query.note,
        dry_run=query.dry_run,
    )
    return reply(
        Accepted(
            accepted=len(accepted.event_ids),
            event_ids=accepted.event_ids,
            unmatched_alerts=accepted.unmatched,
        ),
        status=202,
    )


def manual_payload(data: Any) -> WebhookPayload:
    """An Alertmanager v4 payload, or one alert (``status``/``startsAt`` may be left out)."""
    if not isinstance(data, dict):
        raise ApiError(400, "expected a JSON object: an Alertmanager payload or one alert")
    try:
        if "alerts" in data:
            return WebhookPayload.model_validate(data)
        alert = ManualAlert.model_validate(data).to_alert()
    except ValidationError as exc:
        raise ApiError(400, "not an Alertmanager v4 payload nor an alert", validation_detail(exc)) from exc
    return WebhookPayload.model_validate({"version": "4", "status": alert.status, "alerts": [alert]})


# ---- rules -------------------------------------------------------------------
@reader
async def get_rules(_: web.Request, svc: Service) -> web.Response:
    return reply(rules_info(svc))


def rules_info(svc: Service) -> RulesInfo:
    holder = svc.rules
    rules = holder.current() if holder.loaded else None
    last = holder.last
    return RulesInfo(
        loaded=rules is not None,
        path=str(holder.path),
        resolved_path=os.path.realpath(holder.path),
        hash=rules.hash if rules else None,
        count=len(rules) if rules else 0,
        poll_interval_seconds=svc.settings.rules_poll_interval,
        dry_run=svc.settings.dry_run,
        rules=[rule_info(rule, svc.settings.dry_run) for rule in rules.rules] if rules else [],
        defaults=rules.defaults if rules else None,
        last_reload=ReloadInfo.model_validate(last.as_dict()) if last else None,
    )


def rule_info(rule: Rule, service_dry_run: bool = False) -> RuleInfo:
    """The rule as the API shows it: every policy field, with the dry-run in effect."""
    flags: dict[Literal["rule", "service"], bool] = {"rule": rule.policy.dry_run, "service": service_dry_run}
    source = [name for name, on in flags.items() if on]
    shown = {**dict(rule.policy), "dry_run": bool(source), "dry_run_source": source}
    # Not validated again: the policy is, and rules.yaml's durations (units required)
    # would refuse the seconds it holds.
    return RuleInfo.model_construct(
        **shown,
        name=rule.name,
        description=rule.description,
        enabled=rule.enabled,
        handler=" → ".join(step.name for step in rule.steps),
        matchers=[str(m) for m in rule.matchers],
        inhibited_by=[str(m) for m in rule.inhibited_by],
        concurrency_limit=rule.concurrency_limit,
        probe=rule.probe.spec if rule.probe is not None else None,
        steps=[
            StepInfo(
                handler=step.name,
                on_success=step.on_success if step.handler is not None else "",
                on_failure=step.on_failure if step.handler is not None else "",
                timeout_seconds=step.timeout,
                page=step.page.model_dump() if step.page is not None else None,
            )
            for step in rule.steps
        ],
    )


# ---- the document --------------------------------------------------------------
async def openapi_document(request: web.Request) -> web.Response:
    """Public: the routes this service answers (admin routes only when enabled)."""
    return web.json_response(openapi.document(request.app[SERVICE].settings))


def add_routes(app: web.Application) -> None:
    route = app.router
    route.add_get("/api/v1/events", list_events, allow_head=False)
    route.add_get("/api/v1/events/{event_id}", get_event, allow_head=False)
    route.add_post("/api/v1/replay/{event_id}", replay_event)
    route.add_post("/api/v1/replay", replay_payload)
    route.add_get("/api/v1/stats", get_stats, allow_head=False)
    route.add_get("/api/v1/rules", get_rules, allow_head=False)
    route.add_get("/api/v1/openapi.json", openapi_document, allow_head=False)
