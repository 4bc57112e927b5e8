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
from remediator.rules.schema import Policy
from remediator.rules.templates import render_value

_TARGET = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:/@=-]{0,252}$")


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
    handler: HandlerSpec
    target_template: Any
    params_template: Any
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
class Plan:
    """A rule rendered for one alert: what to run, on what, with which params, and the
    probe that tells whether it is needed and whether it worked (None: no probe)."""

    rule: Rule
    target: str
    params: HandlerParams
    probe: Probe | None = None
    owner: Owner | None = None  # with ``resolve:``, the workload the target and params name


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
    raw = render_value(rule.params_template, context)
    try:
        params = rule.handler.params.model_validate(raw)
    except ValidationError as exc:
        raise TemplateError(f"params for {rule.handler.name}: {describe_errors(exc)}") from exc
    probe = rule.probe.render(context) if rule.probe is not None else None
    return Plan(rule=rule, target=target, params=params, probe=probe, owner=owner)


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
