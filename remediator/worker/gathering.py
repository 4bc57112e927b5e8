"""The context stage: a rule's ``context:`` gathered before anyone acts or is asked.

It runs after the check-only admission (``admit.py``) and the inhibition gate, so a job
skipped for its cooldown, an open circuit or a repaired episode fetches nothing. Every entry
is gathered at once, each under its own ``timeout``; its text is bounded (``MAX_TEXT``
characters: a log keeps its end, the others their start) and secrets in it are redacted
(``redaction.py``) before it goes anywhere. A failed gathering is noted in its entry, never
fatal: the job goes on.

What was gathered is one ``context`` step of the run's timeline (its data holds the
entries), so it is kept with the timeline across deliveries: a job delivered again (an
approval asked, a retry, a crash, a lease that was busy) finds it there and gathers nothing
twice, nor posts it twice. People see it in the Slack thread (a reply; with an approval, in
the request itself), in the audit event and the console, and in the approval request.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from remediator import clock
from remediator.errors import TemplateError
from remediator.handling.context import Context, Resources
from remediator.handling.gathering import GathererSpec
from remediator.models import Gathered, Step
from remediator.rules.contexts import ContextTemplate
from remediator.rules.rule import template_context
from remediator.worker.redaction import redact
from remediator.worker.runs import Run
from remediator.worker.stages import Stop
from remediator.worker.telling import Teller

STEP = "context"
MAX_TEXT = 4000  # characters of one entry's text, as shown everywhere
PREPARE_TIMEOUT = 30.0  # seconds for a kind's client to be made ready (once per replica)
MAX_RAW = 4 * MAX_TEXT  # characters of an answer redacted (then cut to MAX_TEXT, well inside)


class GatherContext:
    """Sets ``run.context`` from the rule's ``context:`` (or from an earlier delivery's step)."""

    def __init__(
        self,
        resources: Resources,
        teller: Teller,
        *,
        asks: Callable[[Run], bool],
        dry_run: Callable[[Run], bool],
    ) -> None:
        self.resources = resources
        self.teller = teller
        self.asks = asks  # the run will ask for approval: the request carries the context
        self.dry_run = dry_run

    async def __call__(self, run: Run) -> Stop | None:
        rule = run.known_rule
        if not rule.context or run.plan is None or run.result is not None:
            return None
        kept = carried(run.timeline)
        if kept is not None:
            run.context = kept
            return None
        started = clock.monotonic()
        await self.prepare(run, rule.context)
        run.context = list(await asyncio.gather(*(self.gather(run, entry) for entry in rule.context)))
        failed = [entry.title for entry in run.context if not entry.ok]
        message = f"{len(run.context)} entr{'y' if len(run.context) == 1 else 'ies'} gathered"
        if failed:
            message += f", {len(failed)} failed: {'; '.join(failed)}"
        run.step(STEP, message, entries=[entry.model_dump() for entry in run.context])
        run.log.info(
            "remediation.context_gathered",
            entries=len(run.context),
            failed=len(failed),
            seconds=round(clock.monotonic() - started, 3),
        )
        if not self.asks(run):
            self.teller.context(run, dry_run=self.dry_run(run))
        return None

    async def prepare(self, run: Run, entries: tuple[ContextTemplate, ...]) -> None:
        """Each kind's client made ready before any entry's timeout starts (a replica's first
        Kubernetes entry imports the client library, which can take seconds and blocks the
        loop meanwhile). Bounded; a failure is left for the entry to meet and note."""
        for prepare in {id(e.spec.prepare): e.spec.prepare for e in entries if e.spec.prepare}.values():
            try:
                async with asyncio.timeout(PREPARE_TIMEOUT):
                    await prepare(self._context(run, PREPARE_TIMEOUT))
            except Exception as exc:  # noted by the entries that need it
                run.log.debug("remediation.context_prepare_failed", error=repr(exc))

    def _context(self, run: Run, timeout: float) -> Context:
        return Context(
            event_id=run.job.event_id,
            rule=run.known_rule.name,
            target=run.target,
            alert=run.job.alert,
            dry_run=True,  # gathering only reads
            deadline=time.monotonic() + timeout,
            verify_timeout=0.0,
            log=run.log,
            resources=self.resources,
            timeline=[],  # the requests are not steps of the run: the entry is
        )

    async def gather(self, run: Run, entry: ContextTemplate) -> Gathered:
        """One entry: rendered, gathered within its timeout, bounded, redacted; never raises."""
        spec = entry.spec
        plan = run.plan
        owner = plan.owner if plan is not None else None
        try:
            params = entry.render(template_context(run.job.alert, owner))
        except TemplateError as exc:
            return Gathered(kind=spec.kind, title=spec.kind, error=f"cannot render its params: {exc}")
        title = spec.describe(params)
        ctx = self._context(run, params.timeout)
        started = clock.monotonic()
        try:
            async with asyncio.timeout(params.timeout):
                text = await spec.gather(params, ctx)
        except TimeoutError:
            error = f"no answer within {params.timeout:g}s (its timeout)"
            return _failed(spec, title, error, started)
        except Exception as exc:  # a plugin's error, whatever it is: noted, never fatal
            return _failed(spec, title, str(exc) or type(exc).__name__, started)
        return shown(spec, title, text, clock.monotonic() - started)


def shown(spec: GathererSpec, title: str, text: str, seconds: float) -> Gathered:
    """The entry as people see it: redacted, then cut to ``MAX_TEXT`` (a log keeps its end)."""
    tail = spec.keep == "tail"
    raw = text[-MAX_RAW:] if tail else text[:MAX_RAW]
    clean, redacted = redact(raw)
    cut = len(text) - len(raw)
    if len(clean) > MAX_TEXT:
        kept = clean[-MAX_TEXT:] if tail else clean[:MAX_TEXT]
        if tail and "\n" in kept:
            kept = kept[kept.index("\n") + 1 :]  # whole lines only
        cut += len(clean) - len(kept)
        clean = kept
    return Gathered(
        kind=spec.kind,
        title=title,
        text=clean,
        seconds=round(seconds, 3),
        cut=cut,
        tail=tail,
        redacted=redacted,
    )


def _failed(spec: GathererSpec, title: str, error: str, started: float) -> Gathered:
    clean, redacted = redact(error[:1000])
    seconds = round(clock.monotonic() - started, 3)
    return Gathered(kind=spec.kind, title=title, error=clean, seconds=seconds, redacted=redacted)


def carried(timeline: list[Step]) -> list[Gathered] | None:
    """The context an earlier delivery of the job gathered (its ``context`` step), if any."""
    for step in reversed(timeline):
        if step.name == STEP:
            return [Gathered.model_validate(entry) for entry in step.data.get("entries", [])]
    return None


def kept_steps(run: Run) -> list[Step]:
    """What a job put back to wait keeps of this pass: the steps carried over, and the
    context gathered in this pass (so the next pass neither gathers nor posts it again)."""
    if carried(run.carried) is not None:
        return run.carried
    for index, step in enumerate(run.timeline):
        if step.name == STEP:
            return run.timeline[: index + 1]
    return run.carried
