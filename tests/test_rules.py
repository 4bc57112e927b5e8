from pathlib import Path

import pytest

import handlers  # noqa: F401  (registers the built-in handlers)
from remediator.errors import RulesError, TemplateError
from remediator.models import Alert
from remediator.registry import default_registry
from remediator.rules import load_rules, parse_rules, render
from tests.support.handlers import make_registry
from tests.support.payloads import alert

GOOD = """
defaults:
  cooldown: 10m
  max_attempts: 2
concurrency_limits: {storage: 2}
rules:
  - name: probe
    matchers: ['alertname="Probe"', 'severity=~"critical|page"']
    handler: test.probe
    target: 'svc/{{ labels.service }}'
    params: {bucket: '{{ labels.service }}', sleep: 0}
    concurrency_group: storage
    escalate: '@here'
  - name: other
    enabled: false
    matchers: ['alertname="Other"']
    handler: test.probe
    target: 'x'
    cooldown: 1m
    dry_run: true
    on_resolved: run
    inhibited_by: ['alertname="Probe"']
"""


def parse(text: str) -> object:
    return parse_rules(text.encode(), "rules.yaml", make_registry())


def problems(text: str) -> list[str]:
    with pytest.raises(RulesError) as info:
        parse(text)
    assert info.value.source == "rules.yaml"
    return info.value.problems


def test_defaults_apply_and_rules_override() -> None:
    rules = parse_rules(GOOD.encode(), "rules.yaml", make_registry())
    probe, other = rules.rules
    assert (probe.cooldown, probe.max_attempts) == (600, 2)
    assert (probe.lease, probe.attempt_window) == (600, 3600)
    assert probe.concurrency_limit == 2 and probe.escalate == "@here"
    assert (other.cooldown, other.dry_run, other.on_resolved, other.enabled) == (60, True, "run", False)
    assert len(rules.hash) == 16


def test_match_skips_disabled_rules() -> None:
    rules = parse_rules(GOOD.encode(), "rules.yaml", make_registry())
    probe_alert = Alert.model_validate(alert("Probe", severity="page", service="a"))
    other_alert = Alert.model_validate(alert("Other"))
    assert [r.name for r in rules.match(probe_alert)] == ["probe"]
    assert rules.match(other_alert) == []
    assert rules.match(Alert.model_validate(alert("Probe", severity="info"))) == []


def test_render_target_and_params() -> None:
    rules = parse_rules(GOOD.encode(), "rules.yaml", make_registry())
    plan = render(rules.rules[0], Alert.model_validate(alert("Probe", service="api")))
    assert plan.target == "svc/api"
    assert plan.params.model_dump()["bucket"] == "api"


def test_render_missing_label_fails_with_reason() -> None:
    rules = parse_rules(GOOD.encode(), "rules.yaml", make_registry())
    with pytest.raises(TemplateError, match="'service'"):
        render(rules.rules[0], Alert.model_validate(alert("Probe")))


def test_render_rejects_hostile_target() -> None:
    rules = parse_rules(GOOD.encode(), "rules.yaml", make_registry())
    with pytest.raises(TemplateError, match="not a valid target"):
        render(rules.rules[0], Alert.model_validate(alert("Probe", service="a b}{")))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("rules: [", "invalid YAML"),
        ("- a\n- b\n", "top level must be a mapping"),
        ("rulez: []\n", "rulez: unknown key"),
        ("defaults: {cooldown: soon}\n", "invalid duration"),
        ("defaults: {max_attempts: 0}\n", "max_attempts"),
        ("rules:\n  - name: a\n    matchers: ['x=\"1\"']\n    handler: test.probe\n    target: t\n"
         "    colour: red\n", "rule 'a' (line 2): colour: unknown key"),
        ("rules:\n  - name: a\n    handler: test.probe\n    target: t\n", "rule 'a' (line 2): matchers"),
        ("rules:\n  - name: a\n    matchers: []\n    handler: test.probe\n    target: t\n", "matchers"),
        ("rules:\n  - name: A B\n    matchers: ['x=\"1\"']\n    handler: test.probe\n    target: t\n",
         "lowercase"),
        ("rules:\n  - name: a\n    matchers: ['x=\"1\"']\n    handler: test.probe\n    target: t\n"
         "    on_resolved: maybe\n", "on_resolved"),
        ("rules:\n  - name: a\n    matchers: ['x=\"1\"']\n    handler: test.probe\n    target: t\n"
         "    cooldown: 5 minutes\n", "invalid duration"),
    ],
)
def test_schema_errors_name_the_place(text: str, expected: str) -> None:
    assert any(expected in p for p in problems(text)), problems(text)


RULE = ("rules:\n  - name: {name}\n    matchers: [{matchers}]\n    handler: {handler}\n"
        "    target: {target}\n{extra}")


def rule(name: str = "a", matchers: str = "'x=\"1\"'", handler: str = "test.probe",
         target: str = "t", extra: str = "") -> str:
    return RULE.format(name=name, matchers=matchers, handler=handler, target=target, extra=extra)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (rule(handler="nope.handler"),
         "rule 'a' (line 2): unknown handler 'nope.handler' (known: test.probe)"),
        (rule(matchers="'x~~1'"), "rule 'a' (line 2): matcher"),
        (rule(extra="    inhibited_by: ['=broken']\n"), "rule 'a' (line 2): matcher"),
        (rule(target="'{{ labels.x '"), "rule 'a' (line 2): template"),
        (rule(extra="    params: {colour: red}\n"), "unknown params for test.probe: colour"),
        (rule(extra="    params: {sleep: soon}\n"), "params for test.probe: sleep"),
        (rule(extra="    params: {outcome: exploded}\n"), "params for test.probe"),
        (rule() + rule().replace("rules:\n", ""), "rule 'a' (line 6): duplicate rule name"),
    ],
)
def test_cross_checks_name_the_rule(text: str, expected: str) -> None:
    assert any(expected in p for p in problems(text)), problems(text)


def test_missing_required_param_is_reported() -> None:
    text = ("rules:\n  - name: hook\n    matchers: ['x=\"1\"']\n    handler: http.request\n"
            "    target: t\n    params: {method: GET}\n")
    with pytest.raises(RulesError) as info:
        parse_rules(text.encode(), "rules.yaml", default_registry)
    assert "missing params for http.request: url" in info.value.problems[0]


def test_templated_params_are_checked_at_render_time() -> None:
    text = ("rules:\n  - name: hook\n    matchers: ['x=\"1\"']\n    handler: http.request\n"
            "    target: t\n    params: {url: '{{ labels.url }}'}\n")
    rules = parse_rules(text.encode(), "rules.yaml", default_registry)
    with pytest.raises(TemplateError, match="absolute http"):
        render(rules.rules[0], Alert.model_validate(alert("X", url="file:///etc/passwd")))


def test_all_problems_reported_at_once() -> None:
    text = rule(name="a", handler="nope") + rule(name="b", handler="nope2").replace("rules:\n", "")
    found = problems(text)
    assert len(found) == 2 and "'a'" in found[0] and "'b'" in found[1]


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(RulesError, match="cannot read"):
        load_rules(tmp_path / "missing.yaml", make_registry())


def test_empty_file_is_an_empty_rule_set() -> None:
    assert len(parse_rules(b"", "rules.yaml", make_registry())) == 0
