"""The memory store's audit: the newest events, kept in order, and stashed timelines."""

from __future__ import annotations

import itertools
from collections import OrderedDict

from remediator.models import AuditEvent
from remediator.store.memory.expiring import Expiring
from remediator.store.memory.jobs import MemoryJobs


class MemoryAudit:
    """Up to ``max_events`` events, the oldest recorded dropped first."""

    def __init__(self, max_events: int, jobs: MemoryJobs) -> None:
        self._max = max_events
        self._jobs = jobs  # an outcome recorded takes the job out of the index
        self._seq = itertools.count(1)
        self._events: OrderedDict[str, AuditEvent] = OrderedDict()
        self._event_seq: dict[str, int] = {}  # event id -> when last recorded (the cursor)
        self._timelines: Expiring[str, str] = Expiring()  # event id -> steps

    async def record_event(self, event: AuditEvent) -> None:
        self._jobs.done(event.event_id)
        self._events[event.event_id] = event
        self._events.move_to_end(event.event_id)
        self._event_seq[event.event_id] = next(self._seq)
        while len(self._events) > self._max:
            old, _ = self._events.popitem(last=False)
            self._event_seq.pop(old, None)

    async def get_event(self, event_id: str) -> AuditEvent | None:
        return self._events.get(event_id)

    async def list_events(
        self,
        limit: int,
        cursor: str | None = None,
        rule: str | None = None,
        outcome: str | None = None,
    ) -> tuple[list[AuditEvent], str | None]:
        """Newest first; the cursor is the sequence number of the last event returned."""
        before = int(cursor) if cursor and cursor.isdigit() else None
        out: list[AuditEvent] = []
        last_seq = 0
        for event in reversed(self._events.values()):
            seq = self._event_seq[event.event_id]
            if before is not None and seq >= before:
                continue
            if rule and event.rule != rule:
                continue
            if outcome and outcome not in (event.outcome.value, event.outcome_label):
                continue
            if len(out) >= limit:
                return out, str(last_seq)
            out.append(event)
            last_seq = seq
        return out, None

    async def stash_timeline(self, event_id: str, steps: str, ttl: float) -> None:
        self._timelines.set(event_id, steps, ttl)

    async def take_timeline(self, event_id: str) -> str | None:
        return self._timelines.pop(event_id)
