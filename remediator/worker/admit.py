"""The admission stages: the store's state asked in one call (``store.admit``).

The alert still fires, its episode is not yet repaired, the target is not in cooldown,
its circuit is closed; then (``take``) the target's lease and the rule's concurrency slot
are taken and the job is marked running. The pause check (``gates.Paused``) runs before,
in memory: the call also checks that the pauses it saw are still the current ones, and
if not, they are read again and the job checked again.

These checks are written once, in the store (``store.stepwise`` and the ADMIT script).
``Admit(take=False)`` asks them without taking anything: the check-only admission of a
rule with ``inhibited_by`` (before it waits on a blocker), of a rule that wants a human's
yes (before it asks), and of a job whose templates did not render (before it is failed).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass

from remediator import clock
from remediator.durations import human_duration
from remediator.metrics import Metrics
from remediator.models import SkipReason
from remediator.store.admission import Admission, Admitted
from remediator.store.base import Store
from remediator.worker.gates import Paused
from remediator.worker.runs import Run
from remediator.worker.stages import Defer, Skip, Stop

_AGAIN = 3  # pause changes in a row before the job waits a moment instead
RESOLVED_BEFORE_RUN = "the alert resolved before the job ran"
EPISODE_DONE = "already remediated for this firing episode"


def in_cooldown(left: float) -> str:
    return f"in cooldown for {human_duration(left)} more (replay with --ignore-cooldown to override)"


def circuit_open(max_attempts: int, left: float) -> str:
    return (
        f"circuit open after {max_attempts} failures; closes in "
        f"{human_duration(left)} (replay with --ignore-circuit to override)"
    )


def at_limit(group: str, limit: int) -> str:
    return f"concurrency group {group!r} is at its limit ({limit})"


@dataclass(frozen=True)
class Admit:
    """Let the job through (holding the lease when ``take``) or say the first thing that
    stops it. ``when`` (check-only): the jobs this stage asks for; the others pass."""

    store: Store
    metrics: Metrics
    paused: Paused
    replica: str
    _: KW_ONLY
    take: bool
    when: Callable[[Run], bool] | None = None

    async def __call__(self, run: Run) -> Stop | None:
        if self.when is not None and not self.when(run):
            return None
        if self.take and run.result is not None:  # failed before acting: nothing to take
            return None
        for _ in range(_AGAIN):
            ask = self._ask(run)
            answer = await self.store.admit(ask)
            if answer.stop != "pauses_changed":
                return self._answer(run, ask, answer)
            await self.paused.book.refresh()
            if (stop := await self.paused(run)) is not None:
                return stop
        first = run.job.first_deferred_at or clock.now()
        return Defer("paused", "waiting: the pauses kept changing while the job was checked", first, 0.5)

    def _ask(self, run: Run) -> Admission:
        job, policy = run.job, run.known_rule.policy
        group = policy.concurrency_group if self.take else ""
        return Admission(
            job=job,
            target=run.target,
            pauses=run.pauses_seen,
            automatic=run.automatic,
            check_cooldown=not job.ignore_cooldown,
            check_circuit=not job.ignore_circuit,
            lease=policy.lease if self.take else 0.0,
            group=group or "",
            limit=run.known_rule.concurrency_limit if group else 0,
            slot=secrets.token_hex(8) if group else "",
            running=f"on {self.replica}",
        )

    def _answer(self, run: Run, ask: Admission, answer: Admitted) -> Stop | None:
        rule, target = run.known_rule, run.target
        match answer.stop:
            case "":
                run.collapsed = answer.copies
                if self.take:
                    run.token = answer.token
                    run.slot = ask.slot or None
                    run.step("lease.acquired", target, ttl=rule.policy.lease)
                return None
            case "resolved":
                return Skip(SkipReason.RESOLVED, RESOLVED_BEFORE_RUN)
            case "duplicate":
                return Skip(SkipReason.DUPLICATE, EPISODE_DONE)
            case "cooldown":
                return Skip(SkipReason.COOLDOWN, in_cooldown(answer.left))
            case "circuit":
                self.metrics.circuit_open.labels(rule.name).set(1)
                return Skip(SkipReason.CIRCUIT_OPEN, circuit_open(rule.policy.max_attempts, answer.left))
            case "concurrency":
                group = rule.policy.concurrency_group or ""
                return Skip(SkipReason.CONCURRENCY, at_limit(group, rule.concurrency_limit))
            case _:  # locked
                return self._locked(run, answer)

    def _locked(self, run: Run, answer: Admitted) -> Stop:
        rule, target = run.known_rule, run.target
        self.metrics.lease_contention.labels(rule.name).inc()
        if run.delivery.deliveries > 1:
            # Re-delivered after a crash: the dead worker's lease must expire first.
            return Defer("locked", "waiting for a stale lease", clock.now(), answer.left + 0.5)
        if answer.holder:
            holder = answer.holder
            run.step("lease.held", f"by event {holder}", holder=holder)
            return Skip(
                SkipReason.LOCKED,
                f"merged into event {holder} running on target {target} (see: remediator event {holder})",
            )
        # taken by an older replica that names no holder
        return Skip(SkipReason.LOCKED, f"merged into the run that holds the lease on target {target}")
