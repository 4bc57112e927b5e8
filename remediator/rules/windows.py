"""Recurring maintenance windows (``maintenance_windows:`` in rules.yaml); pure.

A window opens at ``start`` (local time in ``time_zone``) on each of its ``weekdays``
and stays open for ``duration``; while open it holds the jobs its matchers match,
as a pause does. Matchers see the alert's labels plus ``rule`` and ``target``.
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta

from remediator.rules.matchers import Matcher, matches_all, parse_matcher
from remediator.rules.schema import MaintenanceWindowSpec

_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class Window:
    name: str
    matchers: tuple[Matcher, ...]
    weekdays: frozenset[int]  # 0 = Monday
    start: time
    duration: float  # seconds
    zone: zoneinfo.ZoneInfo

    @classmethod
    def of(cls, spec: MaintenanceWindowSpec) -> Window:
        hours, minutes = spec.start.split(":")
        return cls(
            name=spec.name,
            matchers=tuple(parse_matcher(text) for text in spec.matchers),
            weekdays=frozenset(_DAYS.index(day) for day in spec.weekdays),
            start=time(int(hours), int(minutes)),
            duration=spec.duration,
            zone=zoneinfo.ZoneInfo(spec.time_zone),
        )

    def open_until(self, now: float) -> float | None:
        """When the window that is open at ``now`` closes (epoch seconds); None: closed."""
        today = datetime.fromtimestamp(now, self.zone).date()
        back = int(self.duration // 86400) + 1
        for days in range(back, -1, -1):  # the earliest opening still open wins
            day = today - timedelta(days=days)
            if day.weekday() not in self.weekdays:
                continue
            opened = datetime.combine(day, self.start, tzinfo=self.zone).timestamp()
            if opened <= now < opened + self.duration:
                return opened + self.duration
        return None

    def matches(self, labels: Mapping[str, str]) -> bool:
        return matches_all(self.matchers, labels)

    def describe(self) -> str:
        days = ",".join(_DAYS[d] for d in sorted(self.weekdays))
        return f"{days} {self.start:%H:%M} {self.zone.key} for {self.duration:g}s"


def open_window(
    windows: tuple[Window, ...], labels: Mapping[str, str], now: float
) -> tuple[Window, float] | None:
    """The first window open at ``now`` that matches ``labels``, and when it closes."""
    for window in windows:
        if window.matches(labels) and (until := window.open_until(now)) is not None:
            return window, until
    return None


def utc_iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
