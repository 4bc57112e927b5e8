"""A runbook of real Kubernetes handlers against kmock's emulator (the real client over
HTTP): delete the crashing pod; if that does not help, restart its Deployment; if that
does not help either, page. Issue 28."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

import handlers  # noqa: F401  (the real handlers)
from remediator.handling.registry import default_registry
from tests.conftest import MakeHarness
from tests.support.kube import (
    DEPLOYMENTS,
    PODS,
    Cluster,
    DeploymentController,
    background,
    deployment,
    kube_env,
)
from tests.support.kube_workloads import pod
from tests.support.payloads import alert, payload

NS = "torghut"
RULES = """
rules:
  - name: ws-runbook
    matchers: ['alertname="WsDown"']
    target: 'deployment/torghut/ws'
    steps:
      - handler: kubernetes.delete_pod
        params: {namespace: torghut, pod: '{{ labels.pod }}', poll_interval: 50ms, verify_timeout: 5s}
        on_failure: next
      - handler: kubernetes.rollout_restart
        params: {namespace: torghut, name: ws, poll_interval: 50ms, verify_timeout: 20s}
        on_success: done
      - page: {slack: '@here'}
"""


@pytest.fixture
async def cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Cluster]:
    async with kube_env(tmp_path, monkeypatch) as cluster:
        yield cluster


async def test_the_first_step_fails_the_second_repairs_the_page_is_not_reached(
    harness: MakeHarness, cluster: Cluster
) -> None:
    cluster.put(DEPLOYMENTS, NS, deployment("ws", replicas=1, labels={"app": "ws"}))
    controller = DeploymentController(cluster, NS, "ws")
    for _ in range(controller.ready_after * 3):
        controller.step()
    cluster.put(PODS, NS, pod("ws-debug", labels={"app": "debug"}))  # no owner: not deleted
    h = await harness(RULES, registry=default_registry)
    async with background(controller.run):
        event_id = await h.post_one(payload(alert("WsDown", pod="ws-debug")))
        event = await h.event(event_id, timeout=30)
    assert event.outcome_label == "succeeded", event.message
    finished = [
        (s.data["step"], s.data["handler"], s.data["outcome"])
        for s in event.timeline
        if s.name == "step.finished"
    ]
    assert finished == [
        (1, "kubernetes.delete_pod", "failed"),
        (2, "kubernetes.rollout_restart", "succeeded"),
    ]
    assert "has no controlling owner" in event.details["steps"][0]["message"]
    assert "page" not in [s.name for s in event.timeline]
    assert not [c for c in cluster.calls if c.verb == "delete"], "the bare pod is left alone"
    restarts = [c for c in cluster.calls if c.verb == "patch" and c.plural == "deployments"]
    assert len(restarts) == 1
