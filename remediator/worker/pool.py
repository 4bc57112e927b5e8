"""The replica's workers, and their lives: started with the app, stopped with a grace.

Like arq's ``Worker``, the pool owns its loops and its shutdown. Each worker takes one job
at a time from the queue and hands it to the pipeline (``pipeline.Pipeline.process``); a
store outage pauses a worker, never kills it. One maintenance loop moves due deferred
jobs back into the queue, retires the queues of rules no longer loaded once drained,
refreshes the depth gauge, announces pauses that run out and
reads the store's generation marker (``generation.py``: a wiped store is reported).

``stop`` cancels the idle workers at once; busy ones get ``SHUTDOWN_GRACE`` to finish
their job, then are cancelled too (each interrupted job logs and stashes its steps, and
is delivered again).
"""

from __future__ import annotations

import asyncio
import contextlib

import structlog

from remediator import clock
from remediator.errors import StoreUnavailable
from remediator.store.values import Delivery
from remediator.worker.generation import GenerationWatch
from remediator.worker.pause_expiry import PauseExpiry
from remediator.worker.pipeline import Pipeline

log = structlog.get_logger("remediator.worker.pool")
RETIRE_EVERY = 60.0  # seconds between looks for the queues of rules no longer loaded


class WorkerPool:
    """``workers`` consumers named ``<replica>-w<i>`` and one maintenance loop."""

    def __init__(
        self, pipeline: Pipeline, *, workers: int, grace: float, generation: GenerationWatch | None = None
    ) -> None:
        self.pipeline = pipeline
        self.generation = generation  # read in the maintenance loop: a wiped store is seen
        self.replica = pipeline.replica
        self.workers = workers
        self.grace = grace
        self.busy: set[str] = set()  # consumers in the middle of a job
        self._stop = asyncio.Event()
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        for i in range(self.workers):
            consumer = f"{self.replica}-w{i}"
            self._workers[consumer] = asyncio.create_task(self.work(consumer, self._stop), name=f"worker-{i}")
        self._tasks = [*self._workers.values()]
        self._tasks.append(asyncio.create_task(self.maintain(self._stop), name="maintenance"))

    async def stop(self) -> None:
        """Stop taking jobs; wait up to the grace for the running ones, then cancel them."""
        self._stop.set()
        for consumer, task in self._workers.items():
            if consumer not in self.busy:
                task.cancel()  # idle: waiting for a job; busy ones finish theirs
        if not self._tasks:
            return
        _, pending = await asyncio.wait(self._tasks, timeout=self.grace)
        if self.busy:  # each interrupted job logs remediation.interrupted itself
            log.warning(
                "service.shutdown_grace_exceeded",
                grace=self.grace,
                interrupted=len(self.busy),
                message="cancelling running handlers; their jobs stay queued and are delivered again",
            )
        for task in pending:
            task.cancel()
        for task in pending:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def work(self, consumer: str, stop: asyncio.Event) -> None:
        """Take jobs until ``stop`` is set; a store outage pauses, never kills, the loop."""
        queue, settings, metrics = self.pipeline.store.queue, self.pipeline.settings, self.pipeline.metrics
        backoff, next_reclaim = 0.5, 0.0
        handed: Delivery | None = None  # claimed for this consumer with the last job's outcome
        while not stop.is_set() or handed is not None:
            try:
                deliveries: list[Delivery] = []
                if clock.monotonic() >= next_reclaim and not stop.is_set():
                    next_reclaim = clock.monotonic() + max(1.0, settings.reclaim_idle / 4)
                    deliveries = await queue.reclaim(consumer, settings.reclaim_idle, 1)
                if handed is not None:
                    deliveries.append(handed)
                    handed = None
                if not deliveries:
                    deliveries = await queue.dequeue(consumer, 1, 1.0)
                backoff = 0.5
            except StoreUnavailable as exc:
                metrics.store_errors.labels("dequeue").inc()
                log.warning("worker.store_unavailable", consumer=consumer, error=str(exc))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            self.busy.add(consumer)
            try:
                for delivery in deliveries:
                    # While running, the next job may come with this one's outcome (one
                    # round trip less); one claimed while stopping is still run.
                    ask = handed is None and not stop.is_set()
                    handed = await self.pipeline.process(delivery, consumer, hand_over=ask) or handed
            finally:
                self.busy.discard(consumer)

    async def retire_queues(self) -> None:
        """The queues of rules renamed or removed go once drained (none while no rules
        are loaded: every rule would look removed)."""
        try:
            rules = self.pipeline.rules()
        except RuntimeError:
            return
        await self.pipeline.store.queue.retire(rule.name for rule in rules.rules)

    async def maintain(self, stop: asyncio.Event) -> None:
        """Move due deferred jobs back into the queue; refresh the depth gauge; announce
        the pauses that run out; look at the store's generation marker."""
        store, metrics = self.pipeline.store, self.pipeline.metrics
        expiry = PauseExpiry(store, self.pipeline.tell)
        next_retire = clock.monotonic() + RETIRE_EVERY
        while not stop.is_set():
            try:
                await store.queue.promote_due()
                if clock.monotonic() >= next_retire:
                    next_retire = clock.monotonic() + RETIRE_EVERY
                    await self.retire_queues()
                metrics.queue_depth.set(await store.queue.queue_depth())
                await expiry.check(clock.now())
                if self.generation is not None:
                    await self.generation.check(clock.now())
            except StoreUnavailable:
                metrics.store_errors.labels("maintenance").inc()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.5)
