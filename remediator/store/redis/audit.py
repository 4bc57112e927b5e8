"""The audit on Redis: a stream of events (newest first) plus one hash per event, and
the timelines of runs cut short by a shutdown."""

from __future__ import annotations

import re
from typing import Any

from remediator.models import AuditEvent
from remediator.store.redis.common import Backend, Part, guarded, ms, text

_STREAM_ID = re.compile(r"^[0-9]+-[0-9]+$")


class RedisAudit(Part):
    """Up to ``max_events`` events, each kept at most ``retention`` seconds."""

    def __init__(self, backend: Backend, max_events: int, retention: float) -> None:
        super().__init__(backend)
        self._max = max_events
        self._retention = retention

    @guarded
    async def record_event(self, event: AuditEvent) -> None:
        keys = [self.keys.audit, self.keys.event(event.event_id), self.keys.job_states]
        args = [event.model_dump_json(by_alias=True), *self.record_fields(event)]
        await self._b.run("RECORD_EVENT", keys, args)

    def record_fields(self, event: AuditEvent) -> list[Any]:
        """What the RECORD_EVENT script (and CONCLUDE) take besides the event's JSON."""
        return [
            event.rule,
            event.outcome.value,
            event.outcome_label,
            self._max,
            ms(self._retention),
            event.event_id,
            self.keys.event(""),
        ]

    @guarded
    async def get_event(self, event_id: str) -> AuditEvent | None:
        data = await self._r.hget(self.keys.event(event_id), "e")
        return None if data is None else AuditEvent.model_validate_json(data)

    @guarded
    async def list_events(
        self,
        limit: int,
        cursor: str | None = None,
        rule: str | None = None,
        outcome: str | None = None,
    ) -> tuple[list[AuditEvent], str | None]:
        """Newest first; the cursor is the stream id of the last event returned."""
        start = f"({cursor}" if cursor and _STREAM_ID.match(cursor) else "+"
        out: list[AuditEvent] = []
        last, batch = "", max(limit + 1, 100)
        while True:
            entries: Any = await self._r.xrevrange(self.keys.audit, max=start, min="-", count=batch)
            for entry_id, fields in entries:
                if not _wanted(fields, rule, outcome):
                    continue
                if len(out) >= limit:
                    return out, last
                out.append(AuditEvent.model_validate_json(fields[b"e"]))
                last = text(entry_id)
            if len(entries) < batch:
                return out, None
            start = "(" + text(entries[-1][0])

    @guarded
    async def stash_timeline(self, event_id: str, steps: str, ttl: float) -> None:
        await self._r.set(self.keys.interrupted(event_id), steps, px=ms(ttl))

    @guarded
    async def take_timeline(self, event_id: str) -> str | None:
        value = await self._r.getdel(self.keys.interrupted(event_id))
        return None if value is None else text(value)


def _wanted(fields: dict[bytes, bytes], rule: str | None, outcome: str | None) -> bool:
    if rule and text(fields[b"r"]) != rule:
        return False
    return not outcome or outcome in (text(fields[b"o"]), text(fields[b"l"]))
