"""``/healthz`` (the process lives), ``/readyz`` (rules loaded and the store answers; a
wiped store is a warning) and
``/metrics`` (Prometheus text): no authentication."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from remediator.api.service import SERVICE, Service
from remediator.api.times import rfc3339
from remediator.errors import StoreUnavailable
from remediator.store.base import brake_state


async def healthz(_: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    svc = request.app[SERVICE]
    problems = []
    last = svc.rules.last
    rules: dict[str, Any] = {
        "loaded": svc.rules.loaded,  # times as ISO 8601 UTC
        "last_reload": last.as_dict() | {"at": rfc3339(last.at)} if last else None,
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
    # A wiped store is a warning, not a problem: the store works and new alerts must keep
    # coming in (every replica saw the wipe; 503 would take them all out of the Service).
    warnings = svc.generation.warnings(time.time()) if svc.generation is not None else []
    if warnings:
        store["warning"] = warnings[0]
    body = {
        "status": "ready" if not problems else "not ready",
        "problems": problems,
        "warnings": warnings,
        "rules": rules,
        "store": store,
        "replica": svc.replica,
    }
    return web.json_response(body, status=200 if not problems else 503)


async def metrics(request: web.Request) -> web.Response:
    svc = request.app[SERVICE]
    with contextlib.suppress(StoreUnavailable, TimeoutError):
        svc.metrics.queue_depth.set(await asyncio.wait_for(svc.store.queue.queue_depth(), 1.0))
    with contextlib.suppress(StoreUnavailable, TimeoutError):
        await asyncio.wait_for(_held_by_brakes(svc), 2.0)
    body = generate_latest(svc.metrics.registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def _held_by_brakes(svc: Service) -> None:
    """``remediator_brake_held_jobs``, read from the shared store: every replica reports the
    same, whichever replica held or released the jobs. A rule no longer braked (or gone)
    drops out, so its alert ends."""
    if not svc.rules.loaded:
        return
    held = {}
    for rule in svc.rules.current().rules:
        if (brake := rule.policy.brake) is not None:
            held[rule.name] = len((await brake_state(svc.store, rule.name, brake[1])).held)
    gauge = svc.metrics.brake_held_jobs
    gauge.clear()  # then set at once, with no await in between: a scrape sees one or the other
    for name, count in held.items():
        gauge.labels(name).set(count)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
