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

from remediator.durations import Duration
from remediator.errors import MatcherError, RulesError, TemplateError
from remediator.matchers import Matcher, matches_all, parse_matcher
from remediator.models import Alert
from remediator.registry import HandlerParams, HandlerSpec, Registry
from remediator.templates import compile_value, render_value

_RULE_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
_TARGET = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:/@=-]{0,252}$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Defaults(_Strict):
    cooldown: Duration = 900.0
    lease: Duration = 600.0
    max_attempts: int = Field(default=3, ge=1)
    attempt_window: Duration = 3600.0
    verify_timeout: Duration = 300.0
    timeout: Duration = 600.0
    inhibit_wait: Duration = 1800.0
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
    concurrency_group: str | None = None
    escalate: str = ""
    cooldown: Duration | None = None
    lease: Duration | None = None
    max_attempts: int | None = Field(default=None, ge=1)
    attempt_window: Duration | None = None
    verify_timeout: Duration | None = None
    timeout: Duration | None = None
    inhibit_wait: Duration | None = None
    dry_run: bool | None = None
    on_resolved: Literal["ignore", "run"] | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _RULE_NAME.match(value):
            raise ValueError("must be lowercase letters, digits, '.', '_' or '-' (max 63)")
        return value


class RulesFile(_Strict):
    defaults: Defaults = Defaults()
    concurrency_limits: dict[str, int] = Field(default_factory=dict)
    rules: list[RuleSpec] = Field(default_factory=list)


@dataclass(frozen=True)
class Rule:
    """A validated rule with defaults applied and matchers/templates compiled."""

    name: str
    description: str
    enabled: bool
    matchers: tuple[Matcher, ...]
    inhibited_by: tuple[Matcher, ...]
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


@dataclass(frozen=True)
class Plan:
    """A rule rendered for one alert: what to run, on what, with which params."""

    rule: Rule
    target: str
    params: HandlerParams


class RuleSet:
    """An immutable, validated set of rules; swapped whole on reload."""

    def __init__(self, rules: list[Rule], source: str, digest: str) -> None:
        self.rules = rules
        self.source = source
        self.hash = digest
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
    target = str(render_value(rule.target_template, context)).strip()
    if not _TARGET.match(target):
        raise TemplateError(
            f"rendered target {target!r} is not a valid target "
            "(letters, digits and _ . : / @ = - only)"
        )
    raw = render_value(rule.params_template, context)
    try:
        params = rule.handler.params.model_validate(raw)
    except ValidationError as exc:
        raise TemplateError(f"params for {rule.handler.name}: {_short(exc)}") from exc
    return Plan(rule=rule, target=target, params=params)


def load_rules(path: Path, registry: Registry) -> RuleSet:
    """Read and validate ``path``; raises RulesError listing every problem."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise RulesError(str(path), [f"cannot read: {exc.strerror or exc}"]) from exc
    return parse_rules(data, str(path), registry)


def parse_rules(data: bytes, source: str, registry: Registry) -> RuleSet:
    try:
        document = yaml.safe_load(data)
        lines = _rule_lines(data)
    except yaml.YAMLError as exc:
        raise RulesError(source, [f"invalid YAML: {exc}"]) from exc
    if document is None:
        document = {}
    if not isinstance(document, dict):
        raise RulesError(source, ["the top level must be a mapping with 'defaults' and 'rules'"])
    try:
        parsed = RulesFile.model_validate(document)
    except ValidationError as exc:
        raise RulesError(source, _explain(exc, document, lines)) from exc
    rules, problems = [], []
    seen: set[str] = set()
    for index, spec in enumerate(parsed.rules):
        where = f"rule {spec.name!r}" + (f" (line {lines[index]})" if index < len(lines) else "")
        if spec.name in seen:
            problems.append(f"{where}: duplicate rule name")
            continue
        seen.add(spec.name)
        try:
            rules.append(_build(spec, parsed, registry))
        except RulesError as exc:
            problems.extend(f"{where}: {problem}" for problem in exc.problems)
        except (MatcherError, TemplateError) as exc:
            problems.append(f"{where}: {exc}")
    if problems:
        raise RulesError(source, problems)
    return RuleSet(rules, source, hashlib.sha256(data).hexdigest()[:16])


def _build(spec: RuleSpec, parsed: RulesFile, registry: Registry) -> Rule:
    handler = registry.get(spec.handler)
    if handler is None:
        known = ", ".join(registry.names()) or "none registered"
        raise RulesError("", [f"unknown handler {spec.handler!r} (known: {known})"])
    d = parsed.defaults
    target_template = compile_value(spec.target)
    params_template = {
        key: compile_value(value, handler.escapes.get(key)) for key, value in spec.params.items()
    }
    _check_params(handler, spec.params)
    return Rule(
        name=spec.name,
        description=spec.description,
        enabled=spec.enabled,
        matchers=tuple(parse_matcher(m) for m in spec.matchers),
        inhibited_by=tuple(parse_matcher(m) for m in spec.inhibited_by),
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


def _pick(value: Any, default: Any) -> Any:
    return default if value is None else value


def _check_params(handler: HandlerSpec, params: dict[str, Any]) -> None:
    """Validate params that hold no template now; templated ones at render time."""
    fields = {info.alias or name: info for name, info in handler.params.model_fields.items()}
    unknown = sorted(set(params) - set(fields))
    if unknown:
        raise RulesError("", [f"unknown params for {handler.name}: {', '.join(unknown)}"])
    missing = [name for name, info in fields.items() if info.is_required() and name not in params]
    if missing:
        raise RulesError("", [f"missing params for {handler.name}: {', '.join(missing)}"])
    if not _has_template(params):
        try:
            handler.params.model_validate(params)
        except ValidationError as exc:
            raise RulesError("", [f"params for {handler.name}: {_short(exc)}"]) from exc
        return
    for name, value in params.items():
        if _has_template(value):
            continue  # checked when rendered for an alert
        try:
            TypeAdapter(_field_type(fields[name])).validate_python(value)
        except ValidationError as exc:
            raise RulesError("", [f"param {name!r} for {handler.name}: {_short(exc)}"]) from exc


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


def _short(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        parts.append(f"{loc}: {err['msg']}" if loc else err["msg"])
    return "; ".join(parts)


def _explain(exc: ValidationError, document: dict[str, Any], lines: list[int]) -> list[str]:
    out = []
    found = document.get("rules")
    rules: list[Any] = found if isinstance(found, list) else []
    for err in exc.errors():
        loc = list(err["loc"])
        where = ".".join(str(p) for p in loc)
        if len(loc) >= 2 and loc[0] == "rules" and isinstance(loc[1], int):
            index = loc[1]
            item = rules[index] if index < len(rules) else None
            name = item.get("name", f"#{index + 1}") if isinstance(item, dict) else f"#{index + 1}"
            line = f" (line {lines[index]})" if index < len(lines) else ""
            field = ".".join(str(p) for p in loc[2:]) or "rule"
            msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
            out.append(f"rule {name!r}{line}: {field}: {msg}")
        else:
            msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
            out.append(f"{where}: {msg}")
    return out


def _rule_lines(data: bytes) -> list[int]:
    """1-based line of each item of the top-level ``rules`` list."""
    node = yaml.compose(data)
    if not isinstance(node, yaml.MappingNode):
        return []
    for key, value in node.value:
        if getattr(key, "value", None) == "rules" and isinstance(value, yaml.SequenceNode):
            return [item.start_mark.line + 1 for item in value.value]
    return []
