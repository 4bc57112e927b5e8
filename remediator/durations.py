"""Durations written as Prometheus does (``90s``, ``15m``, ``1h30m``)."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import BeforeValidator

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_NUMBER = re.compile(r"[-+]?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?")


def parse_duration(value: object) -> float:
    """Return seconds for ``value`` (a number of seconds or a duration string)."""
    if isinstance(value, bool):
        raise ValueError("a duration must be a number of seconds or a string like '15m'")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip()
        pos, seconds = 0, 0.0
        for match in _PART.finditer(text):
            if match.start() != pos:
                break
            seconds += float(match.group(1)) * _UNITS[match.group(2)]
            pos = match.end()
        if not text or pos != len(text):
            raise ValueError(f"invalid duration {value!r}: use e.g. '30s', '15m', '1h30m'")
    else:
        raise ValueError("a duration must be a number of seconds or a string like '15m'")
    if seconds < 0:
        raise ValueError(f"duration must not be negative: {value!r}")
    return seconds


def parse_rule_duration(value: object) -> float:
    """Return seconds for a duration written in ``rules.yaml``: the unit is required."""
    if isinstance(value, bool) or value is None or not isinstance(value, int | float | str):
        raise ValueError(f"{value!r} is not a duration: write e.g. '30s', '15m', '1h30m'")
    text = value.strip() if isinstance(value, str) else repr(value)
    if _NUMBER.fullmatch(text):
        raise ValueError(f"{text} has no unit: write {text}s or {text}m")
    return parse_duration(text)


def format_duration(seconds: float) -> str:
    """The shortest readable form of ``seconds`` (``1h30m``, ``45s``, ``250ms``)."""
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"
    rest, parts = round(seconds), []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if rest >= size:
            parts.append(f"{rest // size}{unit}")
            rest %= size
    return "".join(parts)


def human_duration(seconds: float) -> str:
    """``seconds`` for a person: its two largest units, rounded down (``16h 47m``, ``59m``,
    ``2m 5s``, ``45s``, ``1.5s``); seconds only under ten minutes, where they matter.
    ``format_duration`` writes what rules.yaml reads back; this is only read."""
    if seconds < 10:
        return f"{max(0.0, seconds):.1f}".removesuffix(".0") + "s"
    whole = int(seconds)
    if whole >= 600:
        whole -= whole % 60
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if whole >= size:
            parts.append(f"{whole // size}{unit}")
            whole %= size
        elif parts:
            break  # the second unit only when it follows the first (1d 1h, not 1d 1m)
        if len(parts) == 2:
            break
    return " ".join(parts)


Duration = Annotated[float, BeforeValidator(parse_duration)]
"""A pydantic field type: accepts ``'15m'`` or a number of seconds, stores seconds.

For settings and values built in code; ``rules.yaml`` and handler params use
``RuleDuration``."""

RuleDuration = Annotated[float, BeforeValidator(parse_rule_duration)]
"""A pydantic field type for what operators write (``rules.yaml``, handler params):
``'90s'``, ``'15m'``, ``'1h30m'``; a bare number is an error (seconds? minutes?)."""
