"""HTTP: the Alertmanager webhook, health, readiness and metrics."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import orjson
import structlog
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import ValidationError

from remediator.api.auth import authorized
from remediator.api.errors import ApiError
from remediator.api.schemas import iso
from remediator.api.service import SERVICE, Service
from remediator.errors import StoreUnavailable
from remediator.models import WebhookPayload
from remediator.settings import Settings

log = structlog.get_logger("remediator.api.webhook")


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


async def read_body(request: web.Request, limit: int, timeout: float) -> bytes:
    """The raw JSON body within ``timeout`` seconds, or raise ``ApiError`` (408, 413, 415, 400)."""
    ctype = request.content_type
    if ctype != "application/json" and not ctype.endswith("+json"):
        raise ApiError(415, f"expected Content-Type application/json, got {ctype or 'none'!r}")
    if request.content_length is not None and request.content_length > limit:
        raise ApiError(413, f"body of {request.content_length} bytes exceeds the limit of {limit}")
    content = request.content
    try:
        if content.is_eof():  # all of it is here (decoded): no timer, no waiting
            body = content.read_nowait()
        else:
            body = await _read_in_time(request, limit, timeout)
    except web.RequestPayloadError as exc:  # e.g. Content-Encoding: gzip on a body that is not
        cause = exc.__cause__
        reason = cause.message if isinstance(cause, HttpProcessingError) else str(exc)
        raise ApiError(400, "body cannot be read", reason.strip(), close=True) from None
    if len(body) > limit:
        raise _too_large(request, limit)
    return body


async def _read_in_time(request: web.Request, limit: int, timeout: float) -> bytes:
    body = bytearray()
    try:
        async with asyncio.timeout(timeout):
            async for chunk in request.content.iter_chunked(65536):
                body += chunk
                if len(body) > limit:
                    raise _too_large(request, limit)
    except TimeoutError:
        raise ApiError(
            408,
            "request body not received in time",
            f"the whole body must arrive within {timeout:g}s",
            close=True,
        ) from None
    return bytes(body)


def _too_large(request: web.Request, limit: int) -> ApiError:
    return ApiError(
        413,
        f"body exceeds the limit of {limit} bytes" + (" once decompressed" if _encoded(request) else ""),
    )


def _encoded(request: web.Request) -> bool:
    return request.headers.get("Content-Encoding", "identity").lower() != "identity"


async def read_json_body(request: web.Request, limit: int, timeout: float) -> Any:
    """The body as parsed JSON, or raise ``ApiError`` (408, 413, 415, 400)."""
    body = await read_body(request, limit, timeout)
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, "body is not valid JSON", str(exc)) from exc


def validation_detail(exc: ValidationError) -> list[dict[str, str]]:
    return [
        {"loc": ".".join(str(p) for p in err["loc"]), "msg": err["msg"]}
        for err in exc.errors(include_url=False)[:20]
    ]


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


async def _webhook(request: web.Request, svc: Service) -> web.Response:
    settings = svc.settings
    if not check_webhook_auth(request, settings):
        scheme = "Bearer" if settings.webhook_token is not None else "Basic"
        raise ApiError(
            401,
            "missing or wrong credentials",
            f"expected an Authorization: {scheme} header with the webhook credentials",
            headers={"WWW-Authenticate": f'{scheme} realm="remediator"'},
        )
    body = await read_body(request, settings.max_body_bytes, settings.body_timeout)
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, "body is not valid JSON", str(exc)) from exc
    try:
        payload = WebhookPayload.model_validate(data)
    except ValidationError as exc:
        raise ApiError(400, "not an Alertmanager v4 webhook payload", validation_detail(exc)) from exc
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


async def healthz(_: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    svc = request.app[SERVICE]
    problems = []
    last = svc.rules.last
    rules: dict[str, Any] = {
        "loaded": svc.rules.loaded,  # times as ISO 8601 UTC
        "last_reload": last.as_dict() | {"at": iso(last.at)} if last else None,
    }
    if svc.rules.loaded:
        rules["hash"] = svc.rules.current().hash
        rules["count"] = len(svc.rules.current())
    else:
        problems.append("no rules loaded")
    if svc.rules.last is not None and not svc.rules.last.ok:
        rules["warning"] = "last reload failed; running on the last good rules"
    try:
        await asyncio.wait_for(svc.store.ping(), 2.0)
        store = {"kind": svc.store.kind, "ok": True}
    except (StoreUnavailable, TimeoutError) as exc:
        store = {"kind": svc.store.kind, "ok": False, "error": str(exc) or "timeout"}
        problems.append(f"store unavailable: {store['error']}")
    body = {
        "status": "ready" if not problems else "not ready",
        "problems": problems,
        "rules": rules,
        "store": store,
        "replica": svc.replica,
    }
    return web.json_response(body, status=200 if not problems else 503)


async def metrics(request: web.Request) -> web.Response:
    svc = request.app[SERVICE]
    with contextlib.suppress(StoreUnavailable, TimeoutError):
        svc.metrics.queue_depth.set(await asyncio.wait_for(svc.store.queue.queue_depth(), 1.0))
    body = generate_latest(svc.metrics.registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def add_routes(app: web.Application) -> None:
    app.router.add_post("/webhooks/alertmanager", webhook)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
