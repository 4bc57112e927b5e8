import asyncio
import time

import pytest

from remediator import clock
from remediator.durations import format_duration, human_duration, parse_duration, parse_rule_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30),
        ("15m", 900),
        ("1h", 3600),
        ("1h30m", 5400),
        ("250ms", 0.25),
        ("2d", 172800),
        (45, 45),
        (1.5, 1.5),
        ("1w", 604800),
    ],
)
def test_parse(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["", "15", "m", "1x", "1h 30m", "-1s", True, None, [1]])
def test_reject(bad: object) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - each bad input has its own message
        parse_duration(bad)


def test_format() -> None:
    assert format_duration(5400) == "1h30m"
    assert format_duration(0.25) == "250ms"
    assert format_duration(59) == "59s"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (15, "15 has no unit: write 15s or 15m"),
        ("15", "15 has no unit: write 15s or 15m"),
        (1.5, "1.5 has no unit: write 1.5s or 1.5m"),
        (" 90 ", "90 has no unit: write 90s or 90m"),
        ("soon", "invalid duration 'soon'"),
        (True, "is not a duration"),
        (None, "is not a duration"),
    ],
)
def test_rule_durations_need_a_unit(value: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_rule_duration(value)


def test_rule_durations_parse_like_settings() -> None:
    assert [parse_rule_duration(t) for t in ("90s", "15m", "1h30m", "250ms")] == [90, 900, 5400, 0.25]


@pytest.mark.parametrize(
    ("seconds", "said"),
    [
        (0.3, "0.3s"),
        (1.5, "1.5s"),
        (45, "45s"),
        (125, "2m 5s"),
        (3541, "59m"),  # seconds only under ten minutes
        (7200, "2h"),
        (60430.406, "16h 47m"),
        (86460, "1d"),  # the second unit only right after the first
        (176400, "2d 1h"),
    ],
)
def test_durations_as_a_person_reads_them(seconds: float, said: str) -> None:
    assert human_duration(seconds) == said


async def test_the_clocks_are_the_standard_librarys_on_an_ordinary_loop() -> None:
    assert abs(clock.now() - time.time()) < 0.05
    assert abs(clock.monotonic() - time.monotonic()) < 0.05


@pytest.mark.looptime
async def test_the_clocks_follow_a_loop_clock_that_jumps() -> None:
    wall, mono = clock.now(), clock.monotonic()
    await asyncio.sleep(3600)  # takes no real time on looptime's clock
    assert 3599.9 < clock.now() - wall < 3601 and 3599.9 < clock.monotonic() - mono < 3601
    assert clock.now() - time.time() >= 3599  # ahead of real time, never back
