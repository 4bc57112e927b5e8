"""``kubernetes.rollout_restart`` against the emulator, with the real client: a Deployment, a
StatefulSet and a DaemonSet restarted as ``kubectl rollout restart`` does it, their controllers
played by the test; the restarts that would never complete refused; Argo CD; the dry run. The
shipped Role is enforced on every request."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from handlers.rollout_restart import RESTARTED_AT
from remediator import Outcome, Resources
from remediator.handling.registry import default_registry
from tests.support.kube import (
    APPLICATIONS,
    DAEMONSETS,
    DEPLOYMENTS,
    NODES,
    PODS,
    STATEFULSETS,
    Cluster,
    DeploymentController,
    app_resources,
    application,
    background,
    deployment,
    kube_env,
    run_handler,
)
from tests.support.kube_workloads import (
    DaemonSetController,
    StatefulSetController,
    daemon_set,
    node,
    stateful_set,
)

NS = "torghut"
LABELS = {"app": "ingester"}
RFC3339 = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")


@pytest.fixture
async def cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Cluster]:
    async with kube_env(tmp_path, monkeypatch) as cluster:
        yield cluster


@pytest.fixture
async def resources() -> AsyncIterator[Resources]:
    async with app_resources() as resources:
        yield resources


def params(kind: str, name: str = "ingester", **more: Any) -> dict[str, Any]:
    return {"namespace": NS, "kind": kind, "name": name, "poll_interval": "50ms", **more}


def pods(cluster: Cluster) -> dict[str, str]:
    """name -> uid of the app's pods, terminating ones included."""
    return {p["metadata"]["name"]: p["metadata"]["uid"] for p in cluster.items(PODS, NS, "app=ingester")}


def settled_deployment(cluster: Cluster, replicas: int = 2, **meta: Any) -> DeploymentController:
    obj = deployment("ingester", replicas=replicas, labels=LABELS)
    obj["metadata"].update(meta)
    cluster.put(DEPLOYMENTS, NS, obj)
    controller = DeploymentController(cluster, NS, "ingester")
    for _ in range(controller.ready_after * (replicas + 2)):
        controller.step()
    return controller


def patches(cluster: Cluster) -> list[Any]:
    return [c for c in cluster.calls if c.verb == "patch"]


async def test_a_deployment_is_restarted_like_kubectl_and_every_pod_replaced(
    cluster: Cluster, resources: Resources
) -> None:
    controller = settled_deployment(cluster)
    before = pods(cluster)
    assert len(before) == 2
    async with background(controller.run):
        result, ctx = await run_handler("kubernetes.rollout_restart", params("Deployment"), resources)
    assert result.outcome is Outcome.SUCCEEDED, result.message
    (patch,) = patches(cluster)
    assert patch.content_type == "application/merge-patch+json"
    assert patch.plural == "deployments" and patch.name == "ingester"
    stamp = patch.body["spec"]["template"]["metadata"]["annotations"][RESTARTED_AT]
    assert RFC3339.fullmatch(stamp) and result.details["restarted_at"] == stamp
    assert patch.body == {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: stamp}}}}}
    after = pods(cluster)
    assert len(after) == 2 and not set(after) & set(before), "every pod is new; none of the old left"
    live = cluster.get(DEPLOYMENTS, NS, "ingester")
    assert live is not None
    assert live["spec"]["template"]["metadata"]["annotations"] == {RESTARTED_AT: stamp}
    assert "rollout complete, no pod of the old revision left" in result.message
    assert [s.name for s in ctx.timeline][:3] == ["kube.get", "kube.list", "observe"]
    assert "verify" in [s.name for s in ctx.timeline]


async def test_a_statefulset_gets_the_same_names_with_new_uids(
    cluster: Cluster, resources: Resources
) -> None:
    cluster.put(STATEFULSETS, NS, stateful_set("ingester", replicas=3, labels=LABELS))
    controller = StatefulSetController(cluster, NS, "ingester")
    for _ in range(30):
        controller.step()
    before = pods(cluster)
    assert sorted(before) == ["ingester-0", "ingester-1", "ingester-2"]
    async with background(controller.run):
        result, _ = await run_handler("kubernetes.rollout_restart", params("StatefulSet"), resources)
    assert result.outcome is Outcome.SUCCEEDED, result.message
    after = pods(cluster)
    assert sorted(after) == sorted(before)
    assert all(after[name] != before[name] for name in before), "each pod replaced: same name, new UID"
    status = (cluster.get(STATEFULSETS, NS, "ingester") or {})["status"]
    assert status["currentRevision"] == status["updateRevision"] and status["readyReplicas"] == 3
    assert [c.plural for c in patches(cluster)] == ["statefulsets"]


async def test_a_daemonset_is_restarted_node_by_node(cluster: Cluster, resources: Resources) -> None:
    for name in ("node-1", "node-2"):
        cluster.put(NODES, None, node(name))
    cluster.put(DAEMONSETS, NS, daemon_set("ingester", labels=LABELS))
    controller = DaemonSetController(cluster, NS, "ingester")
    for _ in range(10):
        controller.step()
    before = pods(cluster)
    assert len(before) == 2
    async with background(controller.run):
        result, _ = await run_handler("kubernetes.rollout_restart", params("DaemonSet"), resources)
    assert result.outcome is Outcome.SUCCEEDED, result.message
    after = pods(cluster)
    assert len(after) == 2 and not set(after) & set(before)
    placed = sorted(p["spec"]["nodeName"] for p in cluster.items(PODS, NS, "app=ingester"))
    assert placed == ["node-1", "node-2"]


async def test_the_verify_waits_for_the_old_pods_and_fails_when_they_stay(
    cluster: Cluster, resources: Resources
) -> None:
    controller = settled_deployment(cluster, replicas=1)
    controller.terminate_after = 10**9  # an old pod stuck terminating (a finalizer)
    async with background(controller.run):
        result, _ = await run_handler(
            "kubernetes.rollout_restart", params("Deployment", verify_timeout="1s"), resources
        )
    assert result.outcome is Outcome.FAILED and result.retryable
    assert "but the rollout did not complete within 1s" in result.message
    assert "1 pod(s) of the old revision left" in result.message, result.message


@pytest.mark.parametrize(
    ("kind", "setup", "why"),
    [
        ("Deployment", "paused", "is paused (spec.paused: true)"),
        ("StatefulSet", "on_delete", "has updateStrategy OnDelete"),
        ("StatefulSet", "partition", "has updateStrategy.rollingUpdate.partition 1"),
        ("DaemonSet", "on_delete", "has updateStrategy OnDelete"),
    ],
)
async def test_a_restart_that_would_never_complete_is_refused(
    cluster: Cluster, resources: Resources, kind: str, setup: str, why: str
) -> None:
    if kind == "Deployment":
        obj = deployment("ingester", replicas=2, labels=LABELS)
        obj["spec"]["paused"] = True
        cluster.put(DEPLOYMENTS, NS, obj)
    elif kind == "StatefulSet":
        partition = 1 if setup == "partition" else None
        strategy = "OnDelete" if setup == "on_delete" else "RollingUpdate"
        obj = stateful_set("ingester", replicas=2, labels=LABELS, strategy=strategy, partition=partition)
        cluster.put(STATEFULSETS, NS, obj)
    else:
        cluster.put(DAEMONSETS, NS, daemon_set("ingester", labels=LABELS, strategy="OnDelete"))
    result, _ = await run_handler("kubernetes.rollout_restart", params(kind), resources)
    assert result.outcome is Outcome.FAILED and not result.retryable
    assert why in result.message and result.message.endswith("not restarted")
    assert patches(cluster) == []


async def test_zero_replicas_is_a_noop(cluster: Cluster, resources: Resources) -> None:
    cluster.put(DEPLOYMENTS, NS, deployment("ingester", replicas=0, labels=LABELS))
    result, _ = await run_handler("kubernetes.rollout_restart", params("Deployment"), resources)
    assert result.outcome is Outcome.NOOP and "0 replicas" in result.message
    assert patches(cluster) == []


async def test_the_dry_run_shows_the_exact_patch_and_changes_nothing(
    cluster: Cluster, resources: Resources
) -> None:
    settled_deployment(cluster)
    before = cluster.get(DEPLOYMENTS, NS, "ingester")
    result, _ = await run_handler("kubernetes.rollout_restart", params("Deployment"), resources, dry_run=True)
    assert result.outcome is Outcome.DRY_RUN
    path = f"/apis/apps/v1/namespaces/{NS}/deployments/ingester"
    stamp = result.details["restarted_at"]
    body = json.dumps(
        {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: stamp}}}}}, separators=(",", ":")
    )
    assert result.plan[0] == f"GET {path}"
    assert result.plan[2] == f"PATCH {path} (application/merge-patch+json) {body}"
    assert "until the rollout is complete" in result.plan[3]
    assert {c.verb for c in cluster.calls} == {"get", "list"}
    assert cluster.get(DEPLOYMENTS, NS, "ingester") == before


async def test_argo_cd_ignores_the_annotation_unless_git_sets_it(
    cluster: Cluster, resources: Resources
) -> None:
    cluster.put(APPLICATIONS, "argocd", application("ingester", self_heal=True))
    tracked = {"app.kubernetes.io/instance": "ingester"}
    manifest = {"spec": {"replicas": 2, "template": {"metadata": {"labels": LABELS}}}}
    controller = settled_deployment(
        cluster,
        labels={**LABELS, **tracked},
        annotations={"kubectl.kubernetes.io/last-applied-configuration": json.dumps(manifest)},
    )
    async with background(controller.run):
        result, ctx = await run_handler("kubernetes.rollout_restart", params("Deployment"), resources)
    assert result.outcome is Outcome.SUCCEEDED, result.message
    assert "drift" not in result.message
    assert any("Argo CD ignores the restart" in s.message for s in ctx.timeline)

    manifest["spec"]["template"]["metadata"]["annotations"] = {RESTARTED_AT: "2024-01-01T00:00:00Z"}  # type: ignore[index]
    cluster.modify(
        DEPLOYMENTS,
        NS,
        "ingester",
        {
            "metadata": {
                "annotations": {"kubectl.kubernetes.io/last-applied-configuration": json.dumps(manifest)}
            }
        },
    )
    cluster.calls.clear()
    refused, _ = await run_handler("kubernetes.rollout_restart", params("Deployment"), resources)
    assert refused.outcome is Outcome.FAILED
    assert f"Git sets {RESTARTED_AT} on the pod template" in refused.message
    assert "Application argocd/ingester" in refused.message and "gitops: override" in refused.message
    assert patches(cluster) == []


def test_names_and_kinds_are_validated() -> None:
    model = default_registry.get("kubernetes.rollout_restart").params  # type: ignore[union-attr]
    for bad in ("Ingester", "in gester", "../x", "-x"):
        with pytest.raises(ValidationError, match="not a valid Kubernetes name"):
            model.model_validate(params("Deployment", name=bad))
    with pytest.raises(ValidationError, match="Deployment"):
        model.model_validate(params("ReplicaSet"))
