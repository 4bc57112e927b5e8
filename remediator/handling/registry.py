"""Handler plugins: ``@handler`` registers a frozen spec under its rules.yaml name.

A handler is a class of three phases (``phases.Handler``: precheck, act, verify); the
spec holds one instance of it, the params model, how substituted values are escaped, the
plan without I/O (``describe``) and a check of the params as written (``check``).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict

from remediator.handling.escapes import Finalizer
from remediator.handling.gathering import Gather, GathererSpec, GatherParams, Prepare
from remediator.handling.owners import OwnerResolver
from remediator.handling.phases import Handler

P = TypeVar("P", bound="HandlerParams")
G = TypeVar("G", bound=GatherParams)
H = TypeVar("H", bound=type[Handler[Any, Any, Any]])


class HandlerParams(BaseModel):
    """Base of every handler's params model: unknown params are errors. A field's docstring
    is its meaning in docs/reference/handlers.md (`make docs-gen`) and in rules.schema.json."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


@dataclass(frozen=True)
class HandlerSpec:
    name: str
    phases: Handler[Any, Any, Any]
    params: type[HandlerParams]
    description: str = ""
    escapes: dict[str, Finalizer] = field(default_factory=dict)
    describe: Callable[[Any], list[str]] | None = None
    check: Callable[[dict[str, Any]], tuple[str, str] | None] | None = None

    def plan(self, params: HandlerParams) -> list[str]:
        """What the handler would do with ``params``, without any I/O (for simulate)."""
        if self.describe is not None:
            return self.describe(params)
        return [f"run {self.name} with {params.model_dump(mode='json')}"]


class Registry:
    """Handlers by name (a duplicate name is an error), the resolver of a rule's
    ``resolve:`` (at most one: ``owner_resolver``) and the gatherers of its ``context:``
    entries by kind (``gatherer``)."""

    def __init__(self) -> None:
        self._specs: dict[str, HandlerSpec] = {}
        self.resolver: OwnerResolver | None = None
        self.gatherers: dict[str, GathererSpec] = {}

    def add(self, spec: HandlerSpec) -> None:
        if spec.name in self._specs:
            raise ValueError(f"handler {spec.name!r} is registered twice")
        self._specs[spec.name] = spec

    def get(self, name: str) -> HandlerSpec | None:
        return self._specs.get(name)

    def names(self) -> list[str]:
        return sorted(self._specs)

    def __iter__(self) -> Iterator[HandlerSpec]:
        return iter(self._specs.values())


default_registry = Registry()


def handler(
    name: str,
    *,
    params: type[P],
    escapes: dict[str, Finalizer] | None = None,
    describe: Callable[[P], list[str]] | None = None,
    check: Callable[[dict[str, Any]], tuple[str, str] | None] | None = None,
    registry: Registry | None = None,
) -> Callable[[H], H]:
    """Register a ``Handler`` class (precheck, act, verify) as handler ``name``.

    ``escapes`` maps a top-level param name to a finalizer applied to every
    value substituted into that param's template (e.g. URL-encoding).
    ``describe`` renders the plan for ``remediator simulate`` without I/O.
    ``check`` looks at the params as written in ``rules.yaml`` (templates not rendered)
    and returns ``(param, problem)`` for the first one it refuses, e.g. a template
    where the rule must fix the value (the program a command runs), else None.
    """

    def register(cls: H) -> H:
        spec = HandlerSpec(
            name=name,
            phases=cls(),
            params=params,
            description=(cls.__doc__ or "").strip().split("\n")[0],
            escapes=dict(escapes or {}),
            describe=describe,
            check=check,
        )
        (registry or default_registry).add(spec)
        return cls

    return register


def owner_resolver(resolve: OwnerResolver, *, registry: Registry | None = None) -> OwnerResolver:
    """Register ``resolve`` as the resolver of rules' ``resolve:`` (a pod's owner)."""
    target = registry or default_registry
    if target.resolver is not None and target.resolver is not resolve:
        raise ValueError("an owner resolver is registered twice")
    target.resolver = resolve
    return resolve


def gatherer(
    kind: str,
    *,
    params: type[G],
    describe: Callable[[G], str],
    escapes: dict[str, Finalizer] | None = None,
    keep: str = "head",
    prepare: Prepare | None = None,
    registry: Registry | None = None,
) -> Callable[[Gather], Gather]:
    """Register ``gather(params, ctx) -> str`` as the gatherer of ``context:`` entries of
    ``kind`` (``kubernetes.logs``). ``describe`` titles an entry without I/O; ``escapes``
    as for handlers; ``keep="tail"``: beyond the size bound, the end of the text is kept;
    ``prepare(ctx)`` makes the kind's client ready before any entry's timeout starts."""

    def register(gather: Gather) -> Gather:
        target = registry or default_registry
        if kind in target.gatherers:
            raise ValueError(f"context kind {kind!r} is registered twice")
        target.gatherers[kind] = GathererSpec(
            kind=kind,
            gather=gather,
            params=params,
            describe=describe,
            escapes=dict(escapes or {}),
            keep=keep,
            prepare=prepare,
        )
        return gather

    return register


def load_plugins(modules: list[str]) -> None:
    """Import the handler packages named in settings; each registers itself."""
    for module in modules:
        importlib.import_module(module)
