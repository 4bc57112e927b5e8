"""Webhook payload -> one job per (alert, matching rule), stored before we answer."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from remediator.metrics import Metrics
from remediator.models import Alert, Job, WebhookPayload, new_event_id
from remediator.rules import RuleSet
from remediator.store import Store


@dataclass(frozen=True)
class Accepted:
    event_ids: list[str]
    unmatched: int


@dataclass(frozen=True, kw_only=True)
class ManualOptions:
    note: str = ""
    dry_run: bool | None = None
    ignore_cooldown: bool = False
    ignore_circuit: bool = False


class Intake:
    def __init__(self, store: Store, rules: Callable[[], RuleSet], metrics: Metrics) -> None:
        self._store = store
        self._rules = rules
        self._metrics = metrics

    def plan_jobs(
        self, payload: WebhookPayload, manual: ManualOptions | None = None
    ) -> tuple[list[Job], int]:
        """Match every alert against the current rules (pure; no I/O)."""
        rules, now, jobs, unmatched = self._rules(), time.time(), [], 0
        for alert in payload.alerts:
            matched = rules.match(alert)
            if not matched:
                unmatched += 1
            for rule in matched:
                jobs.append(_job(rule.name, alert, payload, now, manual))
        return jobs, unmatched

    async def accept(
        self, payload: WebhookPayload, manual: ManualOptions | None = None
    ) -> Accepted:
        """Index the alerts and store the jobs; raises StoreUnavailable if it cannot."""
        jobs, unmatched = self.plan_jobs(payload, manual)
        firing = [a for a in payload.alerts if a.status == "firing"]
        resolved = [a for a in payload.alerts if a.status == "resolved"]
        await self._store.accept(jobs, firing if manual is None else [], resolved if manual is None else [])
        for alert in payload.alerts:
            self._metrics.alerts_received.labels(alert.status).inc()
        if unmatched:
            self._metrics.alerts_unmatched.inc(unmatched)
        return Accepted([job.event_id for job in jobs], unmatched)


def _job(
    rule: str, alert: Alert, payload: WebhookPayload, now: float, manual: ManualOptions | None
) -> Job:
    fields: dict[str, object] = {
        "event_id": new_event_id(), "rule": rule, "alert": alert, "received_at": now,
        "external_url": payload.external_url, "receiver": payload.receiver,
    }
    if manual is not None:
        fields.update(manual=True, note=manual.note, dry_run=manual.dry_run,
                      ignore_cooldown=manual.ignore_cooldown, ignore_circuit=manual.ignore_circuit)
    # Built from validated parts: skip re-validation on the hot path.
    return Job.model_construct(**fields)  # type: ignore[arg-type]
