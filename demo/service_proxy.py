"""Plays the Kubernetes Service ``remediator:8080`` in front of the replicas.

Alertmanager has one webhook URL, the Service's; each request goes to the next
replica in turn (kube-proxy spreads connections over the ready endpoints). A replica
that refuses the connection (killed) is skipped, as it would be once its endpoint is
removed. Every delivery is recorded: which replica, what alerts, the answer and the
event ids it accepted (to check later that every accepted job was processed).
"""

from __future__ import annotations

import itertools
import json
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from demo.prometheus import brief
from demo.timeline import Timeline
from tests.support.procs import free_port

FORWARDED = ("Authorization", "Content-Type", "User-Agent")


@dataclass(frozen=True)
class Backend:
    name: str
    url: str


@dataclass(frozen=True)
class Delivery:
    at: float
    backend: str
    status: int
    alerts: list[tuple[str, str]]  # (status, brief labels)
    event_ids: list[str]


@dataclass
class ServiceProxy:
    backends: list[Backend]
    timeline: Timeline
    port: int = field(default_factory=free_port)
    deliveries: list[Delivery] = field(default_factory=list)
    _turn: Any = field(default_factory=itertools.count)
    _runner: web.AppRunner | None = None
    _session: aiohttp.ClientSession | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def accepted_event_ids(self) -> list[str]:
        return [event for d in self.deliveries for event in d.event_ids]

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
        app = web.Application(client_max_size=2 * 1024 * 1024)
        app.router.add_route("*", "/{path:.*}", self._forward)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    async def _forward(self, request: web.Request) -> web.Response:
        assert self._session is not None
        body = await request.read()
        headers = {k: request.headers[k] for k in FORWARDED if k in request.headers}
        first = next(self._turn)
        for offset in range(len(self.backends)):
            backend = self.backends[(first + offset) % len(self.backends)]
            try:
                async with self._session.request(
                    request.method, backend.url + request.path_qs, data=body, headers=headers
                ) as answer:
                    text = await answer.read()
                    status, kind = answer.status, answer.content_type
            except aiohttp.ClientConnectionError:
                continue  # a dead endpoint: the next one
            self._record(backend, request.path, body, status, text)
            return web.Response(status=status, body=text, content_type=kind)
        return web.json_response({"error": "no endpoint available"}, status=503)

    def _record(self, backend: Backend, path: str, body: bytes, status: int, text: bytes) -> None:
        if not path.startswith("/webhooks/"):
            return
        alerts = [
            (a.get("status", "?"), brief(a.get("labels") or {})) for a in _json(body).get("alerts") or []
        ]
        event_ids = list(_json(text).get("event_ids") or [])
        self.deliveries.append(Delivery(time.monotonic(), backend.name, status, alerts, event_ids))
        shown = "; ".join(f"{s} {a}" for s, a in alerts)
        self.timeline.note(
            "alertmanager", f"webhook -> {backend.name}: {shown} -> {status}, {len(event_ids)} job(s)"
        )


def _json(data: bytes) -> dict[str, Any]:
    try:
        value = json.loads(data or b"{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
