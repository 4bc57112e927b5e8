"""A stand-in for Jangar, the dashboard over torghut's TA tables, on a real local port.

It serves ``/api/torghut/ta/latest?symbol=...`` the way Jangar does, reading the database
named by ``CH_DATABASE`` in the env of its pods in the Kubernetes emulator: while the
ready pods say ``default`` (where no TA table is) it answers ClickHouse's
``UNKNOWN_TABLE`` error, once they say ``torghut`` it answers rows. Requests go to the
ready pods in turn, as through a Service; with no ready pod it answers 503.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.support.kube import DEPLOYMENTS, PODS, Cluster

NAMESPACE = "torghut"
NAME = "jangar"
LABELS = {"app": "jangar"}
PATH = "/api/torghut/ta/latest"
ROWS = {"NVDA": [{"ts": "2026-01-01T03:59:00Z", "close": 138.31, "rsi14": 61.2, "macd": 0.84}]}
Query = Callable[[str, str], tuple[int, str]]  # (database, symbol) -> (status, body); run in a thread


def tables(database: str, symbol: str) -> tuple[int, str]:
    """torghut's TA tables as Jangar's query sees them: only in database ``torghut``."""
    if database != "torghut":
        return 500, json.dumps(
            {
                "error": f"Code: 60. DB::Exception: Table {database}.ta_signals doesn't exist. "
                "(UNKNOWN_TABLE) (version 24.8.4.13 (official build))"
            }
        )
    return 200, json.dumps({"symbol": symbol, "rows": ROWS.get(symbol, [])})


def container_env(pod: dict[str, Any], name: str) -> str | None:
    for container in pod["spec"]["containers"]:
        for var in container.get("env") or []:
            if var.get("name") == name:
                return str(var.get("value", ""))
    return None


@dataclass
class Jangar:
    cluster: Cluster
    query: Query = tables
    namespace: str = NAMESPACE
    answers: list[tuple[str, int]] = field(default_factory=list)  # (database, status)
    server: TestServer | None = None
    _turn: itertools.count[int] = field(default_factory=itertools.count)

    @property
    def url(self) -> str:
        assert self.server is not None
        return str(self.server.make_url(PATH)) + "?symbol=NVDA"

    def ready_databases(self) -> list[str]:
        selector = ",".join(f"{k}={v}" for k, v in LABELS.items())
        return [
            container_env(pod, "CH_DATABASE") or "default"
            for pod in self.cluster.items(PODS, self.namespace, selector)
            if not pod["metadata"].get("deletionTimestamp") and _ready(pod)
        ]

    def configured_database(self) -> str:
        """What the Deployment says (the pods follow it as they roll out)."""
        dep = self.cluster.get(DEPLOYMENTS, self.namespace, NAME) or {"spec": {"template": {}}}
        return container_env(dep["spec"]["template"], "CH_DATABASE") or "default"

    async def handle(self, request: web.Request) -> web.Response:
        ready = self.ready_databases()
        if not ready:
            self.answers.append(("", 503))
            return web.Response(status=503, text="no ready endpoint for service jangar")
        database = ready[next(self._turn) % len(ready)]
        status, body = await asyncio.to_thread(self.query, database, request.query.get("symbol", ""))
        self.answers.append((database, status))
        return web.Response(status=status, text=body, content_type="application/json")


@asynccontextmanager
async def running_jangar(cluster: Cluster, query: Query = tables) -> AsyncIterator[Jangar]:
    jangar = Jangar(cluster, query)
    app = web.Application()
    app.router.add_get(PATH, jangar.handle)
    jangar.server = TestServer(app)
    await jangar.server.start_server()
    try:
        yield jangar
    finally:
        await jangar.server.close()


def _ready(pod: dict[str, Any]) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
