import pytest

from remediator.durations import format_duration, parse_duration, parse_rule_duration


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
