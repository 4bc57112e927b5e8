"""Every duration param of every shipped handler takes the rules' duration syntax, and only it."""

from __future__ import annotations

from typing import Any

import pytest

import handlers  # noqa: F401  (registers the built-in handlers)
from remediator.errors import RulesError
from remediator.handling.registry import HandlerSpec, default_registry
from remediator.rules.ruleset import parse_rules

REQUIRED: dict[str, dict[str, Any]] = {
    "clickhouse.restore_replica": {"nodes": ["chi-0:9000"], "database": "db"},
    "flink.restart": {"namespace": "ns", "name": "job"},
    "kubernetes.bounce": {"namespace": "ns", "deployment": "web"},
    "kubernetes.set_env": {"namespace": "ns", "deployment": "web", "env": {"A": "b"}},
    "http.request": {"url": "http://svc/x"},
    "command.run": {"argv": ["/bin/true"]},
    "kubernetes.job": {"namespace": "ns", "image": "busybox:1.36"},
    "kubernetes.rollout_restart": {"namespace": "ns", "kind": "Deployment", "name": "web"},
    "kubernetes.delete_pod": {"namespace": "ns", "pod": "web-0"},
    "kubernetes.scale": {"namespace": "ns", "name": "web", "replicas": 2, "min": 1, "max": 3},
    "kubernetes.cordon": {"node": "node-1"},
    "kubernetes.uncordon": {"node": "node-1"},
}
DURATION_WORDS = ("timeout", "interval", "wait", "delay", "period")


def shipped() -> list[HandlerSpec]:
    """The handlers of the ``handlers`` package (tests register others in the same registry)."""
    return [spec for spec in default_registry if not spec.name.startswith("test.")]


def duration_params() -> list[tuple[HandlerSpec, str]]:
    return [
        (spec, name)
        for spec in shipped()
        for name in spec.params.model_fields
        if any(w in name for w in DURATION_WORDS)
    ]


def test_every_handler_is_covered() -> None:
    assert {spec.name for spec in shipped()} == set(REQUIRED)
    assert len(duration_params()) >= 8


@pytest.mark.parametrize(
    ("spec", "name"), duration_params(), ids=lambda v: v.name if isinstance(v, HandlerSpec) else v
)
def test_duration_param_takes_a_duration_and_refuses_a_bare_number(spec: HandlerSpec, name: str) -> None:
    params = spec.params.model_validate({**REQUIRED[spec.name], name: "2s"})
    assert getattr(params, name) == 2.0
    with pytest.raises(ValueError, match="2 has no unit: write 2s or 2m"):
        spec.params.model_validate({**REQUIRED[spec.name], name: 2})


def test_verify_timeout_in_restore_replica_params_as_in_a_rule() -> None:
    text = """
rules:
  - name: ch
    matchers: ['alertname="C"']
    handler: clickhouse.restore_replica
    target: 'c/x'
    params: {nodes: ['a:9000'], database: db, verify_timeout: 60s}
"""
    (rule,) = parse_rules(text.encode(), "rules.yaml", default_registry).rules
    assert rule.params_template["verify_timeout"] == "60s"
    with pytest.raises(RulesError) as info:
        parse_rules(text.replace("60s", "60").encode(), "rules.yaml", default_registry)
    assert info.value.problems == [
        "rule 'ch' (line 3): params for clickhouse.restore_replica: verify_timeout: 60 has no "
        "unit: write 60s or 60m (line 7)"
    ]
