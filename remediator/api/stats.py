"""Per-rule statistics over a window, computed from the audit (``GET /api/v1/stats``).

Read with the audit's own query, newest first, until the events are older than the
window: no store keeps a second copy of these numbers. The answer covers what the audit
still holds (REMEDIATOR_AUDIT_MAX_EVENTS, REMEDIATOR_AUDIT_RETENTION).
"""

from __future__ import annotations

import math
import statistics
import time
from collections import Counter, defaultdict

from remediator.api.audit_models import RepairTimes, RuleStats, Stats
from remediator.models import AuditEvent, Outcome
from remediator.store.base import Audit

PAGE = 500
# Events are listed in the order they were recorded; replicas' clocks may disagree a little,
# so reading goes on until an event is this much older than the window's start.
CLOCK_SLACK = 60.0


async def window_events(audit: Audit, since: float) -> list[AuditEvent]:
    """Every event the audit holds that finished at or after ``since``."""
    found: list[AuditEvent] = []
    cursor: str | None = None
    while True:
        events, cursor = await audit.list_events(PAGE, cursor=cursor)
        found += [e for e in events if e.finished_at >= since]
        if cursor is None or not events or events[-1].finished_at < since - CLOCK_SLACK:
            return found


async def compute(audit: Audit, window: str, seconds: float, now: float | None = None) -> Stats:
    until = time.time() if now is None else now
    since = until - seconds
    by_rule: dict[str, list[AuditEvent]] = defaultdict(list)
    events = await window_events(audit, since)
    for event in events:
        by_rule[event.rule].append(event)
    return Stats(
        window=window,
        window_seconds=seconds,
        since=since,
        until=until,
        events=len(events),
        rules=[rule_stats(name, by_rule[name]) for name in sorted(by_rule)],
    )


def rule_stats(rule: str, events: list[AuditEvent]) -> RuleStats:
    outcomes = Counter(e.outcome_label for e in events)
    succeeded = outcomes[Outcome.SUCCEEDED.value]
    # a runbook that reached its page: step did not repair it either
    failed = outcomes[Outcome.FAILED.value] + outcomes[Outcome.ESCALATED.value]
    repairs = sorted(e.time_to_repair for e in events if e.time_to_repair is not None)
    return RuleStats(
        rule=rule,
        runs=len(events),
        outcomes=dict(sorted(outcomes.items())),
        success_rate=round(succeeded / (succeeded + failed), 4) if succeeded + failed else None,
        time_to_repair=RepairTimes(
            count=len(repairs),
            median_seconds=round(statistics.median(repairs), 3) if repairs else None,
            p90_seconds=percentile(repairs, 0.9),
        ),
        circuits_opened=sum(1 for e in events if opened_circuit(e)),
    )


def percentile(ordered: list[float], fraction: float) -> float | None:
    """Nearest rank: the smallest value with at least ``fraction`` of the values at or below it."""
    if not ordered:
        return None
    return round(ordered[max(0, math.ceil(fraction * len(ordered)) - 1)], 3)


def opened_circuit(event: AuditEvent) -> bool:
    """The run whose failure opened its circuit (the outcome recorder marks its timeline)."""
    return any(step.name == "circuit.opened" for step in event.timeline)
