from pathlib import Path

import pytest

import handlers  # noqa: F401  (registers the built-in handlers)
from remediator.errors import RulesError, TemplateError
from remediator.handling.registry import default_registry
from remediator.models import Alert
from remediator.rules.ruleset import RuleSet, load_rules, parse_rules, render
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


def parse(text: str) -> RuleSet:
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
        (
            "rules:\n  - name: a\n    matchers: ['x=\"1\"']\n    handler: test.probe\n    target: t\n"
            "    colour: red\n",
            "rule 'a' (line 2): colour: unknown key",
        ),
        ("rules:\n  - name: a\n    handler: test.probe\n    target: t\n", "rule 'a' (line 2): matchers"),
        ("rules:\n  - name: a\n    matchers: []\n    handler: test.probe\n    target: t\n", "matchers"),
        (
            "rules:\n  - name: A B\n    matchers: ['x=\"1\"']\n    handler: test.probe\n    target: t\n",
            "lowercase",
        ),
        (
            "rules:\n  - name: a\n    matchers: ['x=\"1\"']\n    handler: test.probe\n    target: t\n"
            "    on_resolved: maybe\n",
            "on_resolved",
        ),
        (
            "rules:\n  - name: a\n    matchers: ['x=\"1\"']\n    handler: test.probe\n    target: t\n"
            "    cooldown: 5 minutes\n",
            "invalid duration",
        ),
    ],
)
def test_schema_errors_name_the_place(text: str, expected: str) -> None:
    assert any(expected in p for p in problems(text)), problems(text)


RULE = (
    "rules:\n  - name: {name}\n    matchers: [{matchers}]\n    handler: {handler}\n"
    "    target: {target}\n{extra}"
)


def rule(
    name: str = "a",
    matchers: str = "'x=\"1\"'",
    handler: str = "test.probe",
    target: str = "t",
    extra: str = "",
) -> str:
    return RULE.format(name=name, matchers=matchers, handler=handler, target=target, extra=extra)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            rule(handler="nope.handler"),
            "rule 'a' (line 2): unknown handler 'nope.handler' (known: test.probe)",
        ),
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
    text = (
        "rules:\n  - name: hook\n    matchers: ['x=\"1\"']\n    handler: http.request\n"
        "    target: t\n    params: {method: GET}\n"
    )
    with pytest.raises(RulesError) as info:
        parse_rules(text.encode(), "rules.yaml", default_registry)
    assert "missing params for http.request: url" in info.value.problems[0]


def test_templated_params_are_checked_at_render_time() -> None:
    text = (
        "rules:\n  - name: hook\n    matchers: ['x=\"1\"']\n    handler: http.request\n"
        "    target: t\n    params: {url: '{{ labels.url }}'}\n"
    )
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


# ---- durations need a unit; impossible settings are errors, questionable ones warnings -------
def test_a_bare_number_duration_is_an_error_at_its_line() -> None:
    found = problems("defaults:\n  cooldown: 15\n" + rule(extra="    lease: 90\n"))
    assert found == [
        "defaults.cooldown: 15 has no unit: write 15s or 15m (line 2)",
        "rule 'a' (line 4): lease: 90 has no unit: write 90s or 90m (line 8)",
    ]


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ("    lease: 0s\n", "lease: 0s locks nothing"),
        ("    timeout: 0s\n", "timeout: 0s stops every handler run as soon as it starts"),
        ("    attempt_window: 0s\n", "attempt_window: 0s forgets each failure at once"),
        ("    escalate: '@oncall-team'\n", "escalate: '@oncall-team' is not a Slack mention"),
        ("    escalate: '<!subteam^S1> oncall'\n", "escalate: 'oncall' is not a Slack mention"),
        (
            "    escalate: '<@U1> @here'\n",
            "escalate: '@here' works only alone: next to other mentions write <!here>",
        ),
        ("    inhibit_equal: [name-space]\n", "inhibit_equal: 'name-space' is not a label name"),
    ],
)
def test_impossible_settings_are_errors_at_the_key(extra: str, expected: str) -> None:
    (found,) = problems(rule(extra=extra))
    assert found.startswith(f"rule 'a' (line 2): {expected}"), found
    assert found.endswith("(line 6)"), found


def test_an_unusable_concurrency_limit_is_an_error() -> None:
    found = problems("concurrency_limits: {storage: 0}\n")
    assert found == ["concurrency_limits.storage: Input should be greater than or equal to 1 (line 1)"]


@pytest.mark.parametrize(
    "escalate",
    ["'@here'", "'@everyone'", "'<!channel>'", "'<!subteam^S0123ABC|dbas>'", "'<@U024BE7LH> <@W1234>'", "''"],
)
def test_slack_mentions_are_accepted(escalate: str) -> None:
    rules = parse(rule(extra=f"    escalate: {escalate}\n"))
    assert rules.warnings == ()


def test_questionable_settings_are_warnings_with_their_lines() -> None:
    text = """\
defaults:
  verify_timeout: 3m
concurrency_limits: {storage: 1, unused: 2}
rules:
  - name: flink
    matchers: ['alertname="F"']
    handler: flink.restart
    target: 'f/x'
    params: {namespace: ns, name: job}
    timeout: 1m
    concurrency_group: storage
  - name: ch
    matchers: ['alertname="C"']
    handler: clickhouse.restore_replica
    target: 'c/x'
    params: {nodes: ['a:9000'], database: db, verify_timeout: 10m}
    inhibit_equal: [namespace]
  - name: hook
    matchers: ['alertname="H"']
    handler: http.request
    target: 'h/x'
    params: {url: 'http://svc/x'}
    timeout: 1m
"""
    rules = parse_rules(text.encode(), "rules.yaml", default_registry)
    assert list(rules.warnings) == [
        "rule 'flink' (line 5): verify_timeout: 3m is not shorter than timeout 1m: the handler "
        "is stopped at 1m, before verification can use its 3m; make timeout longer than "
        "verify_timeout plus the time the action takes (line 10)",
        "rule 'ch' (line 12): inhibit_equal has no effect without inhibited_by (line 17)",
        "rule 'ch' (line 12): params.verify_timeout: 10m is not shorter than timeout 10m: the "
        "handler is stopped at 10m, before verification can use its 10m; make timeout longer "
        "than verify_timeout plus the time the action takes (line 16)",
        "concurrency_limits.unused: no rule has concurrency_group: unused (line 3)",
    ]  # http.request does not verify: its verify_timeout is not questioned


def test_inconsistent_defaults_warn_once() -> None:
    rules = parse(
        "defaults: {verify_timeout: 5m, timeout: 5m}\n" + rule() + rule(name="b").replace("rules:\n", "")
    )
    assert [w.split(":")[0] for w in rules.warnings] == ["defaults.verify_timeout"]


# ---- where errors point ---------------------------------------------------------------------
def test_yaml_syntax_errors_name_the_file() -> None:
    for data in (b"rules: [\n", b"rules:\n  - name: a\n   bad: [\n", b"\xff\xfe\x00"):
        with pytest.raises(RulesError) as info:
            parse_rules(data, "conf/rules.yaml", make_registry())
        (found,) = info.value.problems
        assert '"conf/rules.yaml"' in found and "<byte string>" not in found, found


@pytest.mark.parametrize(
    ("extra", "line", "expected"),
    [
        ("    params: {sleep: soon}\n", 6, "params for test.probe: sleep"),
        ("    params:\n      bucket: x\n      colour: red\n", 8, "unknown params for test.probe"),
        ("    inhibited_by:\n      - 'a=\"1\"'\n      - '=broken'\n", 8, "matcher"),
        ("    description: x\n    cooldown: soon\n", 7, "cooldown: invalid duration"),
    ],
)
def test_errors_point_at_the_offending_key(extra: str, line: int, expected: str) -> None:
    (found,) = problems(rule(extra=extra))
    assert found.startswith(f"rule 'a' (line 2): {expected}"), found
    assert found.endswith(f"(line {line})"), found


def test_errors_point_at_the_handler_and_target_keys() -> None:
    assert problems(rule(handler="nope"))[0].endswith("(line 4)")
    assert problems(rule(target="'{{ x '"))[0].endswith("(line 5)")


def test_a_target_may_not_walk_paths() -> None:
    rules = parse_rules(GOOD.encode(), "rules.yaml", make_registry())
    for service in ("..", "."):
        with pytest.raises(TemplateError, match=f"has a '{service}' segment"):
            render(rules.rules[0], Alert.model_validate(alert("Probe", service=service)))
    assert render(rules.rules[0], Alert.model_validate(alert("Probe", service="a..b"))).target
    (found,) = problems(rule(target="a/../b"))
    assert found == (
        "rule 'a' (line 2): target 'a/../b' has a '..' segment: a target names one "
        "thing and may not contain '.' or '..' between slashes (line 5)"
    )


# ---- inhibit_equal -------------------------------------------------------------------------
def test_inhibit_equal_has_alertmanagers_meaning() -> None:
    (flink,) = parse(
        rule(extra="    inhibited_by: ['alertname=\"Readonly\"']\n    inhibit_equal: [namespace, database]\n")
    ).rules
    target = {"alertname": "X", "namespace": "a"}
    assert flink.inhibit_equal == ("namespace", "database")
    assert flink.inhibits({"alertname": "Readonly", "namespace": "a"}, target)  # both lack db
    assert not flink.inhibits({"alertname": "Readonly", "namespace": "b"}, target)
    assert not flink.inhibits({"alertname": "Readonly"}, target)
    assert not flink.inhibits({"alertname": "Readonly", "namespace": "a", "database": "d"}, target)
    assert not flink.inhibits({"alertname": "Other", "namespace": "a"}, target)
    (plain,) = parse(rule(extra="    inhibited_by: ['alertname=\"Readonly\"']\n")).rules
    assert plain.inhibits({"alertname": "Readonly", "namespace": "b"}, target)


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (
            "    max_targets: {count: 0, within: 10m}\n",
            "max_targets.count: Input should be greater than or equal to 1",
        ),
        (
            "    max_targets: {count: 5}\n",
            "max_targets: needs count and within, e.g. {count: 20, within: 10m} (or enabled: false)",
        ),
        ("    max_targets: {count: 5, within: 600}\n", "max_targets.within: 600 has no unit"),
        (
            "    max_targets: {count: 5, within: 8d}\n",
            "max_targets.within: Input should be less than or equal to 604800",
        ),
        (
            "    max_targets: {count: 5, within: 1m, per: pod}\n",
            "max_targets.per: unknown key",
        ),
        ("    max_targets: 20\n", "max_targets: Input should be a valid dictionary"),
    ],
)
def test_a_brake_needs_a_count_and_a_window_with_a_unit(extra: str, expected: str) -> None:
    (found,) = problems(rule(extra=extra))
    assert found.startswith(f"rule 'a' (line 2): {expected}"), found


def test_a_rule_turns_the_defaults_brake_off_or_sets_its_own() -> None:
    text = "defaults:\n  max_targets: {count: 20, within: 10m}\n" + rule(
        extra="    max_targets: {enabled: false}\n"
    )
    text += rule(name="b").removeprefix("rules:\n")
    text += rule(name="c", extra="    max_targets: {count: 3, within: 1h}\n").removeprefix("rules:\n")
    found = {r.name: r.policy.brake for r in parse(text).rules}
    assert found == {"a": None, "b": (20, 600.0), "c": (3, 3600.0)}
