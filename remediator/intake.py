"""The intake: a webhook payload becomes one job per (alert, matching rule), stored before
the webhook answers. Not HTTP: the Alertmanager route, the admin replays and the
console hand it payloads."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from prometheus_client import Counter

from remediator import clock
from remediator.metrics import Metrics
from remediator.models import Alert, NewJob, WebhookPayload, new_event_id
from remediator.rules.ruleset import RuleSet
from remediator.store.base import Store

# The intake metrics' ``source`` label: who sent the alerts (an admin replay is "manual").
SOURCES = ("alertmanager", "grafana", "manual")


@dataclass(frozen=True)
class Accepted:
    event_ids: list[str]  # the jobs queued
    unmatched: int
    deduplicated: int = 0  # jobs not queued: the same one is already queued, running or done


@dataclass(frozen=True, kw_only=True)
class ManualOptions:
    note: str = ""
    dry_run: bool | None = None
    ignore_cooldown: bool = False
    ignore_circuit: bool = False
    requested_by: str = ""  # the authenticated name of who asked (admin API)


class Intake:
    def __init__(self, store: Store, rules: Callable[[], RuleSet], metrics: Metrics) -> None:
        self._store = store
        self._rules = rules
        self._metrics = metrics
        self._received = {
            (status, source): metrics.alerts_received.labels(status, source)
            for status in ("firing", "resolved")
            for source in SOURCES
        }
        self._unmatched = {source: metrics.alerts_unmatched.labels(source) for source in SOURCES}
        self._deduplicated: dict[str, Counter] = {}  # rule -> its counter child (labels() costs)

    def plan_jobs(
        self,
        payload: WebhookPayload,
        manual: ManualOptions | None = None,
        raw_alerts: list[dict[str, Any]] | None = None,
    ) -> tuple[list[NewJob], int]:
        """Match every alert against the current rules (pure; no I/O).

        ``raw_alerts`` are the alerts as received (same order), stored as they came.
        """
        rules, now, jobs, unmatched = self._rules(), clock.now(), list[NewJob](), 0
        for index, alert in enumerate(payload.alerts):
            matched = rules.match(alert)
            if not matched:
                unmatched += 1
            raw = raw_alerts[index] if raw_alerts is not None else None
            for rule in matched:
                jobs.append(_job(rule.name, alert, raw, payload, now, manual))
        return jobs, unmatched

    async def accept(
        self,
        payload: WebhookPayload,
        manual: ManualOptions | None = None,
        raw_alerts: list[dict[str, Any]] | None = None,
    ) -> Accepted:
        """Index the alerts and store the jobs; raises StoreUnavailable if it cannot."""
        jobs, unmatched = self.plan_jobs(payload, manual, raw_alerts)
        firing = [a for a in payload.alerts if a.status == "firing"]
        resolved = [a for a in payload.alerts if a.status == "resolved"]
        if manual is None:
            dropped = set(await self._store.intake.accept_collapsing(jobs, firing, resolved))
        else:
            await self._store.intake.accept(jobs, [], [])
            dropped = set()
        source = "manual" if manual is not None else payload.source
        if firing:
            self._received["firing", source].inc(len(firing))
        if resolved:
            self._received["resolved", source].inc(len(resolved))
        if unmatched:
            self._unmatched[source].inc(unmatched)
        queued = []
        for job in jobs:
            if job.event_id not in dropped:
                queued.append(job.event_id)
                continue
            counter = self._deduplicated.get(job.rule)
            if counter is None:
                counter = self._deduplicated[job.rule] = self._metrics.alerts_deduplicated.labels(job.rule)
            counter.inc()
        return Accepted(queued, unmatched, len(dropped))


def _job(
    rule: str,
    alert: Alert,
    raw: dict[str, Any] | None,
    payload: WebhookPayload,
    now: float,
    manual: ManualOptions | None,
) -> NewJob:
    """The job of one (alert, rule); a manual one carries who asked and what to ignore."""
    options: dict[str, Any] = {}
    if manual is not None:
        options = {
            "manual": True,
            "note": manual.note,
            "dry_run": manual.dry_run,
            "ignore_cooldown": manual.ignore_cooldown,
            "ignore_circuit": manual.ignore_circuit,
            "requested_by": manual.requested_by,
        }
    return NewJob(
        event_id=new_event_id(),
        rule=rule,
        alert=alert,
        raw_alert=raw,
        received_at=now,
        external_url=payload.external_url,
        source=payload.source,
        receiver=payload.receiver,
        **options,
    )
