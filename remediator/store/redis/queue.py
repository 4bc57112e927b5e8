"""The Redis queue: a stream + consumer group of jobs, and the intake that fills it.

``RedisQueue`` is the base of ``redis_store.RedisStore``: the connection, the
scripts, the webhook intake (coalesced, pipelined) and the job queue. Acked
entries are deleted, so the stream only ever holds unfinished jobs; it needs no
length trim that could drop one. Any Redis failure surfaces as ``StoreUnavailable``.
"""

from __future__ import annotations

import functools
import json
import secrets
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, ParamSpec, TypeVar

import orjson
import structlog
from redis.asyncio.cluster import RedisCluster
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError, RedisClusterException, RedisError, ResponseError

from remediator.errors import StoreUnavailable
from remediator.models import Alert, Job, NewJob
from remediator.store.base import Delivery
from remediator.store.redis import scripts as lua
from remediator.store.redis.batching import AcceptBatcher, Intake
from remediator.store.redis.connection import Client, Connection
from remediator.store.redis.keys import Keys

P = ParamSpec("P")
T = TypeVar("T")
log = structlog.get_logger("remediator.store.redis.store")

FAILURES = (RedisError, RedisClusterException, OSError)  # OSError covers socket timeouts
_DEAD_LETTERS_KEPT = 1000
_PROMOTE_BATCH = 100
_SCRIPTS = ("ENQUEUE", "ACK", "RECLAIM", "DEFER", "PROMOTE", "DEAD_LETTER", "DEPTH", "EXTEND", "RELEASE",
            "ACQUIRE_SLOT", "RECORD_FAILURE", "FIRING", "IS_FIRING", "RECORD_EVENT",
            "CLAIM_THREAD")


def unavailable(exc: BaseException) -> StoreUnavailable:
    return StoreUnavailable(f"redis: {type(exc).__name__}: {exc}")


def guarded(fn: Callable[P, Coroutine[Any, Any, T]]) -> Callable[P, Coroutine[Any, Any, T]]:
    """Turn every Redis failure of ``fn`` into ``StoreUnavailable``."""

    @functools.wraps(fn)
    async def call(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await fn(*args, **kwargs)
        except FAILURES as exc:
            raise unavailable(exc) from exc

    return call


def ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))


def text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _nogroup(exc: ResponseError) -> bool:
    return str(exc).startswith("NOGROUP")


class RedisQueue:
    """Connection, scripts, intake and the job queue (see ``RedisStore`` for the rest)."""

    kind = "redis"

    def __init__(
        self, conn: Connection, keys: Keys, *, firing_ttl: float = 6 * 3600.0,
        audit_max_events: int = 10_000, audit_retention: float = 7 * 86400.0,
        max_deliveries: int = 5,
    ) -> None:
        self._conn = conn
        self._r: Client = conn.client
        self.keys = keys
        self.max_deliveries = max_deliveries
        self._firing_ttl = firing_ttl
        self._audit_max = audit_max_events
        self._audit_retention = audit_retention
        self._max_block = max(0.1, conn.socket_timeout - 1.0)
        self._cursor = "0-0"
        # A consumer of the group silent this long with nothing pending is gone; look hourly.
        self.consumer_gone_after = 3600.0
        self.consumer_cleanup_every = 3600.0
        self._last_cleanup = time.monotonic()
        self._scripts = {name: self._r.register_script(getattr(lua, name)) for name in _SCRIPTS}
        self._batcher = AcceptBatcher(self._write_intake)

    async def _run(self, name: str, keys: list[str], args: list[Any]) -> Any:
        script: AsyncScript = self._scripts[name]
        return await script(keys=keys, args=args)

    @guarded
    async def ping(self) -> None:
        await self._r.ping()

    async def close(self) -> None:
        await self._batcher.close()
        try:
            await self._conn.close()
        except FAILURES as exc:
            log.warning("store.close_failed", error=repr(exc))

    # ---- intake ------------------------------------------------------------
    async def accept(
        self, jobs: Sequence[Job | NewJob], firing: Sequence[Alert], resolved: Sequence[Alert]
    ) -> None:
        expires = int((time.time() + self._firing_ttl) * 1000)
        item = Intake(
            jobs=[job.dumps() for job in jobs],
            firing={a.fingerprint: (expires, orjson.dumps(
                {"startsAt": a.starts_at.isoformat(), "labels": a.labels}).decode())
                for a in firing},
            resolved=[a.fingerprint for a in resolved],
        )
        if item.jobs or item.firing or item.resolved:
            await self._batcher.submit(item)

    @guarded
    async def _write_intake(self, batch: list[Intake]) -> None:
        """One pipelined round trip for every accept() waiting in this moment."""
        try:
            await self._pipeline_intake(batch)
        except NoScriptError:  # a restarted Redis forgot the script: load it, write again
            await self._r.script_load(lua.ENQUEUE)
            await self._pipeline_intake(batch)

    async def _pipeline_intake(self, batch: list[Intake]) -> None:
        k, latest = self.keys, _latest_firing(batch)
        firing = {fp: item for fp, item in latest.items() if item is not None}
        resolved = [fp for fp, item in latest.items() if item is None]
        async with self._r.pipeline(transaction=False) as pipe:
            if firing:
                pipe.zadd(k.firing_index, {fp: exp for fp, (exp, _) in firing.items()})
                pipe.hset(k.firing_alerts, mapping={fp: data for fp, (_, data) in firing.items()})
            if resolved:
                pipe.zrem(k.firing_index, *resolved)
                pipe.hdel(k.firing_alerts, *resolved)
            jobs = [data for item in batch for data in item.jobs]
            clustered = isinstance(self._r, RedisCluster)  # its pipelines refuse EVALSHA
            if jobs and not clustered:
                # EVALSHA straight into the pipeline: redis-py's script-in-pipeline support
                # costs an extra SCRIPT EXISTS round trip per batch. On NOSCRIPT the jobs
                # were not added, and the firing-index writes are idempotent: write again.
                pipe.evalsha(self._scripts["ENQUEUE"].sha, 1, k.stream, *jobs)
            await pipe.execute()
        if jobs and clustered:
            await self._scripts["ENQUEUE"](keys=[k.stream], args=jobs)

    # ---- queue -------------------------------------------------------------
    async def _ensure_group(self) -> None:
        try:
            await self._r.xgroup_create(self.keys.stream, self.keys.group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    @guarded
    async def dequeue(self, consumer: str, count: int, block: float) -> list[Delivery]:
        streams: dict[Any, Any] = {self.keys.stream: ">"}
        wait = ms(min(block, self._max_block)) if block > 0 else None
        try:
            reply: Any = await self._r.xreadgroup(self.keys.group, consumer, streams, count, wait)
        except ResponseError as exc:
            if not _nogroup(exc):
                raise
            await self._ensure_group()
            reply = await self._r.xreadgroup(self.keys.group, consumer, streams, count, wait)
        out = []
        for _, entries in reply or []:
            for entry_id, fields in entries:
                delivery = await self._delivery(text(entry_id), fields, 1)
                if delivery is not None:
                    out.append(delivery)
        return out

    async def _delivery(self, entry_id: str, fields: Any, count: int) -> Delivery | None:
        """The entry as a Delivery; an unreadable one is dead-lettered, never retried."""
        if isinstance(fields, list):  # from a script: a flat field/value list
            fields = dict(zip(fields[::2], fields[1::2], strict=True))
        try:
            return Delivery(entry_id, Job.loads(fields[b"job"]), int(count))
        except (KeyError, ValueError) as exc:
            log.error("queue.unreadable_job", entry=entry_id, error=str(exc)[:300])
            record = {"id": entry_id, "event_id": "", "rule": "", "deliveries": count,
                      "reason": f"unreadable job: {str(exc)[:200]}", "at": time.time()}
            await self._dead_letter(entry_id, record)
            return None

    @guarded
    async def ack(self, delivery_id: str) -> None:
        await self._run("ACK", [self.keys.stream], [self.keys.group, delivery_id])

    @guarded
    async def touch(self, consumer: str, delivery_id: str) -> None:
        try:
            await self._r.xclaim(self.keys.stream, self.keys.group, consumer, 0, [delivery_id],
                                 justid=True)
        except ResponseError as exc:
            if not _nogroup(exc):  # no group: nothing is pending, nothing to touch
                raise

    @guarded
    async def reclaim(self, consumer: str, min_idle: float, count: int) -> list[Delivery]:
        args = [self.keys.group, consumer, int(min_idle * 1000), self._cursor, count]
        try:
            cursor, entries = await self._run("RECLAIM", [self.keys.stream], args)
        except ResponseError as exc:
            if not _nogroup(exc):
                raise
            await self._ensure_group()
            return []
        self._cursor = text(cursor)
        if time.monotonic() - self._last_cleanup >= self.consumer_cleanup_every:
            self._last_cleanup = time.monotonic()
            await self._forget_gone_consumers()
        out = []
        for entry_id, fields, deliveries in entries:
            delivery = await self._delivery(text(entry_id), fields, deliveries)
            if delivery is not None:
                out.append(delivery)
        return out

    async def _forget_gone_consumers(self) -> None:
        """Each replica start adds consumers to the group; drop the ones long gone."""
        consumers: Any = await self._r.xinfo_consumers(self.keys.stream, self.keys.group)
        for item in consumers:
            if int(item["pending"]) == 0 and int(item["idle"]) > self.consumer_gone_after * 1000:
                await self._r.xgroup_delconsumer(self.keys.stream, self.keys.group,
                                                 item["name"])

    @guarded
    async def defer(self, delivery_id: str, job: Job, delay: float) -> None:
        member = secrets.token_hex(8).encode() + b":" + job.dumps()
        args = [self.keys.group, delivery_id, max(0, int(delay * 1000)), member]
        await self._run("DEFER", [self.keys.stream, self.keys.deferred], args)

    @guarded
    async def promote_due(self) -> int:
        moved = 0
        while True:
            n = int(await self._run("PROMOTE", [self.keys.deferred, self.keys.stream],
                                    [_PROMOTE_BATCH]))
            moved += n
            if n < _PROMOTE_BATCH:
                return moved

    @guarded
    async def dead_letter(self, delivery: Delivery, reason: str) -> None:
        record = {"id": delivery.id, "event_id": delivery.job.event_id,
                  "rule": delivery.job.rule, "deliveries": delivery.deliveries,
                  "reason": reason, "at": time.time()}
        await self._dead_letter(delivery.id, record)

    async def _dead_letter(self, entry_id: str, record: dict[str, Any]) -> None:
        args = [self.keys.group, entry_id, json.dumps(record), _DEAD_LETTERS_KEPT]
        await self._run("DEAD_LETTER", [self.keys.stream, self.keys.dead_letters], args)

    @guarded
    async def dead_letters(self, limit: int) -> list[dict[str, Any]]:
        entries: Any = await self._r.xrevrange(self.keys.dead_letters, count=limit)
        return [json.loads(fields[b"data"]) for _, fields in entries]

    @guarded
    async def queue_depth(self) -> int:
        return int(await self._run("DEPTH", [self.keys.stream, self.keys.deferred], []))

def _latest_firing(batch: list[Intake]) -> dict[str, tuple[int, str] | None]:
    """Per fingerprint, the last word of the batch: firing (expiry, data) or resolved (None)."""
    latest: dict[str, tuple[int, str] | None] = {}
    for item in batch:
        latest.update(item.firing)
        latest.update(dict.fromkeys(item.resolved))
    return latest
