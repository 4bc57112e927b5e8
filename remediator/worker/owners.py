"""The resolve stage: a ``resolve:`` rule's target is the workload that owns the alert's
pod, found before any lease (so two pods of one Deployment share one lease).

The render stage rendered the pod the alert names (``run.pod``); this stage asks the
registered resolver (``handling/owners.py``; the ``handlers`` package asks Kubernetes) and
renders the rule's target, params and probe with ``owner``. A pod already gone ends the job
``skipped:gone`` (not a failure: crash-looping pods are replaced all the time); a pod with
no controlling owner, or an API error, fails it with the reason (before any handler ran,
so it does not count toward the circuit). Rules without ``resolve:`` pass untouched.
"""

from __future__ import annotations

import time

import structlog

from remediator.errors import TemplateError
from remediator.handling.context import Context, Resources
from remediator.handling.owners import PodGone
from remediator.models import Result, SkipReason
from remediator.rules.ruleset import render
from remediator.worker.runs import Run
from remediator.worker.stages import Skip, Stop

RESOLVE_TIMEOUT = 30.0  # seconds for the few reads from a pod to its owner


class ResolveOwner:
    """Sets ``run.plan`` of a ``resolve:`` rule from the pod's owner; Skip ``gone``."""

    def __init__(self, resources: Resources) -> None:
        self.resources = resources

    async def __call__(self, run: Run) -> Stop | None:
        if run.known_rule.resolve is None or run.plan is not None or run.result is not None:
            return None
        if run.gone:
            return Skip(SkipReason.GONE, run.gone)
        if (failed := await self.resolve(run)) is not None:
            run.result = failed
        return Skip(SkipReason.GONE, run.gone) if run.gone else None

    async def resolve(self, run: Run) -> Result | None:
        """Find the owner and render the plan; the failure, if any (``run.gone``: the pod is
        gone). Also called, best effort, to announce a resolved alert in its target's thread."""
        rule, pod = run.known_rule, run.pod
        resolving = rule.resolve
        if resolving is None or pod is None:
            return None
        if resolving.resolver is None:
            return Result.failed(f"rule {rule.name!r}: resolve: no owner resolver is registered")
        ctx = Context(
            event_id=run.job.event_id,
            rule=rule.name,
            target=f"pod/{pod.namespace}/{pod.pod}",
            alert=run.job.alert,
            dry_run=True,  # resolving only reads
            deadline=time.monotonic() + min(RESOLVE_TIMEOUT, rule.policy.timeout),
            verify_timeout=0.0,
            log=run.log,
            resources=self.resources,
            timeline=run.timeline,
        )
        try:
            owner = await resolving.resolver(pod.namespace, pod.pod, ctx)
        except PodGone as exc:
            run.gone = str(exc)
            return None
        except Exception as exc:  # a handler error, a timeout: the job fails with the reason
            structlog.get_logger("remediator.worker.owners").debug("resolve.failed", error=repr(exc))
            return Result.failed(f"cannot resolve the owner of {pod}: {exc or type(exc).__name__}")
        run.step("resolve", owner.describe(), owner=owner.as_context())
        try:
            run.plan = render(rule, run.job.alert, owner)
        except TemplateError as exc:
            return Result.failed(f"cannot render rule {rule.name!r} for the owner {owner.describe()}: {exc}")
        run.log = run.log.bind(target=run.plan.target)
        return None
