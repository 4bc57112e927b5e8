"""Redis URL forms: one server, TLS, Sentinel, Cluster; and a Sentinel-backed store."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import AbstractConnection
from redis.asyncio.connection import Connection as PyConnection
from redis.exceptions import DataError

from remediator.models import Alert, Job
from remediator.settings import Settings
from remediator.store.redis.connection import Connection, _parse, connect
from remediator.store.redis.packing import packed_by_hiredis
from remediator.store.redis.store import RedisStore
from tests.support.redis_server import RedisClusterNodes, RedisSentinel, RedisServer


@pytest.mark.parametrize(
    ("url", "mode"),
    [
        ("redis://127.0.0.1:6379/0", "single"),
        ("rediss://user:secret@redis.example:6380/1", "single"),
        ("unix:///run/redis.sock?db=2", "single"),
        ("unix:///run/redis.sock?cluster=false&db=2", "single"),
        ("redis+cluster://10.0.0.1:7000,10.0.0.2:7001", "cluster"),
        ("rediss+cluster://10.0.0.1:7000", "cluster"),
        ("redis://10.0.0.1:7000?cluster=true", "cluster"),
        ("redis://10.0.0.1:7000?cluster=false", "single"),
        ("redis+sentinel://s1:26379,s2:26379/mymaster/0", "sentinel"),
        ("sentinel://s1/mymaster", "sentinel"),
        ("rediss+sentinel://:pw@s1:26379/mymaster?sentinel_password=spw", "sentinel"),
    ],
)
async def test_url_forms_pick_the_client(url: str, mode: str) -> None:
    conn = connect(url, pool_size=8)
    try:
        assert conn.mode == mode
        assert conn.socket_timeout == 5.0
        assert _connection_class(conn).__name__.startswith("Hiredis")  # packs in C
    finally:
        await conn.close()


@pytest.mark.parametrize(
    ("url", "path", "db"),
    [
        ("unix:///run/redis.sock?db=2", "/run/redis.sock", 2),
        ("unix:///run/redis.sock?cluster=false&db=3", "/run/redis.sock", 3),
    ],
)
async def test_a_unix_socket_url_reaches_its_socket(url: str, path: str, db: int) -> None:
    conn = connect(url, pool_size=8)
    try:
        assert not isinstance(conn.client, RedisCluster)
        kwargs = conn.client.connection_pool.connection_kwargs
        assert (kwargs["path"], kwargs["db"]) == (path, db)
    finally:
        await conn.close()


def _connection_class(conn: Connection) -> type[AbstractConnection]:
    client = conn.client
    if isinstance(client, RedisCluster):
        cls: type[AbstractConnection] = client.nodes_manager.connection_kwargs["connection_class"]
        return cls
    return client.connection_pool.connection_class


@pytest.mark.parametrize(
    "args",
    [
        ("SET", "k", "caf\u00e9"),
        ("EVALSHA", "abc", 2, "k1", "k2", 1.5, 1764510000.1234567, -3, 10**20, b"\xff\x00"),
        ("CLIENT SETNAME", "remediator"),
        (b"CONFIG GET", b"maxmemory"),
        ("SET", bytearray(b"k"), memoryview(b"v")),
    ],
)
def test_hiredis_packing_matches_redis_py(args: tuple[Any, ...]) -> None:
    plain = PyConnection()
    fast = packed_by_hiredis(PyConnection)()
    assert b"".join(fast.pack_command(*args)) == b"".join(plain.pack_command(*args))
    assert b"".join(fast.pack_commands([args, args])) == b"".join(plain.pack_commands([args, args]))


@pytest.mark.parametrize("value", [None, True])
def test_hiredis_packing_refuses_what_redis_py_refuses(value: Any) -> None:
    with pytest.raises(DataError, match="Invalid input of type"):
        packed_by_hiredis(PyConnection)().pack_command("SET", "k", value)


def test_url_parts() -> None:
    url = _parse(
        "redis+sentinel://us%40er:p%3Ass@h1,[::1]:26380/main/3?socket_timeout=2.5", default_port=26379
    )
    assert url.hosts == [("h1", 26379), ("::1", 26380)]
    assert (url.username, url.password, url.path) == ("us@er", "p:ss", ["main", "3"])
    assert url.options == {"socket_timeout": 2.5}
    assert not url.tls


@pytest.mark.parametrize(
    ("url", "error"),
    [
        ("http://127.0.0.1:6379", "unsupported Redis URL scheme"),
        ("redis+sentinel://s1:26379", "needs the master's name"),
        ("redis+cluster://h1:7000/2", "no database path"),
        ("redis+cluster://h1:7000?colour=blue", "unknown Redis URL option"),
        ("redis+cluster://", "names no host"),
    ],
)
def test_bad_urls_are_refused(url: str, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        connect(url, pool_size=8)


async def test_url_timeout_option_is_used() -> None:
    conn = connect("redis://127.0.0.1:1/0?socket_timeout=3", pool_size=8)
    try:
        assert conn.socket_timeout == 3.0
    finally:
        await conn.close()


@pytest.fixture
def sentinel(tmp_path: Path) -> Iterator[RedisSentinel]:
    with RedisServer.running(tmp_path / "master") as master:
        watcher = RedisSentinel(tmp_path / "sentinel", master)
        watcher.start()
        try:
            yield watcher
        finally:
            watcher.stop()


async def test_store_through_sentinel(sentinel: RedisSentinel) -> None:
    store = await RedisStore.create(Settings(redis_url=sentinel.url, redis_prefix="s"))
    try:
        await store.ping()
        alert = Alert.model_validate(
            {"status": "firing", "labels": {"alertname": "X"}, "startsAt": "2024-05-01T12:00:00Z"}
        )
        await store.intake.accept(
            [Job(event_id="e1", rule="r", alert=alert, received_at=time.time())], [alert], []
        )
        [delivery] = await store.queue.dequeue("c1", 1, 1.0)
        assert delivery.job.event_id == "e1"
        assert await store.firing.is_firing(alert.fingerprint, alert.starts_at.isoformat())
        assert await store.locks.acquire_lease("t", 5.0) is not None
        await store.queue.ack(delivery.id)
        assert await store.queue.queue_depth() == 0
        with sentinel.master.client() as client:  # the data landed on the master
            assert client.exists("s:{q}:jobs:r")  # rule r's stream
    finally:
        await store.close()


async def test_store_through_a_cluster_flag_url(tmp_path: Path) -> None:
    with RedisClusterNodes.running(tmp_path) as cluster:
        url = f"redis://127.0.0.1:{cluster.nodes[1].port}?cluster=true"  # one seed node
        store = await RedisStore.create(Settings(redis_url=url, redis_prefix="c"))
        try:
            token = await store.locks.acquire_lease("svc/a", 5.0)
            assert token is not None and await store.locks.release_lease("svc/a", token)
            await store.intake.accept(
                [
                    Job(
                        event_id="e1",
                        rule="r",
                        alert=Alert.model_validate(
                            {
                                "status": "firing",
                                "labels": {"alertname": "X"},
                                "startsAt": "2024-05-01T12:00:00Z",
                            }
                        ),
                        received_at=time.time(),
                    )
                ],
                [],
                [],
            )
            [delivery] = await store.queue.dequeue("c1", 1, 1.0)
            await store.queue.ack(delivery.id)
            assert await store.queue.queue_depth() == 0
        finally:
            await store.close()
