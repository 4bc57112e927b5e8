"""The state of one job while it is processed, and what a gate may answer about it."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Protocol

from remediator.models import Job, SkipReason, Step
from remediator.rules.ruleset import Plan, Rule
from remediator.store.values import Delivery


@dataclass
class Run:
    """One job on its way through the pipeline: every gate and stage reads this object.

    ``rule`` is set once the job's rule is found, ``plan`` once its templates rendered,
    ``token`` while the target's lease is held, ``slot`` while a concurrency slot is held
    (both given back by the outcome's store call, or by ``lease.release``).
    """

    delivery: Delivery
    consumer: str
    log: Any  # structlog BoundLogger with the job's ids bound
    timeline: list[Step] = field(default_factory=list)
    rule: Rule | None = None
    plan: Plan | None = None
    token: str | None = None
    slot: str | None = None
    carried: list[Step] = field(default_factory=list)  # of a delivery cut by a shutdown
    pauses_seen: int = -1  # the version of the pauses the job was checked against
    copies: int = 0  # deliveries collapsed into this job at intake, as last seen
    hand_over: bool = False  # the worker wants its next job with this one's outcome...
    next: Delivery | None = None  # ...and this is it (claimed for this worker)

    @property
    def job(self) -> Job:
        return self.delivery.job

    @property
    def known_rule(self) -> Rule:
        """The rule; only asked for by gates that run after it was found."""
        if self.rule is None:
            raise RuntimeError("no rule yet: this gate runs after the rule is found")
        return self.rule

    @property
    def target(self) -> str:
        """The rendered target, or ``""`` before the plan exists."""
        return self.plan.target if self.plan is not None else ""

    @property
    def automatic(self) -> bool:
        """A firing alert from Alertmanager, not a manual replay: the episode gates apply."""
        return self.job.alert.status == "firing" and not self.job.manual

    def step(self, name: str, message: str = "", **data: Any) -> None:
        self.timeline.append(Step(at=time.time(), name=name, message=message, data=data))


@dataclass(frozen=True)
class Skip:
    """Stop here: the job is recorded as ``skipped:<reason>`` with this message."""

    reason: SkipReason
    message: str


@dataclass(frozen=True)
class Defer:
    """Not yet: put the job back to wait ``delay`` seconds (None: DEFER_INTERVAL).

    ``reason`` labels the ``deferred`` metric; ``first`` is when the waiting began
    (kept across deferrals, so a gate can give up after a while). ``job``: the job to
    queue instead (a retry counts its attempt there). ``hold``: held by a pause or a
    maintenance window (released at once when a pause is lifted).
    """

    reason: str
    message: str
    first: float
    delay: float | None = None
    job: Job | None = None
    hold: bool = False


Stop = Skip | Defer


class Gate(Protocol):
    """One check before the handler may act. Returns why to stop, or None to go on."""

    async def check(self, run: Run) -> Stop | None: ...


async def first_stop(gates: list[Gate], run: Run) -> Stop | None:
    """Run ``gates`` in order; the first that stops the job wins."""
    for gate in gates:
        stop = await gate.check(run)
        if stop is not None:
            return stop
    return None
