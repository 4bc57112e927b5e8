"""One job on its way through the pipeline: what every stage reads and fills in."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from remediator import clock
from remediator.models import Gathered, Job, Result, Step
from remediator.rules.resolving import PodRef
from remediator.rules.ruleset import Plan, Rule
from remediator.store.values import Delivery


@dataclass
class Run:
    """One job on its way through the pipeline: every stage reads this object.

    ``rule`` is set once the job's rule is found, ``plan`` once its templates rendered
    (a ``resolve:`` rule: ``pod`` first, then ``plan`` once the pod's owner is found;
    ``gone``: why not, the pod being gone),
    ``token`` while the target's lease is held,
    ``slot`` while a concurrency slot is held (both given back by the outcome's store
    call, or by ``lease.release``). ``result`` is the job's result once it is known: the
    handler's, or a failure before any handler ran; the outcome stage records it.
    """

    delivery: Delivery
    consumer: str
    log: Any  # structlog BoundLogger with the job's ids bound
    timeline: list[Step] = field(default_factory=list)
    rule: Rule | None = None
    plan: Plan | None = None
    pod: PodRef | None = None  # the pod a ``resolve:`` rule names
    gone: str = ""  # that pod is gone (the job ends skipped:gone)
    token: str | None = None
    slot: str | None = None
    result: Result | None = None
    acted: bool = False  # the handler ran (the outcome counts failures, cooldowns, retries)
    precheck: str = ""  # the target's state as the precheck before the approval saw it
    carried: list[Step] = field(default_factory=list)  # of an earlier delivery or pass
    context: list[Gathered] = field(default_factory=list)  # the rule's context: (gathering.py)
    pauses_seen: int = -1  # the version of the pauses the job was checked against
    collapsed: int = 0  # deliveries collapsed into this job at intake, as last seen
    hand_over: bool = False  # the worker wants its next job with this one's outcome...
    next: Delivery | None = None  # ...and this is it (claimed for this worker)

    @property
    def job(self) -> Job:
        return self.delivery.job

    @property
    def known_rule(self) -> Rule:
        """The rule; only asked for by stages that run after it was found."""
        if self.rule is None:
            raise RuntimeError("no rule yet: this stage runs after the rule is found")
        return self.rule

    @property
    def target(self) -> str:
        """The rendered target, or ``""`` when the templates did not render."""
        return self.plan.target if self.plan is not None else ""

    @property
    def automatic(self) -> bool:
        """A firing alert from Alertmanager, not a manual replay: the episode checks apply."""
        return self.job.alert.status == "firing" and not self.job.manual

    def step(self, name: str, message: str = "", **data: Any) -> None:
        self.timeline.append(Step(at=clock.now(), name=name, message=message, data=data))

    def finished_steps(self) -> list[Step]:
        """The chain's steps an earlier delivery of this attempt finished (``step.finished``,
        kept across a crash or a shutdown between two steps): the chain resumes after the
        last one. A retry starts a new attempt: steps before it do not count."""
        found: list[Step] = []
        for step in reversed(self.carried):
            if step.name == "retry":
                break
            if step.name == "step.finished":
                found.append(step)
        return found[::-1]
