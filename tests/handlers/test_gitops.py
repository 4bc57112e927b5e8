"""Argo CD awareness of every Kubernetes handler, against the emulator with an ``Application``
in each state: not tracked, tracked but no Argo CD (the CRD is absent: 404), managed without
self-heal (drift reported with the change to commit), self-healing (refused with the change
to commit), and self-healing with ``gitops: override`` (changed, drift reported). Both the
overlay's Role and the Argo CD Role (``deploy/base/argocd``) are enforced.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from remediator import Outcome, Resources, Result
from remediator.handling.registry import default_registry
from tests.support.kube import (
    APPLICATIONS,
    DEPLOYMENTS,
    FLINK,
    Cluster,
    DeploymentController,
    FlinkOperator,
    Policy,
    application,
    background,
    deployment,
    flink_deployment,
    kube_env,
    run_handler,
)

NS, ARGOCD = "torghut", "argocd"
REPO = "https://github.com/torghut/gitops.git"
TRACKED = {"app.kubernetes.io/instance": "jangar"}
SET_ENV: dict[str, Any] = {
    "namespace": NS,
    "deployment": "jangar",
    "env": {"CH_DATABASE": "torghut"},
    "poll_interval": "50ms",
}
BOUNCE: dict[str, Any] = {"namespace": NS, "deployment": "torghut-ws", "poll_interval": "50ms"}
FLINK_PARAMS: dict[str, Any] = {"namespace": NS, "name": "torghut-ta", "poll_interval": "50ms"}
COMMIT_ENV = (
    "change to commit: set `CH_DATABASE=torghut` on container `jangar` of `deployment/jangar` "
    f"(namespace {NS}) in {REPO} apps/jangar (revision main)"
)


def jangar(
    cluster: Cluster, *, labels: dict[str, str] | None = None, annotations: dict[str, str] | None = None
) -> DeploymentController:
    obj = deployment(
        "jangar",
        replicas=1,
        labels={"app.kubernetes.io/name": "jangar"},
        annotations=annotations,
        containers=[
            {"name": "jangar", "image": "jangar:1", "env": [{"name": "CH_DATABASE", "value": "default"}]}
        ],
    )
    obj["metadata"]["labels"].update(labels or {})
    cluster.put(DEPLOYMENTS, NS, obj)
    controller = DeploymentController(cluster, NS, "jangar")
    for _ in range(controller.ready_after + 1):
        controller.step()
    return controller


def env_value(cluster: Cluster) -> str:
    obj = cluster.get(DEPLOYMENTS, NS, "jangar")
    assert obj is not None
    return str(obj["spec"]["template"]["spec"]["containers"][0]["env"][0]["value"])


async def run_set_env(
    cluster: Cluster, resources: Resources, controller: DeploymentController, **more: Any
) -> Result:
    async with background(controller.run):
        result, _ = await run_handler("kubernetes.set_env", {**SET_ENV, **more}, resources)
    return result


# ---- kubernetes.set_env -------------------------------------------------------------------


async def test_set_env_not_tracked_asks_no_argo_cd(cluster: Cluster, resources: Resources) -> None:
    result = await run_set_env(cluster, resources, jangar(cluster))
    assert result.outcome is Outcome.SUCCEEDED, result.message
    assert "Argo CD" not in result.message
    assert cluster.calls_to(APPLICATIONS) == []


async def test_set_env_tracked_without_argo_cd_installed_is_not_managed(
    cluster: Cluster, resources: Resources
) -> None:
    cluster.absent.add(APPLICATIONS)  # no CRD: the API server answers 404
    result = await run_set_env(cluster, resources, jangar(cluster, labels=TRACKED))
    assert result.outcome is Outcome.SUCCEEDED, result.message
    assert "Argo CD" not in result.message
    assert [c.status for c in cluster.calls_to(APPLICATIONS)] == [404]
    assert env_value(cluster) == "torghut"


async def test_set_env_tracked_by_a_missing_application_is_not_managed(
    cluster: Cluster, resources: Resources
) -> None:
    result = await run_set_env(cluster, resources, jangar(cluster, labels=TRACKED))
    assert result.outcome is Outcome.SUCCEEDED, result.message
    assert "drift" not in result.message


@pytest.mark.parametrize("self_heal", [False, None], ids=["automated-without-self-heal", "manual-sync"])
async def test_set_env_without_self_heal_patches_and_reports_the_drift(
    cluster: Cluster, resources: Resources, self_heal: bool | None
) -> None:
    cluster.put(APPLICATIONS, ARGOCD, application("jangar", self_heal=self_heal))
    result = await run_set_env(cluster, resources, jangar(cluster, labels=TRACKED))
    assert result.outcome is Outcome.SUCCEEDED, result.message
    assert env_value(cluster) == "torghut"
    assert "Argo CD drift: Application argocd/jangar will show OutOfSync until Git has the same change" in (
        result.message
    )
    assert COMMIT_ENV in result.message
    assert result.details["drift"] is True
    assert result.details["sources"] == [{"repoURL": REPO, "path": "apps/jangar", "targetRevision": "main"}]
    [read] = cluster.calls_to(APPLICATIONS)
    assert (read.verb, read.namespace, read.name) == ("get", ARGOCD, "jangar")


async def test_set_env_under_self_heal_is_refused_with_the_change_to_commit(
    cluster: Cluster, resources: Resources
) -> None:
    cluster.put(APPLICATIONS, ARGOCD, application("jangar", self_heal=True))
    result = await run_set_env(cluster, resources, jangar(cluster, labels=TRACKED))
    assert result.outcome is Outcome.FAILED
    assert not result.retryable
    assert "managed by Argo CD Application argocd/jangar" in result.message
    assert "self-heal on" in result.message
    assert "Argo CD would revert a live patch within seconds. Not changed." in result.message
    assert (
        "Commit the change instead: set `CH_DATABASE=torghut` on container `jangar` of `deployment/jangar` "
        f"(namespace {NS}) in {REPO} apps/jangar (revision main)"
    ) in result.message
    assert "gitops: override" in result.message
    assert cluster.calls_to(DEPLOYMENTS, "patch") == []
    assert env_value(cluster) == "default"


async def test_set_env_under_self_heal_with_override_patches_and_reports_the_drift(
    cluster: Cluster, resources: Resources
) -> None:
    cluster.put(APPLICATIONS, ARGOCD, application("jangar", self_heal=True))
    result = await run_set_env(cluster, resources, jangar(cluster, labels=TRACKED), gitops="override")
    assert result.outcome is Outcome.SUCCEEDED, result.message
    assert env_value(cluster) == "torghut"
    assert "Application argocd/jangar self-heals and will revert this unless Git has the same change" in (
        result.message
    )
    assert COMMIT_ENV in result.message


async def test_set_env_follows_the_tracking_annotation(cluster: Cluster, resources: Resources) -> None:
    """Argo CD's annotation tracking (``<app-ns>_<app>:<group>/<kind>:<ns>/<name>``) wins over the label."""
    cluster.put(APPLICATIONS, ARGOCD, application("jangar-prod", self_heal=True))
    annotations = {"argocd.argoproj.io/tracking-id": f"argocd_jangar-prod:apps/Deployment:{NS}/jangar"}
    controller = jangar(
        cluster, labels={"app.kubernetes.io/instance": "helm-release"}, annotations=annotations
    )
    result = await run_set_env(cluster, resources, controller)
    assert result.outcome is Outcome.FAILED
    assert "Application argocd/jangar-prod" in result.message
    assert [c.name for c in cluster.calls_to(APPLICATIONS)] == ["jangar-prod"]


async def test_the_tracking_label_and_the_argo_cd_namespace_are_params(
    cluster: Cluster, resources: Resources
) -> None:
    cluster.put(APPLICATIONS, ARGOCD, application("jangar", self_heal=False))
    controller = jangar(cluster, labels={"example.com/argo-app": "jangar"})
    result = await run_set_env(cluster, resources, controller, argocd_tracking_label="example.com/argo-app")
    assert "Argo CD drift: Application argocd/jangar" in result.message
    with pytest.raises(ValidationError, match="not a valid"):
        default_registry.get("kubernetes.set_env").params.model_validate(  # type: ignore[union-attr]
            {**SET_ENV, "argocd_namespace": "Argo CD"}
        )
    with pytest.raises(ValidationError, match="not a valid label key"):
        default_registry.get("kubernetes.set_env").params.model_validate(  # type: ignore[union-attr]
            {**SET_ENV, "argocd_tracking_label": "bad key!"}
        )


async def test_without_the_argo_cd_role_the_missing_permission_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, resources: Resources
) -> None:
    async with kube_env(tmp_path, monkeypatch, policy=Policy.shipped()) as cluster:
        cluster.put(APPLICATIONS, ARGOCD, application("jangar", self_heal=False))
        result = await run_set_env(cluster, resources, jangar(cluster, labels=TRACKED))
    assert result.outcome is Outcome.FAILED
    assert "may not get applications.argoproj.io in namespace argocd" in result.message
    assert cluster.calls_to(DEPLOYMENTS, "patch") == []


async def test_set_env_dry_run_reports_the_drift_it_would_leave(
    cluster: Cluster, resources: Resources
) -> None:
    cluster.put(APPLICATIONS, ARGOCD, application("jangar", self_heal=False))
    jangar(cluster, labels=TRACKED)
    result, _ = await run_handler("kubernetes.set_env", SET_ENV, resources, dry_run=True)
    assert result.outcome is Outcome.DRY_RUN
    assert COMMIT_ENV in result.message
    assert {c.verb for c in cluster.calls} == {"get"}


# ---- kubernetes.bounce --------------------------------------------------------------------


def torghut_ws(cluster: Cluster, *, replicas_in_git: bool | None) -> DeploymentController:
    annotations = {}
    if replicas_in_git is not None:
        manifest: dict[str, Any] = {"apiVersion": "apps/v1", "kind": "Deployment", "spec": {"template": {}}}
        if replicas_in_git:
            manifest["spec"]["replicas"] = 1
        annotations["kubectl.kubernetes.io/last-applied-configuration"] = json.dumps(manifest)
    labels = {"app.kubernetes.io/name": "torghut-ws", "app.kubernetes.io/instance": "torghut-ws"}
    obj = deployment(
        "torghut-ws", replicas=1, labels={"app.kubernetes.io/name": "torghut-ws"}, annotations=annotations
    )
    obj["metadata"]["labels"] = labels
    cluster.put(DEPLOYMENTS, NS, obj)
    controller = DeploymentController(cluster, NS, "torghut-ws")
    for _ in range(controller.ready_after + 1):
        controller.step()
    return controller


async def run_bounce(
    cluster: Cluster, resources: Resources, controller: DeploymentController, **more: Any
) -> Result:
    async with background(controller.run):
        result, _ = await run_handler("kubernetes.bounce", {**BOUNCE, **more}, resources)
    return result


@pytest.mark.parametrize("replicas_in_git", [True, None], ids=["replicas-in-git", "cannot-tell"])
async def test_bounce_under_self_heal_with_replicas_in_git_is_refused(
    cluster: Cluster, resources: Resources, replicas_in_git: bool | None
) -> None:
    cluster.put(APPLICATIONS, ARGOCD, application("torghut-ws", self_heal=True, path="apps/torghut-ws"))
    result = await run_bounce(cluster, resources, torghut_ws(cluster, replicas_in_git=replicas_in_git))
    assert result.outcome is Outcome.FAILED
    assert "managed by Argo CD Application argocd/torghut-ws" in result.message
    assert "spec.replicas, so Argo CD would scale the Deployment back up while the old pod is still" in (
        result.message
    )
    assert "turn off self-heal on Application argocd/torghut-ws" in result.message
    assert f"{REPO} apps/torghut-ws" in result.message
    assert "gitops: override" in result.message
    assert cluster.calls_to(DEPLOYMENTS, "patch") == []


async def test_bounce_under_self_heal_with_override_bounces(cluster: Cluster, resources: Resources) -> None:
    cluster.put(APPLICATIONS, ARGOCD, application("torghut-ws", self_heal=True))
    result = await run_bounce(
        cluster, resources, torghut_ws(cluster, replicas_in_git=True), gitops="override"
    )
    assert result.outcome is Outcome.SUCCEEDED, result.message


@pytest.mark.parametrize(
    ("app", "replicas_in_git"),
    [
        (application("torghut-ws", self_heal=True), False),  # Git leaves replicas alone
        (application("torghut-ws", self_heal=False), True),  # no self-heal: nothing scales it back
        (None, True),  # tracked, but no Argo CD installed
    ],
    ids=["self-heal-without-replicas-in-git", "no-self-heal", "no-argo-cd"],
)
async def test_bounce_goes_ahead_when_argo_cd_would_not_interfere(
    cluster: Cluster, resources: Resources, app: dict[str, Any] | None, replicas_in_git: bool
) -> None:
    if app is None:
        cluster.absent.add(APPLICATIONS)
    else:
        cluster.put(APPLICATIONS, ARGOCD, app)
    result = await run_bounce(cluster, resources, torghut_ws(cluster, replicas_in_git=replicas_in_git))
    assert result.outcome is Outcome.SUCCEEDED, result.message
    assert len(cluster.calls_to(APPLICATIONS)) == 1


# ---- flink.restart ------------------------------------------------------------------------


def torghut_ta(cluster: Cluster) -> FlinkOperator:
    obj = flink_deployment("torghut-ta", job="FAILED", lifecycle="FAILED", nonce=3)
    obj["metadata"]["labels"] = {"app.kubernetes.io/instance": "torghut-ta"}
    cluster.put(FLINK, NS, obj)
    return FlinkOperator(cluster, NS, "torghut-ta")


async def run_flink(cluster: Cluster, resources: Resources, **more: Any) -> Result:
    operator = torghut_ta(cluster)
    async with background(operator.run):
        result, _ = await run_handler("flink.restart", {**FLINK_PARAMS, **more}, resources)
    return result


COMMIT_NONCE = (
    f"set `spec.restartNonce: 4` on `FlinkDeployment/torghut-ta` (namespace {NS}) in {REPO} apps/torghut-ta "
    "(revision main)"
)


async def test_flink_under_self_heal_is_refused_with_the_change_to_commit(
    cluster: Cluster, resources: Resources
) -> None:
    cluster.put(APPLICATIONS, ARGOCD, application("torghut-ta", self_heal=True, path="apps/torghut-ta"))
    result = await run_flink(cluster, resources)
    assert result.outcome is Outcome.FAILED
    assert "would revert the bumped restartNonce to Git's, and the operator would restart the job again" in (
        result.message
    )
    assert f"Restart through Git instead: {COMMIT_NONCE}" in result.message
    assert cluster.calls_to(FLINK, "patch") == []


@pytest.mark.parametrize(
    ("self_heal", "more", "says"),
    [
        (False, {}, "will show OutOfSync until Git has the same change"),
        (True, {"gitops": "override"}, "self-heals and will revert this unless Git has the same change"),
    ],
    ids=["no-self-heal", "self-heal-overridden"],
)
async def test_flink_restart_reports_the_drift(
    cluster: Cluster, resources: Resources, self_heal: bool, more: dict[str, Any], says: str
) -> None:
    cluster.put(APPLICATIONS, ARGOCD, application("torghut-ta", self_heal=self_heal, path="apps/torghut-ta"))
    result = await run_flink(cluster, resources, **more)
    assert result.outcome is Outcome.SUCCEEDED, result.message
    assert f"Argo CD drift: Application argocd/torghut-ta {says}" in result.message
    assert f"change to commit: {COMMIT_NONCE}" in result.message
    assert result.details["change_to_commit"] == COMMIT_NONCE


async def test_flink_without_argo_cd_installed_restarts_as_before(
    cluster: Cluster, resources: Resources
) -> None:
    cluster.absent.add(APPLICATIONS)
    result = await run_flink(cluster, resources)
    assert result.outcome is Outcome.SUCCEEDED, result.message
    assert "Argo CD" not in result.message
