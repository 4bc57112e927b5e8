"""A rule's ``resolve:`` on a running app: the pod an alert names is resolved to its owning
workload before the lease (kmock's emulator over HTTP, the real client, the shipped Role),
so two pods of one Deployment share one lease; a pod gone ends ``skipped:gone`` (never toward
the circuit); a pod without a controlling owner fails with that reason; rules without
``resolve:`` make no request for it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

import handlers  # noqa: F401  (the real handlers and the owner resolver)
from remediator.handling.registry import default_registry
from remediator.models import Outcome
from tests.conftest import MakeHarness
from tests.support.kube import (
    DEPLOYMENTS,
    JOBS,
    PODS,
    Cluster,
    DeploymentController,
    background,
    deployment,
    kube_env,
)
from tests.support.kube_workloads import job, pod
from tests.support.payloads import alert, payload
from tests.support.recording import RecordingNotifier

NS = "torghut"
RULES = """
defaults:
  cooldown: 10m
  max_attempts: 2
rules:
  - name: crashloop
    matchers: ['alertname="KubePodCrashLooping"']
    resolve: {pod: '{{ labels.pod }}', namespace: '{{ labels.namespace }}'}
    handler: kubernetes.rollout_restart
    target: '{{ owner.kind | lower }}/{{ owner.namespace }}/{{ owner.name }}'
    params: {namespace: '{{ owner.namespace }}', kind: '{{ owner.kind }}', name: '{{ owner.name }}',
             poll_interval: 50ms}
  - name: plain
    matchers: ['alertname="Plain"']
    handler: kubernetes.rollout_restart
    target: 'deployment/torghut/ws'
    params: {namespace: torghut, name: ws, poll_interval: 50ms}
    dry_run: true
"""


@pytest.fixture
async def cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Cluster]:
    async with kube_env(tmp_path, monkeypatch) as cluster:
        yield cluster


def crashing(pod_name: str, **more: Any) -> dict[str, Any]:
    return alert("KubePodCrashLooping", namespace=NS, pod=pod_name, **more)


def ws(cluster: Cluster, replicas: int = 2) -> DeploymentController:
    cluster.put(DEPLOYMENTS, NS, deployment("ws", replicas=replicas, labels={"app": "ws"}))
    controller = DeploymentController(cluster, NS, "ws")
    for _ in range(controller.ready_after * (replicas + 2)):
        controller.step()
    return controller


async def one(h: Any, *alerts: dict[str, Any], timeout: float = 10.0) -> Any:
    """Post the alerts; the event of the first job."""
    response = await h.post(payload(*alerts))
    assert response.status == 202, await response.text()
    return await h.event((await response.json())["event_ids"][0], timeout=timeout)


def pod_names(cluster: Cluster) -> list[str]:
    return sorted(p["metadata"]["name"] for p in cluster.items(PODS, NS, "app=ws"))


async def test_two_pods_of_one_deployment_share_one_lease_and_one_run(
    harness: MakeHarness, cluster: Cluster
) -> None:
    controller = ws(cluster)
    first, second = pod_names(cluster)
    recorder = RecordingNotifier()
    sent = recorder.notices
    h = await harness(RULES, registry=default_registry, notifier=recorder)
    async with background(controller.run):
        response = await h.post(payload(crashing(first), crashing(second)))
        assert response.status == 202
        ids = (await response.json())["event_ids"]
        assert len(ids) == 2
        events = [await h.event(event_id, timeout=30) for event_id in ids]
    assert {e.target for e in events} == {f"deployment/{NS}/ws"}, "both pods resolve to their Deployment"
    ran = [e for e in events if e.outcome is Outcome.SUCCEEDED]
    other = [e for e in events if e is not ran[0]]
    assert len(ran) == 1, [e.outcome_label for e in events]
    assert other[0].outcome_label in ("skipped:locked", "skipped:cooldown"), other[0].message
    restarts = [c for c in cluster.calls if c.verb == "patch" and c.plural == "deployments"]
    assert len(restarts) == 1, "one rolling restart for the two pods"
    step = next(s for s in ran[0].timeline if s.name == "resolve")
    assert step.message.startswith(f"Pod {NS}/") and step.message.endswith(f"-> Deployment {NS}/ws")
    assert " -> ReplicaSet torghut/ws-" in step.message
    assert step.data["owner"]["kind"] == "Deployment"
    resolved_before_lease = [s.name for s in ran[0].timeline]
    assert resolved_before_lease.index("resolve") < resolved_before_lease.index("lease.acquired")
    assert {n.target for n in sent if n.kind == "outcome"} == {f"deployment/{NS}/ws"}


async def test_a_pod_already_gone_is_skipped_gone_and_never_counts_toward_the_circuit(
    harness: MakeHarness, cluster: Cluster
) -> None:
    h = await harness(RULES, registry=default_registry)
    labels = []
    for attempt in range(3):  # more than max_attempts: a failure would open the circuit
        event = await one(h, crashing("ws-5d8f-gone", attempt=str(attempt)))
        labels.append(event.outcome_label)
    assert labels == ["skipped:gone"] * 3
    assert event.message == f"Pod {NS}/ws-5d8f-gone is gone (replaced or deleted since the alert fired)"
    assert event.target == "", "no owner: no target, no lease"
    metrics = (await (await h.client.get("/metrics")).text()).splitlines()
    assert 'remediator_jobs_total{outcome="skipped",reason="gone",rule="crashloop"} 3.0' in metrics
    assert not [m for m in metrics if m.startswith("remediator_circuit_open{") and m.endswith(" 1.0")]


async def test_a_pod_without_an_owner_fails_with_that_reason(harness: MakeHarness, cluster: Cluster) -> None:
    cluster.put(PODS, NS, pod("debug", labels={"app": "debug"}))
    h = await harness(RULES, registry=default_registry)
    event = await one(h, crashing("debug"))
    assert event.outcome is Outcome.FAILED
    assert event.message == (
        f"cannot resolve the owner of pod {NS}/debug: Pod {NS}/debug has no controlling owner (no "
        "ownerReference with controller: true): there is no workload to resolve it to"
    )
    assert [c.verb for c in cluster.calls] == ["get"], "one read: nothing else"


async def test_a_cronjobs_pod_names_the_cronjob(harness: MakeHarness, cluster: Cluster) -> None:
    cron = {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "nightly", "uid": "u-cron"}}
    owner = cluster.put(JOBS, NS, job("nightly-28000000", owner=cron))
    cluster.put(PODS, NS, pod("nightly-28000000-x7k2p", owner=owner))
    h = await harness(RULES, registry=default_registry)
    event = await one(h, crashing("nightly-28000000-x7k2p"))
    assert event.outcome is Outcome.FAILED  # rollout_restart takes no CronJob: said so, after resolving
    assert event.message.startswith(
        f"cannot render rule 'crashloop' for the owner Pod {NS}/nightly-28000000-x7k2p -> "
        f"Job {NS}/nightly-28000000 -> CronJob {NS}/nightly: "
    )
    assert "kind: Input should be 'Deployment', 'StatefulSet' or 'DaemonSet'" in event.message


async def test_a_hostile_pod_label_is_refused_before_any_request(
    harness: MakeHarness, cluster: Cluster
) -> None:
    h = await harness(RULES, registry=default_registry)
    event = await one(h, crashing("../../nodes/x"))
    assert event.outcome is Outcome.FAILED
    assert "resolve: '../../nodes/x' is not a valid Kubernetes name" in event.message
    assert cluster.calls == []


async def test_rules_without_resolve_make_no_request_for_it(harness: MakeHarness, cluster: Cluster) -> None:
    ws(cluster, replicas=1)
    h = await harness(RULES, registry=default_registry)
    event = await one(h, alert("Plain"))
    assert event.outcome is Outcome.DRY_RUN, event.message
    assert "resolve" not in [s.name for s in event.timeline]
    assert not [c for c in cluster.calls if c.plural == "pods" and c.verb == "get"]
    assert not [c for c in cluster.calls if c.plural == "replicasets"]


async def test_a_resolved_alert_is_announced_in_the_owners_thread(
    harness: MakeHarness, cluster: Cluster
) -> None:
    controller = ws(cluster, replicas=1)
    (name,) = pod_names(cluster)
    recorder = RecordingNotifier()
    sent = recorder.notices
    h = await harness(RULES, registry=default_registry, notifier=recorder)
    async with background(controller.run):
        fired = await one(h, crashing(name), timeout=30)
    assert fired.outcome is Outcome.SUCCEEDED, fired.message
    # the restart replaced the pod; a resolution naming a pod that still exists is announced
    (survivor,) = [p for p in pod_names(cluster) if p != name] or pod_names(cluster)
    resolved = crashing(survivor)
    resolved.update(status="resolved", endsAt="2026-11-28T10:05:00.000Z")
    await one(h, resolved)
    assert [(n.kind, n.target) for n in sent if n.kind == "resolved"] == [("resolved", f"deployment/{NS}/ws")]
