import pytest

from remediator.errors import MatcherError
from remediator.rules.matchers import matches_all, parse_matcher


@pytest.mark.parametrize(
    ("text", "labels", "expected"),
    [
        ('alertname="X"', {"alertname": "X"}, True),
        ('alertname="X"', {"alertname": "XY"}, False),
        ('alertname!="X"', {"alertname": "Y"}, True),
        ('alertname!="X"', {"alertname": "X"}, False),
        ('severity=~"critical|page"', {"severity": "page"}, True),
        ('severity=~"critical|page"', {"severity": "critical-ish"}, False),  # anchored
        ('severity=~"crit"', {"severity": "critical"}, False),  # anchored: no substring
        ('severity!~"info|warning"', {"severity": "critical"}, True),
        ('severity!~"info|warning"', {"severity": "info"}, False),
        ('team=""', {}, True),  # a missing label matches the empty string
        ('team!=""', {}, False),
        ('team=~".*"', {}, True),
        ("env=prod", {"env": "prod"}, True),  # unquoted values
        ('  env = "prod"  ', {"env": "prod"}, True),
        ('{env="prod"}', {"env": "prod"}, True),
        ('msg="say \\"hi\\""', {"msg": 'say "hi"'}, True),  # escaped quotes
        ('path="a\\\\b"', {"path": "a\\b"}, True),  # escaped backslash
        ('text="a\\nb"', {"text": "a\nb"}, True),  # escaped newline
        ('name="a,b=c"', {"name": "a,b=c"}, True),  # specials inside quotes
        ('path="a\\q"', {"path": "a\\q"}, True),  # another backslash is itself, as in Alertmanager
    ],
)
def test_matcher_semantics(text: str, labels: dict[str, str], expected: bool) -> None:
    assert parse_matcher(text).matches(labels) is expected


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ('="x"', "label name"),
        ('1abc="x"', "label name"),
        ('name~"x"', "one of"),
        ('name="x', "closing quote"),
        ('name="x" extra', "after closing quote"),
        ('name=~"(unclosed"', "invalid regex"),
        ("name=a b", "forbidden characters"),
    ],
)
def test_matcher_errors_say_why(text: str, reason: str) -> None:
    with pytest.raises(MatcherError, match=reason):
        parse_matcher(text)


def test_str_round_trips() -> None:
    original = parse_matcher('msg=~"a\\"b|c"')
    assert parse_matcher(str(original)) == original


def test_all_matchers_must_match() -> None:
    matchers = [parse_matcher('a="1"'), parse_matcher('b=~"2|3"')]
    assert matches_all(matchers, {"a": "1", "b": "3"})
    assert not matches_all(matchers, {"a": "1", "b": "4"})
    assert matches_all([], {"anything": "x"})
