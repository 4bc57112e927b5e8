"""``kubernetes.cordon`` and ``kubernetes.uncordon`` against the emulator, with the real client:
the node marked unschedulable; a drain through the Eviction API, where a PodDisruptionBudget
answers 429 until the disruption is allowed; DaemonSet and mirror pods left alone; bare pods and
too many pods refused. The shipped Roles and the opt-in ClusterRole of
``deploy/components/node-rbac`` are enforced on every request."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from remediator import Outcome, Resources
from remediator.handling.registry import default_registry
from tests.support.kube import (
    DEPLOYMENTS,
    NODES,
    PDBS,
    PODS,
    Call,
    Cluster,
    DeploymentController,
    Policies,
    app_resources,
    background,
    deployment,
    kube_env,
    run_handler,
)
from tests.support.kube_workloads import MIRROR, node, pdb, pod

NODE = "node-1"
LABELS = {"app": "api"}


@pytest.fixture
async def cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Cluster]:
    async with kube_env(tmp_path, monkeypatch, policy=Policies.shipped(nodes=True)) as cluster:
        cluster.put(NODES, None, node(NODE))
        cluster.put(NODES, None, node("node-2"))
        yield cluster


@pytest.fixture
async def resources() -> AsyncIterator[Resources]:
    async with app_resources() as resources:
        yield resources


def params(**more: Any) -> dict[str, Any]:
    return {"node": NODE, "poll_interval": "50ms", **more}


def unschedulable(cluster: Cluster, name: str = NODE) -> bool:
    return bool(((cluster.get(NODES, None, name) or {}).get("spec") or {}).get("unschedulable"))


def on_node(cluster: Cluster) -> list[str]:
    return sorted(
        f"{p['metadata']['namespace']}/{p['metadata']['name']}"
        for p in cluster.items(PODS, None, fields=f"spec.nodeName={NODE}")
    )


def workload_on_node(cluster: Cluster, replicas: int = 2) -> DeploymentController:
    """A Deployment in namespace `web` whose pods run on the node (their replacements go elsewhere)."""
    cluster.put(DEPLOYMENTS, "web", deployment("api", replicas=replicas, labels=LABELS))
    controller = DeploymentController(cluster, "web", "api", ready_after=2, terminate_after=2)
    for _ in range(12):
        controller.step()
    for made in cluster.items(PODS, "web", "app=api"):
        cluster.modify(PODS, "web", made["metadata"]["name"], {"spec": {"nodeName": NODE}})
    return controller


def left_alone(cluster: Cluster) -> None:
    """A DaemonSet's pod and a mirror (static) pod on the node: a drain never evicts them."""
    agent = {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "agent", "uid": "u-agent"}}
    cluster.put(PODS, "kube-system", pod("agent-x1", node_name=NODE, owner=agent))
    owner = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": NODE, "uid": "u-node"}}
    cluster.put(
        PODS, "kube-system", pod(f"etcd-{NODE}", node_name=NODE, owner=owner, annotations={MIRROR: "x"})
    )


def evictions(cluster: Cluster) -> list[Call]:
    return [c for c in cluster.calls if c.plural == "pods/eviction"]


async def test_cordon_marks_the_node_unschedulable_and_nothing_else(
    cluster: Cluster, resources: Resources
) -> None:
    result, _ = await run_handler("kubernetes.cordon", params(), resources)
    assert result.outcome is Outcome.SUCCEEDED, result.message
    assert result.message == f"Node {NODE} cordoned"
    assert unschedulable(cluster) and not unschedulable(cluster, "node-2")
    (patch,) = [c for c in cluster.calls if c.verb == "patch"]
    assert (patch.plural, patch.namespace, patch.body) == ("nodes", None, {"spec": {"unschedulable": True}})
    again, _ = await run_handler("kubernetes.cordon", params(), resources)
    assert again.outcome is Outcome.NOOP and again.message == f"Node {NODE} is cordoned already"


async def test_drain_evicts_through_the_eviction_api_and_leaves_daemonsets_and_mirror_pods(
    cluster: Cluster, resources: Resources
) -> None:
    controller = workload_on_node(cluster)
    left_alone(cluster)
    ours = [p for p in on_node(cluster) if p.startswith("web/")]
    assert len(ours) == 2
    async with background(controller.run):
        result, ctx = await run_handler("kubernetes.cordon", params(drain=True), resources)
    assert result.outcome is Outcome.SUCCEEDED, result.message
    assert unschedulable(cluster)
    assert sorted(result.details["evicted"]) == ours
    assert sorted(f"{c.namespace}/{c.name}" for c in evictions(cluster)) == ours
    for call in evictions(cluster):
        assert call.body == {
            "apiVersion": "policy/v1",
            "kind": "Eviction",
            "metadata": {"name": call.name, "namespace": "web"},
        }
    assert on_node(cluster) == ["kube-system/agent-x1", f"kube-system/etcd-{NODE}"]
    assert [c.verb for c in cluster.calls if c.plural == "pods" and c.verb == "delete"] == [], (
        "never a delete"
    )
    listed = [c for c in cluster.calls if c.plural == "pods" and c.verb == "list"]
    assert listed and all(
        c.namespace is None and c.query["fieldSelector"] == f"spec.nodeName={NODE}" for c in listed
    )
    assert "left alone" in next(s.message for s in ctx.timeline if s.name == "observe")
    assert result.message.startswith(f"Node {NODE} cordoned and drained; evicted 2 pod(s)")


async def test_a_disruption_budget_429_is_waited_out(cluster: Cluster, resources: Resources) -> None:
    controller = workload_on_node(cluster)
    cluster.put(PDBS, "web", pdb("api", labels=LABELS, min_available=1))
    async with background(controller.run):
        result, ctx = await run_handler("kubernetes.cordon", params(drain=True), resources)
    assert result.outcome is Outcome.SUCCEEDED, result.message
    statuses = [c.status for c in evictions(cluster)]
    assert statuses[0] == 201 and 429 in statuses and statuses[-1] == 201
    assert statuses.count(201) == 2
    blocked = [s.message for s in ctx.timeline if s.name == "evict.blocked"]
    assert blocked and "The disruption budget api needs 1 healthy pods and has 1 currently" in blocked[0]
    assert "Cannot evict pod as it would violate the pod's disruption budget." in blocked[0]


async def test_a_budget_that_never_allows_it_fails_within_the_verify_timeout(
    cluster: Cluster, resources: Resources
) -> None:
    workload_on_node(cluster)
    cluster.put(PDBS, "web", pdb("api", labels=LABELS, min_available=2))
    result, _ = await run_handler("kubernetes.cordon", params(drain=True, verify_timeout="600ms"), resources)
    assert result.outcome is Outcome.FAILED and result.retryable
    assert (
        f"Node {NODE} is cordoned, but 2 pod(s) could not be evicted before the verify_timeout"
        in result.message
    )
    assert "The disruption budget api needs 2 healthy pods and has 2 currently" in result.message
    assert unschedulable(cluster)
    assert {c.status for c in evictions(cluster)} == {429}
    assert len(on_node(cluster)) == 2


async def test_bare_pods_and_too_many_pods_are_refused_before_anything_is_done(
    cluster: Cluster, resources: Resources
) -> None:
    workload_on_node(cluster, replicas=3)
    too_many, _ = await run_handler("kubernetes.cordon", params(drain=True, max_pods=2), resources)
    assert too_many.outcome is Outcome.FAILED
    assert too_many.message == (
        f"refused to drain Node {NODE}: 3 pods to evict, more than max_pods 2; nothing evicted"
    )
    cluster.put(PODS, "web", pod("debug", node_name=NODE))
    bare, _ = await run_handler("kubernetes.cordon", params(drain=True), resources)
    assert bare.outcome is Outcome.FAILED
    assert "1 pod(s) have no controller and would be gone for good: web/debug" in bare.message
    assert not unschedulable(cluster)
    assert [c for c in cluster.calls if c.verb in ("patch", "create")] == []


async def test_without_the_node_component_it_fails_naming_the_cluster_role(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, resources: Resources
) -> None:
    async with kube_env(tmp_path, monkeypatch) as cluster:  # the Roles only, no node-rbac
        cluster.put(NODES, None, node(NODE))
        result, _ = await run_handler("kubernetes.cordon", params(), resources)
    assert result.outcome is Outcome.FAILED
    assert result.message.startswith(
        "forbidden: the service account may not get nodes cluster-wide (grant verb 'get' on nodes in a "
        "ClusterRole: the deploy/components/node-rbac component, written in deploy/base/role.yaml)"
    )
    assert "at the cluster scope" in result.message


async def test_the_dry_run_lists_every_eviction(cluster: Cluster, resources: Resources) -> None:
    workload_on_node(cluster)
    left_alone(cluster)
    ours = [p.split("/")[1] for p in on_node(cluster) if p.startswith("web/")]
    result, _ = await run_handler("kubernetes.cordon", params(drain=True), resources, dry_run=True)
    assert result.outcome is Outcome.DRY_RUN
    assert result.message == f"dry run: would cordon Node {NODE} and evict 2 pod(s); nothing done"
    assert result.plan[:3] == [
        f"GET /api/v1/nodes/{NODE}",
        f"GET /api/v1/pods?fieldSelector=spec.nodeName%3D{NODE} (DaemonSet and mirror pods are left alone)",
        f'PATCH /api/v1/nodes/{NODE} (application/merge-patch+json) {{"spec":{{"unschedulable":true}}}}',
    ]
    evictions = [
        f"POST /api/v1/namespaces/web/pods/{name}/eviction (application/json) "
        f'{{"apiVersion":"policy/v1","kind":"Eviction","metadata":{{"name":"{name}","namespace":"web"}}}}'
        for name in ours
    ]
    assert sorted(result.plan[3:5]) == sorted(evictions)  # in the order the API listed them
    assert {c.verb for c in cluster.calls} == {"get", "list"} and not unschedulable(cluster)


async def test_uncordon_removes_unschedulable(cluster: Cluster, resources: Resources) -> None:
    cluster.modify(NODES, None, NODE, {"spec": {"unschedulable": True}})
    result, _ = await run_handler("kubernetes.uncordon", {"node": NODE, "poll_interval": "50ms"}, resources)
    assert (
        result.outcome is Outcome.SUCCEEDED and result.message == f"Node {NODE} uncordoned: schedulable again"
    )
    (patch,) = [c for c in cluster.calls if c.verb == "patch"]
    assert patch.body == {"spec": {"unschedulable": None}}
    assert not unschedulable(cluster)
    again, _ = await run_handler("kubernetes.uncordon", {"node": NODE}, resources)
    assert again.outcome is Outcome.NOOP


@pytest.mark.parametrize("bad", ["Node1", "node_1", "a/b", ""])
def test_node_names_are_validated(bad: str) -> None:
    for name in ("kubernetes.cordon", "kubernetes.uncordon"):
        model = default_registry.get(name).params  # type: ignore[union-attr]
        with pytest.raises(ValidationError, match="not a valid Kubernetes name"):
            model.model_validate({"node": bad})
