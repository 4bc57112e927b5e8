"""What a handler's phases receive from the worker: the ``Context`` of one run's step."""

from __future__ import annotations

from remediator import clock
from remediator.handling.context import Context, Resources
from remediator.worker.runs import Run


def handler_context(run: Run, resources: Resources, *, dry_run: bool, timeout: float) -> Context:
    """The context of a handler (or its precheck alone) run for ``run``, due in ``timeout``."""
    job, rule = run.job, run.known_rule
    return Context(
        event_id=job.event_id,
        rule=rule.name,
        target=run.target,
        alert=job.alert,
        dry_run=dry_run,
        deadline=clock.monotonic() + timeout,
        verify_timeout=rule.policy.verify_timeout,
        log=run.log,
        resources=resources,
        timeline=run.timeline,
    )
