"""Several notifiers as one: every notice goes to each (Slack and PagerDuty, say)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import structlog

from remediator.notify.notice import Notice, Notifier

log = structlog.get_logger("remediator.notify.fanout")


class FanOut:
    """Starts, feeds and closes its notifiers; one failing never stops the others."""

    def __init__(self, notifiers: Sequence[Notifier]) -> None:
        self.notifiers = list(notifiers)

    async def start(self) -> None:
        for notifier in self.notifiers:
            await notifier.start()

    def send(self, notice: Notice) -> None:
        for notifier in self.notifiers:
            try:
                notifier.send(notice)
            except Exception as exc:  # send must never raise; a broken one must not stop the rest
                log.error("notify.send_failed", notifier=type(notifier).__name__, error=repr(exc))

    async def close(self) -> None:
        """Close all at once: each drains its own queue within its own timeout."""
        results = await asyncio.gather(*(n.close() for n in self.notifiers), return_exceptions=True)
        for notifier, result in zip(self.notifiers, results, strict=True):
            if isinstance(result, Exception):
                log.error("notify.close_failed", notifier=type(notifier).__name__, error=repr(result))
