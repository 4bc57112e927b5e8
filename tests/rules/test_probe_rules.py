"""A rule's ``probe:``: validated when the file loads, rendered (percent-encoded) per alert."""

from __future__ import annotations

import pytest

from remediator.api.admin import rule_info
from remediator.errors import TemplateError
from remediator.models import Alert
from remediator.rules.ruleset import render
from tests.rules.test_rules import parse, problems, rule
from tests.support.payloads import alert

URL = "http://jangar.jangar.svc/api/torghut/ta/latest?symbol={{ labels.symbol }}"


def probed(probe: str) -> str:
    return rule(extra=f"    probe:\n{probe}")


def test_a_probe_with_its_defaults() -> None:
    (found,) = parse(probed(f"      url: '{URL}'\n")).rules
    plan = render(found, Alert.model_validate(alert("X", x="1", symbol="NVDA")))
    assert plan.probe is not None
    assert plan.probe.as_dict() == {
        "url": "http://jangar.jangar.svc/api/torghut/ta/latest?symbol=NVDA",
        "method": "GET",
        "expect_status": [],
        "expect_body": None,
        "reject_body": None,
        "timeout": 10.0,
        "interval": 10.0,
    }
    assert plan.probe.status_passes(204) and not plan.probe.status_passes(301)


def test_every_key_of_a_probe() -> None:
    text = probed(
        f"      url: '{URL}'\n      method: GET\n      expect_status: [200, 203]\n"
        "      expect_body: '\"rows\": \\['\n      timeout: 3s\n      interval: 500ms\n"
    )
    (found,) = parse(text).rules
    probe = render(found, Alert.model_validate(alert("X", x="1", symbol="NVDA"))).probe
    assert probe is not None
    assert (probe.expect_status, probe.timeout, probe.interval) == ((200, 203), 3.0, 0.5)
    assert probe.expect_body is not None and probe.expect_body.search('{"rows": [1]}')
    assert not probe.status_passes(201)
    assert probe.describe() == (
        "GET http://jangar.jangar.svc/api/torghut/ta/latest?symbol=NVDA; "
        'expect 200, 203 and a body matching /"rows": \\[/'
    )


def test_labels_in_the_url_are_percent_encoded() -> None:
    (found,) = parse(probed(f"      url: '{URL}'\n")).rules
    probe = render(found, Alert.model_validate(alert("X", x="1", symbol="NVDA&x=1 /../#"))).probe
    assert probe is not None
    assert probe.url.endswith("?symbol=NVDA%26x%3D1%20%2F..%2F%23")


@pytest.mark.parametrize("app", ["..", "."])
def test_a_label_may_not_make_a_dot_segment(app: str) -> None:
    (found,) = parse(probed("      url: 'http://svc/api/{{ labels.app }}/latest'\n")).rules
    with pytest.raises(TemplateError, match=r"probe\.url: the path of .* segment"):
        render(found, Alert.model_validate(alert("X", x="1", app=app)))
    # An encoded dot segment in a label is data: its '%' is encoded in turn.
    probe = render(found, Alert.model_validate(alert("X", x="1", app="%2e%2e"))).probe
    assert probe is not None and probe.url == "http://svc/api/%252e%252e/latest"


@pytest.mark.parametrize(
    ("probe", "expected"),
    [
        (
            "      url: 'ftp://svc/x'\n",
            "probe.url: must be an absolute http(s) URL, got 'ftp://svc/x' (line 7)",
        ),
        ("      url: '/api/x'\n", "probe.url: must be an absolute http(s) URL, got '/api/x' (line 7)"),
        (
            "      url: 'http://svc/a b'\n",
            "probe.url: ' ' at position 12 of 'http://svc/a b' must be percent-encoded",
        ),
        ("      url: 'http://svc/a/../b'\n", "probe.url: the path of 'http://svc/a/../b' has a '..' segment"),
        ("      url: 'http://svc/{{ labels.x '\n", "probe.url: template 'http://svc/{{ labels.x '"),
        ("      url: 'http://svc/'\n      method: POST\n", "probe.method: Input should be 'GET' or 'HEAD'"),
        ("      url: 'http://svc/'\n      expect_status: [200, 42]\n", "42 is not an HTTP status code"),
        (
            "      url: 'http://svc/'\n      expect_status: 200\n",
            "probe.expect_status: Input should be a valid list",
        ),
        (
            "      url: 'http://svc/'\n      expect_body: 'rows: ['\n",
            "probe.expect_body: 'rows: [' is not a valid regular expression: missing ]: [",
        ),
        (
            "      url: 'http://svc/'\n      method: HEAD\n      expect_body: rows\n",
            "probe: expect_body needs method GET: a HEAD answer has no body",
        ),
        ("      url: 'http://svc/'\n      timeout: 10\n", "probe.timeout: 10 has no unit: write 10s or 10m"),
        ("      url: 'http://svc/'\n      interval: 0s\n", "probe.interval: Input should be greater than 0"),
        (
            "      url: 'http://svc/'\n      timeout: 1h\n",
            "probe.timeout: Input should be less than or equal to 300",
        ),
        ("      url: 'http://svc/'\n      verify: 5m\n", "probe.verify: unknown key"),
        ("      method: GET\n", "probe.url: Field required"),
    ],
)
def test_a_bad_probe_is_an_error_naming_rule_and_key(probe: str, expected: str) -> None:
    (found,) = problems(probed(probe))
    assert found.startswith("rule 'a' (line 2): ") and expected in found, found


def test_the_probe_is_a_rule_key_not_a_default() -> None:
    (found,) = problems(f"defaults:\n  probe: {{url: 'http://svc/'}}\n{rule()}")
    assert found.startswith("defaults.probe: unknown key"), found


def test_the_rules_api_shows_the_probe_as_written() -> None:
    (found,) = parse(probed(f"      url: '{URL}'\n      expect_body: 'rows'\n")).rules
    shown = rule_info(found).model_dump(mode="json")
    assert shown["probe"]["url"] == URL and shown["probe"]["expect_body"] == "rows"
    (plain,) = parse(rule()).rules
    assert rule_info(plain).model_dump(mode="json")["probe"] is None


def test_reject_body_says_what_the_body_must_not_contain() -> None:
    (found,) = parse(
        probed(f"      url: '{URL}'\n      expect_body: rows\n      reject_body: UNKNOWN_TABLE\n")
    ).rules
    assert found.probe is not None
    probe = found.probe.render({"labels": {"symbol": "x"}, "annotations": {}})
    assert probe.body_passes('{"rows": []}') is None
    assert (
        probe.body_passes('{"rows": [], "error": "(UNKNOWN_TABLE)"}') == "the body contains /UNKNOWN_TABLE/"
    )
    assert probe.body_passes('{"error": 1}') == "the body does not match /rows/"
    assert "and a body without /UNKNOWN_TABLE/" in probe.describe()
    assert probe.as_dict()["reject_body"] == "UNKNOWN_TABLE"
