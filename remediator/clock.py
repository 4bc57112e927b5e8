"""The service's clocks: ``now()`` (wall time, epoch seconds) and ``monotonic()``.

Both are the standard library's, plus however far the running event loop's clock has run
ahead of real time since this module first saw that loop. On an ordinary loop that is
nothing (``loop.time()`` is ``time.monotonic()``); on a loop whose clock jumps ahead
(looptime, in tests) the jumps move these clocks too, so the memory store's expiries, the
gates' waits and an approval's timeout pass without real sleeps. The Redis store keeps
Redis' own clock for its TTLs.
"""

from __future__ import annotations

import asyncio
import time
import weakref


class _Seen:
    """A loop's clock against real time, from when this module first saw it."""

    def __init__(self, loop_time: float) -> None:
        self.loop_origin, self.real_origin = loop_time, time.monotonic()
        self.base = self.best = 0.0
        self.last = loop_time

    def ahead(self, loop_time: float) -> float:
        if loop_time < self.last:  # the loop's clock was set back (a test's start): re-anchor
            self.base = self.best
            self.loop_origin, self.real_origin = loop_time, time.monotonic()
        self.last = loop_time
        ahead = self.base + (loop_time - self.loop_origin) - (time.monotonic() - self.real_origin)
        self.best = max(self.best, ahead)  # never back
        return self.best


_seen: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Seen] = weakref.WeakKeyDictionary()


def _ahead() -> float:
    """Seconds the running loop's clock has run ahead of real time: 0 outside a loop, ~0 on
    an ordinary loop."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return 0.0
    now = loop.time()
    seen = _seen.get(loop)
    if seen is None:
        seen = _seen[loop] = _Seen(now)
    return seen.ahead(now)


def now() -> float:
    """Wall time in epoch seconds, as ``time.time()``, following a loop clock that jumps."""
    return time.time() + _ahead()


def monotonic() -> float:
    """As ``time.monotonic()``, following a loop clock that jumps."""
    return time.monotonic() + _ahead()
