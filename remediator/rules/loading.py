"""From ``rules.yaml`` bytes to compiled rules: schema errors, cross-checks, each at its line."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, TypeVar

from pydantic import TypeAdapter, ValidationError
from pydantic.fields import FieldInfo

from remediator.durations import format_duration
from remediator.errors import MatcherError, RulesError, TemplateError
from remediator.handling.registry import HandlerSpec, Registry
from remediator.rules.checks import Finding, check_inhibition, check_params_timeout, check_policy
from remediator.rules.contexts import ContextProblem, ContextTemplate
from remediator.rules.documents import Document
from remediator.rules.matchers import Matcher, parse_matcher
from remediator.rules.parsing import ParsedFile, nearest, placed
from remediator.rules.probes import ProbeTemplate
from remediator.rules.resolving import ResolveTemplate
from remediator.rules.rule import Rule, StepTemplate, checked_target, describe_errors
from remediator.rules.schema import RulesFile, RuleSpec, field_type
from remediator.rules.templates import compile_value, uses_name
from remediator.rules.windows import Window

T = TypeVar("T")


# A rule's own Slack channel cannot work when Slack is an incoming webhook.
WEBHOOK_CHANNEL = (
    "slack_channel: Slack is set up with an incoming webhook (REMEDIATOR_SLACK_WEBHOOK_URL), which "
    "posts to the one channel it was made for; a channel per rule needs a bot token "
    "(REMEDIATOR_SLACK_BOT_TOKEN with REMEDIATOR_SLACK_CHANNEL as the default): remove slack_channel "
    "or switch to a bot token"
)


def build_rules(
    read: ParsedFile, source: str, registry: Registry, *, slack_webhook: bool = False
) -> tuple[list[Rule], tuple[str, ...]]:
    """The compiled rules and the warnings; raises RulesError listing every error, the
    schema's (``read.errors``) first.

    Questionable settings do not fail: they come back as warnings. ``slack_webhook``: Slack
    posts through an incoming webhook, so a ``slack_channel`` is an error.
    """
    parsed, doc = read.file, read.doc
    report = _Report(doc)
    report.errors += read.errors
    for finding in check_policy(parsed.defaults.model_dump()):
        if finding.involves(parsed.defaults.model_fields_set):
            report.add(finding, ("defaults", *finding.key.split(".")), prefix="defaults.")
    if slack_webhook and parsed.defaults.slack_channel is not None:
        report.add(
            Finding("slack_channel", WEBHOOK_CHANNEL), ("defaults", "slack_channel"), prefix="defaults."
        )
    rules: list[Rule] = []
    seen: set[str] = set()
    for index, spec in zip(read.positions, parsed.rules, strict=True):
        at = (index, spec.name)
        if spec.name in seen:
            report.add(Finding("name", "duplicate rule name"), ("rules", index), rule=at)
            continue
        seen.add(spec.name)
        problems: list[_Problem] = []
        rule = _build(spec, parsed, registry, problems)
        for problem in problems:
            report.add(Finding("", problem.message), ("rules", index, *problem.path), rule=at)
        if rule is None:
            continue
        rules.append(rule)
        for finding in _rule_findings(rule, spec):
            report.add(finding, _finding_path(finding, index, spec), rule=at)
        if slack_webhook and getattr(spec, "slack_channel", None) is not None:  # set in the rule itself
            report.add(Finding("slack_channel", WEBHOOK_CHANNEL), ("rules", index, "slack_channel"), rule=at)
    _check_windows(parsed, report)
    used = {rule.policy.concurrency_group for rule in rules}
    for group in parsed.concurrency_limits:
        if group not in used:
            report.add(
                Finding(
                    group, f"concurrency_limits.{group}: no rule has concurrency_group: {group}", warning=True
                ),
                ("concurrency_limits", group),
            )
    if report.errors:
        raise RulesError(source, sorted(report.errors, key=_line_of))
    return rules, tuple(report.warnings)


def build_windows(parsed: RulesFile) -> tuple[Window, ...]:
    """The compiled maintenance windows (``build_rules`` checked their matchers)."""
    return tuple(Window.of(spec) for spec in parsed.maintenance_windows)


def _check_windows(parsed: RulesFile, report: _Report) -> None:
    for index, spec in enumerate(parsed.maintenance_windows):
        for position, text in enumerate(spec.matchers):
            try:
                parse_matcher(text)
            except MatcherError as exc:
                path = ("maintenance_windows", index, "matchers", position)
                report.add(Finding("", f"maintenance window {spec.name!r}: {exc}"), path)


class _Problem(Exception):
    """A rule error at ``path`` inside the rule (e.g. ``("params", "url")``)."""

    def __init__(self, path: tuple[str | int, ...], message: str) -> None:
        super().__init__(message)
        self.path = path
        self.message = message


class _Report:
    """Errors and warnings, each placed at the line of the key it is about."""

    def __init__(self, doc: Document) -> None:
        self.doc = doc
        self.errors: list[str] = []
        self.warnings: list[str] = []

    def add(
        self,
        finding: Finding,
        path: tuple[str | int, ...],
        *,
        rule: tuple[int, str] | None = None,
        prefix: str = "",
    ) -> None:
        text = placed(self.doc, prefix + finding.message, path, rule)
        (self.warnings if finding.warning else self.errors).append(text)


_LINE = re.compile(r"\(line (\d+)\)")


def _line_of(error: str) -> int:
    """The line an error points at (the last one it names): errors read top to bottom."""
    lines = _LINE.findall(error)
    return int(lines[-1]) if lines else 0


def _rule_findings(rule: Rule, spec: RuleSpec) -> list[Finding]:
    values: dict[str, Any] = rule.policy.model_dump()
    values.update(inhibited_by=rule.inhibited_by)
    explicit = spec.model_fields_set
    found = [f for f in check_policy(values) if f.involves(explicit)]
    found += check_inhibition(values, explicit)
    handlers = [step.handler for step in rule.steps if step.handler is not None]
    if not any("verify_timeout" in _fields(handler) for handler in handlers):
        # verify_timeout is for handlers that verify, and those take it as a param too
        return [f for f in found if f.key != "verify_timeout"]
    if spec.steps is not None:
        return found
    verify = _static_param(rule.handler, spec.params, "verify_timeout")
    if isinstance(verify, float):  # the handler uses its param, not the rule's value
        found = [f for f in found if f.key != "verify_timeout"]
        if finding := check_params_timeout(verify, rule.policy.timeout):
            found.append(finding)
    return found


def _finding_path(finding: Finding, index: int, spec: RuleSpec) -> tuple[str | int, ...]:
    """The key to point at: the rule's own if it sets one involved, else the defaults'."""
    path = finding.key.split(".")
    explicit = [k for k in (path[0], *finding.keys) if k in spec.model_fields_set]
    if not explicit:
        return ("defaults", finding.key)
    return ("rules", index, *(path if explicit[0] == path[0] else [explicit[0]]))


def _build(spec: RuleSpec, parsed: RulesFile, registry: Registry, problems: list[_Problem]) -> Rule | None:
    """The compiled rule, or None with every problem of it in ``problems`` (one per part:
    each step's handler and params, target, matchers, probe, resolve)."""

    def attempt(step: Callable[[], T]) -> T | None:
        try:
            return step()
        except _Problem as exc:
            problems.append(exc)
            return None

    policy = spec.policy(parsed.defaults)
    target_template = attempt(lambda: _target(spec.target))
    steps = _steps(spec, registry, policy.timeout, problems)
    matchers = attempt(lambda: _matchers("matchers", spec.matchers))
    inhibited_by = attempt(lambda: _matchers("inhibited_by", spec.inhibited_by))
    probe = attempt(lambda: _probe(spec))
    resolve = attempt(lambda: _resolve(spec, registry))
    context = _context(spec, registry, problems)
    if problems or matchers is None or inhibited_by is None:
        return None
    policy = spec.policy(parsed.defaults)
    return Rule(
        name=spec.name,
        description=spec.description,
        enabled=spec.enabled,
        matchers=matchers,
        inhibited_by=inhibited_by,
        steps=steps,
        target_template=target_template,
        concurrency_limit=parsed.concurrency_limits.get(policy.concurrency_group or "", 1),
        policy=policy,
        probe=probe,
        resolve=resolve,
        context=context,
    )


def _context(spec: RuleSpec, registry: Registry, problems: list[_Problem]) -> tuple[ContextTemplate, ...]:
    """``context:`` compiled, each entry checked against its kind's params model (every
    entry's problem goes to ``problems``)."""
    compiled = []
    for index, entry in enumerate(spec.context):
        try:
            compiled.append(ContextTemplate.compile(entry, registry))
        except ContextProblem as exc:
            problems.append(_Problem(("context", index, *exc.path), f"context[{index}]: {exc.message}"))
    return tuple(compiled)


def _steps(
    spec: RuleSpec, registry: Registry, timeout: float, problems: list[_Problem]
) -> tuple[StepTemplate, ...]:
    """The rule's chain: ``handler:`` + ``params:`` is its one step; ``steps:`` each one's
    handler and params checked as a rule's are (errors point at ``steps.N``); every problem
    goes to ``problems``."""
    default_success = "probe" if spec.probe is not None else "next"
    if spec.steps is None:
        handler = _handler(registry, spec.handler or "", ("handler",), problems)
        params = _params(handler, spec.params, (), problems)
        if handler is None:
            return ()
        return (StepTemplate(0, handler, params, on_success=default_success),)
    out = []
    for index, step in enumerate(spec.steps):
        at: tuple[str | int, ...] = ("steps", index)
        if step.page is not None:
            out.append(StepTemplate(index, None, {}, page=step.page))
            continue
        handler = _handler(registry, step.handler or "", (*at, "handler"), problems)
        if step.timeout is not None and step.timeout > timeout:
            problems.append(
                _Problem(
                    (*at, "timeout"),
                    f"steps.{index}.timeout: {format_duration(step.timeout)} is longer than the rule's "
                    f"timeout {format_duration(timeout)}: a step's timeout is within the rule's",
                )
            )
        params = _params(handler, step.params, at, problems)
        if handler is not None:
            out.append(
                StepTemplate(
                    index,
                    handler,
                    params,
                    on_success=step.on_success or default_success,
                    on_failure=step.on_failure,
                    timeout=step.timeout,
                )
            )
    return tuple(out)


def _handler(
    registry: Registry, name: str, path: tuple[str | int, ...], problems: list[_Problem]
) -> HandlerSpec | None:
    handler = registry.get(name)
    if handler is None:
        known = ", ".join(registry.names()) or "none registered"
        problems.append(_Problem(path, f"unknown handler {name!r} (known: {known})"))
    return handler


def _params(
    handler: HandlerSpec | None, params: dict[str, Any], at: tuple[str | int, ...], problems: list[_Problem]
) -> dict[str, Any]:
    """One step's params compiled (escaped as its handler asks) and checked (an unknown
    handler: compiled only)."""
    compiled: dict[str, Any] = {}
    for key, value in params.items():
        escape = handler.escapes.get(key) if handler is not None else None
        try:
            compiled[key] = _compiled((*at, "params", key), value, escape)
        except _Problem as exc:
            problems.append(exc)
    if handler is None:
        return compiled
    try:
        _check_params(handler, params)
    except _Problem as exc:
        problems.append(exc if not at else _Problem((*at, *exc.path), f"steps.{at[1]}: {exc.message}"))
    return compiled


def _target(text: str) -> Any:
    """The target's template; one without a template is checked now, not per alert."""
    template = _compiled(("target",), text)
    if isinstance(template, str):
        try:
            checked_target(template.strip())
        except TemplateError as exc:
            raise _Problem(("target",), str(exc).replace("rendered target", "target")) from exc
    return template


def _resolve(spec: RuleSpec, registry: Registry) -> ResolveTemplate | None:
    """``resolve:`` compiled; without it, a template that reads ``owner`` is an error."""
    if spec.resolve is None:
        probe_url = spec.probe.url if spec.probe is not None else ""
        step_params = [step.params for step in spec.steps or ()]
        for path, value in (
            (("target",), spec.target),
            (("params",), spec.params),
            (("steps",), step_params),
            (("probe", "url"), probe_url),
        ):
            if uses_name(value, "owner"):
                raise _Problem(
                    path,
                    f"{'.'.join(path)} uses owner (the pod's owner), which only a rule with "
                    "resolve: {pod: ..., namespace: ...} has",
                )
        return None
    if registry.resolver is None:
        raise _Problem(
            ("resolve",),
            "resolve: no owner resolver is registered (the `handlers` package registers the "
            "Kubernetes one: keep it in REMEDIATOR_HANDLER_MODULES)",
        )
    try:
        return ResolveTemplate.compile(spec.resolve, registry.resolver)
    except TemplateError as exc:
        raise _Problem(("resolve",), f"resolve: {exc}") from exc
    except ValueError as exc:
        raise _Problem(("resolve",), f"resolve: {exc}") from exc


def _probe(spec: RuleSpec) -> ProbeTemplate | None:
    if spec.probe is None:
        return None
    try:
        return ProbeTemplate.compile(spec.probe)
    except (TemplateError, ValueError) as exc:
        raise _Problem(("probe", "url"), f"probe.url: {exc}") from exc


def _compiled(path: tuple[str | int, ...], value: Any, finalize: Any = None) -> Any:
    try:
        return compile_value(value, finalize)
    except TemplateError as exc:
        raise _Problem(path, str(exc)) from exc


def _matchers(key: str, texts: list[str]) -> tuple[Matcher, ...]:
    out = []
    for index, text in enumerate(texts):
        try:
            out.append(parse_matcher(text))
        except MatcherError as exc:
            raise _Problem((key, index), str(exc)) from exc
    return tuple(out)


def _check_params(handler: HandlerSpec, params: dict[str, Any]) -> None:
    """Validate params that hold no template now; templated ones at render time."""
    fields = _fields(handler)
    unknown = sorted(set(params) - set(fields))
    if unknown:
        named = [f"{key} ({hint})" if (hint := nearest(key, list(fields))) else key for key in unknown]
        raise _Problem(("params", unknown[0]), f"unknown params for {handler.name}: {', '.join(named)}")
    missing = [name for name, info in fields.items() if info.is_required() and name not in params]
    if missing:
        raise _Problem(("params",), f"missing params for {handler.name}: {', '.join(missing)}")
    if handler.check is not None and (problem := handler.check(params)):
        name, message = problem
        raise _Problem(("params", name), f"param {name!r} for {handler.name}: {message}")
    if not _has_template(params):
        try:
            handler.params.model_validate(params)
        except ValidationError as exc:
            first = exc.errors()[0]["loc"]
            raise _Problem(("params", *first), f"params for {handler.name}: {describe_errors(exc)}") from exc
        return
    for name, value in params.items():
        if _has_template(value):
            continue  # checked when rendered for an alert
        try:
            TypeAdapter(field_type(fields[name])).validate_python(value)
        except ValidationError as exc:
            raise _Problem(
                ("params", name), f"param {name!r} for {handler.name}: {describe_errors(exc)}"
            ) from exc


def _fields(handler: HandlerSpec) -> dict[str, FieldInfo]:
    return {info.alias or name: info for name, info in handler.params.model_fields.items()}


def _static_param(handler: HandlerSpec, params: dict[str, Any], name: str) -> Any:
    """The validated value of param ``name`` if it is written without a template, else None."""
    info = _fields(handler).get(name)
    if info is None or name not in params or _has_template(params[name]):
        return None
    return TypeAdapter(field_type(info)).validate_python(params[name])


def _has_template(value: Any) -> bool:
    if isinstance(value, str):
        return "{{" in value or "{%" in value
    if isinstance(value, list):
        return any(_has_template(v) for v in value)
    if isinstance(value, dict):
        return any(_has_template(v) for v in value.values())
    return False
