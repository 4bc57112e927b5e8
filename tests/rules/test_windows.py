"""Maintenance windows: checked by ``remediator check``, open and closed by the clock."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml

from remediator.errors import RulesError
from remediator.rules.ruleset import RuleSet, parse_rules
from remediator.rules.windows import open_window
from tests.support.handlers import make_registry

WINDOW: dict[str, Any] = {
    "name": "nightly",
    "matchers": ['namespace="torghut"'],
    "weekdays": ["mon", "Tuesday"],
    "start": "23:30",
    "duration": "2h",
    "time_zone": "Europe/Paris",
}


def parse(*windows: dict[str, Any]) -> RuleSet:
    document = {"maintenance_windows": list(windows), "rules": []}
    return parse_rules(yaml.safe_dump(document).encode(), "rules.yaml", make_registry())


def errors(*windows: dict[str, Any]) -> list[str]:
    with pytest.raises(RulesError) as info:
        parse(*windows)
    return info.value.problems


def at(text: str, zone: str = "Europe/Paris") -> float:
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(zone)).timestamp()


def test_a_window_opens_on_its_weekdays_in_its_time_zone() -> None:
    [window] = parse(WINDOW).windows
    monday = "2026-03-02"  # a Monday
    assert window.open_until(at(f"{monday}T23:29:59")) is None
    assert window.open_until(at(f"{monday}T23:30:00")) == at("2026-03-03T01:30:00")
    assert window.open_until(at("2026-03-03T01:29:00")) == at("2026-03-03T01:30:00")  # past midnight
    assert window.open_until(at("2026-03-03T01:30:00")) is None
    assert window.open_until(at("2026-03-04T23:45:00")) is None  # a Wednesday
    labels = {"namespace": "torghut", "rule": "r", "target": "t"}
    assert open_window((window,), labels, at(f"{monday}T23:45:00")) == (window, at("2026-03-03T01:30:00"))
    assert open_window((window,), {**labels, "namespace": "x"}, at(f"{monday}T23:45:00")) is None


def test_a_window_across_a_daylight_saving_change_lasts_its_duration() -> None:
    [window] = parse({**WINDOW, "weekdays": ["sat"], "start": "23:00", "duration": "5h"}).windows
    opened = at("2026-03-28T23:00:00")  # Europe/Paris moves to summer time that night
    assert window.open_until(opened + 60) == opened + 5 * 3600


def test_remediator_check_explains_bad_windows() -> None:
    found = errors(
        {**WINDOW, "time_zone": "Mars/Olympus"},
        {**WINDOW, "name": "b", "start": "24:00"},
        {**WINDOW, "name": "c", "weekdays": ["funday"]},
        {**WINDOW, "name": "d", "duration": 3600},
        {**WINDOW, "name": "e", "duration": "8d"},
    )
    text = "\n".join(found)
    assert "'Mars/Olympus' is not an IANA time zone" in text
    assert "'24:00' is not a time of day" in text
    assert "'funday' is not a weekday" in text
    assert "3600 has no unit" in text
    assert "maintenance_windows.4.duration" in text
    assert "duplicate window name 'nightly'" in "\n".join(errors(WINDOW, WINDOW))
    bad_matcher = errors({**WINDOW, "matchers": ['namespace=~"("']})
    assert "maintenance window 'nightly'" in bad_matcher[0] and "invalid regex" in bad_matcher[0]
    assert "maintenance_windows.0.every: unknown key" in "\n".join(errors({**WINDOW, "every": "day"}))
