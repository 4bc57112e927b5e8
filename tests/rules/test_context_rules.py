"""``context:`` in rules.yaml: each entry a one-key mapping kind -> params, checked by
``check`` against its kind's params model (unknown kinds and params, fixed values), the
templated ones rendered per alert with untrusted labels checked before they name anything."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import handlers  # noqa: F401  (the built-in gatherers)
from remediator.cli.main import main
from remediator.errors import RulesError, TemplateError
from remediator.handling.registry import default_registry
from remediator.models import Alert
from remediator.rules.rule import template_context
from remediator.rules.ruleset import parse_rules
from tests.support.payloads import alert, payload

RULE = """
rules:
  - name: ws-not-ready
    matchers: ['alertname="TorghutWsNotReady"']
    handler: http.request
    target: 'deployment/torghut/torghut-ws'
    params: {url: 'http://torghut-ws/reconnect'}
    context:
      - kubernetes.logs: {namespace: torghut, pod: '{{ labels.pod }}', lines: 50}
      - kubernetes.events: {namespace: torghut, kind: Deployment, name: torghut-ws}
      - prometheus.query: {url: 'http://prometheus:9090', query: 'up{pod="{{ labels.pod }}"}'}
"""


def problems(text: str) -> list[str]:
    with pytest.raises(RulesError) as caught:
        parse_rules(text.encode(), "rules.yaml", default_registry)
    return caught.value.problems


def fired(pod: str) -> Alert:
    return Alert.model_validate(alert("TorghutWsNotReady", pod=pod))


def test_context_entries_load_and_render_per_alert() -> None:
    (rule,) = parse_rules(RULE.encode(), "rules.yaml", default_registry).rules
    assert [entry.kind for entry in rule.context] == [
        "kubernetes.logs",
        "kubernetes.events",
        "prometheus.query",
    ]
    context = template_context(fired(pod="torghut-ws-7d9f-x2"))
    logs, events, query = (entry.render(context) for entry in rule.context)
    assert logs.model_dump() == {
        "timeout": 10.0,
        "namespace": "torghut",
        "pod": "torghut-ws-7d9f-x2",
        "container": None,
        "lines": 50,
    }
    assert events.model_dump()["kind"] == "Deployment"
    assert query.model_dump()["query"] == 'up{pod="torghut-ws-7d9f-x2"}'


def test_a_label_cannot_leave_its_promql_string_or_name_another_pod() -> None:
    (rule,) = parse_rules(RULE.encode(), "rules.yaml", default_registry).rules
    context = template_context(fired(pod='x"} or vector(1) or up{a="'))
    with pytest.raises(TemplateError, match=r"kubernetes\.logs: pod: .* not a valid Kubernetes name"):
        rule.context[0].render(context)
    query = rule.context[2].render(context).model_dump()["query"]
    assert query == 'up{pod="x\\"} or vector(1) or up{a=\\""}'  # one string literal still


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            ("- kubernetes.events:", "- kubernetes.evnts:"),
            "rule 'ws-not-ready' (line 3): context[1]: unknown context kind 'kubernetes.evnts' "
            "(known: kubernetes.events, kubernetes.logs, prometheus.query)",
        ),
        (
            ("lines: 50", "lines: 5000"),
            "context[0]: kubernetes.logs.lines: Input should be less than or equal",
        ),
        (("lines: 50", "tail: 50"), "context[0]: kubernetes.logs: unknown params: tail"),
        (
            ("kind: Deployment, name: torghut-ws", "kind: Deployment"),
            "kubernetes.events: missing params: name",
        ),
        (("kind: Deployment", "kind: 'deploy ment'"), "'deploy ment' is not a Kubernetes kind"),
        (("namespace: torghut, kind", "namespace: Torghut_1, kind"), "kubernetes.events.namespace:"),
        (("'http://prometheus:9090'", "'ftp://prometheus'"), "must be an absolute http(s) URL"),
        (("{url: 'http://prometheus:9090', ", "{"), "prometheus.query: missing params: url"),
        (("lines: 50}", "lines: 50, timeout: 5m}"), "kubernetes.logs.timeout: Input should be less than"),
        (
            ("{namespace: torghut, pod", "{namespace: '{{ labels.ns ', pod"),
            "kubernetes.logs.namespace: template",
        ),
        (
            (
                "      - kubernetes.events:",
                "      - {kubernetes.events: {}, kubernetes.logs: {}}\n      - x:",
            ),
            "each context entry is a mapping with one key",
        ),
    ],
)
def test_check_names_the_rule_the_entry_and_the_problem(change: tuple[str, str], expected: str) -> None:
    found = problems(RULE.replace(*change))
    assert len(found) == 1 and expected in found[0], found
    assert "ws-not-ready" in found[0]


def test_at_most_ten_entries() -> None:
    entry = "      - kubernetes.events: {namespace: torghut, kind: Deployment, name: torghut-ws}\n"
    (found,) = problems(RULE + entry * 8)
    assert "context: List should have at most 10 items" in found


def test_simulate_shows_what_would_be_gathered(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULE.replace("'http://prometheus:9090'", "'http://prometheus:9090/{{ labels.pod }}'"))
    alerts = tmp_path / "alerts.json"
    alerts.write_text(json.dumps(payload(alert("TorghutWsNotReady", pod="ws-1"), alert("TorghutWsNotReady"))))
    assert main(["simulate", str(alerts), "--rules", str(rules)]) == 0
    out = capsys.readouterr().out
    assert "    context: last 50 log lines of pod torghut/ws-1\n" in out
    assert "    context: recent Events of Deployment torghut/torghut-ws\n" in out
    assert '    context: Prometheus: up{pod="ws-1"}\n' in out
    assert (
        "    context: kubernetes.logs: cannot render its params, it would be noted as failed: "
        "the alert has no label or annotation 'pod' used in the template"
    ) in out
