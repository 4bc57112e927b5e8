"""A rule's ``context:`` on a running app, against real local servers: kmock's Kubernetes
emulator over HTTP with the real kubernetes-asyncio client and the shipped Role, and an
aiohttp server speaking Prometheus' ``/api/v1/query``. Each kind is gathered and shown (the
audit event, the API, the Slack notice, the approval request), secrets redacted; a timeout
and a failure are noted, never fatal; a job skipped for its cooldown fetches nothing; a job
delivered again gathers nothing twice."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

import handlers  # noqa: F401  (the built-in gatherers)
from remediator.handling.registry import Registry, default_registry
from remediator.models import Gathered, Outcome
from remediator.worker.approval import decide
from tests.conftest import MakeHarness
from tests.support.admin import ADMIN_TOKEN
from tests.support.handlers import RUNS, make_registry
from tests.support.kube import EVENTS, PODS, Cluster, kube_env
from tests.support.kube_workloads import pod
from tests.support.payloads import alert, payload
from tests.support.recording import RecordingNotifier
from tests.support.waiting import eventually

NS = "torghut"
RULES = """
defaults:
  cooldown: 10m
rules:
  - name: ws
    matchers: ['alertname="WsNotReady"']
    handler: test.probe
    target: 'svc/{{ labels.service }}'
    params: {bucket: '{{ labels.service }}'}
    context:
      - kubernetes.logs: {namespace: torghut, pod: '{{ labels.pod }}', lines: 3}
      - kubernetes.events: {namespace: torghut, kind: Deployment, name: torghut-ws}
      - prometheus.query: {url: 'PROM', query: 'up{pod="{{ labels.pod }}"}', timeout: 300ms}
  - name: gated
    matchers: ['alertname="Gated"']
    handler: test.probe
    target: 'gated/{{ labels.service }}'
    params: {bucket: '{{ labels.service }}'}
    approval: {timeout: 1h, approvers: [U0ALICE]}
    context:
      - prometheus.query: {url: 'PROM', query: 'up'}
"""
LOG = (
    "booting\nconnecting with token=abc123\nAuthorization: Bearer eyJhbGciOiJIUzI1NiJ9\nretrying <!channel>\n"
)


@dataclass
class Prometheus:
    """``/api/v1/query`` as Prometheus answers it; ``delay`` holds each answer."""

    queries: list[str] = field(default_factory=list)
    delay: float = 0.0
    url: str = ""

    async def query(self, request: web.Request) -> web.Response:
        self.queries.append(request.query.get("query", ""))
        await asyncio.sleep(self.delay)
        pod = "torghut-ws-1"
        vector = [{"metric": {"__name__": "up", "pod": pod, "job": "ws"}, "value": [1714564800, "1"]}]
        return web.json_response({"status": "success", "data": {"resultType": "vector", "result": vector}})


@pytest.fixture
async def prometheus() -> AsyncIterator[Prometheus]:
    prom = Prometheus()
    app = web.Application()
    app.router.add_get("/api/v1/query", prom.query)
    async with TestServer(app) as server:
        prom.url = str(server.make_url("")).rstrip("/")
        yield prom


@pytest.fixture
async def cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Cluster]:
    async with kube_env(tmp_path, monkeypatch) as cluster:
        cluster.put(PODS, NS, pod("torghut-ws-1"))
        cluster.logs[NS, "torghut-ws-1"] = LOG
        for name, kind, target, reason in (
            ("ws.1", "Deployment", "torghut-ws", "ScalingReplicaSet"),
            ("other.1", "Deployment", "jangar", "SomethingElse"),
        ):
            cluster.put(EVENTS, NS, _event(name, kind, target, reason))
        yield cluster


def _event(name: str, kind: str, target: str, reason: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": name},
        "involvedObject": {"kind": kind, "name": target, "namespace": NS},
        "reason": reason,
        "message": f"Scaled down replica set {target}-7d9f to 0",
        "type": "Normal",
        "count": 2,
        "lastTimestamp": "2024-05-01T12:00:00Z",
    }


def registry() -> Registry:
    found = make_registry()
    found.gatherers.update(default_registry.gatherers)
    return found


def fired(name: str = "WsNotReady", pod_name: str = "torghut-ws-1", service: str = "a") -> dict[str, Any]:
    return payload(alert(name, service=service, pod=pod_name))


def context_of(event: Any) -> list[Gathered]:
    (step,) = [s for s in event.timeline if s.name == "context"]
    return [Gathered.model_validate(entry) for entry in step.data["entries"]]


async def test_each_kind_is_gathered_shown_everywhere_and_redacted(
    harness: MakeHarness, cluster: Cluster, prometheus: Prometheus
) -> None:
    recorder = RecordingNotifier()
    h = await harness(
        RULES.replace("PROM", prometheus.url), registry=registry(), notifier=recorder, admin_token=ADMIN_TOKEN
    )
    event = await h.event(await h.post_one(fired()))
    assert event.outcome is Outcome.SUCCEEDED, event.message
    logs, events, query = context_of(event)
    assert logs.title == "last 3 log lines of pod torghut/torghut-ws-1"
    assert logs.text == (
        "connecting with token=[redacted]\nAuthorization: Bearer [redacted]\nretrying <!channel>\n"
    )
    assert logs.redacted == 2 and logs.ok
    assert events.title == "recent Events of Deployment torghut/torghut-ws"
    scaled = "Scaled down replica set torghut-ws-7d9f to 0"
    assert events.text == f"2024-05-01T12:00:00+00:00 Normal ScalingReplicaSet (x2): {scaled}"
    assert query.title == 'Prometheus: up{pod="torghut-ws-1"}'
    assert query.text == '1 {__name__="up", job="ws", pod="torghut-ws-1"}'
    assert prometheus.queries == ['up{pod="torghut-ws-1"}']
    # Slack: the context before the handler starts, redacted; the event over HTTP too.
    kinds = [n.kind for n in recorder.notices]
    assert kinds.index("context") < kinds.index("started")
    (told,) = recorder.of_kind("context")
    assert told.context == [logs, events, query]
    assert "abc123" not in repr(recorder.notices) and "eyJhbGci" not in repr(recorder.notices)
    answer = await h.client.get(
        f"/api/v1/events/{event.event_id}", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
    )
    body = await answer.json()
    assert [entry["title"] for entry in body["context"]] == [logs.title, events.title, query.title]
    assert "abc123" not in await answer.text()


async def test_a_timeout_and_a_failure_are_noted_and_the_job_goes_on(
    harness: MakeHarness, cluster: Cluster, prometheus: Prometheus
) -> None:
    prometheus.delay = 5.0  # beyond the entry's 300ms
    h = await harness(
        RULES.replace("PROM", prometheus.url), registry=registry(), notifier=RecordingNotifier()
    )
    event = await h.event(await h.post_one(fired(pod_name="gone-pod")))
    assert event.outcome is Outcome.SUCCEEDED, event.message
    logs, events, query = context_of(event)
    assert logs.error == "Pod torghut/gone-pod not found" and logs.text == ""
    assert events.ok
    assert query.error == "no answer within 0.3s (its timeout)"
    (step,) = [s for s in event.timeline if s.name == "context"]
    assert step.message == (
        "3 entries gathered, 2 failed: last 3 log lines of pod torghut/gone-pod; "
        'Prometheus: up{pod="gone-pod"}'
    )
    assert len(RUNS["a"]) == 1  # the handler ran


async def test_a_job_skipped_for_its_cooldown_fetches_nothing(
    harness: MakeHarness, cluster: Cluster, prometheus: Prometheus
) -> None:
    h = await harness(
        RULES.replace("PROM", prometheus.url), registry=registry(), notifier=RecordingNotifier()
    )
    await h.svc.store.gates.set_cooldown("ws", "svc/a", 600)
    calls = len(cluster.calls)
    event = await h.event(await h.post_one(fired()))
    assert event.outcome_label == "skipped:cooldown"
    assert prometheus.queries == [] and len(cluster.calls) == calls
    assert "context" not in [s.name for s in event.timeline]


async def test_the_approval_request_carries_the_context_gathered_once(
    harness: MakeHarness, prometheus: Prometheus
) -> None:
    recorder = RecordingNotifier()
    h = await harness(
        RULES.replace("PROM", prometheus.url), registry=registry(), notifier=recorder, admin_token=ADMIN_TOKEN
    )
    event_id = await h.post_one(fired("Gated"))
    approval = await eventually(
        lambda: h.svc.store.approvals.get_approval(event_id), what="the approval request"
    )
    assert approval is not None
    assert [entry["text"] for entry in approval.context] == [
        '1 {__name__="up", job="ws", pod="torghut-ws-1"}'
    ]
    (request,) = recorder.of_kind("approval")
    assert request.approval is not None and request.approval.context == approval.context
    assert recorder.of_kind("context") == []  # the request itself carries it
    listed = await h.client.get("/api/v1/approvals", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    (info,) = (await listed.json())["approvals"]
    assert info["context"][0]["title"] == "Prometheus: up"
    await asyncio.sleep(0.3)  # several passes while it waits: none gathers again
    await decide(h.svc.store.approvals, event_id, "approved", "alice")
    event = await h.event(event_id)
    assert event.outcome is Outcome.SUCCEEDED
    assert prometheus.queries == ["up"]
    assert len(context_of(event)) == 1
