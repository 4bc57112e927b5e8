"""A rule's ``context:`` entries: checked and compiled with the rule, rendered per alert. Pure.

Each entry is a one-key mapping from its kind to its params, e.g.
``- kubernetes.logs: {namespace: torghut, pod: '{{ labels.pod }}', lines: 50}``. The kind
names a gatherer the ``handlers`` package registered (``handling/gathering.py``); its params
are templated like a handler's and checked against the kind's params model: the ones
written without a template when the rules load, the others once rendered for an alert
(labels are untrusted: a Kubernetes name must be one, a URL must be valid).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BeforeValidator, TypeAdapter, ValidationError
from pydantic.fields import FieldInfo

from remediator.errors import TemplateError
from remediator.handling.gathering import GathererSpec, GatherParams
from remediator.handling.registry import Registry
from remediator.rules.templates import compile_value, render_value

MAX_ENTRIES = 10  # per rule: each is gathered before acting, and shown in Slack


def _one_key(value: Any) -> Any:
    """``{kind: params}`` with exactly one key; ``params`` a mapping (or empty)."""
    if not isinstance(value, dict) or len(value) != 1:
        raise ValueError(
            "each context entry is a mapping with one key, its kind, e.g. "
            "'- kubernetes.logs: {namespace: torghut, pod: ..., lines: 50}'"
        )
    ((kind, params),) = value.items()
    if not isinstance(kind, str):
        raise ValueError(f"the kind of a context entry is a name, got {kind!r}")
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise ValueError(f"{kind}: the params are a mapping, e.g. {{namespace: torghut}}, got {params!r}")
    return {kind: params}


ContextEntry = Annotated[dict[str, dict[str, Any]], BeforeValidator(_one_key)]
"""One entry of ``context:`` as written."""


class ContextProblem(Exception):
    """An entry the rules cannot load with: ``path`` inside the entry, and why."""

    def __init__(self, path: tuple[str | int, ...], message: str) -> None:
        super().__init__(message)
        self.path = path
        self.message = message


@dataclass(frozen=True)
class ContextTemplate:
    """One ``context:`` entry with its params compiled, and the gatherer of its kind."""

    spec: GathererSpec
    params: dict[str, Any]  # compiled: jinja2 Templates where a value is templated

    @property
    def kind(self) -> str:
        return self.spec.kind

    @classmethod
    def compile(cls, entry: Mapping[str, dict[str, Any]], registry: Registry) -> ContextTemplate:
        """Raises ContextProblem: an unknown kind, unknown or missing params, a value the
        kind's model refuses, a template that does not compile."""
        ((kind, params),) = entry.items()
        spec = registry.gatherers.get(kind)
        if spec is None:
            known = ", ".join(sorted(registry.gatherers)) or "none registered"
            raise ContextProblem((), f"unknown context kind {kind!r} (known: {known})")
        _check(spec, params)
        compiled = {}
        for name, value in params.items():
            try:
                compiled[name] = compile_value(value, spec.escapes.get(name))
            except TemplateError as exc:
                raise ContextProblem((kind, name), f"{kind}.{name}: {exc}") from exc
        return cls(spec=spec, params=compiled)

    def render(self, context: Mapping[str, Any]) -> GatherParams:
        """The params for one alert; raises TemplateError saying which value is refused."""
        raw = render_value(self.params, context)
        try:
            return self.spec.params.model_validate(raw)
        except ValidationError as exc:
            raise TemplateError(f"{self.kind}: {_errors(exc)}") from exc


def _check(spec: GathererSpec, params: dict[str, Any]) -> None:
    """Validate what holds no template now; templated values once rendered."""
    kind, fields = spec.kind, spec.params.model_fields
    if unknown := sorted(set(params) - set(fields)):
        raise ContextProblem((kind, unknown[0]), f"{kind}: unknown params: {', '.join(unknown)}")
    if missing := [name for name, info in fields.items() if info.is_required() and name not in params]:
        raise ContextProblem((kind,), f"{kind}: missing params: {', '.join(missing)}")
    for name, value in params.items():
        if _templated(value):
            continue
        try:
            TypeAdapter(field_type(fields[name])).validate_python(value)
        except ValidationError as exc:
            raise ContextProblem((kind, name), f"{kind}.{name}: {_errors(exc)}") from exc


def field_type(info: FieldInfo) -> Any:
    """The field's type with its validators (``Annotated`` metadata), not just the bare type."""
    if not info.metadata:
        return info.annotation
    return Annotated[(info.annotation, *info.metadata)]


def _templated(value: Any) -> bool:
    if isinstance(value, str):
        return "{{" in value or "{%" in value
    if isinstance(value, list):
        return any(_templated(v) for v in value)
    if isinstance(value, dict):
        return any(_templated(v) for v in value.values())
    return False


def _errors(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        msg = str(err["msg"]).removeprefix("Value error, ")
        msg = "unknown key" if err["type"] == "extra_forbidden" else msg
        parts.append(f"{loc}: {msg}" if loc else msg)
    return "; ".join(parts)
