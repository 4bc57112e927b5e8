"""The store on Redis: every replica shares one queue, one set of leases, one audit.

Same contract as ``store.MemoryStore`` (``tests/test_store_contract.py`` runs
both). Every key comes from ``keys.Keys``; keys that one script touches share a
hash tag, so it also runs on Redis Cluster. Any Redis failure surfaces as
``StoreUnavailable``: the webhook answers 503 and the workers act on nothing.
"""

from __future__ import annotations

import functools
import json
import re
import secrets
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, ParamSpec, Self, TypeVar

import structlog
from redis.commands.core import AsyncScript
from redis.exceptions import RedisClusterException, RedisError, ResponseError

from remediator import redis_scripts as lua
from remediator.errors import StoreUnavailable
from remediator.keys import Keys
from remediator.models import Alert, AuditEvent, Job
from remediator.redis_connect import Client, Connection, connect
from remediator.redis_intake import AcceptBatcher, Intake
from remediator.settings import Settings
from remediator.store import Delivery, FailureCount, Pause

P = ParamSpec("P")
T = TypeVar("T")
log = structlog.get_logger("remediator.redis_store")

FAILURES = (RedisError, RedisClusterException, OSError)  # OSError covers socket timeouts
_STREAM_ID = re.compile(r"^[0-9]+-[0-9]+$")
_DEAD_LETTERS_KEPT = 1000
_PROMOTE_BATCH = 100


def unavailable(exc: BaseException) -> StoreUnavailable:
    return StoreUnavailable(f"redis: {type(exc).__name__}: {exc}")


def _guarded(fn: Callable[P, Coroutine[Any, Any, T]]) -> Callable[P, Coroutine[Any, Any, T]]:
    """Turn every Redis failure of ``fn`` into ``StoreUnavailable``."""

    @functools.wraps(fn)
    async def call(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await fn(*args, **kwargs)
        except FAILURES as exc:
            raise unavailable(exc) from exc

    return call


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))


def _str(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _nogroup(exc: ResponseError) -> bool:
    return str(exc).startswith("NOGROUP")


class RedisStore:
    """Production state: durable queue (stream + group), leases, gates, audit."""

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
        self._scripts = {name: self._r.register_script(getattr(lua, name)) for name in (
            "ACK", "RECLAIM", "DEFER", "PROMOTE", "DEAD_LETTER", "DEPTH", "EXTEND", "RELEASE",
            "ACQUIRE_SLOT", "RECORD_FAILURE", "FIRING", "IS_FIRING", "RECORD_EVENT",
            "CLAIM_THREAD")}
        self._batcher = AcceptBatcher(self._write_intake)

    @classmethod
    async def create(cls, settings: Settings) -> Self:
        """Build the client and check it once; Redis being down is logged, not fatal."""
        assert settings.redis_url is not None
        # Per replica: a blocking XREADGROUP per worker, a heartbeat per running
        # handler, intake (coalesced), maintenance and the HTTP routes.
        conn = connect(settings.redis_url.get_secret_value(), pool_size=2 * settings.workers + 32)
        store = cls(conn, Keys(settings.redis_prefix), firing_ttl=settings.firing_ttl,
                    audit_max_events=settings.audit_max_events,
                    audit_retention=settings.audit_retention,
                    max_deliveries=settings.max_deliveries)
        try:
            await store.ping()
        except StoreUnavailable as exc:
            log.warning("store.redis_unavailable", mode=conn.mode, error=str(exc),
                        message="starting anyway; /readyz answers 503 until Redis is back")
        else:
            log.info("store.redis_connected", mode=conn.mode, prefix=settings.redis_prefix)
        return store

    async def _run(self, name: str, keys: list[str], args: list[Any]) -> Any:
        script: AsyncScript = self._scripts[name]
        return await script(keys=keys, args=args)

    @_guarded
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
        self, jobs: Sequence[Job], firing: Sequence[Alert], resolved: Sequence[Alert]
    ) -> None:
        expires = int((time.time() + self._firing_ttl) * 1000)
        item = Intake(
            jobs=[job.dumps() for job in jobs],
            firing={a.fingerprint: (expires, json.dumps(
                {"startsAt": a.starts_at.isoformat(), "labels": a.labels})) for a in firing},
            resolved=[a.fingerprint for a in resolved],
        )
        if item.jobs or item.firing or item.resolved:
            await self._batcher.submit(item)

    @_guarded
    async def _write_intake(self, batch: list[Intake]) -> None:
        """One pipelined round trip for every accept() waiting in this moment."""
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
            for item in batch:
                for data in item.jobs:
                    pipe.xadd(k.stream, {"job": data})
            await pipe.execute()

    # ---- queue -------------------------------------------------------------
    async def _ensure_group(self) -> None:
        try:
            await self._r.xgroup_create(self.keys.stream, self.keys.group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    @_guarded
    async def dequeue(self, consumer: str, count: int, block: float) -> list[Delivery]:
        streams: dict[Any, Any] = {self.keys.stream: ">"}
        wait = _ms(min(block, self._max_block)) if block > 0 else None
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
                delivery = await self._delivery(_str(entry_id), fields, 1)
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

    @_guarded
    async def ack(self, delivery_id: str) -> None:
        await self._run("ACK", [self.keys.stream], [self.keys.group, delivery_id])

    @_guarded
    async def touch(self, consumer: str, delivery_id: str) -> None:
        try:
            await self._r.xclaim(self.keys.stream, self.keys.group, consumer, 0, [delivery_id],
                                 justid=True)
        except ResponseError as exc:
            if not _nogroup(exc):  # no group: nothing is pending, nothing to touch
                raise

    @_guarded
    async def reclaim(self, consumer: str, min_idle: float, count: int) -> list[Delivery]:
        args = [self.keys.group, consumer, int(min_idle * 1000), self._cursor, count]
        try:
            cursor, entries = await self._run("RECLAIM", [self.keys.stream], args)
        except ResponseError as exc:
            if not _nogroup(exc):
                raise
            await self._ensure_group()
            return []
        self._cursor = _str(cursor)
        if time.monotonic() - self._last_cleanup >= self.consumer_cleanup_every:
            self._last_cleanup = time.monotonic()
            await self._forget_gone_consumers()
        out = []
        for entry_id, fields, deliveries in entries:
            delivery = await self._delivery(_str(entry_id), fields, deliveries)
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

    @_guarded
    async def defer(self, delivery_id: str, job: Job, delay: float) -> None:
        member = secrets.token_hex(8).encode() + b":" + job.dumps()
        args = [self.keys.group, delivery_id, max(0, int(delay * 1000)), member]
        await self._run("DEFER", [self.keys.stream, self.keys.deferred], args)

    @_guarded
    async def promote_due(self) -> int:
        moved = 0
        while True:
            n = int(await self._run("PROMOTE", [self.keys.deferred, self.keys.stream],
                                    [_PROMOTE_BATCH]))
            moved += n
            if n < _PROMOTE_BATCH:
                return moved

    @_guarded
    async def dead_letter(self, delivery: Delivery, reason: str) -> None:
        record = {"id": delivery.id, "event_id": delivery.job.event_id,
                  "rule": delivery.job.rule, "deliveries": delivery.deliveries,
                  "reason": reason, "at": time.time()}
        await self._dead_letter(delivery.id, record)

    async def _dead_letter(self, entry_id: str, record: dict[str, Any]) -> None:
        args = [self.keys.group, entry_id, json.dumps(record), _DEAD_LETTERS_KEPT]
        await self._run("DEAD_LETTER", [self.keys.stream, self.keys.dead_letters], args)

    @_guarded
    async def dead_letters(self, limit: int) -> list[dict[str, Any]]:
        entries: Any = await self._r.xrevrange(self.keys.dead_letters, count=limit)
        return [json.loads(fields[b"data"]) for _, fields in entries]

    @_guarded
    async def queue_depth(self) -> int:
        return int(await self._run("DEPTH", [self.keys.stream, self.keys.deferred], []))

    # ---- leases and concurrency budgets --------------------------------------
    @_guarded
    async def acquire_lease(self, target: str, ttl: float) -> str | None:
        token = secrets.token_hex(16)
        ok = await self._r.set(self.keys.lease(target), token, nx=True, px=_ms(ttl))
        return token if ok else None

    @_guarded
    async def extend_lease(self, target: str, token: str, ttl: float) -> bool:
        return bool(await self._run("EXTEND", [self.keys.lease(target)], [token, _ms(ttl)]))

    @_guarded
    async def release_lease(self, target: str, token: str) -> bool:
        return bool(await self._run("RELEASE", [self.keys.lease(target)], [token]))

    @_guarded
    async def lease_remaining(self, target: str) -> float:
        return await self._pttl(self.keys.lease(target))

    async def _pttl(self, key: str) -> float:
        left = int(await self._r.pttl(key))
        return left / 1000 if left > 0 else 0.0

    @_guarded
    async def acquire_slot(self, group: str, limit: int, token: str, ttl: float) -> bool:
        args = [token, limit, _ms(ttl)]
        return bool(await self._run("ACQUIRE_SLOT", [self.keys.slots(group)], args))

    @_guarded
    async def release_slot(self, group: str, token: str) -> None:
        await self._r.zrem(self.keys.slots(group), token)

    # ---- cooldowns, attempts, circuits, episodes -------------------------------
    @_guarded
    async def set_cooldown(self, rule: str, target: str, ttl: float) -> None:
        if ttl > 0:
            await self._r.set(self.keys.cooldown(rule, target), "1", px=_ms(ttl))

    @_guarded
    async def cooldown_remaining(self, rule: str, target: str) -> float:
        return await self._pttl(self.keys.cooldown(rule, target))

    @_guarded
    async def record_failure(
        self, rule: str, target: str, window: float, max_attempts: int
    ) -> FailureCount:
        keys = [self.keys.attempts(rule, target), self.keys.circuit(rule, target)]
        args = [_ms(window), max_attempts, secrets.token_hex(8)]
        failures, opened = await self._run("RECORD_FAILURE", keys, args)
        return FailureCount(int(failures), bool(opened))

    @_guarded
    async def reset_failures(self, rule: str, target: str) -> None:
        await self._r.delete(self.keys.attempts(rule, target))

    @_guarded
    async def circuit_remaining(self, rule: str, target: str) -> float:
        return await self._pttl(self.keys.circuit(rule, target))

    @_guarded
    async def episode_done(self, rule: str, episode: str) -> bool:
        return bool(await self._r.exists(self.keys.episode(rule, episode)))

    @_guarded
    async def mark_episode(self, rule: str, episode: str, ttl: float) -> None:
        await self._r.set(self.keys.episode(rule, episode), "1", px=_ms(ttl))

    # ---- firing-alert index ----------------------------------------------------
    @_guarded
    async def firing_labels(self) -> list[dict[str, str]]:
        keys = [self.keys.firing_index, self.keys.firing_alerts]
        values = await self._run("FIRING", keys, [int(time.time() * 1000)])
        return [json.loads(value)["labels"] for value in values]

    @_guarded
    async def is_firing(self, fingerprint: str, starts_at: str) -> bool:
        keys = [self.keys.firing_index, self.keys.firing_alerts]
        data = await self._run("IS_FIRING", keys, [fingerprint, int(time.time() * 1000)])
        return data is not None and bool(json.loads(data)["startsAt"] == starts_at)

    # ---- pause -------------------------------------------------------------------
    @_guarded
    async def set_pause(self, pause: Pause) -> None:
        data = json.dumps({"reason": pause.reason, "until": pause.until, "by": pause.by})
        await self._r.set(self.keys.pause, data, pxat=max(1, int(pause.until * 1000)))

    @_guarded
    async def clear_pause(self) -> bool:
        return bool(await self._r.delete(self.keys.pause))

    @_guarded
    async def get_pause(self) -> Pause | None:
        data = await self._r.get(self.keys.pause)
        if data is None:
            return None
        item = json.loads(data)
        pause = Pause(reason=item["reason"], until=float(item["until"]), by=item.get("by", ""))
        return pause if pause.until > time.time() else None

    # ---- audit -------------------------------------------------------------------
    @_guarded
    async def record_event(self, event: AuditEvent) -> None:
        keys = [self.keys.audit, self.keys.event(event.event_id)]
        args = [event.model_dump_json(by_alias=True), event.rule, event.outcome.value,
                event.outcome_label, self._audit_max, _ms(self._audit_retention)]
        await self._run("RECORD_EVENT", keys, args)

    @_guarded
    async def get_event(self, event_id: str) -> AuditEvent | None:
        data = await self._r.hget(self.keys.event(event_id), "e")
        return None if data is None else AuditEvent.model_validate_json(data)

    @_guarded
    async def list_events(
        self, limit: int, cursor: str | None = None, rule: str | None = None,
        outcome: str | None = None,
    ) -> tuple[list[AuditEvent], str | None]:
        """Newest first; the cursor is the stream id of the last event returned."""
        start = f"({cursor}" if cursor and _STREAM_ID.match(cursor) else "+"
        out: list[AuditEvent] = []
        last, batch = "", max(limit + 1, 100)
        while True:
            entries: Any = await self._r.xrevrange(self.keys.audit, max=start, min="-",
                                                   count=batch)
            for entry_id, fields in entries:
                if not _wanted(fields, rule, outcome):
                    continue
                if len(out) >= limit:
                    return out, last
                out.append(AuditEvent.model_validate_json(fields[b"e"]))
                last = _str(entry_id)
            if len(entries) < batch:
                return out, None
            start = "(" + _str(entries[-1][0])

    # ---- Slack threads ---------------------------------------------------------------
    @_guarded
    async def claim_thread(self, rule: str, target: str, ts: str, ttl: float) -> str:
        return _str(await self._run("CLAIM_THREAD", [self.keys.thread(rule, target)],
                                    [ts, _ms(ttl)]))

    @_guarded
    async def get_thread(self, rule: str, target: str) -> str | None:
        value = await self._r.get(self.keys.thread(rule, target))
        return None if value is None else _str(value)


def _latest_firing(batch: list[Intake]) -> dict[str, tuple[int, str] | None]:
    """Per fingerprint, the last word of the batch: firing (expiry, data) or resolved (None)."""
    latest: dict[str, tuple[int, str] | None] = {}
    for item in batch:
        latest.update(item.firing)
        latest.update(dict.fromkeys(item.resolved))
    return latest


def _wanted(fields: dict[bytes, bytes], rule: str | None, outcome: str | None) -> bool:
    if rule and _str(fields[b"r"]) != rule:
        return False
    return not outcome or outcome in (_str(fields[b"o"]), _str(fields[b"l"]))
