"""The precheck stage: before an approval is asked, the first step's precheck looks at the
target, so whoever approves sees its current state (``Run.precheck``, carried by the
approval request). A precheck that finds nothing to do ends the job ``noop`` (a refusal
``failed``) without asking anyone; one that cannot look says so in the request, and the
job still asks. After the approval the precheck runs again, under the lease, before the
handler acts (the act stage runs the handler's three phases together).

Only for a run that will ask for approval: other runs look once, under the lease.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from remediator.handling.context import Resources
from remediator.handling.execution import execute_precheck
from remediator.models import Result
from remediator.worker.contexts import handler_context
from remediator.worker.runs import Run
from remediator.worker.stages import Stop


@dataclass(frozen=True, kw_only=True)
class Precheck:
    """Sets ``run.precheck`` (the state in words), or ``run.result`` when there is nothing to do."""

    resources: Resources
    asks: Callable[[Run], bool]  # the run will ask for approval

    async def __call__(self, run: Run) -> Stop | None:
        plan = run.plan
        if run.result is not None or plan is None or not self.asks(run):
            return None
        if run.job.approval or run.finished_steps():  # asked already, or a chain resumed
            return None
        step = plan.steps[0]
        handler, params = step.template.handler, step.params
        if handler is None or params is None:
            return None
        timeout = step.template.timeout or run.known_rule.policy.timeout
        ctx = handler_context(run, self.resources, dry_run=False, timeout=timeout)
        checked = await execute_precheck(handler, params, ctx, timeout=timeout)
        if isinstance(checked, Result):  # failed: it could not look
            run.precheck = f"the precheck could not read the target: {checked.message}"
            run.step("precheck", run.precheck, handler=handler.name, looked=False)
            return None
        run.precheck = checked.state
        run.step("precheck", checked.state, handler=handler.name, looked=True)
        if checked.done is not None:  # nothing to do (noop), or a refusal (failed):
            run.result = checked.done  # the handler's answer, recorded as if it ran under the
            run.acted = True  # lease (a refusal counts toward the circuit), nobody asked
        return None
