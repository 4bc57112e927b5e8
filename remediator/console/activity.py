"""The Activity page: the audit's events with filters and search, the reason of each,
and banners for what needs a person now (open circuits, pending approvals, pauses)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlencode

from aiohttp import web

from remediator.api.errors import ApiError
from remediator.api.schemas import valid_event_id
from remediator.api.service import Service
from remediator.console.attention import attention
from remediator.console.rendering import page, render
from remediator.console.session import Session
from remediator.models import AuditEvent

PAGE = 50
SEARCH_PAGES = 10
SCAN_PAGES = 20  # a target or time filter reads at most this many pages of PAGE events
SINCE = {"1h": 3600.0, "6h": 6 * 3600.0, "24h": 86400.0, "7d": 7 * 86400.0}


@dataclass(frozen=True)
class Filters:
    """The Activity page's filters: rule and outcome go to the store; the rest are applied here."""

    rule: str | None = None
    outcome: str | None = None
    target: str = ""
    since: str = ""
    start: float | None = None  # finished at or after (epoch seconds)
    end: float | None = None  # finished before
    from_text: str = ""
    to_text: str = ""

    @property
    def local(self) -> bool:
        """Whether some filter is applied by the console rather than the store."""
        return bool(self.target) or self.start is not None or self.end is not None

    def wants(self, event: AuditEvent) -> bool:
        if self.target and self.target not in event.target:
            return False
        if self.start is not None and event.finished_at < self.start:
            return False
        return self.end is None or event.finished_at < self.end

    def query(self) -> dict[str, str]:
        """The filters as query parameters, for the next page's link."""
        pairs = (
            ("rule", self.rule or ""),
            ("outcome", self.outcome or ""),
            ("target", self.target),
            ("since", self.since),
            ("from", self.from_text),
            ("to", self.to_text),
        )
        return {k: v for k, v in pairs if v}


def utc_input(value: str, name: str) -> float | None:
    """A ``datetime-local`` value (``2026-11-30T12:00``), read as UTC; empty: None."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise ApiError(400, f"invalid {name!r} time", "use YYYY-MM-DDTHH:MM (UTC)") from exc
    return parsed.replace(tzinfo=parsed.tzinfo or UTC).timestamp()


def filters_of(request: web.Request, now: float) -> Filters:
    q = request.query
    since = q.get("since", "").strip()
    if since and since not in SINCE:
        raise ApiError(400, "invalid time range", f"since: one of {', '.join(SINCE)}")
    from_text, to_text = q.get("from", "").strip(), q.get("to", "").strip()
    start = utc_input(from_text, "from")
    if since:
        start = max(start or 0.0, now - SINCE[since])
    return Filters(
        rule=q.get("rule", "").strip() or None,
        outcome=q.get("outcome", "").strip() or None,
        target=q.get("target", "").strip()[:200],
        since=since,
        start=start,
        end=utc_input(to_text, "to"),
        from_text=from_text,
        to_text=to_text,
    )


async def scan(
    svc: Service, filters: Filters, cursor: str | None
) -> tuple[list[AuditEvent], str | None, int]:
    """Events that pass the console's filters: whole store pages, at most ``SCAN_PAGES`` of them.

    Returns the events, the cursor after the last page read (None: nothing older), and how
    many events were read. The stream is newest first, so an event that finished before
    ``start`` ends the scan.
    """
    found: list[AuditEvent] = []
    read = 0
    for _ in range(SCAN_PAGES):
        events, cursor = await svc.store.audit.list_events(
            PAGE, cursor=cursor, rule=filters.rule, outcome=filters.outcome
        )
        read += len(events)
        found += [e for e in events if filters.wants(e)]
        if filters.start is not None and any(e.finished_at < filters.start for e in events):
            return found, None, read
        if cursor is None or len(found) >= PAGE:
            break
    return found, cursor, read


@page()
async def activity(request: web.Request, svc: Service, _: Session) -> web.StreamResponse:
    filters = filters_of(request, time.time())
    search = request.query.get("q", "").strip()
    cursor = request.query.get("cursor") or None
    next_cursor: str | None = None
    read = 0
    try:
        if search:
            events = [e for e in await find(svc, search, filters.rule, filters.outcome) if filters.wants(e)]
        elif filters.local:
            events, next_cursor, read = await scan(svc, filters, cursor)
        else:
            events, next_cursor = await svc.store.audit.list_events(
                PAGE, cursor=cursor, rule=filters.rule, outcome=filters.outcome
            )
    except ValueError as exc:
        raise ApiError(400, "invalid cursor", str(exc)) from exc
    more = "/ui/?" + urlencode({**filters.query(), "cursor": next_cursor}) if next_cursor else None
    rules = [r.name for r in svc.rules.current().rules] if svc.rules.loaded else []
    return render(
        request,
        "activity.html",
        events=events,
        filters=filters,
        presets=list(SINCE),
        q=search,
        more=more,
        scanned=read if filters.local and next_cursor else 0,
        rules=rules,
        refresh=not cursor and not search,
        attention=await attention(svc),
    )


async def find(svc: Service, search: str, rule: str | None, outcome: str | None) -> list[AuditEvent]:
    """Events whose id or fingerprint is ``search`` (ids: a direct read; fingerprints: recent pages)."""
    found: list[AuditEvent] = []
    if valid_event_id(search):
        event = await svc.store.audit.get_event(search)
        if event is not None:
            found.append(event)
    cursor: str | None = None
    for _ in range(SEARCH_PAGES):
        events, cursor = await svc.store.audit.list_events(200, cursor=cursor, rule=rule, outcome=outcome)
        found += [e for e in events if e.fingerprint == search and e.event_id != search]
        if cursor is None or len(found) >= PAGE:
            break
    return found[:PAGE]
