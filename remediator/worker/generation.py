"""A wiped store, told from a new one: the store's generation marker (``Store.generation``).

The first replica to find the store without a marker writes one. Every replica reads it
every ``every`` seconds (the pool's maintenance loop) and remembers the last time it saw
its marker. A replica that saw a marker and then finds none, or another one, knows the
store was wiped after that time (T): a Redis restarted without persistence, a FLUSHALL,
a failover to an empty replica. It logs an error, counts remediator_store_resets_total,
keeps a warning for /readyz, and the first replica to claim the wipe posts it to Slack:
jobs accepted before the wipe may be lost. A replica that starts after the wipe has
seen nothing to lose: it adopts the marker it finds (the jobs view still knows, from the
marker's ``created``, which ids are older than the store's data).
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass

import structlog

from remediator.errors import StoreUnavailable
from remediator.metrics import Metrics
from remediator.notify.notice import Notice, Notifier
from remediator.store.base import Generation
from remediator.store.values import StoreMarker

log = structlog.get_logger("remediator.worker.generation")
WARN_FOR = 86400.0  # /readyz shows the warning this long after the wipe was seen
CLAIM_TTL = 30 * 86400.0


def utc(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


@dataclass(frozen=True)
class Wipe:
    """The store was wiped after ``last_seen`` and seen so at ``noticed`` (epoch seconds)."""

    last_seen: float
    noticed: float
    lost: str  # the marker that went
    found: str  # the marker found instead ("" none: this replica wrote the new one)

    @property
    def warning(self) -> str:
        return (
            f"the state store was wiped: its generation marker, last seen at {utc(self.last_seen)}, "
            f"was gone at {utc(self.noticed)}; jobs accepted before then may be lost"
        )


class GenerationWatch:
    """One per replica: ``check(now)`` reads the marker at most every ``every`` seconds."""

    def __init__(
        self, generation: Generation, notifier: Notifier, metrics: Metrics, every: float = 1.0
    ) -> None:
        self.generation, self.notifier, self.metrics = generation, notifier, metrics
        self.every = every
        self.seen: StoreMarker | None = None
        self.seen_at = 0.0  # when this replica last found its marker
        self.wipe: Wipe | None = None
        self._next = 0.0

    def warnings(self, now: float) -> list[str]:
        """What /readyz says (the store works: a warning, not a problem)."""
        if self.wipe is None or now - self.wipe.noticed > WARN_FOR:
            return []
        return [self.wipe.warning]

    async def check(self, now: float) -> None:
        if now < self._next:
            return
        self._next = now + self.every
        try:
            await self._check(now)
        except StoreUnavailable as exc:
            log.debug("generation.store_unavailable", error=str(exc))

    async def _check(self, now: float) -> None:
        found = await self.generation.marker()
        if found is None:
            seen = self.seen
            new = StoreMarker(
                id=secrets.token_hex(8),
                created=now,
                after=seen.id if seen else "",
                last_seen=self.seen_at if seen else 0.0,
            )
            found = await self.generation.create_marker(new)
            if found == new and seen is None:
                log.info(
                    "store.generation_created",
                    marker=new.id,
                    message="a new store: its generation marker is written",
                )
        if self.seen is None or found.id == self.seen.id:
            self.seen, self.seen_at = found, now  # adopted at start, or seen again
            return
        await self._wiped(found, now)

    async def _wiped(self, found: StoreMarker, now: float) -> None:
        assert self.seen is not None
        lost = self.seen
        self.wipe = Wipe(last_seen=self.seen_at, noticed=now, lost=lost.id, found=found.id)
        self.seen, self.seen_at = found, now
        self.metrics.store_resets.inc()
        log.error(
            "store.wiped",
            last_seen=utc(self.wipe.last_seen),
            lost_marker=lost.id,
            found_marker=found.id,
            message=self.wipe.warning
            + " (accepted event ids answer 410 in the jobs view; approvals in flight and held jobs "
            "are gone; repaired episodes may run again). Does Redis persist its data?",
        )
        if await self.generation.claim_report(lost.id, CLAIM_TTL):
            self.notifier.send(self.notice(self.wipe))

    @staticmethod
    def notice(wipe: Wipe) -> Notice:
        message = (
            f"The state store was wiped (a Redis restarted without persistence, a FLUSHALL, a "
            f"failover to an empty replica): its generation marker, last seen at "
            f"{utc(wipe.last_seen)}, was gone at {utc(wipe.noticed)}. Jobs accepted before then may "
            "be lost: their event ids are no longer known, approvals in flight and jobs held by "
            "pauses are gone, and episodes already repaired may be repaired again. Alertmanager "
            "re-sends alerts that still fire at its repeat_interval."
        )
        details = {"last_seen": utc(wipe.last_seen), "noticed": utc(wipe.noticed), "lost_marker": wipe.lost}
        return Notice(kind="store_reset", message=message, details=details)
