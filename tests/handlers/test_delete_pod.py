"""``kubernetes.delete_pod`` against the emulator, with the real client: a pod with a controlling
owner deleted (the UID read as the delete's precondition) and its replacement waited for (a
StatefulSet's has the same name: told apart by its UID); bare pods refused unless allowed; the
dry run. The shipped Role is enforced on every request."""

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
    PODS,
    STATEFULSETS,
    Call,
    Cluster,
    DeploymentController,
    app_resources,
    background,
    deployment,
    kube_env,
    run_handler,
)
from tests.support.kube_workloads import Kubelet, StatefulSetController, pod, stateful_set

NS = "torghut"
LABELS = {"app": "ws"}


@pytest.fixture
async def cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Cluster]:
    async with kube_env(tmp_path, monkeypatch) as cluster:
        yield cluster


@pytest.fixture
async def resources() -> AsyncIterator[Resources]:
    async with app_resources() as resources:
        yield resources


def params(name: str, **more: Any) -> dict[str, Any]:
    return {"namespace": NS, "pod": name, "poll_interval": "50ms", **more}


def deletes(cluster: Cluster) -> list[Call]:
    return [c for c in cluster.calls if c.verb == "delete"]


def live(cluster: Cluster) -> dict[str, str]:
    return {
        p["metadata"]["name"]: p["metadata"]["uid"]
        for p in cluster.items(PODS, NS, "app=ws")
        if not p["metadata"].get("deletionTimestamp")
    }


async def test_a_deployment_pod_is_deleted_and_replaced(cluster: Cluster, resources: Resources) -> None:
    cluster.put(DEPLOYMENTS, NS, deployment("ws", replicas=2, labels=LABELS))
    controller = DeploymentController(cluster, NS, "ws")
    for _ in range(12):
        controller.step()
    victim, other = sorted(live(cluster))
    uid = live(cluster)[victim]
    async with background(controller.run):
        result, _ = await run_handler("kubernetes.delete_pod", params(victim, grace_period="5s"), resources)
    assert result.outcome is Outcome.SUCCEEDED, result.message
    (call,) = deletes(cluster)
    assert call.name == victim and call.body == {"preconditions": {"uid": uid}, "gracePeriodSeconds": 5}
    now = live(cluster)
    assert victim not in now and other in now and len(now) == 2
    (replacement,) = set(now) - {other}
    assert result.details["replacement"] == [replacement]
    assert result.message.startswith(f"Pod {NS}/{victim} deleted; ReplicaSet {NS}/ws-")
    assert result.message.endswith(f"{replacement} Ready")


async def test_a_statefulset_pod_comes_back_with_its_name_and_a_new_uid(
    cluster: Cluster, resources: Resources
) -> None:
    cluster.put(STATEFULSETS, NS, stateful_set("ws", replicas=2, labels=LABELS))
    controller = StatefulSetController(cluster, NS, "ws")
    for _ in range(20):
        controller.step()
    before = live(cluster)
    async with background(controller.run):
        result, _ = await run_handler("kubernetes.delete_pod", params("ws-1"), resources)
    assert result.outcome is Outcome.SUCCEEDED, result.message
    after = live(cluster)
    assert sorted(after) == ["ws-0", "ws-1"]
    assert after["ws-1"] != before["ws-1"] and after["ws-0"] == before["ws-0"]
    assert result.message.endswith("ws-1 Ready (same name, new UID)")
    (call,) = deletes(cluster)
    assert "gracePeriodSeconds" not in call.body, "no grace_period: the pod's own"


async def test_a_bare_pod_is_refused_unless_allowed(cluster: Cluster, resources: Resources) -> None:
    cluster.put(PODS, NS, pod("debug", labels=LABELS))
    refused, _ = await run_handler("kubernetes.delete_pod", params("debug"), resources)
    assert refused.outcome is Outcome.FAILED
    assert refused.message == (
        f"Pod {NS}/debug has no controlling owner: nothing would replace it, so it is not deleted "
        "(set `allow_bare: true` in the rule's params to delete bare pods)"
    )
    assert deletes(cluster) == []
    async with background(Kubelet(cluster, NS).run):
        allowed, _ = await run_handler("kubernetes.delete_pod", params("debug", allow_bare=True), resources)
    assert allowed.outcome is Outcome.SUCCEEDED, allowed.message
    assert allowed.message == f"Pod {NS}/debug deleted (a bare pod: nothing replaces it)"
    assert cluster.get(PODS, NS, "debug") is None


async def test_a_pod_gone_or_terminating_is_a_noop(cluster: Cluster, resources: Resources) -> None:
    gone, _ = await run_handler("kubernetes.delete_pod", params("ws-abc"), resources)
    assert gone.outcome is Outcome.NOOP and gone.message == f"Pod {NS}/ws-abc is gone already"
    owner = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "ws-1", "uid": "u-1"}}
    leaving = pod("ws-1-x", labels=LABELS, owner=owner)
    leaving["metadata"]["deletionTimestamp"] = "2024-01-01T00:00:00Z"
    cluster.put(PODS, NS, leaving)
    terminating, _ = await run_handler("kubernetes.delete_pod", params("ws-1-x"), resources)
    assert terminating.outcome is Outcome.NOOP and "being deleted already" in terminating.message
    assert deletes(cluster) == []


async def test_a_pod_replaced_after_the_read_is_not_deleted(cluster: Cluster, resources: Resources) -> None:
    owner = {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "ws", "uid": "u-ws"}}
    cluster.put(PODS, NS, pod("ws-0", labels=LABELS, owner=owner))

    def replaced(call: Call) -> None:  # its controller re-created it between the read and the delete
        if call.verb == "delete":
            cluster.put(PODS, NS, pod("ws-0", labels=LABELS, owner=owner))

    cluster.hooks.append(replaced)
    result, _ = await run_handler("kubernetes.delete_pod", params("ws-0"), resources)
    assert result.outcome is Outcome.NOOP
    assert result.message == f"Pod {NS}/ws-0 was replaced since it was read (another UID): nothing deleted"
    assert [c.status for c in deletes(cluster)] == [409]
    assert cluster.get(PODS, NS, "ws-0") is not None


async def test_no_replacement_in_time_fails(cluster: Cluster, resources: Resources) -> None:
    owner = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "ws-1", "uid": "u-1"}}
    cluster.put(PODS, NS, pod("ws-1-a", labels=LABELS, owner=owner))
    result, _ = await run_handler(
        "kubernetes.delete_pod", params("ws-1-a", verify_timeout="300ms"), resources
    )
    assert result.outcome is Outcome.FAILED and result.retryable
    assert result.message == (
        f"Pod {NS}/ws-1-a was deleted, but no replacement from ReplicaSet {NS}/ws-1 was Ready within 0.3s"
    )


async def test_the_dry_run_shows_the_exact_delete(cluster: Cluster, resources: Resources) -> None:
    owner = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "ws-1", "uid": "u-1"}}
    made = cluster.put(PODS, NS, pod("ws-1-a", labels=LABELS, owner=owner))
    result, _ = await run_handler(
        "kubernetes.delete_pod", params("ws-1-a", grace_period="0s"), resources, dry_run=True
    )
    assert result.outcome is Outcome.DRY_RUN
    uid = made["metadata"]["uid"]
    assert result.plan[2] == (
        f'DELETE /api/v1/namespaces/{NS}/pods/ws-1-a (application/json) {{"preconditions":{{"uid":"{uid}"}},'
        '"gracePeriodSeconds":0} (409: replaced already, nothing deleted)'
    )
    assert deletes(cluster) == [] and cluster.get(PODS, NS, "ws-1-a") is not None


@pytest.mark.parametrize("bad", ["Pod-1", "pod_1", "a/b", ".."])
def test_names_are_validated(bad: str) -> None:
    model = default_registry.get("kubernetes.delete_pod").params  # type: ignore[union-attr]
    with pytest.raises(ValidationError, match="not a valid Kubernetes name"):
        model.model_validate(params(bad))
