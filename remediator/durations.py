"""Durations written as Prometheus does (``90s``, ``15m``, ``1h30m``)."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import BeforeValidator

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")


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


Duration = Annotated[float, BeforeValidator(parse_duration)]
"""A pydantic field type: accepts ``'15m'`` or seconds, stores seconds."""
