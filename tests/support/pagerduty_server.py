"""A local PagerDuty Events API v2 stand-in: an aiohttp server on a free port.

``POST /v2/enqueue`` validates an event as PagerDuty does (routing key, action, dedup
key, and for a trigger the required payload fields and a known severity), answers 202
``{"status": "success", "dedup_key"}`` or 400 ``{"status": "invalid event"}``, and keeps
the incidents it opened and resolved. Scripted replies (``fail_next``) answer 429 with
``Retry-After``, 5xx, or slowly.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from tests.support.procs import free_port

ROUTING_KEY = "R0UT1NGKEY-secret-0123456789abcdef"
SEVERITIES = {"critical", "error", "warning", "info"}


@dataclass(frozen=True)
class Reply:
    status: int = 202
    retry_after: str | None = None
    delay: float = 0.0


@dataclass(frozen=True)
class Received:
    at: float  # monotonic
    status: int
    body: dict[str, Any]


class PagerDutyServer:
    def __init__(self, *, routing_key: str = ROUTING_KEY) -> None:
        self.routing_key = routing_key
        self.port = free_port()
        self.received: list[Received] = []
        self.incidents: dict[str, str] = {}  # dedup key -> "triggered" | "resolved"
        self.plans: deque[Reply] = deque()
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> PagerDutyServer:
        app = web.Application()
        app.router.add_post("/v2/enqueue", self._enqueue)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def fail_next(self, reply: Reply, times: int = 1) -> None:
        self.plans.extend([reply] * times)

    def accepted(self) -> list[dict[str, Any]]:
        return [r.body for r in self.received if r.status == 202]

    async def wait_for(self, count: int, within: float = 20.0, *, accepted: bool = True) -> list[Received]:
        """Until ``count`` requests arrived (only accepted ones, by default)."""

        def enough() -> bool:
            got = [r for r in self.received if r.status == 202] if accepted else self.received
            return len(got) >= count

        async def wait() -> None:
            async with self._changed:
                await self._changed.wait_for(enough)

        try:
            await asyncio.wait_for(wait(), within)
        except TimeoutError:
            raise AssertionError(
                f"expected {count} PagerDuty events within {within}s, got {self.received}"
            ) from None
        return list(self.received)

    async def _enqueue(self, request: web.Request) -> web.Response:
        arrived = time.monotonic()
        try:
            body = await request.json()
        except ValueError:
            body = None
        reply = self.plans.popleft() if self.plans else Reply()
        if reply.delay:
            await asyncio.sleep(reply.delay)
        errors = (
            _problems(body, self.routing_key) if isinstance(body, dict) else ["body is not a JSON object"]
        )
        status = reply.status if reply.status != 202 else (400 if errors else 202)
        async with self._changed:
            self.received.append(Received(arrived, status, body if isinstance(body, dict) else {}))
            if status == 202:
                self.incidents[body["dedup_key"]] = (
                    "triggered" if body["event_action"] == "trigger" else "resolved"
                )
            self._changed.notify_all()
        headers = {"Retry-After": reply.retry_after} if reply.retry_after else {}
        if status == 202:
            return web.json_response(
                {"status": "success", "message": "Event processed", "dedup_key": body["dedup_key"]},
                status=202,
            )
        if status == 400:
            return web.json_response(
                {"status": "invalid event", "message": "Event object is invalid", "errors": errors},
                status=400,
            )
        if status == 429:
            return web.json_response({"status": "throttle event"}, status=429, headers=headers)
        return web.Response(status=status, text="upstream trouble", headers=headers)


def _problems(body: dict[str, Any], routing_key: str) -> list[str]:
    problems = []
    if body.get("routing_key") != routing_key:
        problems.append("'routing_key' is invalid")
    action = body.get("event_action")
    if action not in ("trigger", "acknowledge", "resolve"):
        problems.append("'event_action' is invalid")
    key = body.get("dedup_key")
    if not isinstance(key, str) or not key or len(key) > 255:
        problems.append("'dedup_key' is invalid")
    if action == "trigger":
        payload = body.get("payload")
        if not isinstance(payload, dict):
            return [*problems, "'payload' is missing"]
        for name in ("summary", "source", "severity"):
            if not isinstance(payload.get(name), str) or not payload[name]:
                problems.append(f"'payload.{name}' is missing")
        if payload.get("severity") not in SEVERITIES:
            problems.append("'payload.severity' is invalid")
        if len(str(payload.get("summary", ""))) > 1024:
            problems.append("'payload.summary' is too long")
    return problems
