"""``deploy/base/role.yaml`` grants exactly what the Kubernetes handlers use, nothing more.

Two independent derivations of "what the handlers use":
- dynamic: run every path of the handlers against the emulator with the Role
  enforced; the (verb, apiGroup, resource) of every request it recorded;
- static: every kubernetes-asyncio API method the handlers' code calls.
Both must equal the Role's grants. (Every handler test also enforces the Role.)
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import handlers.flink
import handlers.gitops
from remediator import Outcome, Resources
from tests.support.kube import (
    APPLICATIONS,
    DEPLOYMENTS,
    FLINK,
    ROLE_FILE,
    Cluster,
    DeploymentController,
    FlinkOperator,
    JobController,
    Policies,
    Policy,
    application,
    background,
    deployment,
    flink_deployment,
    kube_env,
    permissions,
    role_documents,
    run_handler,
)

HANDLERS = Path(handlers.flink.__file__).parent
KUBE_HANDLERS = [
    "kube.py",
    "deployments.py",
    "flink.py",
    "flink_verify.py",
    "bounce.py",
    "set_env.py",
    "container_env.py",
    "gitops.py",
    "job.py",
]
NS = "torghut"
FLINK_PARAMS = {"namespace": NS, "name": "torghut-ta", "poll_interval": "50ms"}
BOUNCE_PARAMS = {"namespace": NS, "deployment": "torghut-ws", "poll_interval": "50ms"}
JOB_PARAMS = {"namespace": NS, "image": "registry.example/fix:1", "poll_interval": "50ms"}
LABELS = {"app": "torghut-ws"}
SET_ENV_PARAMS = {
    "namespace": NS,
    "deployment": "jangar",
    "env": {"CH_DATABASE": "torghut"},
    "poll_interval": "50ms",
}


def granted() -> set[tuple[str, str, str]]:
    return Policy.shipped().grants()


def test_the_role_is_namespaced_narrow_and_bound_to_the_service_account() -> None:
    docs = role_documents()
    assert set(docs) == {"Role", "RoleBinding"}
    role, binding = docs["Role"], docs["RoleBinding"]
    assert role["apiVersion"] == binding["apiVersion"] == "rbac.authorization.k8s.io/v1"
    assert role["metadata"]["namespace"] == binding["metadata"]["namespace"] == NS
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": role["metadata"]["name"],
    }
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "remediator", "namespace": NS}]
    for rule in role["rules"]:
        assert set(rule) == {"apiGroups", "resources", "verbs"}, rule
        for values in rule.values():
            assert "*" not in values and len(values) == len(set(values)), rule
        # no subresources (no /scale, no pods/exec) but the read-only log of kubernetes.job
        assert not any("/" in r for r in rule["resources"] if r != "pods/log"), "no subresources (no /scale)"
    assert granted() == {
        ("get", "flink.apache.org", "flinkdeployments"),
        ("patch", "flink.apache.org", "flinkdeployments"),
        ("get", "apps", "deployments"),
        ("patch", "apps", "deployments"),
        ("list", "apps", "replicasets"),
        ("list", "", "pods"),
        ("create", "batch", "jobs"),
        ("get", "batch", "jobs"),
        ("get", "", "pods/log"),
    }


async def _exercise_every_path(cluster: Cluster, resources: Resources, *, dry_run: bool = False) -> None:
    """Run the handlers through a restart, a bounce, a resumed bounce, an env change, a Job
    and an adopted Job."""
    cluster.put(FLINK, NS, flink_deployment("torghut-ta", job="FAILED", lifecycle="FAILED"))
    cluster.put(DEPLOYMENTS, NS, deployment("torghut-ws", replicas=1, labels=LABELS))
    cluster.put(DEPLOYMENTS, NS, deployment("jangar", replicas=1, labels={"app": "jangar"}))
    controller = DeploymentController(cluster, NS, "torghut-ws")
    jangar = DeploymentController(cluster, NS, "jangar")
    jobs = JobController(cluster, NS)
    async with background(FlinkOperator(cluster, NS, "torghut-ta").run, controller.run, jangar.run, jobs.run):
        flink, _ = await run_handler("flink.restart", FLINK_PARAMS, resources, dry_run=dry_run)
        bounce, _ = await run_handler("kubernetes.bounce", BOUNCE_PARAMS, resources, dry_run=dry_run)
        cluster.modify(
            DEPLOYMENTS,
            NS,
            "torghut-ws",
            {"metadata": {"annotations": {"remediator.io/bounce-replicas": "1"}}, "spec": {"replicas": 0}},
        )
        resumed, _ = await run_handler("kubernetes.bounce", BOUNCE_PARAMS, resources, dry_run=dry_run)
        set_env, _ = await run_handler("kubernetes.set_env", SET_ENV_PARAMS, resources, dry_run=dry_run)
        job, _ = await run_handler("kubernetes.job", JOB_PARAMS, resources, dry_run=dry_run)
        adopted, _ = await run_handler("kubernetes.job", JOB_PARAMS, resources, dry_run=dry_run)
    expected = Outcome.DRY_RUN if dry_run else Outcome.SUCCEEDED
    assert dry_run or adopted.details["adopted"] is True
    for result in (flink, bounce, resumed, set_env, job, adopted):
        assert result.outcome is expected, result.message


async def test_the_handlers_use_every_granted_permission_and_nothing_more(
    cluster: Cluster, resources: Resources
) -> None:
    await _exercise_every_path(cluster, resources)
    assert [str(call) for call in cluster.calls if call.status == 403] == []
    assert {call.namespace for call in cluster.calls} == {NS}
    assert permissions(cluster.calls) == granted()


async def test_dry_run_only_reads(cluster: Cluster, resources: Resources) -> None:
    await _exercise_every_path(cluster, resources, dry_run=True)
    assert {verb for verb, _, _ in permissions(cluster.calls)} == {"get", "list"}
    assert all(call.status == 200 for call in cluster.calls)


_API_METHOD = re.compile(
    r"^(get|read|list|patch|replace|create|delete|deletecollection)_namespaced_(\w+?)"
    r"(_with_http_info)?$"
)
_VERBS = {
    "get": "get",
    "read": "get",
    "list": "list",
    "patch": "patch",
    "replace": "update",
    "create": "create",
    "delete": "delete",
    "deletecollection": "deletecollection",
}


def _resource(kind: str, module: str) -> tuple[str, str]:
    if kind == "custom_object":  # one custom resource per module
        mod = handlers.gitops if module == "gitops.py" else handlers.flink
        return mod.GROUP, mod.PLURAL
    known = {
        "deployment": ("apps", "deployments"),
        "replica_set": ("apps", "replicasets"),
        "pod": ("", "pods"),
        "pod_log": ("", "pods/log"),
        "job": ("batch", "jobs"),
    }
    assert kind in known, f"the handlers call an API for {kind!r}: add it to the Role and here"
    return known[kind]


def test_the_handlers_code_calls_exactly_the_granted_api_methods() -> None:
    used: set[tuple[str, str, str]] = set()
    for name in KUBE_HANDLERS:
        tree = ast.parse((HANDLERS / name).read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and (match := _API_METHOD.match(node.attr)):
                verb, kind = match.group(1), match.group(2)
                used.add((_VERBS[verb], *_resource(kind, name)))
            if isinstance(node, ast.Attribute) and node.attr.endswith("_with_http_info"):
                pytest.fail(f"{name}: unexpected raw API call {node.attr}")
    assert used == granted() | Policy.argocd().grants()
    assert ROLE_FILE.exists()


def test_the_argocd_role_lives_in_argocd_and_only_reads_applications() -> None:
    from tests.support.kube import ARGOCD_DIR
    from tests.support.kustomize import render

    docs = {doc["kind"]: doc for doc in render(ARGOCD_DIR)}
    assert set(docs) == {"Role", "RoleBinding"}
    role, binding = docs["Role"], docs["RoleBinding"]
    assert role["metadata"]["namespace"] == binding["metadata"]["namespace"] == "argocd"
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": role["metadata"]["name"],
    }
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "remediator", "namespace": NS}]
    assert Policy.argocd().grants() == {("get", "argoproj.io", "applications")}


async def test_with_argo_cd_the_handlers_use_both_roles_exactly(
    cluster: Cluster, resources: Resources
) -> None:
    """Every Kubernetes handler, with an Application (without self-heal) managing the objects it
    changes: the calls in each namespace are exactly what that namespace's Role grants."""
    instance = {"app.kubernetes.io/instance": "torghut"}
    cluster.put(APPLICATIONS, "argocd", application("torghut", self_heal=False))
    ta = flink_deployment("torghut-ta", job="FAILED", lifecycle="FAILED")
    ta["metadata"]["labels"] = instance
    cluster.put(FLINK, NS, ta)
    for name in ("torghut-ws", "jangar"):
        obj = deployment(name, replicas=1, labels={"app": name})
        obj["metadata"]["labels"].update(instance)
        cluster.put(DEPLOYMENTS, NS, obj)
    controllers = [DeploymentController(cluster, NS, name).run for name in ("torghut-ws", "jangar")]
    controllers.append(JobController(cluster, NS).run)  # a Job is created, never managed by Argo CD
    async with background(FlinkOperator(cluster, NS, "torghut-ta").run, *controllers):
        results = [
            (await run_handler("flink.restart", FLINK_PARAMS, resources))[0],
            (await run_handler("kubernetes.bounce", BOUNCE_PARAMS, resources))[0],
            (await run_handler("kubernetes.set_env", SET_ENV_PARAMS, resources))[0],
            (await run_handler("kubernetes.job", JOB_PARAMS, resources))[0],
        ]
    for result in results:
        assert result.outcome is Outcome.SUCCEEDED, result.message
    assert "Argo CD drift" in results[0].message and "Argo CD drift" in results[2].message
    assert [str(call) for call in cluster.calls if call.status == 403] == []
    assert permissions(c for c in cluster.calls if c.namespace == NS) == granted()
    assert permissions(c for c in cluster.calls if c.namespace != NS) == Policy.argocd().grants()
    assert {c.namespace for c in cluster.calls} == {NS, "argocd"}


# ---- every install: a Role per namespace of its settings, or the opt-in ClusterRole ----------
def overlay_roles(overlay: str) -> list[dict[str, object]]:
    from tests.support.kustomize import render

    return [doc for doc in render(ROLE_FILE.parents[1] / "overlays" / overlay) if doc["kind"] == "Role"]


@pytest.mark.parametrize("overlay", ["example", "torghut"])
def test_every_overlays_roles_grant_exactly_what_the_handlers_call(overlay: str) -> None:
    """The grants proven above for torghut's Role hold for every Role of every overlay: they
    are copies of deploy/base/role.yaml (`make deploy-sync`), one per namespace."""
    roles = overlay_roles(overlay)
    assert roles
    for role in roles:
        assert Policy.from_role(role).grants() == granted(), role["metadata"]


def test_the_cluster_role_grants_exactly_what_the_handlers_call() -> None:
    import yaml

    cluster_role = yaml.safe_load(
        (ROLE_FILE.parents[1] / "components/cluster-rbac/clusterrole.yaml").read_text()
    )
    assert cluster_role["kind"] == "ClusterRole"
    assert Policy.from_role({**cluster_role, "metadata": {"namespace": "*"}}).grants() == granted()


async def test_a_namespace_of_the_settings_works_and_another_is_forbidden(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, resources: Resources
) -> None:
    """The example's Roles enforced (web and workers): a bounce in `workers` succeeds with no
    403; in `torghut`, where the example has no Role, it fails naming the missing permission."""
    policies = Policies(tuple(Policy.from_role(role) for role in overlay_roles("example")))
    assert {role.namespace for role in policies.roles} == {"web", "workers"}
    async with kube_env(tmp_path, monkeypatch, policy=policies) as cluster:
        for namespace in ("workers", "torghut"):
            cluster.put(
                DEPLOYMENTS, namespace, deployment("ingester", replicas=1, labels={"app": "ingester"})
            )
        params = {"deployment": "ingester", "poll_interval": "50ms"}
        async with background(DeploymentController(cluster, "workers", "ingester").run):
            allowed, _ = await run_handler("kubernetes.bounce", {**params, "namespace": "workers"}, resources)
        forbidden, _ = await run_handler("kubernetes.bounce", {**params, "namespace": "torghut"}, resources)
    assert allowed.outcome is Outcome.SUCCEEDED, allowed.message
    assert forbidden.outcome is Outcome.FAILED
    assert "forbidden" in forbidden.message and "namespace torghut" in forbidden.message
    assert {call.namespace for call in cluster.calls if call.status == 403} == {"torghut"}
    assert permissions(c for c in cluster.calls if c.namespace == "workers") <= granted()
