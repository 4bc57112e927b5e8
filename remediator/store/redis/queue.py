"""The Redis queue: a stream + consumer group of jobs, deferred jobs and dead letters.

Acked entries are deleted, so the stream only ever holds unfinished jobs; it needs no
length trim that could drop one. Any Redis failure surfaces as ``StoreUnavailable``.
"""

from __future__ import annotations

import json
import secrets
import time
from typing import Any

from redis.exceptions import ResponseError

from remediator.models import Job
from remediator.store.redis.common import Backend, Part, guarded, log, ms, text
from remediator.store.values import Delivery

_DEAD_LETTERS_KEPT = 1000
_PROMOTE_BATCH = 100


def _nogroup(exc: ResponseError) -> bool:
    return str(exc).startswith("NOGROUP")


class RedisQueue(Part):
    """Jobs in a stream read by one consumer group; a silent consumer's jobs are reclaimed.

    ``max_block`` caps a blocking read below the socket timeout.
    """

    def __init__(self, backend: Backend, max_block: float) -> None:
        super().__init__(backend)
        self._max_block = max_block
        self._cursor = "0-0"
        # A consumer of the group silent this long with nothing pending is gone; look hourly.
        self.consumer_gone_after = 3600.0
        self.consumer_cleanup_every = 3600.0
        self._last_cleanup = time.monotonic()

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
                delivery = await self.delivery(text(entry_id), fields, 1)
                if delivery is not None:
                    out.append(delivery)
        return out

    async def delivery(self, entry_id: str, fields: Any, count: int) -> Delivery | None:
        """The entry as a Delivery; an unreadable one is dead-lettered, never retried."""
        if isinstance(fields, list):  # from a script: a flat field/value list
            fields = dict(zip(fields[::2], fields[1::2], strict=True))
        try:
            return Delivery(entry_id, Job.loads(fields[b"job"]), int(count))
        except (KeyError, ValueError) as exc:
            log.error("queue.unreadable_job", entry=entry_id, error=str(exc)[:300])
            record = {
                "id": entry_id,
                "event_id": "",
                "rule": "",
                "deliveries": count,
                "reason": f"unreadable job: {str(exc)[:200]}",
                "at": time.time(),
            }
            await self._dead_letter(entry_id, record)
            return None

    @guarded
    async def ack(self, delivery_id: str) -> None:
        await self._b.run("ACK", [self.keys.stream], [self.keys.group, delivery_id])

    @guarded
    async def touch(self, consumer: str, delivery_id: str) -> None:
        try:
            await self._r.xclaim(self.keys.stream, self.keys.group, consumer, 0, [delivery_id], justid=True)
        except ResponseError as exc:
            if not _nogroup(exc):  # no group: nothing is pending, nothing to touch
                raise

    @guarded
    async def reclaim(self, consumer: str, min_idle: float, count: int) -> list[Delivery]:
        args = [self.keys.group, consumer, int(min_idle * 1000), self._cursor, count]
        try:
            cursor, entries = await self._b.run("RECLAIM", [self.keys.stream], args)
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
            delivery = await self.delivery(text(entry_id), fields, deliveries)
            if delivery is not None:
                out.append(delivery)
        return out

    async def _forget_gone_consumers(self) -> None:
        """Each replica start adds consumers to the group; drop the ones long gone."""
        consumers: Any = await self._r.xinfo_consumers(self.keys.stream, self.keys.group)
        for item in consumers:
            if int(item["pending"]) == 0 and int(item["idle"]) > self.consumer_gone_after * 1000:
                await self._r.xgroup_delconsumer(self.keys.stream, self.keys.group, item["name"])

    @guarded
    async def defer(self, delivery_id: str, job: Job, delay: float, hold: bool = False) -> None:
        member = secrets.token_hex(8).encode() + b":" + job.dumps()
        args = [self.keys.group, delivery_id, max(0, int(delay * 1000)), member, job.event_id, int(hold)]
        await self._b.run("DEFER", [self.keys.stream, self.keys.deferred, self.keys.held], args)

    @guarded
    async def release_held(self) -> int:
        return int(await self._b.run("RELEASE_HELD", [self.keys.deferred, self.keys.held], []))

    @guarded
    async def promote_due(self) -> int:
        moved = 0
        while True:
            n = int(await self._b.run("PROMOTE", [self.keys.deferred, self.keys.stream], [_PROMOTE_BATCH]))
            moved += n
            if n < _PROMOTE_BATCH:
                return moved

    @guarded
    async def dead_letter(self, delivery: Delivery, reason: str) -> None:
        await self._dead_letter(delivery.id, delivery.dead_letter(reason, time.time()))

    async def _dead_letter(self, entry_id: str, record: dict[str, Any]) -> None:
        args = [self.keys.group, entry_id, json.dumps(record), _DEAD_LETTERS_KEPT]
        await self._b.run("DEAD_LETTER", [self.keys.stream, self.keys.dead_letters], args)

    @guarded
    async def dead_letters(self, limit: int) -> list[dict[str, Any]]:
        entries: Any = await self._r.xrevrange(self.keys.dead_letters, count=limit)
        return [json.loads(fields[b"data"]) for _, fields in entries]

    @guarded
    async def queue_depth(self) -> int:
        return int(await self._b.run("DEPTH", [self.keys.stream, self.keys.deferred], []))
