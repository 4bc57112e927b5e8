"""``steps:`` in rules.yaml (issue 28): each step's params checked against its handler's
model, the chain's shape (a page step last, never first), and what ``simulate`` shows."""

from __future__ import annotations

import pytest

from remediator.cli.main import format_simulation, simulate
from remediator.errors import RulesError
from remediator.models import Alert
from remediator.rules.ruleset import RuleSet, parse_rules, render
from tests.support.handlers import make_registry
from tests.support.payloads import alert

CHAIN = """\
rules:
  - name: ws
    matchers: ['alertname="WsDown"']
    target: 'svc/{{ labels.service }}'
    timeout: 5m
{extra}    steps:
{steps}"""

GOOD_STEPS = """\
      - handler: test.probe
        params: {bucket: '{{ labels.service }}', outcome: failed}
        on_failure: next
        timeout: 1m
      - {handler: test.probe, params: {bucket: restart}, on_success: done}
      - page: {slack: '@here', pagerduty: true}
"""


def parse(steps: str, extra: str = "") -> RuleSet:
    return parse_rules(
        CHAIN.replace("{extra}", extra).replace("{steps}", steps).encode(), "rules.yaml", make_registry()
    )


def problems(steps: str, extra: str = "") -> list[str]:
    with pytest.raises(RulesError) as info:
        parse(steps, extra)
    return info.value.problems


def test_a_chain_compiles_with_its_defaults() -> None:
    [rule] = parse(GOOD_STEPS).rules
    assert [s.name for s in rule.steps] == ["test.probe", "test.probe", "page"]
    first, second, page = rule.steps
    assert (first.on_success, first.on_failure, first.timeout) == ("next", "next", 60.0)
    assert (second.on_success, second.on_failure, second.timeout) == ("done", "stop", None)
    assert page.page is not None and (page.page.slack, page.page.pagerduty) == ("@here", True)
    assert rule.handler.name == "test.probe" and rule.chained
    probed = "    probe: {url: 'http://svc.test/health'}\n"
    [with_probe] = parse("      - {handler: test.probe}\n      - {handler: test.probe}\n", probed).rules
    assert [s.on_success for s in with_probe.steps] == ["probe", "probe"]


def test_each_step_renders_its_own_params() -> None:
    [rule] = parse(GOOD_STEPS).rules
    plan = render(rule, Alert.model_validate(alert("WsDown", service="ws")))
    assert [s.params.model_dump()["bucket"] if s.params else None for s in plan.steps] == [
        "ws",
        "restart",
        None,
    ]
    assert plan.describe() == [
        "step 1/3 test.probe (on success: next, on failure: next): probe ws -> failed",
        "step 2/3 test.probe (on success: done, on failure: stop): probe restart -> succeeded",
        "step 3/3 page: page @here and PagerDuty with the chain's results so far",
    ]


@pytest.mark.parametrize(
    ("steps", "expected"),
    [
        (  # a step's params against its own handler's model, at its line
            "      - {handler: test.probe}\n      - {handler: test.probe, params: {colour: red}}\n",
            "rule 'ws' (line 2): steps.1: unknown params for test.probe: colour (line 8)",
        ),
        (
            "      - {handler: test.probe, params: {sleep: soon}}\n",
            "rule 'ws' (line 2): steps.0: params for test.probe: sleep: Input should be a valid number",
        ),
        ("      - {handler: nope.handler}\n", "unknown handler 'nope.handler' (known: test.probe)"),
        (
            "      - {handler: test.probe}\n      - page: {slack: '@here'}\n      - {handler: test.probe}\n",
            "steps.1.page: a page: step ends the chain: make it the last step",
        ),
        ("      - page: {slack: '@here'}\n", "the first step runs a handler"),
        ("      - {handler: test.probe}\n      - page: {}\n", "page: name someone"),
        (
            "      - {handler: test.probe}\n      - page: {slack: oncall}\n",
            "page.slack: 'oncall' is not a Slack mention and notifies nobody",
        ),
        (
            "      - {handler: test.probe}\n      - page: {slack: '@here'}\n        on_failure: next\n",
            "a page: step ends the chain; on_failure belong to handler steps",
        ),
        (
            "      - {handler: test.probe, page: {slack: '@here'}}\n",
            "either handler: (with params:) or page:",
        ),
        (
            "      - {handler: test.probe, on_success: probe}\n",
            "steps.0.on_success: probe needs the rule's probe:",
        ),
        (
            "      - {handler: test.probe, on_failure: retry}\n",
            "on_failure: Input should be 'stop' or 'next'",
        ),
        (
            "      - {handler: test.probe, timeout: 10m}\n",
            "steps.0.timeout: 10m is longer than the rule's timeout 5m",
        ),
        ("      []\n", "steps: list at least one step"),
    ],
)
def test_check_names_the_step(steps: str, expected: str) -> None:
    found = problems(steps)
    assert any(expected in p for p in found), found


def test_handler_and_steps_are_exclusive() -> None:
    text = "    handler: test.probe\n"
    assert any(
        "either handler: (one step) or steps:" in p for p in problems("      - {handler: test.probe}\n", text)
    )
    params = "    params: {bucket: x}\n"
    assert any(
        "params: belongs to each step" in p for p in problems("      - {handler: test.probe}\n", params)
    )


def test_simulate_shows_each_step() -> None:
    rules = parse(GOOD_STEPS)
    [entry] = simulate(rules, [Alert.model_validate(alert("WsDown", service="ws"))])
    [match] = entry["matches"]
    assert match["handler"] == "test.probe → test.probe → page"
    assert [s["step"] for s in match["steps"]] == [1, 2, 3]
    assert match["steps"][0]["params"]["bucket"] == "ws" and match["steps"][2]["page"]["pagerduty"] is True
    text = format_simulation([entry])
    assert "    step 1: test.probe" in text and "(on success: next, on failure: next)" in text
    assert "    step 3: page @here and PagerDuty with the chain's results so far" in text
    assert (
        "    plan: step 2/3 test.probe (on success: done, on failure: stop): probe restart -> succeeded"
        in text
    )
