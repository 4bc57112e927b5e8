"""``POST /webhooks/alertmanager``: authenticate, read and validate Alertmanager's v4
payload, or Grafana Alerting's webhook contact point (version "1": the same shape with more
fields), hand it to the intake (``remediator.intake``, which records the source), answer
202 with the event ids."""

from __future__ import annotations

import orjson
import structlog
from aiohttp import web
from pydantic import ValidationError

from remediator.api.auth import authorized, basic_user, has_credential
from remediator.api.bodies import read_body, validation_detail
from remediator.api.clients import client_address
from remediator.api.errors import ApiError
from remediator.api.limits import Caller
from remediator.api.service import SERVICE, Service
from remediator.errors import StoreUnavailable
from remediator.models import WebhookPayload
from remediator.settings import Settings

log = structlog.get_logger("remediator.api.alertmanager")


def check_webhook_auth(request: web.Request, settings: Settings) -> bool:
    """Bearer token or basic auth (``remediator.api.auth``); open only with --insecure-no-auth."""
    if settings.insecure_no_auth and not settings.webhook_auth_configured():
        return True
    return authorized(
        request.headers.get("Authorization", ""),
        token=settings.webhook_token,
        username=settings.webhook_username,
        password=settings.webhook_password,
    )


async def webhook(request: web.Request) -> web.Response:
    """Every answer, refusals included, is counted in remediator_webhook_requests_total."""
    svc = request.app[SERVICE]
    try:
        response = await _webhook(request, svc)
    except ApiError as exc:
        svc.metrics.webhook_answered(exc.status)
        raise
    except ConnectionError:
        raise  # the client went away before an answer
    except Exception:
        svc.metrics.webhook_answered(500)  # the errors middleware logs it and answers 500
        raise
    svc.metrics.webhook_answered(response.status)
    return response


def caller_of(request: web.Request, settings: Settings) -> Caller:
    """The client's address, and the basic-auth user it presents (named in logs only when
    it is the configured one: a stranger's "user" may be a pasted password)."""
    address = client_address(request, settings.trusted_proxies)
    user = basic_user(request.headers.get("Authorization", ""))
    if user is None:
        return Caller(address)
    shown = user if user == settings.webhook_username else "(another name)"
    return Caller(address, user, shown)


async def _webhook(request: web.Request, svc: Service) -> web.Response:
    settings = svc.settings
    caller = caller_of(request, settings)
    await svc.limits.check("webhook", caller)
    if check_webhook_auth(request, settings):
        await svc.limits.succeeded(caller)
    else:
        if has_credential(request.headers.get("Authorization", "")):
            await svc.limits.failed("webhook", caller)
        scheme = "Bearer" if settings.webhook_token is not None else "Basic"
        raise ApiError(
            401,
            "missing or wrong credentials",
            f"expected an Authorization: {scheme} header with the webhook credentials",
            headers={"WWW-Authenticate": f'{scheme} realm="remediator"'},
        )
    async with svc.pacing:  # the workers keep their share of the loop (api/pacing.py)
        return await _accept(request, svc)


async def _accept(request: web.Request, svc: Service) -> web.Response:
    settings = svc.settings
    body = await read_body(request, settings.max_body_bytes, settings.body_timeout)
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, "body is not valid JSON", str(exc)) from exc
    try:
        payload = WebhookPayload.model_validate(data)
    except ValidationError as exc:
        raise ApiError(
            400,
            "not an Alertmanager (version 4) or Grafana Alerting (version 1) webhook payload",
            validation_detail(exc),
        ) from exc
    if not svc.rules.loaded:
        raise ApiError(503, "no rules loaded", None, headers={"Retry-After": "5"})
    try:
        accepted = await svc.intake.accept(payload, raw_alerts=data["alerts"])
    except StoreUnavailable as exc:
        log.error("webhook.store_unavailable", error=str(exc), alerts=len(payload.alerts))
        raise ApiError(
            503, "cannot store the alerts durably; retry", str(exc), headers={"Retry-After": "5"}
        ) from exc
    # Debug only: every job logs its own outcome with its event id.
    log.debug(
        "webhook.accepted",
        alerts=len(payload.alerts),
        jobs=len(accepted.event_ids),
        unmatched=accepted.unmatched,
        deduplicated=accepted.deduplicated,
        group_key=payload.group_key,
        source=payload.source,
    )
    body = orjson.dumps(
        {
            "accepted": len(accepted.event_ids),
            "event_ids": accepted.event_ids,
            "unmatched_alerts": accepted.unmatched,
            "deduplicated": accepted.deduplicated,
        }
    )
    return web.Response(body=body, status=202, content_type="application/json")


def add_routes(app: web.Application) -> None:
    app.router.add_post("/webhooks/alertmanager", webhook)
