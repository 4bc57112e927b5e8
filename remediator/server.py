"""HTTP: the Alertmanager webhook, health, readiness and metrics."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hmac
import json
from typing import Any

import orjson
import structlog
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import ValidationError

from remediator.errors import StoreUnavailable
from remediator.models import WebhookPayload
from remediator.service import SERVICE, Service
from remediator.settings import Settings

log = structlog.get_logger("remediator.server")


def error(status: int, message: str, detail: Any = None, **headers: str) -> web.Response:
    body = {"error": message, "detail": detail}
    return web.json_response(body, status=status, headers=headers or None)


def check_webhook_auth(request: web.Request, settings: Settings) -> bool:
    """Bearer token or basic auth, compared in constant time."""
    if settings.insecure_no_auth and not settings.webhook_auth_configured():
        return True
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and settings.webhook_token is not None:
        return hmac.compare_digest(value.strip().encode(),
                                   settings.webhook_token.get_secret_value().encode())
    if scheme.lower() == "basic" and settings.webhook_password is not None:
        try:
            user, _, password = base64.b64decode(value.strip(), validate=True).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        ok_user = hmac.compare_digest(user.encode(), (settings.webhook_username or "").encode())
        ok_pass = hmac.compare_digest(password.encode(),
                                      settings.webhook_password.get_secret_value().encode())
        return ok_user and ok_pass
    return False


async def read_body(request: web.Request, limit: int) -> bytes:
    """The raw JSON body, or raise an HTTP error response (413, 415)."""
    ctype = request.content_type
    if ctype != "application/json" and not ctype.endswith("+json"):
        raise _http(415, f"expected Content-Type application/json, got {ctype or 'none'!r}")
    if request.content_length is not None:
        if request.content_length > limit:
            raise _http(413, f"body of {request.content_length} bytes exceeds the limit of {limit}")
        return await request.read()  # the app's client_max_size is above the limit
    body = bytearray()
    async for chunk in request.content.iter_chunked(65536):
        body += chunk
        if len(body) > limit:
            raise _http(413, f"body exceeds the limit of {limit} bytes")
    return bytes(body)


async def read_json_body(request: web.Request, limit: int) -> Any:
    """The body as parsed JSON, or raise an HTTP error response (413, 415, 400)."""
    body = await read_body(request, limit)
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise _http(400, "body is not valid JSON", str(exc)) from exc


def _http(status: int, message: str, detail: Any = None) -> web.HTTPException:
    exc = web.HTTPException(
        text=json.dumps({"error": message, "detail": detail}), content_type="application/json"
    )
    exc.set_status(status)
    return exc


def validation_detail(exc: ValidationError) -> list[dict[str, str]]:
    return [
        {"loc": ".".join(str(p) for p in err["loc"]), "msg": err["msg"]}
        for err in exc.errors(include_url=False)[:20]
    ]


async def webhook(request: web.Request) -> web.Response:
    svc = request.app[SERVICE]
    response = await _webhook(request, svc)
    svc.metrics.webhook_requests.labels(str(response.status)).inc()
    return response


async def _webhook(request: web.Request, svc: Service) -> web.Response:
    if not check_webhook_auth(request, svc.settings):
        return error(401, "missing or wrong credentials", None,
                     **{"WWW-Authenticate": 'Bearer realm="remediator"'})
    try:
        body = await read_body(request, svc.settings.max_body_bytes)
    except web.HTTPException as exc:
        return web.Response(status=exc.status, text=exc.text, content_type="application/json")
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        return error(400, "body is not valid JSON", str(exc))
    try:
        payload = WebhookPayload.model_validate(data)
    except ValidationError as exc:
        return error(400, "not an Alertmanager v4 webhook payload", validation_detail(exc))
    if not svc.rules.loaded:
        return error(503, "no rules loaded", None, **{"Retry-After": "5"})
    try:
        accepted = await svc.intake.accept(payload, raw_alerts=data["alerts"])
    except StoreUnavailable as exc:
        log.error("webhook.store_unavailable", error=str(exc), alerts=len(payload.alerts))
        return error(503, "cannot store the alerts durably; retry", str(exc), **{"Retry-After": "5"})
    # Debug only: every job logs its own outcome with its event id.
    log.debug("webhook.accepted", alerts=len(payload.alerts), jobs=len(accepted.event_ids),
              unmatched=accepted.unmatched, group_key=payload.group_key)
    body = orjson.dumps({"accepted": len(accepted.event_ids), "event_ids": accepted.event_ids,
                         "unmatched_alerts": accepted.unmatched})
    return web.Response(body=body, status=202, content_type="application/json")


async def healthz(_: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    svc = request.app[SERVICE]
    problems = []
    rules: dict[str, Any] = {"loaded": svc.rules.loaded,
                             "last_reload": svc.rules.last.as_dict() if svc.rules.last else None}
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
    body = {"status": "ready" if not problems else "not ready", "problems": problems,
            "rules": rules, "store": store, "replica": svc.replica}
    return web.json_response(body, status=200 if not problems else 503)


async def metrics(request: web.Request) -> web.Response:
    svc = request.app[SERVICE]
    with contextlib.suppress(StoreUnavailable, TimeoutError):
        svc.metrics.queue_depth.set(await asyncio.wait_for(svc.store.queue_depth(), 1.0))
    body = generate_latest(svc.metrics.registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def add_routes(app: web.Application) -> None:
    app.router.add_post("/webhooks/alertmanager", webhook)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
