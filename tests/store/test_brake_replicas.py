"""The blast-radius brake across two ``remediator serve`` replicas on one real Redis:
exactly ``count`` targets run whichever replica takes which job, the brake opens (and is
counted) once, and an operator's release on one replica lets the other's held jobs run."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from remediator.settings import Settings
from remediator.store.redis.store import RedisStore
from tests.support.redis_server import RedisServer
from tests.support.replicas import ADMIN_TOKEN, PREFIX, Cluster, wait_events
from tests.support.serve_procs import firing_alert, metric_samples, post_alerts, wait_ready
from tests.support.waiting import eventually

pytestmark = pytest.mark.server


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    with RedisServer.running(tmp_path / "redis") as server:
        replicas = Cluster(tmp_path, server)
        try:
            yield replicas
        finally:
            replicas.stop()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as client:
        yield client


@pytest.mark.timeout(180)
async def test_two_replicas_brake_at_count_tell_once_and_release_everywhere(
    cluster: Cluster, session: aiohttp.ClientSession
) -> None:
    cluster.write_rule(max_targets={"count": 5, "within": "10m"}, sleep=0.2)
    replicas = [cluster.start(), cluster.start()]
    for replica in replicas:
        await wait_ready(session, replica)
    answers = await asyncio.gather(
        *(post_alerts(session, replicas[i % 2], firing_alert(service=f"s{i}")) for i in range(30))
    )
    assert [status for status, _ in answers] == [202] * 30
    event_ids = [event_id for _, body in answers for event_id in body["event_ids"]]
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}

    async def brake() -> dict[str, Any]:
        async with session.get(f"{replicas[1].url}/api/v1/brakes", headers=headers) as response:
            assert response.status == 200
            return dict((await response.json())["brakes"][0])

    async def held_all() -> dict[str, Any] | None:
        found = await brake()
        return found if len(found["held"]) == 25 and len(cluster.runs_of("end")) == 5 else None

    found = await eventually(held_all, within=60.0, what="5 runs and 25 held")
    assert found is not None and found["open"] and found["counted"] == 5
    await asyncio.sleep(1.5)  # three DEFER_INTERVALs: the held come back and stay held
    assert len(cluster.runs_of("start")) == 5

    async def total(name: str) -> float:
        found = 0.0
        for replica in replicas:
            found += sum(value for _, value in await metric_samples(session, replica, name))
        return found

    assert await total("remediator_brakes_opened_total") == 1  # told once, by one replica
    assert await total("remediator_brake_held_jobs") == 2 * 25  # each replica reads the store
    url = f"{replicas[1].url}/api/v1/brakes/record/release"
    async with session.post(url, headers=headers) as response:
        assert response.status == 200
        released = await response.json()
    assert len(released["released"]) == 25 and released["still_held"] == 0
    observer = await RedisStore.create(Settings(redis_url=cluster.redis.url, redis_prefix=PREFIX))
    try:
        events = await wait_events(observer, event_ids, within=60)
    finally:
        await observer.close()
    assert {e.outcome_label for e in events.values()} == {"succeeded"}
    assert len(cluster.runs_of("end")) == 30
    assert await total("remediator_brake_held_jobs") == 0
