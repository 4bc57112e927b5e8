"""Pauses that run out by themselves: announced once, and their held jobs released at once.

A pause lifted by hand is announced by the API that lifted it. One that reaches its
``until`` has nobody to announce it: every replica watches the pauses it has seen (one
read of the pause list per ``every``; a pause shorter than that may go unannounced), and
the first to claim the end (a first-wins marker in the shared store) posts "ended" and
releases the held jobs, so they are re-gated now rather than at their next look.
"""

from __future__ import annotations

import structlog

from remediator.errors import StoreUnavailable
from remediator.store.base import Store
from remediator.store.values import Pause
from remediator.worker.telling import Teller

log = structlog.get_logger("remediator.worker.pause_expiry")
CLAIM_TTL = 86400.0  # the claim names the pause's id and end: it is never asked for again


class PauseExpiry:
    """Call ``check(now)`` often; it reads the pauses at most every ``every`` seconds."""

    def __init__(self, store: Store, teller: Teller, every: float = 0.5) -> None:
        self.store = store
        self.teller = teller
        self.every = every
        self._seen: dict[str, Pause] = {}
        self._next = 0.0

    async def check(self, now: float) -> None:
        if now < self._next:
            return
        self._next = now + self.every
        try:
            current = {pause.id: pause for pause in await self.store.pauses.list_pauses()}
            for pause_id, seen in list(self._seen.items()):
                still = current.get(pause_id)
                if still is not None and still.until > now:
                    continue  # running (perhaps extended)
                del self._seen[pause_id]
                if seen.until <= now:
                    await self._ended(seen)
                # else: lifted by hand before its end; the API announced it
            self._seen.update({pid: p for pid, p in current.items() if p.until > now})
        except StoreUnavailable as exc:
            log.warning("pause_expiry.store_unavailable", error=str(exc))

    async def _ended(self, pause: Pause) -> None:
        if not await self.store.gates.claim_resolution("pause", f"{pause.id}@{pause.until}", CLAIM_TTL):
            return  # another replica announces it
        released = await self.store.queue.release_held()
        log.info("pause.ended", pause=pause.id, reason=pause.reason, released=released)
        message = f"ran out; {released} held job(s) released"
        self.teller.pause_ended(pause, message)
