"""deploy/prometheus (remediator's own alerts) and deploy/overlays/torghut (torghut's alerts):
promtool checks and unit tests, the PrometheusRule copies, and the label contract between
torghut's alerts and its rules.yaml."""

from __future__ import annotations

import re
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from remediator.metrics import Metrics
from remediator.models import Alert
from remediator.rules.documents import load_yaml
from remediator.rules.matchers import matches_all, parse_matcher
from remediator.rules.ruleset import template_context
from remediator.rules.templates import compile_value, render_value
from tests.support.procs import ROOT, require_binary

PROMETHEUS = ROOT / "deploy" / "prometheus"
TORGHUT = ROOT / "deploy" / "overlays" / "torghut"
RULES_FILE = PROMETHEUS / "alerts.rules.yml"  # remediator's own
TORGHUT_RULES = TORGHUT / "alerts.rules.yml"  # the conditions torghut's rules.yaml repairs
UNIT_TESTS = TORGHUT / "tests" / "alerts.test.yml"
# Each rule file, with its promtool unit tests and its PrometheusRule's name.
RULE_DIRS = {PROMETHEUS: "remediator", TORGHUT: "torghut-alerts"}
REMEDIATED = {
    "ClickHouseReplicaReadonly",
    "FlinkDeploymentFailed",
    "TorghutWsNotReady",
    "JangarTaLatestFailing",
}


def load(path: Path) -> Any:
    return load_yaml(path.read_bytes(), str(path))


def alerting_rules(*files: Path) -> list[dict[str, Any]]:
    """The alerting rules of ``files`` (default: every rule file, remediator's and torghut's)."""
    paths = files or tuple(d / "alerts.rules.yml" for d in RULE_DIRS)
    return [rule for path in paths for group in load(path)["groups"] for rule in group["rules"]]


def promtool(*args: str, cwd: Path = PROMETHEUS) -> subprocess.CompletedProcess[str]:
    binary = require_binary("promtool")
    return subprocess.run([binary, *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.parametrize("directory", RULE_DIRS, ids=lambda d: d.name)
def test_promtool_checks_the_rules(directory: Path) -> None:
    rules_file = directory / "alerts.rules.yml"
    result = promtool("check", "rules", str(rules_file))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alerting_rules(rules_file))} rules found" in result.stdout


@pytest.mark.parametrize("directory", RULE_DIRS, ids=lambda d: d.name)
def test_promtool_unit_tests_pass(directory: Path) -> None:
    result = promtool("test", "rules", str(directory / "tests" / "alerts.test.yml"), cwd=directory)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_unit_tests_fail_on_a_wrong_expectation(tmp_path: Path) -> None:
    """The unit tests can fail: the same file with one expected label changed does."""
    text = UNIT_TESTS.read_text(encoding="utf-8").replace("name: torghut-ta\n", "name: torghut-tb\n", 1)
    text = text.replace("../alerts.rules.yml", str(TORGHUT_RULES))
    (tmp_path / "mutated.test.yml").write_text(text, encoding="utf-8")
    result = promtool("test", "rules", "mutated.test.yml", cwd=tmp_path)
    assert result.returncode != 0
    assert "FlinkDeploymentFailed" in result.stdout + result.stderr


_REMEDIATOR_GONE = """
rule_files: [RULES]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      # Scraped for two minutes, then the Deployment is deleted: the series goes stale.
      - series: 'up{job="remediator", namespace="torghut", pod="remediator-a"}'
        values: '1 1 stale'
      - series: 'up{job="kube-state-metrics", namespace="monitoring", pod="ksm"}'
        values: '1x12'
    alert_rule_test:
      - {eval_time: 6m, alertname: RemediatorDown, exp_alerts: []}
      - eval_time: 7m
        alertname: RemediatorDown
        exp_alerts:
          - exp_labels: {alertname: RemediatorDown, severity: critical, job: remediator}
            exp_annotations:
              summary: 'Prometheus scrapes no remediator at all (no up{job="remediator"} series)'
              description: Alerts routed to the remediator are not being acted on.
              runbook_url: https://remediator.example.com/runbooks/remediator/#remediatordown
  - interval: 1m
    input_series:
      # Never scraped at all (no ServiceMonitor picked up): fires after `for` as well.
      - series: 'up{job="kube-state-metrics", namespace="monitoring", pod="ksm"}'
        values: '1x12'
    alert_rule_test:
      - eval_time: 5m
        alertname: RemediatorDown
        exp_alerts:
          - exp_labels: {alertname: RemediatorDown, severity: critical, job: remediator}
            exp_annotations:
              summary: 'Prometheus scrapes no remediator at all (no up{job="remediator"} series)'
              description: Alerts routed to the remediator are not being acted on.
              runbook_url: https://remediator.example.com/runbooks/remediator/#remediatordown
"""


def test_remediator_down_fires_when_no_remediator_is_scraped(tmp_path: Path) -> None:
    """`up == 0` needs an up series: with the Deployment gone there is none, absent() fires."""
    test_file = tmp_path / "gone.test.yml"
    test_file.write_text(_REMEDIATOR_GONE.replace("RULES", str(RULES_FILE)), encoding="utf-8")
    result = promtool("test", "rules", test_file.name, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    (down,) = [r for r in alerting_rules() if r["alert"] == "RemediatorDown"]
    assert 'absent(up{job="remediator"})' in down["expr"]


@pytest.mark.parametrize("directory", RULE_DIRS, ids=lambda d: d.name)
def test_every_alert_is_unit_tested(directory: Path) -> None:
    tested = {
        case["alertname"]
        for test in load(directory / "tests" / "alerts.test.yml")["tests"]
        for case in test["alert_rule_test"]
        if case["exp_alerts"]
    }
    assert tested == {rule["alert"] for rule in alerting_rules(directory / "alerts.rules.yml")}


def test_remediators_own_alerts_are_apart_from_the_teams() -> None:
    """remediator's PrometheusRule is about remediator only: no alert the remediator acts on;
    torghut's alerts are all ones it repairs, in the torghut overlay's own PrometheusRule."""
    own = alerting_rules(RULES_FILE)
    assert own and all(rule["alert"].startswith("Remediator") for rule in own)
    assert not [r["alert"] for r in own if r.get("labels", {}).get("remediate")]
    assert {rule["alert"] for rule in alerting_rules(TORGHUT_RULES)} == REMEDIATED
    assert "torghut" not in RULES_FILE.read_text(encoding="utf-8").split("groups:", 1)[1]


@pytest.mark.parametrize("directory", RULE_DIRS, ids=lambda d: d.name)
def test_prometheusrule_holds_the_same_groups(tmp_path: Path, directory: Path) -> None:
    resource = load(directory / "prometheusrule.yaml")
    assert resource["apiVersion"] == "monitoring.coreos.com/v1"
    assert resource["kind"] == "PrometheusRule"
    assert resource["metadata"]["name"] == RULE_DIRS[directory]
    assert resource["spec"] == load(directory / "alerts.rules.yml"), (
        "prometheusrule.yaml is stale: run `make deploy-sync`"
    )
    extracted = tmp_path / "spec.rules.yml"
    extracted.write_text(yaml.safe_dump(resource["spec"]), encoding="utf-8")
    result = promtool("check", "rules", str(extracted))
    assert result.returncode == 0, result.stdout + result.stderr


def docs_site_url() -> str:
    """mkdocs.yml's site_url: where the docs site, and so the runbooks, are published."""
    text = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    (url,) = re.findall(r"^site_url: (\S+)$", text, re.M)
    return str(url)


def runbook_anchors(url: str) -> set[str]:
    """The anchors of the docs page ``url`` names (``<site>/runbooks/<page>/#...``): the
    explicit ``{#id}`` of its headings, as the site renders them."""
    path = url.removeprefix(docs_site_url()).split("#", 1)[0].strip("/")
    page = ROOT / "docs" / f"{path}.md"
    assert page.is_file(), f"{url}: no docs page {page.relative_to(ROOT)}"
    return set(re.findall(r"^#+ .*\{#([a-z0-9_-]+)\}\s*$", page.read_text(encoding="utf-8"), re.M))


def test_alerts_have_severity_summary_and_a_runbook_section() -> None:
    site = docs_site_url()
    for directory, name in RULE_DIRS.items():
        page = "remediator" if name == "remediator" else directory.name
        for rule in alerting_rules(directory / "alerts.rules.yml"):
            assert rule["labels"]["severity"] in ("critical", "warning"), rule["alert"]
            assert rule["annotations"]["summary"], rule["alert"]
            url = rule["annotations"]["runbook_url"]
            assert url == f"{site}runbooks/{page}/#{rule['alert'].lower()}", url
            anchors = runbook_anchors(url)
            assert rule["alert"].lower() in anchors, f"docs/runbooks/{page}.md has no section {rule['alert']}"


def test_a_runbook_link_to_a_missing_section_is_caught() -> None:
    """The check above can fail: a section that is not on the page is not among its anchors."""
    site = docs_site_url()
    assert "remediatordown" in runbook_anchors(f"{site}runbooks/remediator/#remediatordown")
    assert "torghutwsnotready" not in runbook_anchors(f"{site}runbooks/remediator/#torghutwsnotready")


def test_self_alerts_use_the_services_metric_names() -> None:
    exported = {sample.name for family in Metrics().registry.collect() for sample in family.samples}
    exported |= {family.name for family in Metrics().registry.collect()}
    used = {name for rule in alerting_rules() for name in re.findall(r"\bremediator_\w+", rule["expr"])}
    assert used >= {
        "remediator_circuit_open",
        "remediator_rules_reload_total",
        "remediator_queue_depth",
        "remediator_dead_letters_total",
        "remediator_notifications_total",
    }
    for name in used:
        # Counters only show `_total` samples once incremented; their family name is bare.
        assert name in exported or name.removesuffix("_total") in exported, name


def test_flink_alert_reads_the_metrics_kube_state_metrics_is_configured_to_export() -> None:
    config = load(PROMETHEUS / "kube-state-metrics-flink.yaml")["kube-state-metrics"]
    (resource,) = config["customResourceState"]["config"]["spec"]["resources"]
    assert resource["groupVersionKind"] == {
        "group": "flink.apache.org",
        "version": "v1beta1",
        "kind": "FlinkDeployment",
    }
    assert resource["labelsFromPath"] == {
        "namespace": ["metadata", "namespace"],
        "name": ["metadata", "name"],
    }
    names = {}
    for metric in resource["metrics"]:
        state_set = metric["each"]["stateSet"]
        assert "FAILED" in state_set["list"] and state_set["labelName"] == "state"
        names[f"{resource['metricNamePrefix']}_{metric['name']}"] = state_set["path"]
    assert names == {
        "flink_deployment_job_state": ["status", "jobStatus", "state"],
        "flink_deployment_lifecycle_state": ["status", "lifecycleState"],
    }
    (flink,) = [r for r in alerting_rules() if r["alert"] == "FlinkDeploymentFailed"]
    assert set(re.findall(r"\bflink_\w+", flink["expr"])) == set(names)
    rbac = config["rbac"]["extraRules"]
    assert rbac == [
        {"apiGroups": ["flink.apache.org"], "resources": ["flinkdeployments"], "verbs": ["list", "watch"]}
    ]


# ---- the label contract with rules.yaml -------------------------------------------------------
def expected_alerts() -> list[dict[str, str]]:
    """Every label set the promtool unit tests expect a remediated alert to carry."""
    return [
        case_alert["exp_labels"]
        for test in load(UNIT_TESTS)["tests"]
        for case in test["alert_rule_test"]
        for case_alert in case["exp_alerts"]
        if case["alertname"] in REMEDIATED
    ]


def shipped_rules() -> list[dict[str, Any]]:
    return list(load(TORGHUT / "rules.yaml")["rules"])


def as_alert(labels: dict[str, str]) -> Alert:
    return Alert.model_validate(
        {"status": "firing", "labels": labels, "startsAt": datetime.now(UTC).isoformat()}
    )


def matching(labels: dict[str, str]) -> list[dict[str, Any]]:
    return [
        rule for rule in shipped_rules() if matches_all([parse_matcher(m) for m in rule["matchers"]], labels)
    ]


@pytest.mark.parametrize(
    "labels", expected_alerts(), ids=lambda labels: f"{labels['alertname']}-{len(labels)}"
)
def test_each_remediated_alert_matches_one_rule_and_renders(labels: dict[str, str]) -> None:
    (rule,) = matching(labels)
    context = template_context(as_alert(labels))
    target = render_value(compile_value(rule["target"]), context)
    params = render_value(compile_value(rule["params"]), context)
    assert target and "None" not in target
    if labels["alertname"] == "ClickHouseReplicaReadonly":
        assert target == f"clickhouse/{labels['database']}"
        assert params["database"] == labels["database"]
        assert "table" not in params  # one repair per database: every read-only table
    if labels["alertname"] == "FlinkDeploymentFailed":
        assert target == f"flink/{labels['namespace']}/{labels['name']}"
    if labels["alertname"] == "TorghutWsNotReady":
        assert params == {"namespace": labels["namespace"], "deployment": labels["deployment"]}
    if labels["alertname"] == "JangarTaLatestFailing":
        assert target == f"deployment/{labels['namespace']}/{labels['deployment']}"
        assert params["namespace"] == "torghut" and params["deployment"] == "jangar"
        assert params["env"] == {"CH_DATABASE": "torghut"}
        # The remediator asks the URL blackbox-exporter asks.
        assert render_value(compile_value(rule["probe"]["url"]), context) == labels["instance"]


def test_every_remediated_alert_is_covered() -> None:
    assert {labels["alertname"] for labels in expected_alerts()} == REMEDIATED
    for rule in alerting_rules():
        routed = rule.get("labels", {}).get("remediate") == "true"
        assert routed == (rule["alert"] in REMEDIATED), rule["alert"]


def test_flink_rule_waits_for_the_clickhouse_alert() -> None:
    (flink,) = [r for r in shipped_rules() if r["name"] == "flink-ta-failed"]
    clickhouse = [
        labels for labels in expected_alerts() if labels["alertname"] == "ClickHouseReplicaReadonly"
    ]
    blockers = [parse_matcher(m) for m in flink["inhibited_by"]]
    assert clickhouse and all(matches_all(blockers, labels) for labels in clickhouse)


def test_alerts_about_the_remediator_match_no_rule() -> None:
    for rule in alerting_rules():
        if rule["alert"] not in REMEDIATED:
            labels = {
                "alertname": rule["alert"],
                **{k: v for k, v in rule["labels"].items() if "{{" not in v},
            }
            assert matching(labels) == [], rule["alert"]
