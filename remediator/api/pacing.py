"""The webhook's share of the event loop: a flood of requests never starves the workers.

Intake and the replica's workers share one event loop, which runs ready callbacks in
turn. Under a flood of new alerts every request in flight has work ready, so a worker's
next step waited behind all of them: 381 jobs/s finished while 22,878 were queued (issue
29). While this replica's workers are busy, at most ``limit`` webhook requests are read,
validated and stored at once; the others wait, in order, costing the loop nothing. With
the workers idle (nothing queued) or absent (``WORKERS=0``) there is no cap.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from types import TracebackType


class IntakePacing:
    """An async context manager around the webhook's work; ``busy`` tells whether the
    replica's workers have a job (set by the app once the pool runs)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit  # 0: no cap
        self.busy: Callable[[], bool] = lambda: False
        self._inflight = 0
        self._waiting: deque[asyncio.Future[None]] = deque()

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    async def __aenter__(self) -> None:
        if not self.limit or self._inflight < self.limit or not (self._waiting or self.busy()):
            self._inflight += 1
            return
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append(turn)
        try:
            await turn  # the one who wakes us counted us in
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled():
                self._leave()  # woken and cancelled at once: hand the turn on
            else:
                self._waiting.remove(turn)
            raise

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._leave()

    def _leave(self) -> None:
        self._inflight -= 1
        while self._waiting and (self._inflight < self.limit or not self.busy()):
            turn = self._waiting.popleft()
            if not turn.done():
                turn.set_result(None)
                self._inflight += 1
