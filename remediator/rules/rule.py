"""One compiled rule: matching an alert, being held back by another, rendering a plan. Pure."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from remediator.errors import TemplateError
from remediator.handling.owners import Owner
from remediator.handling.registry import HandlerParams, HandlerSpec
from remediator.models import Alert
from remediator.rules.contexts import ContextTemplate
from remediator.rules.matchers import Matcher, matches_all
from remediator.rules.probes import Probe, ProbeTemplate
from remediator.rules.resolving import PodRef, ResolveTemplate
from remediator.rules.schema import PageSpec, Policy
from remediator.rules.templates import render_value

_TARGET = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:/@=-]{0,252}$")


@dataclass(frozen=True)
class StepTemplate:
    """One step of a rule's chain, compiled: a handler with its params' templates, or a
    page (people). ``on_success`` is resolved (``probe`` with a rule probe, else ``next``);
    ``timeout`` None: the rule's. A rule with ``handler:`` has one such step."""

    index: int
    handler: HandlerSpec | None
    params_template: Any
    on_success: str = "next"
    on_failure: str = "stop"
    timeout: float | None = None
    page: PageSpec | None = None

    @property
    def name(self) -> str:
        """The handler's name, or ``page``."""
        return self.handler.name if self.handler is not None else "page"


@dataclass(frozen=True)
class Rule:
    """A validated rule: its policy (defaults applied), matchers and templates compiled.

    Every ``Policy`` field also reads from the rule itself (``rule.policy.cooldown`` is
    ``rule.policy.cooldown``), for code written before the policy was one model;
    new code reads ``rule.policy``.
    """

    name: str
    description: str
    enabled: bool
    matchers: tuple[Matcher, ...]
    inhibited_by: tuple[Matcher, ...]
    steps: tuple[StepTemplate, ...]  # ``handler:`` is the one-step chain
    target_template: Any
    concurrency_limit: int  # the size of the policy's concurrency_group (1 without a group)
    policy: Policy
    probe: ProbeTemplate | None = None
    resolve: ResolveTemplate | None = None  # the pod's owner, found before the lease
    context: tuple[ContextTemplate, ...] = ()  # gathered before acting (worker/gathering.py)

    def __getattr__(self, name: str) -> Any:
        """A policy field read from the rule: ``rule.policy.lease`` is ``rule.policy.lease``."""
        if name in Policy.model_fields:
            return getattr(object.__getattribute__(self, "policy"), name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    @property
    def handler(self) -> HandlerSpec:
        """The first step's handler (a chain starts with a handler, never with a page)."""
        first = self.steps[0].handler
        if first is None:
            raise RuntimeError(f"rule {self.name!r} starts with a page step")
        return first

    @property
    def params_template(self) -> Any:
        """The first step's params, as written (templates compiled)."""
        return self.steps[0].params_template

    @property
    def chained(self) -> bool:
        """More than one step (``steps:``): each step's result is told on its own."""
        return len(self.steps) > 1

    def matches(self, labels: Mapping[str, str]) -> bool:
        return self.enabled and matches_all(self.matchers, labels)

    def inhibits(self, blocker: Mapping[str, str], labels: Mapping[str, str]) -> bool:
        """Whether the firing alert ``blocker`` holds back this rule for the alert ``labels``.

        As Alertmanager's inhibit rules: ``inhibited_by`` matches the blocker, and every
        ``inhibit_equal`` label has the same value on both (missing on both counts as equal).
        """
        return (
            bool(self.inhibited_by)
            and blocker != labels
            and matches_all(self.inhibited_by, blocker)
            and all(blocker.get(n, "") == labels.get(n, "") for n in self.policy.inhibit_equal)
        )


@dataclass(frozen=True)
class PlannedStep:
    """A step rendered for one alert: its template and params (None: a page step)."""

    template: StepTemplate
    params: HandlerParams | None

    @property
    def handler(self) -> HandlerSpec | None:
        return self.template.handler

    def plan(self) -> list[str]:
        """What this step would do, without I/O."""
        if self.template.handler is None or self.params is None:
            return [page_words(self.template.page)]
        return self.template.handler.plan(self.params)


def page_words(page: PageSpec | None) -> str:
    """``page @here and PagerDuty with the results so far``."""
    who = [] if page is None else [page.slack] * bool(page.slack) + ["PagerDuty"] * page.pagerduty
    return f"page {' and '.join(who) or 'nobody'} with the chain's results so far"


@dataclass(frozen=True)
class Plan:
    """A rule rendered for one alert: what to run, on what, with which params (each step's),
    and the probe that tells whether it is needed and whether it worked (None: no probe)."""

    rule: Rule
    target: str
    steps: tuple[PlannedStep, ...]
    probe: Probe | None = None
    owner: Owner | None = None  # with ``resolve:``, the workload the target and params name

    @property
    def params(self) -> HandlerParams:
        """The first step's params (a chain starts with a handler)."""
        first = self.steps[0].params
        if first is None:
            raise RuntimeError("the first step of a chain runs a handler")
        return first

    def describe(self) -> list[str]:
        """The whole chain's plan: a one-step rule its handler's plan; a chain each step's,
        numbered, with what follows a success or a failure."""
        if len(self.steps) == 1:
            return self.steps[0].plan()
        total = len(self.steps)
        out: list[str] = []
        for step in self.steps:
            tpl = step.template
            head = f"step {tpl.index + 1}/{total} {tpl.name}"
            if tpl.handler is not None and tpl.index + 1 < total:
                head += f" (on success: {tpl.on_success}, on failure: {tpl.on_failure})"
            out.extend(f"{head}: {line}" for line in step.plan())
        return out


def template_context(alert: Alert, owner: Owner | None = None) -> dict[str, Any]:
    """What templates see: ``labels``, ``annotations``, ``alert``, and with ``resolve:``
    the pod's ``owner`` (``kind``, ``name``, ``namespace``, ``pod``)."""
    context = {
        "labels": dict(alert.labels),
        "annotations": dict(alert.annotations),
        "alert": {
            "status": alert.status,
            "fingerprint": alert.fingerprint,
            "startsAt": alert.starts_at.isoformat(),
            "generatorURL": alert.generator_url,
        },
    }
    if owner is not None:
        context["owner"] = owner.as_context()
    return context


def render_pod(rule: Rule, alert: Alert) -> PodRef:
    """The pod a ``resolve:`` rule names for ``alert``; raises TemplateError with the reason."""
    if rule.resolve is None:
        raise TemplateError(f"rule {rule.name!r} has no resolve:")
    return rule.resolve.render(template_context(alert))


def render(rule: Rule, alert: Alert, owner: Owner | None = None) -> Plan:
    """Render target and params for ``alert`` (a ``resolve:`` rule: with the pod's
    ``owner``); raises TemplateError with the reason."""
    if rule.resolve is not None and owner is None:
        raise TemplateError(f"rule {rule.name!r} names its target after the pod's owner, found at run time")
    context = template_context(alert, owner)
    target = checked_target(str(render_value(rule.target_template, context)).strip())
    steps = tuple(_render_step(rule, step, context) for step in rule.steps)
    probe = rule.probe.render(context) if rule.probe is not None else None
    return Plan(rule=rule, target=target, steps=steps, probe=probe, owner=owner)


def _render_step(rule: Rule, step: StepTemplate, context: dict[str, Any]) -> PlannedStep:
    if step.handler is None:
        return PlannedStep(step, None)
    raw = render_value(step.params_template, context)
    try:
        params = step.handler.params.model_validate(raw)
    except ValidationError as exc:
        where = f"steps.{step.index}: " if rule.chained else ""
        raise TemplateError(f"{where}params for {step.handler.name}: {describe_errors(exc)}") from exc
    return PlannedStep(step, params)


def checked_target(target: str) -> str:
    """``target`` if it names one thing; raises TemplateError saying why not."""
    if not _TARGET.match(target):
        raise TemplateError(
            f"rendered target {target!r} is not a valid target (letters, digits and _ . : / @ = - only)"
        )
    if dots := [part for part in target.split("/") if part in (".", "..")]:
        raise TemplateError(
            f"rendered target {target!r} has a {dots[0]!r} segment: a target "
            "names one thing and may not contain '.' or '..' between slashes"
        )
    return target


def describe_error(err: Any) -> str:
    """One pydantic error's message as ``rules.yaml`` errors word it."""
    if err["type"] == "extra_forbidden":
        return "unknown key"
    return str(err["msg"]).removeprefix("Value error, ")


def describe_errors(exc: ValidationError) -> str:
    """Every error of ``exc`` on one line: ``loc: message; ...``."""
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        parts.append(f"{loc}: {describe_error(err)}" if loc else describe_error(err))
    return "; ".join(parts)
