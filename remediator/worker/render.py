"""The render stage: the rule's templates, rendered once per run into the plan (target,
params, probe). Pure: a job whose templates do not render goes on with no plan and its
failure known (``run.result``); the check-only admission then asks whether it still
matters (the alert may have resolved, its episode been repaired), and the outcome stage
records it. A ``resolve:`` rule renders the pod it names here (``run.pod``); its plan is
rendered once the pod's owner is found (``owners.ResolveOwner``)."""

from __future__ import annotations

from remediator.errors import TemplateError
from remediator.models import Result
from remediator.rules.rule import render_pod
from remediator.rules.ruleset import render
from remediator.worker.runs import Run
from remediator.worker.stages import Stop


class Render:
    """Sets ``run.plan``, or ``run.result`` (failed) when a template does not render."""

    async def __call__(self, run: Run) -> Stop | None:
        rule = run.known_rule
        try:
            if rule.resolve is not None:
                run.pod = render_pod(rule, run.job.alert)
                return None
            run.plan = render(rule, run.job.alert)
        except TemplateError as exc:
            run.result = Result.failed(f"cannot render rule {rule.name!r}: {exc}")
            return None
        run.log = run.log.bind(target=run.plan.target)
        return None
