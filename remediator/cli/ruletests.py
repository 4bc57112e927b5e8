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
from pathlib import Path
from typing import Any

import yaml

from remediator import clock
from remediator.api.times import rfc3339
from remediator.cli import simulating
from remediator.cli.ruletest_files import Expectation, InvalidTestFile, Loaded, RuleTest, load
from remediator.models import Alert

EXIT_FAILED, EXIT_INVALID = 1, 2


@dataclass(frozen=True)
class Found:
    """One match a test produced, as the expectations speak of it."""

    rule: str
    target: str | None
    params: dict[str, Any]
    held_by: list[str]
    steps: list[str]
    error: str = ""

    def satisfies(self, want: Expectation) -> bool:
        if (self.rule, self.target) != (want.rule, want.target) or self.error:
            return False
        if want.params is not None and any(
            k not in self.params or self.params[k] != v for k, v in want.params.items()
        ):
            return False
        if want.steps is not None and want.steps != self.steps:
            return False
        return want.holds() is None or want.holds() == self.held_by


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
                        steps=_steps(match),
                        error=match.get("error", "") or _unresolved(match),
                    )
                )
    return out


def _steps(match: dict[str, Any]) -> list[str]:
    """The chain's handlers as simulate shows them (a page step: ``page``)."""
    if "steps" in match:
        return [str(step.get("handler", "page")) for step in match["steps"]]
    return [str(match["handler"])]


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
        if want is not None and want.steps is not None:
            item["steps"] = f.steps
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
