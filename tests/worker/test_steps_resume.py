"""A chain delivered again after its worker died between two steps (issue 28): it resumes
after the last step that finished, from the timeline the chain stashed before the next
step, and never runs a step that acted again. On both stores."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import pytest

from remediator.settings import Settings
from remediator.store.base import Store
from remediator.store.memory import MemoryStore
from remediator.worker.pipeline import Pipeline
from remediator.worker.runs import Run
from tests.conftest import Harness, MakeHarness
from tests.support.handlers import ACTS, RUNS
from tests.support.payloads import alert, payload
from tests.support.redis_server import RedisServer
from tests.support.waiting import eventually

RULES = """
rules:
  - name: runbook
    matchers: ['alertname="Down"']
    target: 'svc/{{ labels.service }}'
    steps:
      - {handler: test.probe, params: {bucket: one}}
      - {handler: test.probe, params: {bucket: two, hold: 60.0}}
      - {handler: test.probe, params: {bucket: three}}
"""


class Killed(Pipeline):
    """A worker whose process dies: nothing of it runs after the kill (no stash of an
    orderly shutdown), so the next delivery has only what the chain kept itself."""

    async def _interrupted(self, run: Run) -> None:
        return None


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with RedisServer.running(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.server)])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[Store]:
    if request.param == "memory":
        yield MemoryStore()
        return
    from remediator.store.redis.store import RedisStore

    server: RedisServer = request.getfixturevalue("redis_server")
    server.flush()
    yield await RedisStore.create(Settings(redis_url=server.url, redis_prefix="steps-resume"))


def killed(h: Harness) -> Killed:
    svc = h.svc
    return Killed(
        store=svc.store,
        rules=svc.rules.current,
        notifier=svc.notifier,
        metrics=svc.metrics,
        resources=svc.resources,
        settings=svc.settings,
        replica="killed-replica",
    )


@pytest.mark.looptime(False)  # the held precheck must really hold
async def test_a_chain_resumes_after_the_last_finished_step(harness: MakeHarness, store: Store) -> None:
    h = await harness(RULES, store=store, workers=0)
    event_id = await h.post_one(payload(alert("Down", service="a")))
    [first] = await store.queue.dequeue("c1", 1, 1.0)
    worker = asyncio.create_task(killed(h).process(first, "c1"))
    await eventually(lambda: RUNS["two"], within=10, what="step 2's precheck")  # step 1 finished
    worker.cancel()  # the worker dies between step 1 (acted) and step 2 (only looked)
    with pytest.raises(asyncio.CancelledError):
        await worker
    assert (len(ACTS["one"]), ACTS["two"], ACTS["three"]) == (1, [], [])
    [again] = await store.queue.reclaim("c2", 0.0, 1)  # delivered again, to another worker
    assert again.job.event_id == event_id and again.deliveries == 2
    await h.pipeline().process(again, "c2")
    event = await h.event(event_id)
    assert event.outcome_label == "succeeded", event.message
    assert [len(ACTS[b]) for b in ("one", "two", "three")] == [1, 1, 1]  # no step ran twice
    finished = [s.data["step"] for s in event.timeline if s.name == "step.finished"]
    assert finished == [1, 2, 3]
    resumed = [s.message for s in event.timeline if s.name == "chain.resumed"]
    assert resumed == ["resumed after step 1: the steps before it are not run again"]
    assert [s["outcome"] for s in event.details["steps"]] == ["succeeded"] * 3
    assert await store.audit.take_timeline(event_id) is None  # nothing left to resume
