"""Plays Prometheus: evaluates the three torghut alerts and Jangar's from the live systems
and sends them to Alertmanager's ``/api/v2/alerts`` the way Prometheus's notifier does.

The alert names, labels and annotations come from the shipped
``deploy/overlays/torghut/alerts.rules.yml``. The expressions are evaluated directly on the
systems instead of on scraped metrics:

- ``ClickHouseReplicaReadonly``: per node, the number of read-only replicas in
  ``system.replicas`` (what ``ClickHouseMetrics_ReadonlyReplica`` exports), > 0;
- ``FlinkDeploymentFailed``: the FlinkDeployment's job or lifecycle state is FAILED;
- ``TorghutWsNotReady``: the Deployment's ``status.readyReplicas`` is 0;
- ``JangarTaLatestFailing``: what blackbox-exporter's ``probe_success`` says, asked here
  directly: a GET of Jangar's TA endpoint that is not 2xx, or whose body holds
  ``UNKNOWN_TABLE`` (the module's ``fail_if_body_matches_regexp``), is 0.

Sending follows Prometheus: a firing alert carries ``endsAt`` = now + 4 x max(resend
delay, interval) and is re-sent every resend delay; a resolved one is sent with
``endsAt`` = the resolution time, then re-sent too. ``for:`` is 0 here (the shipped
rules wait 2-5 minutes before firing, which would not fit a demo).
"""

from __future__ import annotations

import asyncio
import re
import time
import urllib.parse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp

from demo.timeline import Timeline
from demo.world import FLINK_NAME, NAMESPACE, WS_NAME, read_replicas
from remediator.rules.documents import load_yaml
from tests.support.clickhouse import ClickHouseCluster
from tests.support.kube import DEPLOYMENTS, FLINK, Cluster
from tests.support.procs import ROOT

RULES_FILE = ROOT / "deploy" / "overlays" / "torghut" / "alerts.rules.yml"
GROUP = "torghut-remediation"
JANGAR_GROUP = "jangar-remediation"
GENERATOR = "http://prometheus.demo:9090/graph"


@dataclass(frozen=True)
class AlertingRule:
    name: str
    expr: str
    labels: dict[str, str]
    annotations: dict[str, str]


def load_rules(path: Path = RULES_FILE, name: str = GROUP) -> dict[str, AlertingRule]:
    """The alerting rules of the group ``name`` (default ``torghut-remediation``)."""
    doc = load_yaml(path.read_bytes(), str(path))
    (group,) = [g for g in doc["groups"] if g["name"] == name]
    return {
        r["alert"]: AlertingRule(
            name=r["alert"],
            expr=r["expr"].strip(),
            labels=dict(r.get("labels") or {}),
            annotations=dict(r.get("annotations") or {}),
        )
        for r in group["rules"]
    }


_WITH = re.compile(
    r"\{\{\s*with \$labels\.(\w+)\s*\}\}\{\{\s*\.\s*\}\}"
    r"\{\{\s*else\s*\}\}(.*?)\{\{\s*end\s*\}\}"
)
_LABEL = re.compile(r"\{\{\s*\$labels\.(\w+)\s*\}\}")
_VALUE = re.compile(r"\{\{\s*\$value\s*\}\}")


def render(template: str, labels: dict[str, str], value: float) -> str:
    """The Go-template forms the shipped rules use; anything else is an error."""
    text = _WITH.sub(lambda m: labels.get(m[1]) or m[2], template)
    text = _LABEL.sub(lambda m: labels.get(m[1], ""), text)
    text = _VALUE.sub(lambda m: f"{value:g}", text)
    if "{{" in text:
        raise ValueError(f"template not supported by the demo's Prometheus: {template!r}")
    return text


@dataclass(frozen=True)
class Sample:
    """One series an alert expression returned: its labels and value."""

    alertname: str
    labels: dict[str, str]
    value: float


@dataclass
class Alert:
    """One alert as Prometheus tracks it (active, then resolved)."""

    labels: dict[str, str]
    annotations: dict[str, str]
    starts_at: datetime
    fired_at: float  # monotonic
    resolved_at: float | None = None
    ends_at: datetime | None = None
    last_sent: float = 0.0

    @property
    def name(self) -> str:
        return self.labels["alertname"]

    def brief(self) -> str:
        return brief(self.labels)

    def payload(self, valid_until: datetime) -> dict[str, Any]:
        query = urllib.parse.urlencode({"g0.expr": self.labels["alertname"], "g0.tab": "1"})
        return {
            "labels": self.labels,
            "annotations": self.annotations,
            "startsAt": self.starts_at.isoformat(),
            "endsAt": (self.ends_at or valid_until).isoformat(),
            "generatorURL": f"{GENERATOR}?{query}",
        }


def brief(labels: dict[str, str]) -> str:
    shown = {k: v for k, v in labels.items() if k in ("pod", "database", "name", "deployment")}
    return labels.get("alertname", "?") + "{" + ", ".join(f"{k}={v}" for k, v in shown.items()) + "}"


Evaluate = Callable[[], Awaitable[list[Sample]]]


@dataclass
class AlertSource:
    alertmanager_url: str
    evaluate: Evaluate
    timeline: Timeline
    rules: dict[str, AlertingRule] = field(default_factory=load_rules)
    interval: float = 2.0
    resend_delay: float = 10.0
    alerts: dict[tuple[tuple[str, str], ...], Alert] = field(default_factory=dict)
    history: list[Alert] = field(default_factory=list)
    _post_failed: bool = False

    async def run(self, session: aiohttp.ClientSession) -> None:
        while True:
            started = time.monotonic()
            await self.evaluate_once(session)
            await asyncio.sleep(max(0.1, self.interval - (time.monotonic() - started)))

    async def evaluate_once(self, session: aiohttp.ClientSession) -> None:
        samples = await self.evaluate()
        now, mono = datetime.now(UTC), time.monotonic()
        firing = {self._observe(sample, now, mono) for sample in samples}
        for key, alert in self.alerts.items():
            if key not in firing and alert.resolved_at is None:
                alert.resolved_at, alert.ends_at = mono, now
                self.timeline.note(
                    "prometheus", f"resolved {alert.brief()} ({mono - alert.fired_at:.1f}s after it fired)"
                )
        await self._send(session, now, mono)

    def _observe(self, sample: Sample, now: datetime, mono: float) -> tuple[tuple[str, str], ...]:
        rule = self.rules[sample.alertname]
        labels = {**sample.labels, "alertname": sample.alertname}
        labels |= {k: render(v, sample.labels, sample.value) for k, v in rule.labels.items()}
        annotations = {k: render(v, labels, sample.value) for k, v in rule.annotations.items()}
        key = tuple(sorted(labels.items()))
        alert = self.alerts.get(key)
        if alert is None or alert.resolved_at is not None:
            alert = Alert(labels=labels, annotations=annotations, starts_at=now, fired_at=mono)
            self.alerts[key] = alert
            self.history.append(alert)
            self.timeline.note("prometheus", f"FIRING {alert.brief()}: {annotations.get('summary', '')}")
        alert.annotations = annotations
        return key

    async def _send(self, session: aiohttp.ClientSession, now: datetime, mono: float) -> None:
        due = [a for a in self.alerts.values() if _needs_sending(a, mono, self.resend_delay)]
        if not due:
            return
        valid_until = now + timedelta(seconds=4 * max(self.resend_delay, self.interval))
        body = [alert.payload(valid_until) for alert in due]
        try:
            async with session.post(
                f"{self.alertmanager_url}/api/v2/alerts", json=body, timeout=aiohttp.ClientTimeout(total=10)
            ) as response:
                response.raise_for_status()
        except (aiohttp.ClientError, TimeoutError) as exc:
            if not self._post_failed:
                self.timeline.note("prometheus", f"cannot send to Alertmanager: {exc!r}")
            self._post_failed = True
            return
        self._post_failed = False
        for alert in due:
            alert.last_sent = mono


def _needs_sending(alert: Alert, now: float, resend_delay: float) -> bool:
    """Prometheus's rule: a resolution not sent yet, or the resend delay passed."""
    if alert.resolved_at is not None and alert.resolved_at > alert.last_sent:
        return True
    return alert.last_sent + resend_delay <= now


@dataclass
class TorghutTargets:
    """The series the three expressions see, read from the live systems."""

    clickhouse: ClickHouseCluster
    kube: Cluster

    async def __call__(self) -> list[Sample]:
        nodes = self.clickhouse.nodes
        replicas = await asyncio.to_thread(lambda: [read_replicas(node) for node in nodes])
        samples = []
        for index, (node, tables) in enumerate(zip(nodes, replicas, strict=True)):
            readonly = sum((tables or {}).values())
            if readonly:  # a node that does not answer has no series at all: no alert
                samples.append(
                    Sample(
                        "ClickHouseReplicaReadonly",
                        {"namespace": NAMESPACE, "pod": f"chi-torghut-{index}", "instance": node.address},
                        float(readonly),
                    )
                )
        flink = (self.kube.get(FLINK, NAMESPACE, FLINK_NAME) or {}).get("status") or {}
        if "FAILED" in ((flink.get("jobStatus") or {}).get("state"), flink.get("lifecycleState")):
            samples.append(Sample("FlinkDeploymentFailed", {"namespace": NAMESPACE, "name": FLINK_NAME}, 1.0))
        ws = self.kube.get(DEPLOYMENTS, NAMESPACE, WS_NAME) or {}
        if not (ws.get("status") or {}).get("readyReplicas"):
            samples.append(Sample("TorghutWsNotReady", {"namespace": NAMESPACE, "deployment": WS_NAME}, 0.0))
        return samples


@dataclass
class JangarProbe:
    """``probe_success`` of Jangar's TA endpoint, as blackbox-exporter would report it."""

    session: aiohttp.ClientSession
    url: str
    last: str = ""  # the last answer, for the report

    async def __call__(self) -> list[Sample]:
        try:
            async with self.session.get(self.url, timeout=aiohttp.ClientTimeout(total=5)) as response:
                body = await response.text()
                ok = 200 <= response.status < 300 and "UNKNOWN_TABLE" not in body
                self.last = f"HTTP {response.status} {body[:200]}"
        except (aiohttp.ClientError, TimeoutError) as exc:
            ok, self.last = False, f"no answer: {exc!r}"
        return [] if ok else [Sample("JangarTaLatestFailing", {"instance": self.url}, 0.0)]


@dataclass
class Targets:
    """Every series the demo's Prometheus evaluates."""

    parts: list[Evaluate]

    async def __call__(self) -> list[Sample]:
        return [sample for part in self.parts for sample in await part()]
