"""The Redis queue: a stream per rule read by one consumer group, taken round robin;
deferred jobs and dead letters.

A worker takes from the rules' streams in turn (``scripts.DEQUEUE``): a flood of one
rule's jobs never holds another rule's job behind it. Acked entries are deleted, so a
stream only ever holds unfinished jobs; it needs no length trim that could drop one. The
single stream of the releases before (``keys.stream``) is still read while it holds jobs,
and removed once empty and unread (``retire``), as are the streams of rules no longer
loaded once drained. Any Redis failure surfaces as ``StoreUnavailable``.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterable
from typing import Any

from redis.exceptions import ResponseError

from remediator.models import Job
from remediator.store.redis.common import Backend, Part, guarded, log, ms, text
from remediator.store.values import Delivery

_DEAD_LETTERS_KEPT = 1000
_PROMOTE_BATCH = 100
# The legacy stream goes once no consumer has read it for this long (the previous
# release's replicas read it every second while they run).
LEGACY_QUIET = 600.0


def _nogroup(exc: ResponseError) -> bool:
    return str(exc).startswith("NOGROUP")


class RedisQueue(Part):
    """Jobs in a stream per rule, read by one consumer group; a silent consumer's jobs are
    reclaimed. A delivery's id is ``<rule>|<entry id>`` (a bare entry id: the legacy
    stream).

    ``max_block`` caps a blocking read below the socket timeout.
    """

    def __init__(self, backend: Backend, max_block: float) -> None:
        super().__init__(backend)
        self._max_block = max_block
        self._cursors: dict[str, str] = {}  # per rule ('' legacy): where reclaim goes on
        # A consumer of the group silent this long with nothing pending is gone; look hourly.
        self.consumer_gone_after = 3600.0
        self.consumer_cleanup_every = 3600.0
        self.legacy_quiet = LEGACY_QUIET
        self._last_cleanup = time.monotonic()

    def locate(self, delivery_id: str) -> tuple[str, str]:
        """The stream key and entry id of a delivery."""
        rule, sep, entry = delivery_id.rpartition("|")
        return (self.keys.rule_stream(rule), entry) if sep else (self.keys.stream, entry)

    def queue_args(self) -> dict[str, str]:
        """``scripts._QUEUE_FN``'s q, for a script that takes a job (CONCLUDE)."""
        k = self.keys
        return {
            "streams": k.streams,
            "turn": k.turn,
            "legacy": k.stream,
            "base": k.rule_streams,
            "group": k.group,
        }

    @guarded
    async def dequeue(self, consumer: str, count: int, block: float) -> list[Delivery]:
        k = self.keys
        keys, args = [k.streams, k.turn, k.stream], [k.rule_streams, k.group, consumer, count]
        since, taken, *rules = await self._b.run("DEQUEUE", keys, args)
        if not taken and block > 0:
            # Wake on any entry added from the script's moment on (an entry of that very
            # millisecond already there wakes it at once: one more try, no harm).
            start = f"{int(since) - 1}-18446744073709551615"
            streams: dict[Any, Any] = dict.fromkeys([k.stream, k.bell], start)
            streams.update(dict.fromkeys((k.rule_stream(text(r)) for r in rules[0]), start))
            await self._r.xread(streams, count=1, block=ms(min(block, self._max_block)))
            since, taken, *_ = await self._b.run("DEQUEUE", keys, args)
        return await self.deliveries(taken)

    async def deliveries(self, taken: Iterable[Any]) -> list[Delivery]:
        """``take``'s replies ({rule, entry id, fields[, count]}) as deliveries."""
        out = []
        for item in taken:
            rule, entry_id, fields = text(item[0]), text(item[1]), item[2]
            delivery_id = f"{rule}|{entry_id}" if rule else entry_id
            delivery = await self.delivery(delivery_id, fields, int(item[3]) if len(item) > 3 else 1)
            if delivery is not None:
                out.append(delivery)
        return out

    async def delivery(self, delivery_id: str, fields: Any, count: int) -> Delivery | None:
        """The entry as a Delivery; an unreadable one is dead-lettered, never retried."""
        if isinstance(fields, list):  # from a script: a flat field/value list
            fields = dict(zip(fields[::2], fields[1::2], strict=True))
        try:
            return Delivery(delivery_id, Job.loads(fields[b"job"]), int(count))
        except (KeyError, ValueError) as exc:
            log.error("queue.unreadable_job", entry=delivery_id, error=str(exc)[:300])
            record = {
                "id": delivery_id,
                "event_id": "",
                "rule": "",
                "deliveries": count,
                "reason": f"unreadable job: {str(exc)[:200]}",
                "at": time.time(),
            }
            await self._dead_letter(delivery_id, record)
            return None

    @guarded
    async def ack(self, delivery_id: str) -> None:
        stream, entry = self.locate(delivery_id)
        await self._b.run("ACK", [stream], [self.keys.group, entry])

    @guarded
    async def touch(self, consumer: str, delivery_id: str) -> None:
        stream, entry = self.locate(delivery_id)
        try:
            await self._r.xclaim(stream, self.keys.group, consumer, 0, [entry], justid=True)
        except ResponseError as exc:
            if not _nogroup(exc):  # no group: nothing is pending, nothing to touch
                raise

    @guarded
    async def reclaim(self, consumer: str, min_idle: float, count: int) -> list[Delivery]:
        k = self.keys
        args = [k.rule_streams, k.group, consumer, int(min_idle * 1000), count, json.dumps(self._cursors)]
        cursors, entries = await self._b.run("RECLAIM", [k.streams, k.stream], args)
        self._cursors = {str(rule): str(at) for rule, at in json.loads(text(cursors)).items()}
        if time.monotonic() - self._last_cleanup >= self.consumer_cleanup_every:
            self._last_cleanup = time.monotonic()
            await self._forget_gone_consumers()
        return await self.deliveries(entries)

    async def _forget_gone_consumers(self) -> None:
        """Each replica start adds consumers to the groups; drop the ones long gone."""
        rules: Any = await self._r.zrange(self.keys.streams, 0, -1)
        for stream in [self.keys.stream, *(self.keys.rule_stream(text(r)) for r in rules)]:
            try:
                consumers: Any = await self._r.xinfo_consumers(stream, self.keys.group)
            except ResponseError:  # no such stream or group (any more)
                continue
            for item in consumers:
                if int(item["pending"]) == 0 and int(item["idle"]) > self.consumer_gone_after * 1000:
                    await self._r.xgroup_delconsumer(stream, self.keys.group, item["name"])

    @guarded
    async def retire(self, rules: Iterable[str]) -> None:
        k = self.keys
        args = [k.rule_streams, k.group, ms(self.legacy_quiet), *sorted(rules)]
        if removed := int(await self._b.run("RETIRE", [k.streams, k.stream], args)):
            log.info("queue.streams_retired", streams=removed)

    @guarded
    async def defer(self, delivery_id: str, job: Job, delay: float, hold: bool = False) -> None:
        stream, entry = self.locate(delivery_id)
        member = secrets.token_hex(8).encode() + b":" + job.dumps()
        args = [self.keys.group, entry, max(0, int(delay * 1000)), member, job.event_id, int(hold)]
        await self._b.run("DEFER", [stream, self.keys.deferred, self.keys.held], args)

    @guarded
    async def release_held(self) -> int:
        return int(await self._b.run("RELEASE_HELD", [self.keys.deferred, self.keys.held], []))

    @guarded
    async def promote_due(self) -> int:
        k, moved = self.keys, 0
        keys, args = [k.deferred, k.streams, k.bell, k.stream], [_PROMOTE_BATCH, k.rule_streams, k.group]
        while True:
            n = int(await self._b.run("PROMOTE", keys, args))
            moved += n
            if n < _PROMOTE_BATCH:
                return moved

    @guarded
    async def dead_letter(self, delivery: Delivery, reason: str) -> None:
        await self._dead_letter(delivery.id, delivery.dead_letter(reason, time.time()))

    async def _dead_letter(self, delivery_id: str, record: dict[str, Any]) -> None:
        stream, entry = self.locate(delivery_id)
        args = [self.keys.group, entry, json.dumps(record), _DEAD_LETTERS_KEPT]
        await self._b.run("DEAD_LETTER", [stream, self.keys.dead_letters], args)

    @guarded
    async def dead_letters(self, limit: int) -> list[dict[str, Any]]:
        entries: Any = await self._r.xrevrange(self.keys.dead_letters, count=limit)
        return [json.loads(fields[b"data"]) for _, fields in entries]

    @guarded
    async def queue_depth(self) -> int:
        k = self.keys
        return int(await self._b.run("DEPTH", [k.stream, k.deferred, k.streams], [k.rule_streams]))
