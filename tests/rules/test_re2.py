"""Every pattern a rule, a window, a pause or a probe holds is RE2: Alertmanager's engine and
meaning, linear time, and the constructs RE2 lacks refused where they are written."""

from __future__ import annotations

import time

import pytest

from remediator.errors import MatcherError, RulesError
from remediator.rules.matchers import parse_matcher
from remediator.rules.ruleset import parse_rules
from tests.support.handlers import make_registry


@pytest.mark.parametrize(
    ("text", "value", "expected"),
    [
        (r'n=~"\d+"', "42", True),
        (r'n=~"\d+"', "\u0663\u0664", False),  # Arabic-Indic digits: RE2's \d is ASCII only
        (r'n=~"\w+"', "caf\u00e9", False),  # so is \w
        (r'n=~"\s"', "\u00a0", False),  # and \s
        ('n=~"a.b"', "a\nb", False),  # . does not match a newline, as in Alertmanager
        ('n=~"(?s:a.b)"', "a\nb", True),
        ('n=~"(?i)prod"', "PROD", True),
        ('n=~"[[:digit:]]+"', "123", True),  # POSIX classes, which Python's re does not know
        ('n=~"a|ab"', "ab", True),  # fully anchored: the whole value must match
        ('n=~"prod"', "prod\n", False),  # no match before a trailing newline ($ is \z)
        ('n!~"a+"', "aaa", False),
        ('n=~".*"', "\udc80", True),  # a lone surrogate in a label is matched, never an error
    ],
)
def test_matchers_have_re2s_meaning(text: str, value: str, expected: bool) -> None:
    assert parse_matcher(text).matches({"n": value}) is expected


@pytest.mark.parametrize(
    ("regex", "named"),
    [
        ("(?=a)a", "lookahead"),
        ("(?!a)b", "lookahead"),
        ("(?<=a)b", "lookbehind"),
        ("(?<!a)b", "lookbehind"),
        (r"(a)\\1", "backreference"),
        ("(?P=x)", "backreference"),
        ("a++", "possessive"),
        ("(?>a)", "atomic"),
    ],
)
def test_constructs_re2_lacks_are_refused_by_name(regex: str, named: str) -> None:
    with pytest.raises(MatcherError) as caught:
        parse_matcher(f'pod=~"{regex}"')
    message = str(caught.value)
    assert named in message and "RE2" in message, message


def test_a_pathological_regex_runs_in_linear_time() -> None:
    matcher = parse_matcher('pod=~"(a+)+b"')
    started = time.perf_counter()
    assert not matcher.matches({"pod": "a" * 10_000})
    assert time.perf_counter() - started < 0.5  # Python's re: 2**10000 steps


def rules_with(line: str) -> str:
    return f"rules:\n  - name: probe\n    handler: test.probe\n    target: x\n    {line}\n"


@pytest.mark.parametrize(
    ("line", "at", "named"),
    [
        ("matchers: ['alertname=\"A\"', 'pod=~\"(?!canary).*\"']", 5, "lookahead"),
        ("matchers: ['alertname=\"A\"']\n    inhibited_by: ['pod=~\"(a)\\\\1\"']", 6, "backreference"),
        (
            "matchers: ['alertname=\"A\"']\n    probe:\n      url: http://svc/\n"
            "      expect_body: '\\A(?![\\s\\S]*UNKNOWN_TABLE)'",
            8,
            "lookahead",
        ),
    ],
)
def test_check_refuses_them_at_their_line(line: str, at: int, named: str) -> None:
    with pytest.raises(RulesError) as caught:
        parse_rules(rules_with(line).encode(), "rules.yaml", make_registry())
    (problem,) = caught.value.problems
    assert named in problem and f"(line {at})" in problem, problem


def test_a_maintenance_window_matcher_is_re2_too() -> None:
    text = (
        "rules: []\nmaintenance_windows:\n  - name: nightly\n"
        "    matchers: ['pod=~\"(?=x)x\"']\n    start: '02:00'\n    duration: 1h\n"
    )
    with pytest.raises(RulesError) as caught:
        parse_rules(text.encode(), "rules.yaml", make_registry())
    (problem,) = caught.value.problems
    assert "lookahead" in problem and "(line 4)" in problem, problem
