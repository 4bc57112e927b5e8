"""Regular expressions written by users (matchers, probe bodies), run by RE2. Pure.

RE2 is the engine of Alertmanager and Prometheus: matching takes time linear in the
text, whatever the pattern (Python's ``re`` backtracks: ``(a+)+b`` against 26 ``a`` took
seconds and froze the event loop). Its syntax is Go's: ``\\d``, ``\\w``, ``\\s`` and
``\\b`` are ASCII only, ``\\z`` ends the text, and lookaround, backreferences, atomic
groups and possessive quantifiers do not exist. A pattern using them is refused with
the construct named, where it is written (``remediator check``, the pause API).
"""

from __future__ import annotations

from typing import Any

import re2
from re2 import _re2  # the compiled program: re2's str wrapper costs ~6 µs a call, this <1 µs

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # RE2 would print each refused pattern on stderr, outside our logs
_OPTIONS.never_capture = True  # we only ask "does it match": no groups to track
_BOTH, _NONE = _re2.RE2.Anchor.ANCHOR_BOTH, _re2.RE2.Anchor.UNANCHORED
_NO_MATCH = (-1, -1)

# RE2's message (its start) -> what the construct is called, and what to write instead.
_LACKING = (
    ("invalid perl operator: (?=", "a lookahead (?=...)", "match what must be there, or use !~"),
    ("invalid perl operator: (?!", "a negative lookahead (?!...)", "use a second matcher with !~"),
    ("invalid perl operator: (?<=", "a lookbehind (?<=...)", "match the text before it as well"),
    ("invalid perl operator: (?<!", "a negative lookbehind (?<!...)", "use a second matcher with !~"),
    ("invalid perl operator: (?P=", "a backreference (?P=name)", "spell the repeated text out"),
    ("invalid perl operator: (?>", "an atomic group (?>...)", "a plain group (?:...) is linear already"),
    ("invalid perl operator: (?#", "a comment (?#...)", "remove it"),
    ("bad repetition operator: ++", "a possessive quantifier ++", "a plain + is linear already"),
    ("bad repetition operator: *+", "a possessive quantifier *+", "a plain * is linear already"),
    ("bad repetition operator: ?+", "a possessive quantifier ?+", "a plain ? is linear already"),
    ("invalid escape sequence: \\Z", "\\Z", "write \\z for the end of the text"),
)


class PatternError(ValueError):
    """A pattern RE2 does not accept; the message says why in words."""


class Pattern:
    """One compiled RE2 pattern; ``pattern`` is the text as written."""

    __slots__ = ("_program", "pattern")

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        self._program: Any = _re2.RE2(_utf8(pattern), _OPTIONS)
        if not self._program.ok():
            raise PatternError(_explain(self._program.error(), pattern))

    def fullmatch(self, text: str) -> bool:
        """The whole of ``text`` matches (Alertmanager's anchored ``^(?:...)$``)."""
        data = _utf8(text)
        return bool(self._program.Match(_BOTH, data, 0, len(data))[0] != _NO_MATCH)

    def search(self, text: str) -> bool:
        """Some part of ``text`` matches."""
        data = _utf8(text)
        return bool(self._program.Match(_NONE, data, 0, len(data))[0] != _NO_MATCH)

    def __repr__(self) -> str:
        return f"Pattern({self.pattern!r})"


def compile_pattern(pattern: str) -> Pattern:
    """``pattern`` compiled by RE2; raises :class:`PatternError` naming what RE2 lacks."""
    return Pattern(pattern)


def _utf8(text: str) -> bytes:
    # A lone surrogate (JSON allows "\ud800") is no UTF-8: kept as its bytes, never an error.
    return text.encode("utf-8", "surrogatepass")


def _explain(error: Any, pattern: str) -> str:
    message = error.decode("utf-8", "replace") if isinstance(error, bytes) else str(error)
    if message == "invalid perl operator: (?P" and "(?P=" in pattern:  # RE2 cuts the name off
        message = "invalid perl operator: (?P="
    if message.startswith("invalid escape sequence: \\") and message[-1:].isdigit():
        return (
            f"{message}: a backreference, which RE2 (Alertmanager's regex engine) does not "
            "support: spell the repeated text out"
        )
    for start, construct, instead in _LACKING:
        if message.startswith(start):
            return (
                f"{message}: {construct}, which RE2 (Alertmanager's regex engine) does not support: {instead}"
            )
    return f"{message} (RE2 syntax, as in Alertmanager)"
