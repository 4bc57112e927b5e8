"""The rule tests' file format (``remediator test``): the models a test file is read
into, and reading one with its rules files. Every problem names the file and line
(``InvalidTestFile``); the format is documented in docs/how-to/rule-tests.md."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import yaml
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from remediator.api.times import parse_time
from remediator.cli import simulating
from remediator.errors import RulesError
from remediator.handling.owners import Owner
from remediator.handling.registry import default_registry
from remediator.rules.documents import Document, load_document
from remediator.rules.resolving import PodRef
from remediator.rules.rule import describe_error
from remediator.rules.ruleset import RuleSet, load_rules


def _text_time(value: Any) -> Any:
    """YAML reads an unquoted 2026-12-08T02:30:00Z as a datetime: take it as written."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("a time needs an offset (Z or +01:00)")
        return value.isoformat()
    return value


def _simulated_time(value: str) -> str:
    simulating.parse_at(value, 0.0)  # ValueError says what is expected
    return value


def _start_time(value: str) -> str:
    parse_time(value)
    return value


# What a rule test can see hold a job: pauses live in a running service, not in a test.
TESTED_HOLDS = tuple(kind for kind in get_args(simulating.HoldKind) if kind != "pause")


def _held_by(value: Any) -> Any:
    kinds = TESTED_HOLDS
    listed = [value] if isinstance(value, str) else value
    if not isinstance(listed, list) or any(k not in kinds for k in listed):
        raise ValueError(f"expected one of {', '.join(kinds)}, or a list of them ([] for none)")
    return value


PodName = Annotated[str, Field(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?/[a-z0-9]([-.a-z0-9]*[a-z0-9])?$")]
At = Annotated[str, BeforeValidator(_text_time), AfterValidator(_simulated_time)]
StartsAt = Annotated[str, BeforeValidator(_text_time), AfterValidator(_start_time)]
HeldBy = Annotated[Any, BeforeValidator(_held_by)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class TestAlert(_Strict):
    """One alert of a test; ``startsAt`` defaults to the test's ``at``."""

    labels: dict[str, str] = Field(min_length=1)
    annotations: dict[str, str] = Field(default_factory=dict)
    status: Literal["firing", "resolved"] = "firing"
    startsAt: StartsAt | None = None


class Expectation(_Strict):
    """A match the test expects: ``params`` need only hold the keys given (each equal);
    ``held_by`` (a kind or a list; [] for none) is checked only when given."""

    rule: str
    target: str | None = Field(description="null: no target (the pod of a resolve: rule is gone)")
    params: dict[str, Any] | None = None
    held_by: HeldBy = None
    steps: list[str] | None = None
    """The handlers of the rule's chain in order (``page`` for a page step); one for a
    ``handler:`` rule. Left out, not compared."""

    def holds(self) -> list[str] | None:
        if self.held_by is None:
            return None
        return sorted({self.held_by} if isinstance(self.held_by, str) else set(self.held_by))


class OwnerSpec(_Strict):
    """The workload that owns a pod, for the rules with ``resolve:``."""

    kind: str = Field(min_length=1)
    name: str = Field(min_length=1)


class RuleTest(_Strict):
    name: str = Field(min_length=1)
    alerts: list[TestAlert] = Field(min_length=1)
    at: At | None = None
    owners: dict[PodName, OwnerSpec | Literal["gone"]] = Field(default_factory=dict)
    """``namespace/pod``: its owner, or ``gone`` (the pod was replaced: ``skipped:gone``)."""
    expect: list[Expectation]

    def resolved(self) -> dict[PodRef, Owner | str]:
        found: dict[PodRef, Owner | str] = {}
        for pod_name, owner in self.owners.items():
            namespace, pod = pod_name.split("/")
            ref = PodRef(namespace=namespace, pod=pod)
            if owner == "gone":
                found[ref] = f"gone: pod {pod_name} no longer exists (the test's owners: say so)"
            else:
                found[ref] = Owner(kind=owner.kind, name=owner.name, namespace=namespace, pod=pod)
        return found


class TestFile(_Strict):
    rule_files: list[str] = Field(min_length=1)
    tests: list[RuleTest] = Field(min_length=1)


class InvalidTestFile(Exception):
    """The file cannot be run: each problem names the file and line."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class Loaded:
    path: Path
    doc: Document
    spec: TestFile
    rules: list[RuleSet]


# ---- reading a test file -------------------------------------------------------------
def load(path: Path) -> Loaded:
    """Read and check a test file and its rules files; ``InvalidTestFile`` lists why not."""
    try:
        doc = load_document(path.read_bytes(), str(path))
    except OSError as exc:
        raise InvalidTestFile([f"{path}: cannot read: {exc.strerror or exc}"]) from None
    except yaml.YAMLError as exc:
        raise InvalidTestFile([yaml_problem(path, exc)]) from None
    try:
        spec = TestFile.model_validate(doc.data)
    except ValidationError as exc:
        found = {_problem(path, doc, e): doc.line(e["loc"]) or 0 for e in exc.errors()}
        raise InvalidTestFile(sorted(found, key=lambda p: found[p])) from None  # in the file's order
    problems: list[str] = []
    rules: list[RuleSet] = []
    for i, name in enumerate(spec.rule_files):
        where = f"{path}:{doc.line(('rule_files', i))}: rule_files[{i}]"
        try:
            rules.append(load_rules(path.parent / name, default_registry))  # an absolute name wins
        except RulesError as exc:
            problems += [f"{where}: {exc.source}: {problem}" for problem in exc.problems]
    problems += _same_names(path, rules)
    if problems:
        raise InvalidTestFile(problems)
    return Loaded(path, doc, spec, rules)


def _problem(path: Path, doc: Document, err: Any) -> str:
    loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and ("[" in p or p.startswith("function"))))
    shown = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".") or "the file"
    return f"{path}:{doc.line(loc)}: {shown}: {describe_error(err)}"


def _same_names(path: Path, rules: list[RuleSet]) -> list[str]:
    seen: dict[str, str] = {}
    problems = []
    for ruleset in rules:
        for rule in ruleset.rules:
            if rule.name in seen:
                problems.append(
                    f"{path}: rule_files: the rule {rule.name!r} is in {seen[rule.name]} and in "
                    f"{ruleset.source}: a test names rules, so list files whose rule names differ"
                )
            seen.setdefault(rule.name, ruleset.source)
    return problems


def yaml_problem(path: Path, exc: yaml.YAMLError) -> str:
    """``FILE:LINE:COLUMN: not valid YAML: what`` (where the parser stopped)."""
    mark = getattr(exc, "problem_mark", None)
    where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)
    problem = getattr(exc, "problem", None) or str(exc)
    context = getattr(exc, "context", None)
    return f"{where}: not valid YAML: {problem}" + (f" ({context})" if context else "")
