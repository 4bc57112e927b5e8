"""Group commit for the webhook: concurrent accept() calls share one Redis round trip.

Each caller still returns only once its own jobs are stored, and a failed
write fails every caller of that batch (the webhook answers 503 to each).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from remediator.errors import StoreUnavailable


@dataclass(frozen=True)
class IntakeWrite:
    """What one accept() stores: queued jobs and firing-index changes."""

    jobs: list[bytes]
    firing: dict[str, tuple[int, str]]  # fingerprint -> (expiry ms, {startsAt, labels} json)
    resolved: list[str]  # fingerprints
    states: dict[str, str] = field(default_factory=dict)  # event id -> JobState json (queued)
    # per job: its event id and intake key ('' = never collapsed); see scripts.ENQUEUE
    ids: list[str] = field(default_factory=list)
    collapse: list[str] = field(default_factory=list)
    rules: list[str] = field(default_factory=list)  # per job: its rule (its stream)
    # filled by the write: the event ids of the jobs collapsed into earlier ones
    collapsed: list[str] = field(default_factory=list)


_Waiter = tuple[IntakeWrite, "asyncio.Future[None]"]


class AcceptBatcher:
    """Collects accept() calls while a write is in flight, then writes them together."""

    def __init__(self, write: Callable[[list[IntakeWrite]], Awaitable[None]]) -> None:
        self._write = write
        self._waiting: list[_Waiter] = []
        self._task: asyncio.Task[None] | None = None

    async def submit(self, item: IntakeWrite) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, future))
        if self._task is None:
            self._task = asyncio.create_task(self._drain(), name="redis-accept-batch")
        await future

    async def _drain(self) -> None:
        try:
            while self._waiting:
                batch, self._waiting = self._waiting, []
                try:
                    await self._write([item for item, _ in batch])
                except asyncio.CancelledError:
                    _settle(batch, StoreUnavailable("the store is closing"))
                    raise
                except Exception as exc:  # every caller of the batch gets the failure
                    _settle(batch, exc)
                else:
                    _settle(batch, None)
        finally:
            self._task = None

    async def close(self) -> None:
        task = self._task
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        _settle(self._waiting, StoreUnavailable("the store is closed"))
        self._waiting = []


def _settle(batch: list[_Waiter], exc: Exception | None) -> None:
    for _, future in batch:
        if future.done():  # the caller went away (cancelled)
            continue
        if exc is None:
            future.set_result(None)
        elif isinstance(exc, StoreUnavailable):
            future.set_exception(StoreUnavailable(str(exc)))  # one instance per caller
        else:
            future.set_exception(exc)
