"""The memory store's job queue: ready, handed out (pending), deferred and dead jobs.

Ready jobs wait in a queue per rule, taken round robin (as the Redis store's streams): a
flood of one rule's jobs never holds another rule's job behind it."""

from __future__ import annotations

import asyncio
import bisect
import heapq
import itertools
import secrets
from collections import deque
from collections.abc import Iterable
from typing import Any

from remediator import clock
from remediator.models import Job
from remediator.store.values import Delivery


class MemoryQueue:
    """A FIFO of jobs per rule, taken in turn; a taken job stays pending until acked, and
    can be reclaimed."""

    def __init__(self) -> None:
        self._seq = itertools.count(1)
        self._ready: dict[str, deque[str]] = {}  # rule -> its entries, oldest first
        self._rules: list[str] = []  # the rules with a ready job, in name order
        self._turn = ""  # the rule served last: the next take starts after it
        self._entries: dict[str, Job] = {}
        self._pending: dict[str, tuple[str, float, int]] = {}  # id -> consumer, at, count
        self._deferred: list[tuple[float, int, str]] = []  # (due, seq, token), a heap
        self._deferred_jobs: dict[str, Job] = {}
        self._held: set[str] = set()  # tokens of deferred jobs held by a pause or window
        self._dead: deque[dict[str, Any]] = deque(maxlen=1000)
        self._cond = asyncio.Condition()

    async def push(self, jobs: Iterable[Job]) -> None:
        """Queue jobs and wake the workers waiting for them."""
        async with self._cond:
            count = 0
            for job in jobs:
                self._push(job)
                count += 1
            self._cond.notify(count)

    def _push(self, job: Job) -> None:
        entry = f"{int(clock.now() * 1000)}-{next(self._seq)}"
        self._entries[entry] = job
        ready = self._ready.get(job.rule)
        if ready is None:
            ready = self._ready[job.rule] = deque()
            bisect.insort(self._rules, job.rule)
        ready.append(entry)

    def _take(self) -> str:
        """The oldest entry of the first rule after the one served last (in name order,
        round the ring), as the Redis store's ``take``."""
        at = bisect.bisect_right(self._rules, self._turn)
        rule = self._turn = self._rules[at % len(self._rules)]
        ready = self._ready[rule]
        entry = ready.popleft()
        if not ready:
            del self._ready[rule]
            self._rules.remove(rule)
        return entry

    async def dequeue(self, consumer: str, count: int, block: float) -> list[Delivery]:
        async with self._cond:
            if not self._rules:
                try:
                    await asyncio.wait_for(self._cond.wait_for(lambda: bool(self._rules)), block)
                except TimeoutError:
                    return []
            out: list[Delivery] = []
            while self._rules and len(out) < count:
                entry = self._take()
                self._pending[entry] = (consumer, clock.monotonic(), 1)
                out.append(Delivery(entry, self._entries[entry], 1))
            return out

    async def retire(self, rules: Iterable[str]) -> None:
        """Nothing to do: a rule's queue goes as soon as it is empty."""

    async def ack(self, delivery_id: str) -> None:
        self._pending.pop(delivery_id, None)
        self._entries.pop(delivery_id, None)

    async def touch(self, consumer: str, delivery_id: str) -> None:
        item = self._pending.get(delivery_id)
        if item is not None:
            self._pending[delivery_id] = (consumer, clock.monotonic(), item[2])

    async def reclaim(self, consumer: str, min_idle: float, count: int) -> list[Delivery]:
        now, out = clock.monotonic(), list[Delivery]()
        for entry, (_, at, n) in list(self._pending.items()):
            if len(out) >= count:
                break
            if now - at >= min_idle:
                self._pending[entry] = (consumer, now, n + 1)
                out.append(Delivery(entry, self._entries[entry], n + 1))
        return out

    async def defer(self, delivery_id: str, job: Job, delay: float, hold: bool = False) -> None:
        token = secrets.token_hex(8)
        self._deferred_jobs[token] = job
        if hold:
            self._held.add(token)
        heapq.heappush(self._deferred, (clock.now() + delay, next(self._seq), token))
        await self.ack(delivery_id)

    async def release_held(self) -> int:
        """Held jobs become due now (the next ``promote_due`` queues them)."""
        held = {token for token in self._held if token in self._deferred_jobs}
        self._held.clear()
        if held:
            now = clock.now()
            self._deferred = [(now if t in held else due, seq, t) for due, seq, t in self._deferred]
            heapq.heapify(self._deferred)
        return len(held)

    async def promote_due(self) -> int:
        now, moved = clock.now(), 0
        async with self._cond:
            while self._deferred and self._deferred[0][0] <= now:
                _, _, token = heapq.heappop(self._deferred)
                self._held.discard(token)
                self._push(self._deferred_jobs.pop(token))
                moved += 1
            if moved:
                self._cond.notify(moved)
        return moved

    async def dead_letter(self, delivery: Delivery, reason: str) -> None:
        self._dead.append(delivery.dead_letter(reason, clock.now()))
        await self.ack(delivery.id)

    async def dead_letters(self, limit: int) -> list[dict[str, Any]]:
        return list(self._dead)[-limit:][::-1]

    async def queue_depth(self) -> int:
        return len(self._entries) + len(self._deferred)
