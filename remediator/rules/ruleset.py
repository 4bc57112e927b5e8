"""``rules.yaml``: strict schema, cross-checks, matching and rendering (no I/O but load)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator
from pydantic.fields import FieldInfo

from remediator.durations import RuleDuration
from remediator.errors import MatcherError, RulesError, TemplateError
from remediator.handling.registry import HandlerParams, HandlerSpec, Registry
from remediator.models import Alert
from remediator.rules.checks import Finding, check_inhibition, check_params_timeout, check_policy
from remediator.rules.documents import Document, load_document
from remediator.rules.matchers import Matcher, matches_all, parse_matcher
from remediator.rules.templates import compile_value, render_value

_RULE_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
_TARGET = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:/@=-]{0,252}$")
_LABEL_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_POLICY = ("cooldown", "lease", "max_attempts", "attempt_window", "verify_timeout", "timeout",
           "inhibit_wait", "dry_run", "on_resolved")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Defaults(_Strict):
    cooldown: RuleDuration = 900.0
    lease: RuleDuration = 600.0
    max_attempts: int = Field(default=3, ge=1)
    attempt_window: RuleDuration = 3600.0
    verify_timeout: RuleDuration = 300.0
    timeout: RuleDuration = 600.0
    inhibit_wait: RuleDuration = 1800.0
    dry_run: bool = False
    on_resolved: Literal["ignore", "run"] = "ignore"


class RuleSpec(_Strict):
    """One rule as written in the file; unset knobs come from ``defaults``."""

    name: str
    description: str = ""
    enabled: bool = True
    matchers: list[str] = Field(min_length=1)
    handler: str
    target: str
    params: dict[str, Any] = Field(default_factory=dict)
    inhibited_by: list[str] = Field(default_factory=list)
    inhibit_equal: list[str] = Field(default_factory=list)
    concurrency_group: str | None = None
    escalate: str = ""
    cooldown: RuleDuration | None = None
    lease: RuleDuration | None = None
    max_attempts: int | None = Field(default=None, ge=1)
    attempt_window: RuleDuration | None = None
    verify_timeout: RuleDuration | None = None
    timeout: RuleDuration | None = None
    inhibit_wait: RuleDuration | None = None
    dry_run: bool | None = None
    on_resolved: Literal["ignore", "run"] | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _RULE_NAME.match(value):
            raise ValueError("must be lowercase letters, digits, '.', '_' or '-' (max 63)")
        return value

    @field_validator("inhibit_equal")
    @classmethod
    def _label_names(cls, value: list[str]) -> list[str]:
        for name in value:
            if not _LABEL_NAME.match(name):
                raise ValueError(f"{name!r} is not a label name")
        return value


class RulesFile(_Strict):
    defaults: Defaults = Defaults()
    concurrency_limits: dict[str, Annotated[int, Field(ge=1)]] = Field(default_factory=dict)
    rules: list[RuleSpec] = Field(default_factory=list)


@dataclass(frozen=True)
class Rule:
    """A validated rule with defaults applied and matchers/templates compiled."""

    name: str
    description: str
    enabled: bool
    matchers: tuple[Matcher, ...]
    inhibited_by: tuple[Matcher, ...]
    inhibit_equal: tuple[str, ...]
    handler: HandlerSpec
    target_template: Any
    params_template: Any
    concurrency_group: str | None
    concurrency_limit: int
    escalate: str
    cooldown: float
    lease: float
    max_attempts: int
    attempt_window: float
    verify_timeout: float
    timeout: float
    inhibit_wait: float
    dry_run: bool
    on_resolved: str

    def matches(self, labels: Mapping[str, str]) -> bool:
        return self.enabled and matches_all(self.matchers, labels)

    def inhibits(self, blocker: Mapping[str, str], labels: Mapping[str, str]) -> bool:
        """Whether the firing alert ``blocker`` holds back this rule for the alert ``labels``.

        As Alertmanager's inhibit rules: ``inhibited_by`` matches the blocker, and every
        ``inhibit_equal`` label has the same value on both (missing on both counts as equal).
        """
        return (bool(self.inhibited_by) and blocker != labels
                and matches_all(self.inhibited_by, blocker)
                and all(blocker.get(n, "") == labels.get(n, "") for n in self.inhibit_equal))


@dataclass(frozen=True)
class Plan:
    """A rule rendered for one alert: what to run, on what, with which params."""

    rule: Rule
    target: str
    params: HandlerParams


class RuleSet:
    """An immutable, validated set of rules; swapped whole on reload."""

    def __init__(self, rules: list[Rule], source: str, digest: str,
                 warnings: tuple[str, ...] = ()) -> None:
        self.rules = rules
        self.source = source
        self.hash = digest
        self.warnings = warnings  # questionable but possible settings, one line each
        self._by_name = {rule.name: rule for rule in rules}
        # Most rules pin alertname="X": index them so an alert is tried only
        # against the rules that can match it (order of the file is kept).
        self._by_alertname: dict[str, list[Rule]] = {}
        self._any_alertname: list[Rule] = []
        for rule in rules:
            pinned = next((m.value for m in rule.matchers if m.name == "alertname" and m.op == "="),
                          None)
            if pinned is None:
                self._any_alertname.append(rule)
            else:
                self._by_alertname.setdefault(pinned, []).append(rule)
        self._order = {rule.name: i for i, rule in enumerate(rules)}

    def get(self, name: str) -> Rule | None:
        return self._by_name.get(name)

    def match(self, alert: Alert) -> list[Rule]:
        labels = alert.labels
        candidates = self._by_alertname.get(labels.get("alertname", ""), [])
        if self._any_alertname:
            candidates = sorted([*candidates, *self._any_alertname], key=lambda r: self._order[r.name])
        return [rule for rule in candidates if rule.matches(labels)]

    def __len__(self) -> int:
        return len(self.rules)


def template_context(alert: Alert) -> dict[str, Any]:
    return {
        "labels": dict(alert.labels),
        "annotations": dict(alert.annotations),
        "alert": {
            "status": alert.status,
            "fingerprint": alert.fingerprint,
            "startsAt": alert.starts_at.isoformat(),
            "generatorURL": alert.generator_url,
        },
    }


def render(rule: Rule, alert: Alert) -> Plan:
    """Render target and params for ``alert``; raises TemplateError with the reason."""
    context = template_context(alert)
    target = _checked_target(str(render_value(rule.target_template, context)).strip())
    raw = render_value(rule.params_template, context)
    try:
        params = rule.handler.params.model_validate(raw)
    except ValidationError as exc:
        raise TemplateError(f"params for {rule.handler.name}: {_short(exc)}") from exc
    return Plan(rule=rule, target=target, params=params)


def _checked_target(target: str) -> str:
    if not _TARGET.match(target):
        raise TemplateError(
            f"rendered target {target!r} is not a valid target "
            "(letters, digits and _ . : / @ = - only)"
        )
    if dots := [part for part in target.split("/") if part in (".", "..")]:
        raise TemplateError(f"rendered target {target!r} has a {dots[0]!r} segment: a target "
                            "names one thing and may not contain '.' or '..' between slashes")
    return target


def load_rules(path: Path, registry: Registry) -> RuleSet:
    """Read and validate ``path``; raises RulesError listing every problem."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise RulesError(str(path), [f"cannot read: {exc.strerror or exc}"]) from exc
    return parse_rules(data, str(path), registry)


def parse_rules(data: bytes, source: str, registry: Registry) -> RuleSet:
    """Validate ``data``; raises RulesError listing every error, each with its line.

    Questionable settings do not fail: they come back in ``RuleSet.warnings``.
    """
    try:
        doc = load_document(data, source)
    except yaml.YAMLError as exc:
        raise RulesError(source, [f"invalid YAML: {exc}"]) from exc
    document = {} if doc.data is None else doc.data
    if not isinstance(document, dict):
        raise RulesError(source, ["the top level must be a mapping with 'defaults' and 'rules'"])
    try:
        parsed = RulesFile.model_validate(document)
    except ValidationError as exc:
        raise RulesError(source, _explain(exc, doc)) from exc
    report = _Report(doc)
    for finding in check_policy(parsed.defaults.model_dump()):
        if finding.involves(parsed.defaults.model_fields_set):
            report.add(finding, ("defaults", *finding.key.split(".")), prefix="defaults.")
    rules: list[Rule] = []
    seen: set[str] = set()
    for index, spec in enumerate(parsed.rules):
        at = (index, spec.name)
        if spec.name in seen:
            report.add(Finding("name", "duplicate rule name"), ("rules", index), rule=at)
            continue
        seen.add(spec.name)
        try:
            rule = _build(spec, parsed, registry)
        except _Problem as exc:
            report.add(Finding("", exc.message), ("rules", index, *exc.path), rule=at)
            continue
        rules.append(rule)
        for finding in _rule_findings(rule, spec):
            report.add(finding, _finding_path(finding, index, spec), rule=at)
    used = {rule.concurrency_group for rule in rules}
    for group in parsed.concurrency_limits:
        if group not in used:
            report.add(Finding(group, f"concurrency_limits.{group}: no rule has "
                               f"concurrency_group: {group}", warning=True),
                       ("concurrency_limits", group))
    if report.errors:
        raise RulesError(source, report.errors)
    return RuleSet(rules, source, hashlib.sha256(data).hexdigest()[:16], tuple(report.warnings))


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

    def add(self, finding: Finding, path: tuple[str | int, ...], *,
            rule: tuple[int, str] | None = None, prefix: str = "") -> None:
        text = _placed(self.doc, prefix + finding.message, path, rule)
        (self.warnings if finding.warning else self.errors).append(text)


def _placed(doc: Document, message: str, path: tuple[str | int, ...],
            rule: tuple[int, str] | None = None) -> str:
    """``rule 'x' (line 9): message (line 12)``: where the rule starts, where the key is."""
    line = doc.line(path)
    if rule is None:
        return f"{message} (line {line})" if line else message
    index, name = rule
    start = doc.line(("rules", index))
    text = f"rule {name!r}" + (f" (line {start})" if start else "") + f": {message}"
    return text if line in (None, start) else f"{text} (line {line})"


def _rule_findings(rule: Rule, spec: RuleSpec) -> list[Finding]:
    values: dict[str, Any] = {key: getattr(rule, key) for key in _POLICY}
    values.update(escalate=rule.escalate, inhibited_by=rule.inhibited_by)
    explicit = spec.model_fields_set
    found = [f for f in check_policy(values) if f.involves(explicit)]
    found += check_inhibition(values, explicit)
    if "verify_timeout" not in _fields(rule.handler):
        # verify_timeout is for handlers that verify, and those take it as a param too
        return [f for f in found if f.key != "verify_timeout"]
    verify = _static_param(rule.handler, spec.params, "verify_timeout")
    if isinstance(verify, float):  # the handler uses its param, not the rule's value
        found = [f for f in found if f.key != "verify_timeout"]
        if finding := check_params_timeout(verify, rule.timeout):
            found.append(finding)
    return found


def _finding_path(finding: Finding, index: int, spec: RuleSpec) -> tuple[str | int, ...]:
    """The key to point at: the rule's own if it sets one involved, else the defaults'."""
    path = finding.key.split(".")
    explicit = [k for k in (path[0], *finding.keys) if k in spec.model_fields_set]
    if not explicit:
        return ("defaults", finding.key)
    return ("rules", index, *(path if explicit[0] == path[0] else [explicit[0]]))


def _build(spec: RuleSpec, parsed: RulesFile, registry: Registry) -> Rule:
    handler = registry.get(spec.handler)
    if handler is None:
        known = ", ".join(registry.names()) or "none registered"
        raise _Problem(("handler",), f"unknown handler {spec.handler!r} (known: {known})")
    d = parsed.defaults
    target_template = _compiled(("target",), spec.target)
    if isinstance(target_template, str):  # no template: check it now, not per alert
        try:
            _checked_target(target_template.strip())
        except TemplateError as exc:
            raise _Problem(("target",), str(exc).replace("rendered target", "target")) from exc
    params_template = {
        key: _compiled(("params", key), value, handler.escapes.get(key))
        for key, value in spec.params.items()
    }
    _check_params(handler, spec.params)
    return Rule(
        name=spec.name,
        description=spec.description,
        enabled=spec.enabled,
        matchers=_matchers("matchers", spec.matchers),
        inhibited_by=_matchers("inhibited_by", spec.inhibited_by),
        inhibit_equal=tuple(spec.inhibit_equal),
        handler=handler,
        target_template=target_template,
        params_template=params_template,
        concurrency_group=spec.concurrency_group,
        concurrency_limit=parsed.concurrency_limits.get(spec.concurrency_group or "", 1),
        escalate=spec.escalate,
        cooldown=_pick(spec.cooldown, d.cooldown),
        lease=_pick(spec.lease, d.lease),
        max_attempts=_pick(spec.max_attempts, d.max_attempts),
        attempt_window=_pick(spec.attempt_window, d.attempt_window),
        verify_timeout=_pick(spec.verify_timeout, d.verify_timeout),
        timeout=_pick(spec.timeout, d.timeout),
        inhibit_wait=_pick(spec.inhibit_wait, d.inhibit_wait),
        dry_run=_pick(spec.dry_run, d.dry_run),
        on_resolved=_pick(spec.on_resolved, d.on_resolved),
    )


def _compiled(path: tuple[str, ...], value: Any, finalize: Any = None) -> Any:
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


def _pick(value: Any, default: Any) -> Any:
    return default if value is None else value


def _check_params(handler: HandlerSpec, params: dict[str, Any]) -> None:
    """Validate params that hold no template now; templated ones at render time."""
    fields = _fields(handler)
    unknown = sorted(set(params) - set(fields))
    if unknown:
        raise _Problem(("params", unknown[0]),
                       f"unknown params for {handler.name}: {', '.join(unknown)}")
    missing = [name for name, info in fields.items() if info.is_required() and name not in params]
    if missing:
        raise _Problem(("params",), f"missing params for {handler.name}: {', '.join(missing)}")
    if not _has_template(params):
        try:
            handler.params.model_validate(params)
        except ValidationError as exc:
            first = exc.errors()[0]["loc"]
            raise _Problem(("params", *first),
                           f"params for {handler.name}: {_short(exc)}") from exc
        return
    for name, value in params.items():
        if _has_template(value):
            continue  # checked when rendered for an alert
        try:
            TypeAdapter(_field_type(fields[name])).validate_python(value)
        except ValidationError as exc:
            raise _Problem(("params", name),
                           f"param {name!r} for {handler.name}: {_short(exc)}") from exc


def _fields(handler: HandlerSpec) -> dict[str, FieldInfo]:
    return {info.alias or name: info for name, info in handler.params.model_fields.items()}


def _static_param(handler: HandlerSpec, params: dict[str, Any], name: str) -> Any:
    """The validated value of param ``name`` if it is written without a template, else None."""
    info = _fields(handler).get(name)
    if info is None or name not in params or _has_template(params[name]):
        return None
    return TypeAdapter(_field_type(info)).validate_python(params[name])


def _field_type(info: FieldInfo) -> Any:
    """The field's type with its validators (``Annotated`` metadata), not just the bare type."""
    if not info.metadata:
        return info.annotation
    return Annotated[(info.annotation, *info.metadata)]


def _has_template(value: Any) -> bool:
    if isinstance(value, str):
        return "{{" in value or "{%" in value
    if isinstance(value, list):
        return any(_has_template(v) for v in value)
    if isinstance(value, dict):
        return any(_has_template(v) for v in value.values())
    return False


def _message(err: Any) -> str:
    if err["type"] == "extra_forbidden":
        return "unknown key"
    return str(err["msg"]).removeprefix("Value error, ")


def _short(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        parts.append(f"{loc}: {_message(err)}" if loc else _message(err))
    return "; ".join(parts)


def _explain(exc: ValidationError, doc: Document) -> list[str]:
    out = []
    found = doc.data.get("rules") if isinstance(doc.data, dict) else None
    rules: list[Any] = found if isinstance(found, list) else []
    for err in exc.errors():
        loc = tuple(err["loc"])
        if len(loc) >= 2 and loc[0] == "rules" and isinstance(loc[1], int):
            index = loc[1]
            item = rules[index] if index < len(rules) else None
            name = item.get("name", f"#{index + 1}") if isinstance(item, dict) else f"#{index + 1}"
            field = ".".join(str(p) for p in loc[2:]) or "rule"
            out.append(_placed(doc, f"{field}: {_message(err)}", loc, (index, str(name))))
        else:
            where = ".".join(str(p) for p in loc)
            out.append(_placed(doc, f"{where}: {_message(err)}", loc))
    return out
