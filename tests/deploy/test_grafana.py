"""deploy/grafana: the dashboard's every panel queries metrics we export, and returns data.

A real Prometheus (Debian's) scrapes a live remediator that has handled alerts of every
kind the panels show (successes, failures and an open circuit, deferrals and lease
contention, Slack and PagerDuty deliveries, a rules reload); each panel's PromQL, with
Grafana's variables substituted, then goes through Prometheus's query API.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import time
import tomllib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import kubernetes_validate
import pytest
import yaml

from remediator.metrics import Metrics
from tests.conftest import Harness, MakeHarness
from tests.deploy.test_deploy_manifests import KUBERNETES_VERSIONS, RECOMMENDED_LABELS, assert_kubectl_agrees
from tests.support import payloads
from tests.support.handlers import FIX_RULE
from tests.support.kustomize import render
from tests.support.pagerduty_server import ROUTING_KEY, PagerDutyServer
from tests.support.procs import ROOT, free_port, require_binary, stop_process
from tests.support.slack_server import TOKEN, SlackServer
from tests.support.waiting import eventually

GRAFANA = ROOT / "deploy" / "grafana"
DASHBOARD = GRAFANA / "remediator-dashboard.json"
# What Grafana puts in place of its variables: "All" for ours, intervals for its own.
VARIABLES = {"$job": ".*", "$rule": ".*", "$__rate_interval": "1m", "$__range": "5m"}
RULES = (
    "defaults: {cooldown: 0s, max_attempts: 2, attempt_window: 1h, lease: 30s}\nrules:\n"
    + FIX_RULE
    + """\
  - name: slow
    matchers: ['alertname="Slow"']
    handler: test.probe
    target: 'slow/{{ labels.service }}'
    params: {sleep: 1.0}
  - name: flaky
    matchers: ['alertname="Flaky"']
    handler: test.probe
    target: 'flaky/{{ labels.service }}'
    params: {unreachable: true}
    max_attempts: 3
"""
)


def dashboard() -> dict[str, Any]:
    return dict(json.loads(DASHBOARD.read_text(encoding="utf-8")))


def panel_queries() -> list[tuple[str, str]]:
    """(panel title, PromQL with the variables substituted) for every target of every panel."""
    out = []
    for panel in dashboard()["panels"]:
        for target in panel["targets"]:
            expr = target["expr"]
            for name in sorted(VARIABLES, key=len, reverse=True):
                expr = expr.replace(name, VARIABLES[name])
            out.append((panel["title"], expr))
    return out


# ---- static --------------------------------------------------------------------------------
def test_the_configmap_carries_the_dashboard_for_the_grafana_sidecar() -> None:
    [config_map] = render(GRAFANA)
    assert config_map["kind"] == "ConfigMap"
    assert config_map["metadata"]["name"] == "remediator-grafana-dashboard"
    labels = config_map["metadata"]["labels"]
    assert labels["grafana_dashboard"] == "1"  # what the kube-prometheus-stack sidecar watches
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    for key in RECOMMENDED_LABELS:
        assert key == "instance" or labels[f"app.kubernetes.io/{key}"], key  # an overlay sets instance
    assert labels["app.kubernetes.io/version"] == project["version"]
    assert json.loads(config_map["data"]["remediator.json"]) == dashboard()
    for version in KUBERNETES_VERSIONS:
        kubernetes_validate.validate(config_map, version, strict=True)
    assert_kubectl_agrees(GRAFANA)


def test_every_query_names_metrics_we_export() -> None:
    exported = {m.name for m in Metrics().registry.collect()}
    exported |= {f"{name}_total" for name in exported}  # the client names counters without it
    wanted = {
        "Remediations by rule and outcome",
        "Success rate",
        "Time to repair (alert start to verified success)",
        "Queue depth and deferred jobs",
        "Circuits open",
        "Lease contention",
        "Webhook requests by status",
        "Slack delivery",
        "PagerDuty events",
        "Rule reloads",
    }
    assert {title for title, _ in panel_queries()} == wanted
    for title, expr in panel_queries():
        names = set(re.findall(r"\b(remediator_[a-z_]+)", expr))
        assert names, title
        for name in names:
            assert re.sub(r"_(bucket|count|sum)$", "", name) in exported, f"{title}: {name}"
    for panel in dashboard()["panels"]:
        assert panel["datasource"]["uid"] == "${datasource}"
    variables = {v["name"] for v in dashboard()["templating"]["list"]}
    assert variables == {"datasource", "job", "rule"}


# ---- live ----------------------------------------------------------------------------------
class Prometheus:
    def __init__(self, url: str, session: aiohttp.ClientSession) -> None:
        self.url, self.session = url, session

    async def query(self, expr: str) -> list[dict[str, Any]]:
        async with self.session.get(f"{self.url}/api/v1/query", params={"query": expr}) as response:
            body = await response.json()
        assert body["status"] == "success", (expr, body)
        return list(body["data"]["result"])

    async def until(self, expr: str, within: float = 20.0) -> list[dict[str, Any]]:
        """The query's result once it is non-empty (scrapes take a moment)."""
        deadline = time.monotonic() + within
        while True:
            result = await self.query(expr)
            if result or time.monotonic() > deadline:
                return result
            await asyncio.sleep(0.5)


@pytest.fixture
async def servers() -> AsyncIterator[tuple[SlackServer, PagerDutyServer]]:
    slack, pagerduty = await SlackServer().start(), await PagerDutyServer().start()
    yield slack, pagerduty
    await slack.close()
    await pagerduty.close()


def start_prometheus(tmp_path: Path, port: int, target: int) -> subprocess.Popen[bytes]:
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [
            {"job_name": "remediator", "static_configs": [{"targets": [f"127.0.0.1:{target}"]}]}
        ],
    }
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
    with (tmp_path / "prometheus.log").open("wb") as log:
        return subprocess.Popen(
            [
                require_binary("prometheus"),  # scripts/system-deps.sh installs Debian's
                f"--config.file={tmp_path / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp_path / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=warn",
            ],
            stdout=subprocess.DEVNULL,
            stderr=log,
        )


def alert(name: str, service: str, started: datetime, **labels: str) -> dict[str, Any]:
    return payloads.alert(
        name, "firing", started, {"summary": f"{service} is broken"}, service=service, **labels
    )


async def fire(h: Harness, *alerts: dict[str, Any]) -> list[str]:
    response = await h.post({"version": "4", "status": "firing", "alerts": list(alerts)})
    assert response.status == 202, await response.text()
    return list((await response.json())["event_ids"])


async def handle_alerts(h: Harness, slack: SlackServer, pagerduty: PagerDutyServer) -> None:
    """Every kind of series the panels read: outcomes, a circuit, contention, deliveries, a reload."""
    now = datetime.now(UTC)
    for event_id in await fire(h, alert("Broken", "a", now - timedelta(seconds=40), outcome="succeeded")):
        await h.event(event_id)
    for _ in range(2):  # the second failure opens the circuit: Slack and PagerDuty escalate
        for event_id in await fire(h, alert("Broken", "down", now, outcome="failed")):
            await h.event(event_id)
    # two alerts on one target at once: the second waits for the lease (contention, deferral)
    slow = await fire(h, alert("Slow", "s", now, instance="1"), alert("Slow", "s", now, instance="2"))
    for event_id in slow:
        await h.event(event_id)
    rules = h.svc.settings.rules
    rules.write_text(rules.read_text(encoding="utf-8").replace("sleep: 1.0", "sleep: 0.5"), encoding="utf-8")
    await pagerduty.wait_for(1)
    await slack.wait_for_messages(4)
    await fire(h, alert("Flaky", "f", now))  # a temporary failure: retried later (deferred)
    await eventually(
        lambda: sample(h, "remediator_rules_reload_total", result="ok") >= 2, every=0.1
    )  # start, edit
    await eventually(
        lambda: sample(h, "remediator_jobs_deferred_total", rule="flaky", reason="retry") >= 1, every=0.1
    )


def sample(h: Harness, name: str, **labels: str) -> float:
    return h.svc.metrics.registry.get_sample_value(name, labels) or 0.0


async def test_every_panel_returns_data_from_a_live_remediator(
    harness: MakeHarness, servers: tuple[SlackServer, PagerDutyServer], tmp_path: Path
) -> None:
    slack, pagerduty = servers
    h = await harness(
        RULES,
        rules_poll_interval=0.2,
        slack_bot_token=TOKEN,
        slack_channel="#alerts",
        slack_api_url=slack.api_url,
        pagerduty_routing_key=ROUTING_KEY,
        pagerduty_api_url=pagerduty.url,
    )
    port = free_port()
    assert h.client.server.port is not None
    proc = start_prometheus(tmp_path, port, h.client.server.port)
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
            prometheus = Prometheus(f"http://127.0.0.1:{port}", session)
            await wait_ready(prometheus, proc, tmp_path)
            assert await prometheus.until('up{job="remediator"} == 1'), "the remediator is not scraped"
            await handle_alerts(h, slack, pagerduty)
            # one more success after Prometheus saw the first: rates and quantiles have a slope
            await asyncio.sleep(2.5)
            for event_id in await fire(
                h, alert("Broken", "b", datetime.now(UTC) - timedelta(seconds=20), outcome="succeeded")
            ):
                await h.event(event_id)
            await asyncio.sleep(2.5)
            empty = [
                (title, expr) for title, expr in panel_queries() if not await prometheus.until(expr, 5.0)
            ]
            assert not empty, f"panels without data: {empty}"
            for title in ("Success rate", "Time to repair (alert start to verified success)"):
                values = [
                    float(series["value"][1])
                    for t, expr in panel_queries()
                    if t == title
                    for series in await prometheus.query(expr)
                ]
                assert any(v == v and v > 0 for v in values), f"{title}: {values}"  # v == v: not NaN
    finally:
        stop_process(proc)


async def wait_ready(prometheus: Prometheus, proc: subprocess.Popen[bytes], tmp_path: Path) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError((tmp_path / "prometheus.log").read_text(errors="replace"))
        try:
            async with prometheus.session.get(f"{prometheus.url}/-/ready") as response:
                if response.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.2)
    raise AssertionError("Prometheus did not become ready within 20s")
