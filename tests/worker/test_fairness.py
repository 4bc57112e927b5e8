"""Issue 29: a rule that is not storming has its job taken before another rule's flood.

The app runs without workers of its own; 40 jobs of a flooding rule are queued, then one
of another rule; one worker then works the queue. The other rule's job runs second (the
flood's first job was the turn before it), not after the flood's backlog: on the memory
store and on a real redis-server.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from remediator.settings import Settings
from remediator.store.memory import MemoryStore
from remediator.store.redis.store import RedisStore
from remediator.worker.pool import WorkerPool
from tests.conftest import MakeHarness
from tests.support.handlers import RUNS
from tests.support.payloads import alert, payload
from tests.support.redis_server import RedisServer

RULES = """
rules:
  - name: flood
    matchers: ['alertname="Flood"']
    handler: test.probe
    target: 'flood/{{ labels.service }}'
    params: {bucket: fair, name: flood}
    dry_run: true
  - name: urgent
    matchers: ['alertname="Urgent"']
    handler: test.probe
    target: 'urgent/{{ labels.service }}'
    params: {bucket: fair, name: urgent}
    dry_run: true
"""
FLOOD = 40


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    with RedisServer.running(tmp_path / "redis") as server:
        yield server


async def urgent_runs_at(harness: MakeHarness, store: MemoryStore | RedisStore) -> int:
    """Where, in the order the jobs ran, the other rule's job ran."""
    h = await harness(RULES, store=store, workers=0)
    flood = payload(*(alert("Flood", service=f"s{i}") for i in range(FLOOD)))
    assert (await (await h.post(flood)).json())["accepted"] == FLOOD
    assert (await (await h.post(payload(alert("Urgent", service="api")))).json())["accepted"] == 1
    stop = asyncio.Event()
    worker = asyncio.create_task(WorkerPool(h.pipeline(), workers=0, grace=5.0).work("t-w1", stop))
    await h.wait_events(FLOOD + 1, timeout=60)
    stop.set()
    await asyncio.wait_for(worker, 10)
    order = [str(run["name"]) for run in RUNS["fair"]]
    assert sorted(order) == ["flood"] * FLOOD + ["urgent"]  # every job ran, once
    return order.index("urgent")


async def test_memory_store(harness: MakeHarness) -> None:
    assert await urgent_runs_at(harness, MemoryStore()) == 1


@pytest.mark.server
async def test_redis_store(harness: MakeHarness, redis_server: RedisServer) -> None:
    store = await RedisStore.create(Settings(redis_url=redis_server.url, redis_prefix="fair"))
    assert await urgent_runs_at(harness, store) == 1
