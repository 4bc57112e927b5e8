"""``deploy/base/role.yaml`` grants exactly what the Kubernetes handlers use, nothing more.

Two independent derivations of "what the handlers use":
- dynamic: run every path of the handlers (and of a rule's ``resolve:``) against the
  emulator with the Role enforced; the (verb, apiGroup, resource) of every request it
  recorded;
- static: every kubernetes-asyncio API method the handlers' code calls.
Both must equal the grants: the Role's, the Argo CD Role's, and the ClusterRole of the
opt-in ``node-rbac`` component (``kubernetes.cordon``: nodes are cluster-scoped).
(Every handler test also enforces the Roles.)
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import handlers.flink
import handlers.gitops
from remediator import Outcome, Owner, Resources
from remediator.handling.registry import default_registry
from tests.support.handlers import make_context
from tests.support.kube import (
    APPLICATIONS,
    DAEMONSETS,
    DEPLOYMENTS,
    FLINK,
    JOBS,
    NODES,
    PODS,
    ROLE_FILE,
    STATEFULSETS,
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
from tests.support.kube_workloads import (
    DaemonSetController,
    Kubelet,
    StatefulSetController,
    daemon_set,
    job,
    node,
    pod,
    stateful_set,
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
    "workloads.py",
    "rollout_restart.py",
    "scale.py",
    "delete_pod.py",
    "nodes.py",
    "owners.py",
    "gatherers/kubernetes.py",
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
RESTART = {"namespace": NS, "poll_interval": "50ms"}
RESTART_TARGETS = [
    {"kind": "Deployment", "name": "jangar"},
    {"kind": "StatefulSet", "name": "ingester"},
    {"kind": "DaemonSet", "name": "agent"},
]
SCALE = {"namespace": NS, "min": 1, "max": 3, "poll_interval": "50ms"}
SCALE_TARGETS = [
    {"kind": "Deployment", "name": "jangar", "replicas": 2},
    {"kind": "StatefulSet", "name": "ingester", "replicas": 2},
]
DELETE = {"namespace": NS, "poll_interval": "50ms"}


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
    # Subresources: the read-only log of kubernetes.job and the scale of kubernetes.scale
    # (patch only); no pods/exec, no pods/eviction (the node-rbac component's, cluster-wide).
    subresources = {(verb, resource) for verb, _, resource in granted() if "/" in resource}
    assert subresources == {
        ("get", "pods/log"),
        ("patch", "deployments/scale"),
        ("patch", "statefulsets/scale"),
    }
    assert granted() == {
        ("get", "flink.apache.org", "flinkdeployments"),
        ("patch", "flink.apache.org", "flinkdeployments"),
        ("get", "apps", "deployments"),
        ("patch", "apps", "deployments"),
        ("get", "apps", "statefulsets"),
        ("patch", "apps", "statefulsets"),
        ("get", "apps", "daemonsets"),
        ("patch", "apps", "daemonsets"),
        ("patch", "apps", "deployments/scale"),
        ("patch", "apps", "statefulsets/scale"),
        ("get", "apps", "replicasets"),
        ("list", "apps", "replicasets"),
        ("get", "", "pods"),
        ("list", "", "pods"),
        ("delete", "", "pods"),
        ("list", "autoscaling", "horizontalpodautoscalers"),
        ("create", "batch", "jobs"),
        ("get", "batch", "jobs"),
        ("get", "", "pods/log"),
        ("list", "", "events"),
    }


def test_the_node_cluster_role_is_opt_in_and_narrow() -> None:
    """kubernetes.cordon's rights: only in the node-rbac component, never in a Role."""
    assert Policy.nodes().grants() == {
        ("get", "", "nodes"),
        ("patch", "", "nodes"),
        ("list", "", "pods"),
        ("create", "", "pods/eviction"),
    }
    assert not any(resource in ("nodes", "pods/eviction") for _, _, resource in granted())


INSTANCE = {"app.kubernetes.io/instance": "torghut"}


def _objects(cluster: Cluster, *, tracked: bool) -> None:
    """What the handlers repair, labelled for Argo CD when ``tracked``."""
    extra = INSTANCE if tracked else {}
    ta = flink_deployment("torghut-ta", job="FAILED", lifecycle="FAILED")
    ta["metadata"]["labels"] = dict(extra)
    cluster.put(FLINK, NS, ta)
    for name, labels in (("torghut-ws", LABELS), ("jangar", {"app": "jangar"})):
        obj = deployment(name, replicas=1, labels=labels)
        obj["metadata"]["labels"].update(extra)
        cluster.put(DEPLOYMENTS, NS, obj)
    sts = stateful_set("ingester", replicas=1, labels={"app": "ingester"})
    sts["metadata"]["labels"].update(extra)
    cluster.put(STATEFULSETS, NS, sts)
    agent = daemon_set("agent", labels={"app": "agent"})
    agent["metadata"]["labels"].update(extra)
    cluster.put(DAEMONSETS, NS, agent)
    cluster.put(NODES, None, node("node-1"))
    # a pod of a CronJob's Job, for resolve: (the Job controller here labels, not owns, its pods)
    cron = {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "nightly", "uid": "u-cron"}}
    nightly = cluster.put(JOBS, NS, job("nightly-28000000", owner=cron))
    cluster.put(PODS, NS, pod("nightly-28000000-x7k2p", owner=nightly))


async def _gather(resources: Resources, kind: str, params: dict[str, object]) -> str:
    """A rule's context: entry of ``kind``, gathered as the worker does (no timeout here)."""
    spec = default_registry.gatherers[kind]
    return await spec.gather(spec.params.model_validate(params), make_context(resources))


async def _resolve(resources: Resources, pod_name: str) -> Owner:
    resolver = default_registry.resolver
    assert resolver is not None
    return await resolver(NS, pod_name, make_context(resources))


async def _exercise_every_path(
    cluster: Cluster, resources: Resources, *, dry_run: bool = False, tracked: bool = False
) -> None:
    """Run the handlers through a restart, a bounce, a resumed bounce, an env change, a Job
    and an adopted Job; a rolling restart of each kind, a scale of each kind, a pod deleted;
    and resolve a Deployment's pod and a CronJob's pod to their owners."""
    _objects(cluster, tracked=tracked)
    controller = DeploymentController(cluster, NS, "torghut-ws")
    jangar = DeploymentController(cluster, NS, "jangar")
    ingester = StatefulSetController(cluster, NS, "ingester")
    agent = DaemonSetController(cluster, NS, "agent")
    jobs = JobController(cluster, NS)
    kubelet = Kubelet(cluster, NS, mine=lambda p: p["metadata"]["name"].startswith("nightly"))
    runners = (controller.run, jangar.run, ingester.run, agent.run, jobs.run, kubelet.run)
    async with background(FlinkOperator(cluster, NS, "torghut-ta").run, *runners):
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
        restarts = [
            (
                await run_handler(
                    "kubernetes.rollout_restart", {**RESTART, **target}, resources, dry_run=dry_run
                )
            )[0]
            for target in RESTART_TARGETS
        ]
        scales = [
            (await run_handler("kubernetes.scale", {**SCALE, **target}, resources, dry_run=dry_run))[0]
            for target in SCALE_TARGETS
        ]
        victim = cluster.items(PODS, NS, "app=jangar")[0]["metadata"]["name"]
        owners = [await _resolve(resources, p) for p in (victim, "nightly-28000000-x7k2p")]
        # a rule's context: the pod's last log lines and the Deployment's Events
        cluster.logs[NS, victim] = "started\n"
        log = await _gather(resources, "kubernetes.logs", {"namespace": NS, "pod": victim, "lines": 5})
        events = await _gather(
            resources, "kubernetes.events", {"namespace": NS, "kind": "Deployment", "name": "jangar"}
        )
        deleted, _ = await run_handler(
            "kubernetes.delete_pod", {**DELETE, "pod": victim}, resources, dry_run=dry_run
        )
    expected = Outcome.DRY_RUN if dry_run else Outcome.SUCCEEDED
    assert dry_run or adopted.details["adopted"] is True
    for result in (flink, bounce, resumed, set_env, job, adopted, *restarts, *scales, deleted):
        assert result.outcome is expected, result.message
    assert [(o.kind, o.name) for o in owners] == [("Deployment", "jangar"), ("CronJob", "nightly")]
    assert log == "started\n" and events.startswith("(no Events of Deployment torghut/jangar")


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
    r"^(get|read|list|patch|replace|create|delete|deletecollection)_(?:namespaced_(\w+?)|(node)|(pod)_for_all_namespaces)"
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
        "stateful_set": ("apps", "statefulsets"),
        "daemon_set": ("apps", "daemonsets"),
        "deployment_scale": ("apps", "deployments/scale"),
        "stateful_set_scale": ("apps", "statefulsets/scale"),
        "horizontal_pod_autoscaler": ("autoscaling", "horizontalpodautoscalers"),
        "node": ("", "nodes"),
        "pod_eviction": ("", "pods/eviction"),
        "event": ("", "events"),
    }
    assert kind in known, f"the handlers call an API for {kind!r}: add it to the Role and here"
    return known[kind]


def test_the_handlers_code_calls_exactly_the_granted_api_methods() -> None:
    used: set[tuple[str, str, str]] = set()
    for name in KUBE_HANDLERS:
        tree = ast.parse((HANDLERS / name).read_text(encoding="utf-8"))
        for found in ast.walk(tree):
            if isinstance(found, ast.Attribute) and (match := _API_METHOD.match(found.attr)):
                verb, kind = match.group(1), match.group(2) or match.group(3) or match.group(4)
                used.add((_VERBS[verb], *_resource(kind, name)))
            if isinstance(found, ast.Attribute) and found.attr.endswith("_with_http_info"):
                pytest.fail(f"{name}: unexpected raw API call {found.attr}")
    assert used == granted() | Policy.argocd().grants() | Policy.nodes().grants()
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
    cluster.put(APPLICATIONS, "argocd", application("torghut", self_heal=False))
    await _exercise_every_path(cluster, resources, tracked=True)
    assert [str(call) for call in cluster.calls if call.status == 403] == []
    assert permissions(c for c in cluster.calls if c.namespace == NS) == granted()
    assert permissions(c for c in cluster.calls if c.namespace != NS) == Policy.argocd().grants()
    assert {c.namespace for c in cluster.calls} == {NS, "argocd"}


async def test_cordon_and_uncordon_use_exactly_the_node_cluster_role(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, resources: Resources
) -> None:
    """A drain (with a pod in another namespace) and an uncordon, with every Role and the
    node-rbac ClusterRole enforced: the calls are exactly what the ClusterRole grants."""
    async with kube_env(tmp_path, monkeypatch, policy=Policies.shipped(nodes=True)) as cluster:
        cluster.put(NODES, None, node("node-1"))
        owner = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "web-1", "uid": "u-rs"}}
        cluster.put(PODS, "web", pod("web-1-a", node_name="node-1", owner=owner))
        params = {"node": "node-1", "poll_interval": "50ms"}
        async with background(Kubelet(cluster).run):
            cordoned, _ = await run_handler("kubernetes.cordon", {**params, "drain": True}, resources)
            uncordoned, _ = await run_handler("kubernetes.uncordon", params, resources)
    assert cordoned.outcome is uncordoned.outcome is Outcome.SUCCEEDED, cordoned.message + uncordoned.message
    assert [str(call) for call in cluster.calls if call.status == 403] == []
    assert permissions(cluster.calls) == Policy.nodes().grants()
    assert not permissions(cluster.calls) & granted() - {("list", "", "pods")}, "no namespaced Role right"


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
