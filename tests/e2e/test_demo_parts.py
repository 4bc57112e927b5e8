"""The demo's parts that need no server: the rules overlay, the alert labels its Prometheus
derives from the shipped alert rules, and the torghut-ws simulation (whose "never two pods"
is what tests/e2e/test_demo.py relies on)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

import handlers  # noqa: F401 - registers the handlers the shipped rules name
from demo.overlay import CLICKHOUSE_RULE, JANGAR_RULE, SHIPPED_RULES, rules_overlay
from demo.prometheus import load_rules, render
from demo.world import NAMESPACE, WS_NAME, WsPods
from remediator.handling.registry import default_registry
from remediator.rules.ruleset import load_rules as load_remediator_rules
from tests.support.kube import DEPLOYMENTS, Cluster

NODES = ["127.0.0.1:19000", "127.0.0.1:19001"]


def _without(document: dict[str, Any], changes: dict[str, set[str]]) -> dict[str, Any]:
    """The rules document minus the keys the overlay may change (rule or params level)."""
    copy: dict[str, Any] = yaml.safe_load(yaml.safe_dump(document))
    for key in ("lease", "timeout"):
        copy.get("defaults", {}).pop(key, None)
    for rule in copy["rules"]:
        for key in changes["rule"]:
            rule.pop(key, None)
        for key in changes["params"]:
            rule.get("params", {}).pop(key, None)
    return copy


def test_the_overlay_is_the_shipped_rules_with_the_listed_changes(tmp_path: Path) -> None:
    overlay = rules_overlay(NODES)
    rules = load_remediator_rules(overlay.write(tmp_path / "rules.yaml"), default_registry)

    clickhouse = rules.get(CLICKHOUSE_RULE)
    assert clickhouse is not None
    assert clickhouse.lease == 8.0 and clickhouse.verify_timeout == 90.0
    (params,) = [r["params"] for r in overlay.document["rules"] if r["name"] == CLICKHOUSE_RULE]
    assert params["nodes"] == NODES
    shipped = yaml.safe_load(SHIPPED_RULES.read_text(encoding="utf-8"))
    changed = {"rule": {"verify_timeout"}, "params": {"nodes", "poll_interval"}}
    assert _without(overlay.document, changed) == _without(shipped, changed)
    assert len(overlay.changes) == 2 + 1 + 4 * 2  # defaults, nodes, per rule verify + poll
    assert all(" -> " in change for change in overlay.changes)


def test_the_overlay_points_jangars_probe_at_the_stand_in(tmp_path: Path) -> None:
    url = "http://127.0.0.1:18080/api/torghut/ta/latest?symbol=NVDA"
    overlay = rules_overlay(NODES, url)
    rules = load_remediator_rules(overlay.write(tmp_path / "rules.yaml"), default_registry)
    jangar = rules.get(JANGAR_RULE)
    assert jangar is not None and jangar.probe is not None
    assert (jangar.probe.spec.url, jangar.probe.spec.interval) == (url, 0.5)
    assert len(overlay.changes) == 2 + 1 + 4 * 2 + 2  # and the probe's url and interval


def test_alert_labels_and_annotations_follow_the_shipped_rules() -> None:
    rules = load_rules()
    assert set(rules) == {"ClickHouseReplicaReadonly", "FlinkDeploymentFailed", "TorghutWsNotReady"}
    clickhouse = rules["ClickHouseReplicaReadonly"]
    labels = {k: render(v, {"instance": "ch-0:9363"}, 2) for k, v in clickhouse.labels.items()}
    assert labels == {"severity": "critical", "remediate": "true", "database": "torghut"}
    assert render(clickhouse.labels["database"], {"database": "other"}, 1) == "other"
    summary = render(clickhouse.annotations["summary"], {"instance": "ch-0:9363"}, 2)
    assert summary == "ClickHouse ch-0:9363 has 2 read-only replicated table(s)"
    with pytest.raises(ValueError, match="not supported"):
        render("{{ $labels.x | humanize }}", {}, 0)


def _settle(pods: WsPods, steps: int = 20) -> None:
    for _ in range(steps):
        pods.step()


def test_torghut_ws_pods_are_ready_only_one_at_a_time() -> None:
    cluster = Cluster()
    pods = WsPods(cluster=cluster, namespace=NAMESPACE, name=WS_NAME)
    pods.install()
    _settle(pods)
    assert pods.ready_replicas() == 1 and pods.max_pods == 1

    # a rolling restart (or two replicas) runs two pods at once: the upstream refuses both
    cluster.modify(DEPLOYMENTS, NAMESPACE, WS_NAME, {"spec": {"replicas": 2}})
    _settle(pods)
    assert pods.ready_replicas() == 0 and pods.max_pods == 2


def test_a_stuck_pod_stays_unready_until_it_is_replaced() -> None:
    cluster = Cluster()
    pods = WsPods(cluster=cluster, namespace=NAMESPACE, name=WS_NAME)
    pods.install()
    _settle(pods)
    assert pods.break_upstream()
    _settle(pods)
    assert pods.ready_replicas() == 0

    for replicas in (0, 1):  # the bounce: scale to 0, let the pod go, scale back
        cluster.modify(DEPLOYMENTS, NAMESPACE, WS_NAME, {"spec": {"replicas": replicas}})
        _settle(pods)
    assert pods.ready_replicas() == 1 and pods.max_pods == 1
