"""A rule's steps, one after another, under the run's one lease (``steps:``; a rule's
single ``handler:`` is the one-step chain, run by the same code).

After a step the chain goes on as the step says: a success (or a ``noop``: its precheck
found nothing to do) follows ``on_success`` (``next``; ``done``; ``probe``: the rule's
probe passing ends the chain, else the next step), a failure ``on_failure`` (``stop``;
``next``). A ``page:`` step hands the chain to people: ``escalated``, with the results so
far. Each finished step is a ``step.finished`` entry of the timeline; in a chain of more
than one step, the timeline is stashed in the store before the next step starts, so a
job delivered again after a crash resumes after the last step that finished and never
runs a step that acted again (a step cut in its middle runs again: its precheck looks at
the target as it is then).
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

from remediator import clock
from remediator.handling.context import Resources
from remediator.handling.execution import execute
from remediator.metrics import Metrics
from remediator.models import Outcome, Result
from remediator.rules.rule import PlannedStep, page_words
from remediator.rules.ruleset import Plan
from remediator.settings import Settings
from remediator.store.base import Store
from remediator.worker import probe
from remediator.worker.contexts import handler_context
from remediator.worker.runs import Run
from remediator.worker.telling import Teller

END = -1  # ``step.finished``'s ``next`` when the chain ended with that step
DONE_WELL = (Outcome.SUCCEEDED, Outcome.NOOP)


@dataclass
class _Progress:
    """What the chain knows so far: each finished step's record, and whether a step acted
    and left the probe failing."""

    records: list[dict[str, Any]]
    probe_failing: bool = False

    @property
    def acted(self) -> bool:
        return any(r["outcome"] == Outcome.SUCCEEDED.value for r in self.records)


@dataclass(frozen=True, kw_only=True)
class Chain:
    """Runs a plan's steps for a run that holds the target's lease."""

    store: Store
    metrics: Metrics
    resources: Resources
    settings: Settings
    teller: Teller

    async def run(self, run: Run, plan: Plan, *, dry_run: bool, lost: asyncio.Event) -> Result:
        """The chain's result (a one-step chain: its handler's, probed as the rule says)."""
        if dry_run:
            return await self._dry_run(run, plan, lost)
        finished = run.finished_steps()
        progress = _Progress([_kept(step.data) for step in finished])
        progress.probe_failing = bool(finished and finished[-1].data.get("probe_failing"))
        index = int(finished[-1].data.get("next", END)) if finished else 0
        if finished:
            run.step(
                "chain.resumed", f"resumed after step {len(finished)}: the steps before it are not run again"
            )
            if not 0 <= index < len(plan.steps):  # it ended (outcome not recorded), or the
                return self._ended(plan, progress)  # rule was edited to fewer steps since
        self.teller.started(run, dry_run=False)
        result, stashed = await self._steps(run, plan, index, progress, lost)
        if stashed:  # a chain that ends leaves nothing to resume
            await self.store.audit.take_timeline(run.job.event_id)
        return result

    async def _steps(
        self, run: Run, plan: Plan, index: int, progress: _Progress, lost: asyncio.Event
    ) -> tuple[Result, bool]:
        """Run from step ``index`` until the chain ends: its result, and whether the timeline
        was stashed on the way."""
        stashed = False
        while True:
            step = plan.steps[index]
            if step.template.page is not None:
                return self._page(run, plan, step, progress), stashed
            result = await self._handler(run, plan, step, dry_run=False, lost=lost)
            after, final = await self._decide(run, plan, step, result, progress, lost)
            progress.records.append(self._record(run, plan, step, result, after, progress))
            if final is not None or after == END:
                return (final if final is not None else self._ended(plan, progress)), stashed
            await self._stash(run)
            stashed, index = True, after

    async def _decide(
        self,
        run: Run,
        plan: Plan,
        step: PlannedStep,
        result: Result,
        progress: _Progress,
        lost: asyncio.Event,
    ) -> tuple[int, Result | None]:
        """The next step's index (END: the chain ends), and its result when it ends now."""
        tpl, last = step.template, step.template.index + 1 >= len(plan.steps)
        after = END if last else tpl.index + 1
        if result.details.get("lease_lost"):
            return END, result
        if result.outcome not in DONE_WELL:
            if tpl.on_failure == "next" and not last:
                return after, None
            return END, self._one(plan, step, result, progress)
        if result.outcome is Outcome.NOOP:  # nothing to do here: as `next` would
            if last and progress.probe_failing:
                message = f"the probe still fails, and the last step found nothing to do: {result.message}"
                return END, self._one(plan, step, Result.failed(message), progress)
            return after, (self._one(plan, step, result, progress) if last else None)
        if tpl.on_success == "done":
            return END, self._one(plan, step, result, progress)
        if plan.probe is not None and (tpl.on_success == "probe" or last):
            within = run.known_rule.policy.verify_timeout
            checked = await probe.after(
                run, plan.probe, self.resources.http, result, within=within, lost=lost
            )
            if checked.outcome is Outcome.SUCCEEDED:
                return END, self._one(plan, step, checked, progress)
            progress.probe_failing = True
            if last or lost.is_set():
                return END, self._one(plan, step, checked, progress)
            return after, None
        return after, (self._one(plan, step, result, progress) if last else None)

    async def _handler(
        self, run: Run, plan: Plan, step: PlannedStep, *, dry_run: bool, lost: asyncio.Event
    ) -> Result:
        rule, tpl = run.known_rule, step.template
        handler, params = tpl.handler, step.params
        if handler is None or params is None:
            raise RuntimeError("a page step runs no handler")
        timeout = tpl.timeout or rule.policy.timeout
        ctx = handler_context(run, self.resources, dry_run=dry_run, timeout=timeout)
        data: dict[str, Any] = {"dry_run": dry_run}
        if rule.chained:
            data["step"] = tpl.index + 1
        run.step("handler.started", handler.name, **data)
        run.log.info("remediation.started", handler=handler.name, dry_run=dry_run, step=tpl.index + 1)
        started = clock.monotonic()
        result = await execute(handler, params, ctx, timeout=timeout, lease_lost=lost)
        elapsed = clock.monotonic() - started
        run.step("handler.finished", result.outcome.value, seconds=round(elapsed, 3), **data)
        self.metrics.handler_duration.labels(handler.name).observe(elapsed)
        result.details.setdefault("duration_seconds", round(elapsed, 3))
        if dry_run and result.outcome is Outcome.SUCCEEDED:
            return Result.failed("handler acted although dry-run was on (handler bug)")
        if dry_run and result.outcome is Outcome.FAILED:
            # The precheck could not read the target (e.g. `make run` far from the cluster):
            # a dry run still shows what it would do, from the params alone.
            return Result.dry_run(
                handler.plan(params),
                f"dry run; the precheck failed, so this plan is from the params alone: {result.message}",
                precheck_error=result.message,
                **result.details,
            )
        return result

    def _record(
        self, run: Run, plan: Plan, step: PlannedStep, result: Result, after: int, progress: _Progress
    ) -> dict[str, Any]:
        """The step's result, in the timeline (``step.finished``, which a resumed chain
        reads) when the rule has several steps."""
        tpl, total = step.template, len(plan.steps)
        record = {
            "step": tpl.index + 1,
            "handler": tpl.name,
            "outcome": result.outcome.value,
            "message": result.message,
            "next": after,
            "probe_failing": progress.probe_failing,
        }
        if run.known_rule.chained:
            then = "the chain ends" if after == END else f"next: step {after + 1}/{total}"
            kept = {key: value for key, value in record.items() if key != "message"}
            run.step(
                "step.finished",
                f"step {tpl.index + 1}/{total} {tpl.name}: {result.outcome.value}: {result.message}; {then}",
                result=result.message,
                **kept,
            )
        return record

    def _one(self, plan: Plan, step: PlannedStep, result: Result, progress: _Progress) -> Result:
        """The chain's result when it ends with ``step``'s ``result``: as is for a one-step
        rule; in a chain, named after its step, ``succeeded`` if any step acted, with
        each step's result in ``details.steps``."""
        if len(plan.steps) == 1:
            return result
        tpl = step.template
        outcome = result.outcome
        if outcome is Outcome.NOOP and progress.acted:
            outcome = Outcome.SUCCEEDED
        message = f"step {tpl.index + 1}/{len(plan.steps)} {tpl.name}: {result.message}"
        records = [*progress.records, _brief(step, result)]
        return result.model_copy(
            update={"outcome": outcome, "message": message, "details": {**result.details, "steps": records}}
        )

    def _ended(self, plan: Plan, progress: _Progress) -> Result:
        """A resumed chain whose last step had ended it (its outcome not yet recorded)."""
        last = progress.records[-1]
        text = f"step {last['step']}/{len(plan.steps)} {last['handler']}: {last['message']}"
        if last["outcome"] in (Outcome.SUCCEEDED.value, Outcome.NOOP.value) and not progress.probe_failing:
            return Result(
                outcome=Outcome.SUCCEEDED if progress.acted else Outcome.NOOP,
                message=text,
                details={"steps": progress.records},
            )
        return Result.failed(text, steps=progress.records)

    def _page(self, run: Run, plan: Plan, step: PlannedStep, progress: _Progress) -> Result:
        """People as the last step: ``escalated`` with the results so far."""
        page = step.template.page
        if page is None:
            raise RuntimeError("not a page step")
        tried = "; ".join(
            f"step {r['step']} {r['handler']}: {r['outcome']}: {r['message']}" for r in progress.records
        )
        words = page_words(page)
        at = f"step {step.template.index + 1}/{len(plan.steps)}"
        run.step("page", f"{at}: {words}", slack=page.slack, pagerduty=page.pagerduty)
        run.log.warning("remediation.paged", slack=page.slack, pagerduty=page.pagerduty)
        message = f"handed to a person after {len(progress.records)} step(s): {tried}"
        return Result(
            outcome=Outcome.ESCALATED,
            message=message,
            details={"steps": progress.records, "page": {"slack": page.slack, "pagerduty": page.pagerduty}},
        )

    async def _dry_run(self, run: Run, plan: Plan, lost: asyncio.Event) -> Result:
        """The whole chain rendered: each handler step's plan (its precheck may look), the
        page step's words; nothing is done."""
        self.teller.started(run, dry_run=True)
        if len(plan.steps) == 1:
            return await self._handler(run, plan, plan.steps[0], dry_run=True, lost=lost)
        lines: list[str] = []
        records = []
        total = len(plan.steps)
        for step in plan.steps:
            tpl = step.template
            head = f"step {tpl.index + 1}/{total} {tpl.name}"
            if tpl.handler is None:
                lines.append(f"{head}: {page_words(tpl.page)}")
                continue
            result = await self._handler(run, plan, step, dry_run=True, lost=lost)
            if tpl.index + 1 < total:
                head += f" (on success: {tpl.on_success}, on failure: {tpl.on_failure})"
            lines.extend(f"{head}: {line}" for line in (result.plan or [result.message]))
            records.append(_brief(step, result))
        return Result.dry_run(lines, f"dry run of {total} steps: plan rendered, nothing done", steps=records)

    async def _stash(self, run: Run) -> None:
        """Keep the timeline so far: a delivery after a crash resumes after this step."""
        data = json.dumps([step.model_dump(mode="json") for step in run.timeline])
        await self.store.audit.stash_timeline(run.job.event_id, data, self.settings.audit_retention)


def _kept(data: dict[str, Any]) -> dict[str, Any]:
    """A step's record as a ``step.finished`` entry kept it."""
    record = {key: value for key, value in data.items() if key != "result"}
    record["message"] = data.get("result", "")
    return record


def _brief(step: PlannedStep, result: Result) -> dict[str, Any]:
    return {
        "step": step.template.index + 1,
        "handler": step.template.name,
        "outcome": result.outcome.value,
        "message": result.message,
    }
