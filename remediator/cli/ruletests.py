"""``remediator test FILE...``: rule tests, as ``promtool test rules`` is for Prometheus.

A test file names its rules files (``rule_files:``, relative to the test file or
absolute) and lists tests: alerts in, and what must match out (rule, target, a subset of
the params, what holds it). Each test runs the alerts through ``simulate`` and its
outlook at the test's ``at``: the same code as ``remediator simulate``, never a second
matcher or renderer. Exit 0 when every test passes, 1 with a diff when one fails, 2 for
a file that is not a valid test file (its errors name the file and line).
"""

from __future__ import annotations

import difflib
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import yaml
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from remediator import clock
from remediator.api.times import parse_time, rfc3339
from remediator.cli import simulating
from remediator.errors import RulesError
from remediator.handling.owners import Owner
from remediator.handling.registry import default_registry
from remediator.models import Alert
from remediator.rules.documents import Document, load_document
from remediator.rules.resolving import PodRef
from remediator.rules.rule import describe_error
from remediator.rules.ruleset import RuleSet, load_rules

EXIT_FAILED, EXIT_INVALID = 1, 2


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
class Found:
    """One match a test produced, as the expectations speak of it."""

    rule: str
    target: str | None
    params: dict[str, Any]
    held_by: list[str]
    error: str = ""

    def satisfies(self, want: Expectation) -> bool:
        if (self.rule, self.target) != (want.rule, want.target) or self.error:
            return False
        if want.params is not None and any(
            k not in self.params or self.params[k] != v for k, v in want.params.items()
        ):
            return False
        return want.holds() is None or want.holds() == self.held_by


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


# ---- running it ----------------------------------------------------------------------
def found(loaded: Loaded, test: RuleTest) -> list[Found]:
    """The matches ``test``'s alerts produce at its ``at``: simulate and its outlook."""
    from remediator.cli.main import simulate  # main imports this module to run `test`

    at = simulating.parse_at(test.at, clock.now())
    alerts = [
        Alert.model_validate(
            {
                "status": a.status,
                "labels": a.labels,
                "annotations": a.annotations,
                "startsAt": a.startsAt or rfc3339(at),
            }
        )
        for a in test.alerts
    ]
    out = []
    for rules in loaded.rules:
        report = simulate(rules, alerts, test.resolved())
        simulating.outlook(rules, alerts, report, at)
        for entry in report:
            for match in entry["matches"]:
                out.append(
                    Found(
                        rule=match["rule"],
                        target=match.get("target"),
                        params=match.get("params", {}),
                        held_by=sorted({h["by"] for h in match.get("holds", [])}),
                        error=match.get("error", "") or _unresolved(match),
                    )
                )
    return out


def _unresolved(match: dict[str, Any]) -> str:
    if "pod" in match and "target" not in match and "action" not in match:
        return f"the owner of pod {match['pod']} is found at run time: name it under the test's owners:"
    return ""


def compare(wanted: Sequence[Expectation], got: Sequence[Found]) -> bool:
    """Every expectation met by its own match, and no match left over."""
    left = list(got)
    for want in wanted:
        hit = next((f for f in left if f.satisfies(want)), None)
        if hit is None:
            return False
        left.remove(hit)
    return not left


def diff(wanted: Sequence[Expectation], got: Sequence[Found]) -> list[str]:
    """Expected and found as YAML, and a unified diff of the two; a found match shows
    the fields its expectation (same rule and target) names."""
    expected = [want.model_dump(exclude_none=True) for want in wanted]
    shown = []
    for f in got:
        want = next((w for w in wanted if (w.rule, w.target) == (f.rule, f.target)), None)
        item: dict[str, Any] = {"rule": f.rule, "target": f.target}
        if f.error:
            item["error"] = f.error
        if want is not None and want.params is not None:
            item["params"] = {k: f.params.get(k, "<missing>") for k in want.params}
        if (want is not None and want.held_by is not None) or f.held_by:
            item["held_by"] = _held_as_written(f.held_by, want)
        shown.append(item)
    expected_text = _yaml(sorted(expected, key=_order))
    found_text = _yaml(sorted(shown, key=_order))
    lines = [
        "  expected:",
        *_indent(expected_text),
        "  found:",
        *_indent(found_text),
        "  diff (- expected, + found):",
    ]
    changes = difflib.unified_diff(expected_text, found_text, lineterm="", n=3)
    lines += [f"    {line[:1]} {line[1:]}" for line in list(changes)[2:] if not line.startswith("@@")]
    return lines


def _held_as_written(held: list[str], want: Expectation | None) -> Any:
    if want is not None and isinstance(want.held_by, str) and len(held) == 1:
        return held[0]
    return held


def _order(item: dict[str, Any]) -> tuple[str, str]:
    return str(item["rule"]), str(item["target"])


def _yaml(items: list[dict[str, Any]]) -> list[str]:
    if not items:
        return ["[]  # nothing matches"]
    text = yaml.safe_dump(items, sort_keys=False, width=100)
    return text.rstrip("\n").splitlines()


def _indent(lines: list[str]) -> list[str]:
    return [f"    {line}" for line in lines]


def run_file(path: Path) -> tuple[int, int, list[str]]:
    """(tests, failures, lines to print) for one test file; ``InvalidTestFile`` if invalid."""
    loaded = load(path)
    failures, lines = 0, []
    for i, test in enumerate(loaded.spec.tests):
        got = found(loaded, test)
        if compare(test.expect, got):
            continue
        failures += 1
        lines.append(f"{path}:{loaded.doc.line(('tests', i))}: FAILED: {test.name}")
        lines += diff(test.expect, got)
    return len(loaded.spec.tests), failures, lines


def run(paths: list[Path]) -> int:
    """Run every test file; print what failed and a summary line per file."""
    invalid = failed = 0
    for path in paths:
        try:
            count, failures, lines = run_file(path)
        except InvalidTestFile as exc:
            invalid += 1
            for problem in exc.problems:
                print(problem, file=sys.stderr)
            print(f"{path}: invalid test file, not run", file=sys.stderr)
            continue
        for line in lines:
            print(line)
        failed += failures
        verdict = "all passed" if not failures else f"{failures} FAILED"
        print(f"{path}: {count} test(s), {verdict}")
    if invalid:
        return EXIT_INVALID
    return EXIT_FAILED if failed else 0
