"""``kubernetes.scale`` against the emulator, with the real client: through the ``scale``
subresource (never a patch of the workload itself), bounded by [min, max], refused when a
HorizontalPodAutoscaler targets the workload, verified by the Ready count; Argo CD; the dry
run. The shipped Role is enforced on every request."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from remediator import Outcome, Resources
from remediator.errors import RulesError
from remediator.handling.registry import default_registry
from remediator.rules.ruleset import parse_rules
from tests.support.kube import (
    APPLICATIONS,
    DEPLOYMENTS,
    HPAS,
    PODS,
    STATEFULSETS,
    Call,
    Cluster,
    DeploymentController,
    app_resources,
    application,
    background,
    deployment,
    kube_env,
    run_handler,
)
from tests.support.kube_workloads import StatefulSetController, hpa, stateful_set

NS = "workers"
LABELS = {"app": "ingester"}


@pytest.fixture
async def cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Cluster]:
    from tests.support.kube import Policies, Policy

    role = Policy.shipped()
    workers = Policy(NS, role.rules)  # the same Role in the namespace these tests use
    async with kube_env(tmp_path, monkeypatch, policy=Policies((workers, Policy.argocd()))) as cluster:
        yield cluster


@pytest.fixture
async def resources() -> AsyncIterator[Resources]:
    async with app_resources() as resources:
        yield resources


def params(replicas: int, kind: str = "Deployment", **more: Any) -> dict[str, Any]:
    return {
        "namespace": NS,
        "kind": kind,
        "name": "ingester",
        "replicas": replicas,
        "min": 1,
        "max": 6,
        "poll_interval": "50ms",
        **more,
    }


def settled(cluster: Cluster, replicas: int = 2, **meta: Any) -> DeploymentController:
    obj = deployment("ingester", replicas=replicas, labels=LABELS)
    obj["metadata"].update(meta)
    cluster.put(DEPLOYMENTS, NS, obj)
    controller = DeploymentController(cluster, NS, "ingester")
    for _ in range(controller.ready_after * (replicas + 2)):
        controller.step()
    return controller


def writes(cluster: Cluster) -> list[Call]:
    return [c for c in cluster.calls if c.verb not in ("get", "list")]


@pytest.mark.parametrize("replicas", [4, 1])
async def test_a_deployment_is_scaled_through_its_scale_subresource(
    cluster: Cluster, resources: Resources, replicas: int
) -> None:
    controller = settled(cluster, 2)
    read = cluster.get(DEPLOYMENTS, NS, "ingester")
    assert read is not None
    async with background(controller.run):
        result, _ = await run_handler("kubernetes.scale", params(replicas), resources)
    assert result.outcome is Outcome.SUCCEEDED, result.message
    (write,) = writes(cluster)
    assert (write.verb, write.plural, write.content_type) == (
        "patch",
        "deployments/scale",
        "application/merge-patch+json",
    )
    assert write.body == {
        "metadata": {"resourceVersion": read["metadata"]["resourceVersion"]},
        "spec": {"replicas": replicas},
    }
    live = cluster.get(DEPLOYMENTS, NS, "ingester")
    assert live is not None and live["spec"]["replicas"] == replicas
    assert live["status"]["readyReplicas"] == replicas
    ready = [p for p in cluster.items(PODS, NS, "app=ingester") if not p["metadata"].get("deletionTimestamp")]
    assert len(ready) == replicas
    assert result.message == f"Deployment {NS}/ingester scaled from 2 to {replicas} replica(s), all Ready"
    hpa_lists = [c for c in cluster.calls if c.plural == "horizontalpodautoscalers"]
    assert [(c.verb, c.group) for c in hpa_lists] == [("list", "autoscaling")]


async def test_a_statefulset_is_scaled_up(cluster: Cluster, resources: Resources) -> None:
    cluster.put(STATEFULSETS, NS, stateful_set("ingester", replicas=1, labels=LABELS))
    controller = StatefulSetController(cluster, NS, "ingester")
    for _ in range(10):
        controller.step()
    async with background(controller.run):
        result, _ = await run_handler("kubernetes.scale", params(3, "StatefulSet"), resources)
    assert result.outcome is Outcome.SUCCEEDED, result.message
    assert [c.plural for c in writes(cluster)] == ["statefulsets/scale"]
    names = sorted(p["metadata"]["name"] for p in cluster.items(PODS, NS, "app=ingester"))
    assert names == ["ingester-0", "ingester-1", "ingester-2"]


@pytest.mark.parametrize("replicas", [0, 7])
async def test_a_count_outside_min_max_is_refused(
    cluster: Cluster, resources: Resources, replicas: int
) -> None:
    settled(cluster, 2)
    result, _ = await run_handler("kubernetes.scale", params(replicas), resources)
    assert result.outcome is Outcome.FAILED
    assert result.message == (
        f"refused: {replicas} replica(s) is outside [min, max] = [1, 6] for Deployment {NS}/ingester; "
        "not scaled"
    )
    assert writes(cluster) == []


async def test_a_workload_an_hpa_targets_is_refused(cluster: Cluster, resources: Resources) -> None:
    settled(cluster, 2)
    cluster.put(HPAS, NS, hpa("other", kind="Deployment", target="api"))
    cluster.put(
        HPAS, NS, hpa("ingester", kind="Deployment", target="ingester", min_replicas=2, max_replicas=8)
    )
    result, _ = await run_handler("kubernetes.scale", params(4), resources)
    assert result.outcome is Outcome.FAILED
    assert result.message == (
        f"refused: HorizontalPodAutoscaler {NS}/ingester (min 2, max 8) targets Deployment {NS}/ingester and "
        "would undo the change; change the HorizontalPodAutoscaler's minReplicas/maxReplicas instead; "
        "not scaled"
    )
    assert writes(cluster) == []


async def test_the_count_it_has_is_a_noop(cluster: Cluster, resources: Resources) -> None:
    settled(cluster, 2)
    result, _ = await run_handler("kubernetes.scale", params(2), resources)
    assert result.outcome is Outcome.NOOP and "already at 2 replica(s) (2 ready)" in result.message
    assert writes(cluster) == []


async def test_not_ready_in_time_fails_with_the_last_status(cluster: Cluster, resources: Resources) -> None:
    controller = settled(cluster, 1)
    controller.ready_after = 10**9
    async with background(controller.run):
        result, _ = await run_handler("kubernetes.scale", params(3, verify_timeout="600ms"), resources)
    assert result.outcome is Outcome.FAILED and result.retryable
    assert "was scaled from 1 to 3, but 3 Ready replica(s) were not there within 0.6s" in result.message
    assert "ready 1" in result.message


async def test_a_conflict_rereads_and_writes_with_the_new_version(
    cluster: Cluster, resources: Resources
) -> None:
    controller = settled(cluster, 2)
    touched: list[bool] = []

    def someone_else(call: Call) -> None:
        if call.verb == "patch" and not touched:
            touched.append(True)
            cluster.modify(DEPLOYMENTS, NS, "ingester", {"metadata": {"labels": {"touched": "yes"}}})

    cluster.hooks.append(someone_else)
    async with background(controller.run):
        result, ctx = await run_handler("kubernetes.scale", params(3), resources)
    assert result.outcome is Outcome.SUCCEEDED, result.message
    assert [c.status for c in writes(cluster)] == [409, 200]
    assert "conflict" in [s.name for s in ctx.timeline]


async def test_argo_cd_self_heal_with_replicas_in_git_is_refused(
    cluster: Cluster, resources: Resources
) -> None:
    cluster.put(APPLICATIONS, "argocd", application("ingester", self_heal=True))
    manifest = {"spec": {"replicas": 2}}
    settled(
        cluster,
        2,
        labels={**LABELS, "app.kubernetes.io/instance": "ingester"},
        annotations={"kubectl.kubernetes.io/last-applied-configuration": json.dumps(manifest)},
    )
    result, _ = await run_handler("kubernetes.scale", params(4), resources)
    assert result.outcome is Outcome.FAILED
    assert "Git sets spec.replicas, so Argo CD would scale it back" in result.message
    assert result.details["change_to_commit"].startswith("set `replicas: 4` on `deployment/ingester`")
    assert writes(cluster) == []
    overridden, _ = await run_handler(
        "kubernetes.scale", params(4, gitops="override", verify_timeout="200ms"), resources
    )
    assert "Argo CD drift" in overridden.message and "self-heals and will revert this" in overridden.message


async def test_the_dry_run_shows_the_exact_patch(cluster: Cluster, resources: Resources) -> None:
    settled(cluster, 2)
    rv = (cluster.get(DEPLOYMENTS, NS, "ingester") or {})["metadata"]["resourceVersion"]
    result, _ = await run_handler("kubernetes.scale", params(5), resources, dry_run=True)
    assert result.outcome is Outcome.DRY_RUN
    assert (
        result.message
        == f"dry run: would scale Deployment {NS}/ingester from 2 to 5 replica(s); nothing done"
    )
    assert result.plan[2].startswith(
        f"PATCH /apis/apps/v1/namespaces/{NS}/deployments/ingester/scale (application/merge-patch+json) "
        f'{{"metadata":{{"resourceVersion":"{rv}"}},"spec":{{"replicas":5}}}}'
    )
    assert writes(cluster) == []


def test_bounds_are_checked_in_the_params_and_at_check() -> None:
    model = default_registry.get("kubernetes.scale").params  # type: ignore[union-attr]
    with pytest.raises(ValidationError, match=r"min \(5\) is more than max \(2\)"):
        model.model_validate({**params(3), "min": 5, "max": 2})
    with pytest.raises(ValidationError, match="Deployment"):
        model.model_validate(params(3, "DaemonSet"))
    rules = b"""
rules:
  - name: scale-up
    matchers: ['alertname="QueueBacklog"']
    handler: kubernetes.scale
    target: 'deployment/workers/ingester'
    params: {namespace: workers, name: ingester, replicas: 12, min: 2, max: 10}
"""
    with pytest.raises(RulesError) as caught:
        parse_rules(rules, "rules.yaml", default_registry)
    assert "replicas' for kubernetes.scale: 12 is outside [min, max] = [2, 10]" in str(caught.value.problems)
