from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from remediator.api.service import SERVICE, Service
from remediator.app import create_app
from remediator.handling.registry import Registry
from remediator.notify.notice import Notifier
from remediator.settings import Settings
from remediator.store.memory import MemoryStore
from remediator.worker.pipeline import Pipeline
from tests.support.handlers import ACTS, RUNS, make_registry
from tests.support.waiting import eventually, wait_event

TOKEN = "test-token"


@pytest.fixture(autouse=True)
async def no_leaked_tasks() -> AsyncIterator[None]:
    """Fail any test that leaves an asyncio task running."""
    before = set(asyncio.all_tasks())
    yield
    await asyncio.sleep(0)
    leaked = [t for t in asyncio.all_tasks() - before if not t.done() and t is not asyncio.current_task()]
    if leaked:  # give tasks that their owner is cancelling or closing a moment to finish
        await asyncio.wait(leaked, timeout=1.0)
        leaked = [t for t in leaked if not t.done()]
    for task in leaked:
        task.cancel()
    assert not leaked, f"leaked asyncio tasks: {[t.get_name() for t in leaked]}"


@pytest.fixture(autouse=True)
def clear_runs() -> None:
    RUNS.clear()
    ACTS.clear()


class Harness:
    """A running app on a real port with a test client."""

    def __init__(self, client: TestClient[Any, Any], app: web.Application) -> None:
        self.client = client
        self.app = app

    @property
    def svc(self) -> Service:
        return self.app[SERVICE]

    async def post(self, payload: Any, token: str = TOKEN, **kw: Any) -> Any:
        headers = {"Authorization": f"Bearer {token}"}
        return await self.client.post("/webhooks/alertmanager", json=payload, headers=headers, **kw)

    async def post_one(self, payload: Any) -> str:
        """Post a payload that makes exactly one job; its event id."""
        response = await self.post(payload)
        assert response.status == 202, await response.text()
        [event_id] = (await response.json())["event_ids"]
        return str(event_id)

    async def wait_events(self, count: int, timeout: float = 10.0) -> list[Any]:
        async def enough() -> list[Any]:
            events, _ = await self.svc.store.audit.list_events(1000)
            return events if len(events) >= count else []

        return await eventually(enough, within=timeout, what=f"{count} events")

    def pipeline(self) -> Pipeline:
        """A pipeline of its own over the service's store, rules and notifier (the app's
        is its worker pool's): for a test that runs one job, or a worker, by hand."""
        svc = self.svc
        return Pipeline(
            store=svc.store,
            rules=svc.rules.current,
            notifier=svc.notifier,
            metrics=svc.metrics,
            resources=svc.resources,
            settings=svc.settings,
            replica="test-replica",
        )

    async def event(self, event_id: str, timeout: float = 10.0) -> Any:
        return await wait_event(self.svc.store, event_id, timeout)


MakeHarness = Callable[..., Awaitable[Harness]]


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[MakeHarness]:
    clients: list[TestClient[Any, Any]] = []

    async def make(
        rules: str,
        store: MemoryStore | None = None,
        registry: Registry | None = None,
        notifier: Notifier | None = None,
        **overrides: Any,
    ) -> Harness:
        path = tmp_path / "rules.yaml"
        path.write_text(rules)
        options: dict[str, Any] = {
            "rules": path,
            "webhook_token": TOKEN,
            "workers": 2,
            "defer_interval": 0.05,
            "shutdown_grace": 5,
        }
        options.update(overrides)
        app = create_app(
            Settings(**options), registry=registry or make_registry(), store=store, notifier=notifier
        )
        client = TestClient(TestServer(app))
        await client.start_server()
        clients.append(client)
        return Harness(client, app)

    yield make
    for client in clients:
        await client.close()
