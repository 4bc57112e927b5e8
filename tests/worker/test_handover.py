"""Issue 17: on one Redis server a worker's next job comes back with its last job's
outcome (``CONCLUDE`` claims it), so a busy worker reads the queue once per job less.
Every job still runs once, and one handed over while the worker stops still runs.

The app runs with no workers of its own; the test drives ``Pipeline.run_worker`` with its
own stop event, on a real redis-server.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from remediator.settings import Settings
from remediator.store.admission import Concluded, Conclusion
from remediator.store.redis.store import RedisStore
from remediator.worker.pool import WorkerPool
from tests.conftest import Harness, MakeHarness
from tests.support.payloads import alert, payload
from tests.support.redis_server import RedisServer

RULES = """
rules:
  - name: dry
    matchers: ['alertname="Dry"']
    handler: test.probe
    target: 'dry/{{ labels.service }}'
    params: {bucket: handover}
    dry_run: true
"""


class HandingStore(RedisStore):
    """Counts the jobs handed over with an outcome; ``after`` runs after each conclusion."""

    handed = 0
    after: asyncio.Event | None = None

    async def conclude(self, end: Conclusion) -> Concluded:
        done = await super().conclude(end)
        if done.next is not None:
            self.handed += 1
            if self.after is not None:
                self.after.set()  # stop the worker while it holds the handed-over job
        return done


pytestmark = pytest.mark.server  # a redis-server


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with RedisServer.running(tmp_path_factory.mktemp("redis")) as server:
        yield server


async def start(harness: MakeHarness, redis_server: RedisServer, jobs: int) -> tuple[HandingStore, Harness]:
    redis_server.flush()
    store = await HandingStore.create(Settings(redis_url=redis_server.url, redis_prefix="handover"))
    h = await harness(RULES, store=store, workers=0)
    alerts = [alert("Dry", service=f"s{i}") for i in range(jobs)]
    resp = await h.post(payload(*alerts))
    assert resp.status == 202 and (await resp.json())["accepted"] == jobs
    return store, h


async def test_a_busy_worker_gets_its_next_job_with_the_outcome(
    harness: MakeHarness, redis_server: RedisServer
) -> None:
    store, h = await start(harness, redis_server, 20)
    stop = asyncio.Event()
    pool = WorkerPool(h.pipeline(), workers=0, grace=5.0)
    worker = asyncio.create_task(pool.work("t-w1", stop))
    events = await h.wait_events(20)
    stop.set()
    await asyncio.wait_for(worker, 5)
    assert sorted(e.event_id for e in events) == sorted({e.event_id for e in events})  # each once
    assert {e.outcome_label for e in events} == {"dry_run"}
    assert store.handed == 19  # every job but the first came with the one before it
    assert await store.queue.queue_depth() == 0


async def test_a_job_handed_over_while_the_worker_stops_still_runs(
    harness: MakeHarness, redis_server: RedisServer
) -> None:
    store, h = await start(harness, redis_server, 3)
    stop = asyncio.Event()
    store.after = stop  # the first outcome hands over job 2, and the worker is told to stop
    pool = WorkerPool(h.pipeline(), workers=0, grace=5.0)
    worker = asyncio.create_task(pool.work("t-w1", stop))
    await asyncio.wait_for(worker, 10)
    events = await h.wait_events(2)
    assert len(events) == 2 and store.handed == 1  # job 2 ran; no third was claimed
    # job 3 was never claimed: it is still queued for the next worker, not pending on this one
    assert await store.queue.queue_depth() == 1
    [left] = await store.queue.dequeue("t-w2", 1, 1.0)
    assert left.deliveries == 1
