r"""Alertmanager's matcher syntax (``name="value"``, ``!=``, ``=~``, ``!~``) and meaning; pure.

Regexes are RE2 (rules/patterns.py), fully anchored as Alertmanager anchors them
(``^(?:value)$``). In a quoted value ``\"``, ``\\`` and ``\n`` are escapes and any other
backslash is itself, as in Alertmanager's parser: ``pod=~"web-\d+"`` means ``web-\d+``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from remediator.errors import MatcherError
from remediator.rules.patterns import Pattern, PatternError, compile_pattern

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_OPS = ("=~", "!~", "!=", "=")
_ESCAPES = {'"': '"', "\\": "\\", "n": "\n"}


@dataclass(frozen=True)
class Matcher:
    """One label matcher. Regexes are fully anchored, as in Alertmanager."""

    name: str
    op: str
    value: str
    _regex: Pattern | None = field(default=None, compare=False, repr=False)

    def matches(self, labels: Mapping[str, str]) -> bool:
        actual = labels.get(self.name, "")  # a missing label matches as ""
        if self.op == "=":
            return actual == self.value
        if self.op == "!=":
            return actual != self.value
        assert self._regex is not None
        found = self._regex.fullmatch(actual)
        return found if self.op == "=~" else not found

    def __str__(self) -> str:
        escaped = self.value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        return f'{self.name}{self.op}"{escaped}"'


def parse_matcher(text: str) -> Matcher:
    """Parse ``alertname="X"``, ``severity=~"critical|page"``, ``env!=prod``."""
    source = text.strip()
    if source.startswith("{") and source.endswith("}"):
        source = source[1:-1].strip()
    name_match = _NAME.match(source)
    if not name_match:
        raise MatcherError(f"matcher {text!r}: expected a label name first")
    rest = source[name_match.end() :].lstrip()
    op = next((o for o in _OPS if rest.startswith(o)), None)
    if op is None:
        raise MatcherError(f"matcher {text!r}: expected one of = != =~ !~ after the label name")
    value = _parse_value(text, rest[len(op) :].strip())
    regex = None
    if op in ("=~", "!~"):
        try:
            regex = compile_pattern(f"(?:{value})")
        except PatternError as exc:
            raise MatcherError(f"matcher {text!r}: invalid regex: {exc}") from exc
    return Matcher(name_match.group(), op, value, regex)


def _parse_value(text: str, raw: str) -> str:
    if not raw.startswith('"'):
        if any(ch in raw for ch in '"{},=~!') or any(ch.isspace() for ch in raw):
            raise MatcherError(f"matcher {text!r}: unquoted value has forbidden characters")
        return raw
    out, i = [], 1
    while i < len(raw):
        ch = raw[i]
        if ch == "\\" and i + 1 < len(raw) and raw[i + 1] in _ESCAPES:
            out.append(_ESCAPES[raw[i + 1]])
            i += 2
            continue  # any other backslash is itself (Alertmanager: "a spurious escape")
        if ch == '"':
            if raw[i + 1 :].strip():
                raise MatcherError(f"matcher {text!r}: unexpected text after closing quote")
            return "".join(out)
        out.append(ch)
        i += 1
    raise MatcherError(f"matcher {text!r}: missing closing quote")


def matches_all(matchers: Iterable[Matcher], labels: Mapping[str, str]) -> bool:
    """True when every matcher matches (an empty list matches everything)."""
    for matcher in matchers:  # noqa: SIM110  (a plain loop: hot path, no generator)
        if not matcher.matches(labels):
            return False
    return True
