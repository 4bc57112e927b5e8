"""Issue 29: the Redis queue's stream per rule, across a rolling upgrade.

Jobs the previous release left in its single stream (``keys.stream``), queued, taken or
deferred, are still taken, reclaimed and finished; the single stream goes once it is
empty and no replica of that release reads it; a removed rule's stream goes once drained.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from remediator.models import Alert, Job
from remediator.settings import Settings
from remediator.store.redis.store import RedisStore
from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.server
PREFIX = "streams"


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    with RedisServer.running(tmp_path / "redis") as server:
        yield server


@pytest.fixture
async def store(redis_server: RedisServer) -> AsyncIterator[RedisStore]:
    opened = await RedisStore.create(Settings(redis_url=redis_server.url, redis_prefix=PREFIX))
    yield opened
    await opened.close()


def job(event_id: str, rule: str = "r") -> Job:
    alert = Alert.model_validate(
        {"status": "firing", "labels": {"alertname": "X"}, "startsAt": "2024-05-01T12:00:00Z"}
    )
    return Job(event_id=event_id, rule=rule, alert=alert, received_at=time.time())


def old_release_queues(server: RedisServer, store: RedisStore, *jobs: Job) -> None:
    """What the previous release's intake did: its group on the one stream, XADD each job."""
    with server.client() as client:
        if not client.exists(store.keys.stream):
            client.xgroup_create(store.keys.stream, store.keys.group, id="0", mkstream=True)
        for one in jobs:
            client.xadd(store.keys.stream, {"job": one.dumps()})


async def test_jobs_left_in_the_old_stream_are_taken_and_finished(
    redis_server: RedisServer, store: RedisStore
) -> None:
    old_release_queues(redis_server, store, job("old1"), job("old2"))
    await store.intake.accept([job("new1")], [], [])
    assert await store.queue.queue_depth() == 3
    got = await store.queue.dequeue("c1", 3, 1.0)
    assert sorted(d.job.event_id for d in got) == ["new1", "old1", "old2"]
    old = [d for d in got if d.job.event_id.startswith("old")]
    assert all("|" not in d.id for d in old)  # the old stream's entries keep bare ids
    for delivery in got:
        await store.queue.ack(delivery.id)
    assert await store.queue.queue_depth() == 0


async def test_a_job_an_old_replica_took_and_lost_is_reclaimed(
    redis_server: RedisServer, store: RedisStore
) -> None:
    old_release_queues(redis_server, store, job("old1"))
    with redis_server.client() as client:  # an old replica's worker took it, then died
        client.xreadgroup(store.keys.group, "old-replica-w0", {store.keys.stream: ">"}, count=1)
    assert await store.queue.dequeue("c1", 1, 0.2) == []
    await asyncio.sleep(0.3)
    [again] = await store.queue.reclaim("c1", 0.2, 1)
    assert again.job.event_id == "old1" and again.deliveries == 2
    await store.queue.ack(again.id)
    assert await store.queue.queue_depth() == 0


async def test_a_job_deferred_by_an_old_replica_returns_to_its_rules_stream(
    redis_server: RedisServer, store: RedisStore
) -> None:
    old = job("old1", rule="slow")
    with redis_server.client() as client:  # the old DEFER's member: a 16-hex token, ':', the job
        client.zadd(store.keys.deferred, {b"0123456789abcdef:" + old.dumps(): 0})
    assert await store.queue.promote_due() == 1
    [delivery] = await store.queue.dequeue("c1", 1, 1.0)
    assert delivery.job.event_id == "old1" and delivery.id.startswith("slow|")
    await store.queue.ack(delivery.id)


async def test_the_old_stream_goes_once_empty_and_unread(
    redis_server: RedisServer, store: RedisStore
) -> None:
    old_release_queues(redis_server, store, job("old1"))
    with redis_server.client() as client:  # an old replica still reading it
        client.xreadgroup(store.keys.group, "old-replica-w0", {store.keys.stream: ">"}, count=1)
        [(entry, _)] = client.xrange(store.keys.stream)
        client.xack(store.keys.stream, store.keys.group, entry)
        client.xdel(store.keys.stream, entry)
    store.queue.legacy_quiet = 0.5
    await store.queue.retire(["r"])
    with redis_server.client() as client:
        assert client.exists(store.keys.stream)  # read a moment ago: a replica of that release runs
    await asyncio.sleep(0.6)
    await store.queue.retire(["r"])
    with redis_server.client() as client:
        assert not client.exists(store.keys.stream)
    await store.intake.accept([job("new1")], [], [])  # the new streams go on as before
    [delivery] = await store.queue.dequeue("c1", 1, 1.0)
    await store.queue.ack(delivery.id)


async def test_a_removed_rules_stream_goes_once_drained(redis_server: RedisServer, store: RedisStore) -> None:
    await store.intake.accept([job("g1", rule="gone"), job("k1", rule="kept")], [], [])
    gone = store.keys.rule_stream("gone")
    await store.queue.retire(["kept"])
    with redis_server.client() as client:
        assert client.exists(gone) and client.zscore(store.keys.streams, "gone") is not None
    for delivery in await store.queue.dequeue("c1", 2, 1.0):
        await store.queue.ack(delivery.id)
    await store.queue.retire(["kept"])
    with redis_server.client() as client:
        assert not client.exists(gone) and client.zscore(store.keys.streams, "gone") is None
        assert client.exists(store.keys.rule_stream("kept"))  # a loaded rule keeps its stream
