"""The blast-radius brake (``max_targets``): a rule acts on at most ``count`` distinct
targets within ``within``; the job of each further target is held (``held:brake``) until
an operator releases it.

The stage runs right after the admission that takes the lease, so what counts is each
distinct target admitted to run, whatever its outcome (dry runs too: the brake shows
before a rule goes live). Manual replays and jobs that failed before acting do not count.
The first job held of an empty brake opens it: people are told once (Slack and
PagerDuty) and ``remediator_brakes_opened_total`` counts it. A held job comes back every
DEFER_INTERVAL (a held job whose alert resolved meanwhile is ``skipped:resolved`` by the
admission before this stage); only ``store.brakes.release`` lets it through.
"""

from __future__ import annotations

from dataclasses import dataclass

from remediator import clock
from remediator.durations import format_duration
from remediator.metrics import Metrics
from remediator.settings import Settings
from remediator.store.base import Brakes
from remediator.worker.runs import Run
from remediator.worker.stages import Defer, Stop
from remediator.worker.telling import Teller


def held_message(rule: str, count: int, within: float) -> str:
    """Why a job is held, as the jobs view and the timeline show it."""
    return (
        f"held:brake: rule {rule} already acted on {count} distinct targets within "
        f"{format_duration(within)} (max_targets); an operator releases it: "
        f"remediator brakes release {rule}"
    )


@dataclass(frozen=True)
class Brake:
    """Count the admitted job's target, or hold the job (the lease is given back)."""

    brakes: Brakes
    metrics: Metrics
    teller: Teller
    settings: Settings

    async def __call__(self, run: Run) -> Stop | None:
        rule = run.known_rule
        brake = rule.policy.brake
        if brake is None or run.job.manual or run.result is not None or not run.target:
            return None
        count, within = brake
        dry_run = self.settings.dry_run or rule.policy.dry_run or bool(run.job.dry_run)
        answer = await self.brakes.enter(
            rule.name, run.job.event_id, run.target, count=count, within=within, dry_run=dry_run
        )
        if answer.verdict == "pass":
            return None
        if answer.verdict == "released":
            run.step("brake.released", "released by an operator from the rule's brake")
            run.log.info("remediation.brake_released")
            return None
        if answer.verdict == "opened":
            self.metrics.brakes_opened.labels(rule.name).inc()
            self.teller.brake_opened(run, wanted=answer.counted + 1, within=within, dry_run=dry_run)
            run.log.warning("remediation.brake_opened", counted=answer.counted, max_targets=count)
        first = run.job.first_deferred_at or clock.now()
        message = held_message(rule.name, answer.counted, within)
        return Defer("brake", message, first, delay=self.settings.defer_interval, hold=True)
