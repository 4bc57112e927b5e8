"""The queue a notifier delivers from: bounded, drained by one task, never blocking.

``put`` returns at once (a full queue drops its oldest item); one task hands the items
to ``deliver`` one at a time, in order; ``close`` delivers what is queued for up to
``close_timeout`` seconds, then drops the rest. Every item dropped goes to ``drop`` with
the reason (``closed``, ``queue_full``, ``shutdown``). Slack and PagerDuty each own one.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Outbox(Generic[T]):
    def __init__(
        self,
        *,
        name: str,
        deliver: Callable[[T], Awaitable[None]],
        drop: Callable[[list[T], str], None],
        queue_size: int,
        close_timeout: float,
    ) -> None:
        self.name = name
        self._deliver, self._drop = deliver, drop
        self.queue_size, self._close_timeout = queue_size, close_timeout
        self._pending: deque[T] = deque()
        self._inflight: T | None = None
        self._wake, self._drained = asyncio.Event(), asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.closed = False

    def __len__(self) -> int:
        return len(self._pending)

    @property
    def started(self) -> bool:
        return self._task is not None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=self.name)

    def put(self, item: T) -> None:
        if self.closed:
            self._drop([item], "closed")
            return
        if len(self._pending) >= self.queue_size:
            self._drop([self._pending.popleft()], "queue_full")
        self._pending.append(item)
        self._drained.clear()
        self._wake.set()

    async def close(self) -> None:
        self.closed = True
        if self._task is None:
            self._drop(list(self._pending), "closed")
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._drained.wait(), self._close_timeout)
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        left = list(self._pending) + ([self._inflight] if self._inflight is not None else [])
        self._pending.clear()
        self._drop(left, "shutdown")

    async def _run(self) -> None:
        while True:
            if not self._pending:
                self._drained.set()
                self._wake.clear()
                await self._wake.wait()
                continue
            self._inflight = self._pending.popleft()
            await self._deliver(self._inflight)
            self._inflight = None
