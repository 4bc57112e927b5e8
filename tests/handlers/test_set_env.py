"""``kubernetes.set_env`` against kmock's emulator over HTTP, with the real kubernetes-asyncio
client. ``DeploymentController`` plays the Deployment and ReplicaSet controllers: a changed
pod template gets a new ReplicaSet and rolls out pod by pod; old pods stay listed while
they terminate. The shipped Role is enforced on every request.
"""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from remediator import Outcome, Resources
from remediator.cli.main import read_alerts, simulate
from remediator.errors import RulesError
from remediator.handling.registry import default_registry
from remediator.rules.ruleset import parse_rules
from tests.support.kube import (
    DEPLOYMENTS,
    POD_TEMPLATE_HASH,
    PODS,
    Call,
    Cluster,
    DeploymentController,
    background,
    deployment,
    run_handler,
)

NS, NAME = "torghut", "jangar"
LABELS = {"app.kubernetes.io/name": "jangar"}
SELECTOR = "app.kubernetes.io/name=jangar"
ENV = [
    {"name": "PORT", "value": "8080"},
    {"name": "CH_DATABASE", "value": "default"},
    {"name": "CH_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "ch", "key": "password"}}},
    {"name": "LOG_LEVEL", "value": "info"},
]
PARAMS: dict[str, Any] = {
    "namespace": NS,
    "deployment": NAME,
    "env": {"CH_DATABASE": "torghut"},
    "poll_interval": "50ms",
}


def settle(
    cluster: Cluster, *, replicas: int = 2, containers: list[dict[str, Any]] | None = None
) -> DeploymentController:
    """A rolled-out Deployment and a controller for it."""
    containers = containers or [{"name": "jangar", "image": "jangar:1", "env": ENV}]
    cluster.put(DEPLOYMENTS, NS, deployment(NAME, replicas=replicas, labels=LABELS, containers=containers))
    controller = DeploymentController(cluster, NS, NAME)
    for _ in range(controller.ready_after + 1):
        controller.step()
    return controller


def current(cluster: Cluster) -> dict[str, Any]:
    obj = cluster.get(DEPLOYMENTS, NS, NAME)
    assert obj is not None
    return obj


def env_of(cluster: Cluster, container: int = 0) -> list[dict[str, Any]]:
    return list(current(cluster)["spec"]["template"]["spec"]["containers"][container].get("env") or [])


def patches(cluster: Cluster) -> list[Call]:
    return cluster.calls_to(DEPLOYMENTS, "patch")


async def test_sets_the_value_keeps_the_others_in_order_and_waits_for_the_rollout(
    cluster: Cluster, resources: Resources
) -> None:
    controller = settle(cluster)
    old_pods = set(controller.created)
    rv = current(cluster)["metadata"]["resourceVersion"]
    async with background(controller.run):
        result, ctx = await run_handler("kubernetes.set_env", PARAMS, resources)
    assert result.outcome is Outcome.SUCCEEDED, result.message
    assert "set CH_DATABASE=torghut (was default)" in result.message
    assert env_of(cluster) == [
        ENV[0],
        {"name": "CH_DATABASE", "value": "torghut"},
        ENV[2],
        ENV[3],
    ]
    [patch] = patches(cluster)
    assert patch.content_type == "application/json-patch+json"
    assert patch.body == [
        {"op": "replace", "path": "/metadata/resourceVersion", "value": rv},
        {"op": "add", "path": "/spec/template/spec/containers/0/env/1/value", "value": "torghut"},
    ]
    # verified: no old pod left at the end, even terminating, and every pod has the new env
    pods = cluster.items(PODS, NS, SELECTOR)
    assert not old_pods & {p["metadata"]["name"] for p in pods}
    assert len(pods) == 2
    assert len({p["metadata"]["labels"][POD_TEMPLATE_HASH] for p in pods}) == 1
    assert all(p["spec"]["containers"][0]["env"][1]["value"] == "torghut" for p in pods)
    assert any(step.name == "verify" for step in ctx.timeline)
    assert [c.plural for c in cluster.calls[-2:]] == ["replicasets", "pods"]


async def test_the_rollout_waits_for_terminating_old_pods(cluster: Cluster, resources: Resources) -> None:
    """status.replicas leaves out terminating pods; the handler still waits for them to go."""
    controller = settle(cluster, replicas=1)
    controller.terminate_after = 15
    old = controller.created[0]
    seen_old_pod_at_end: list[bool] = []
    async with background(controller.run):
        result, ctx = await run_handler("kubernetes.set_env", PARAMS, resources)
        seen_old_pod_at_end.append(cluster.get(PODS, NS, old) is not None)
    assert result.outcome is Outcome.SUCCEEDED, result.message
    assert seen_old_pod_at_end == [False]
    assert any("pod(s) of an old ReplicaSet left" in step.message for step in ctx.timeline)


async def test_new_variables_are_appended(cluster: Cluster, resources: Resources) -> None:
    controller = settle(cluster)
    params = {**PARAMS, "env": {"CH_DATABASE": "torghut", "CH_TIMEOUT": "30s"}}
    async with background(controller.run):
        result, _ = await run_handler("kubernetes.set_env", params, resources)
    assert result.outcome is Outcome.SUCCEEDED, result.message
    assert [v["name"] for v in env_of(cluster)] == [
        "PORT",
        "CH_DATABASE",
        "CH_PASSWORD",
        "LOG_LEVEL",
        "CH_TIMEOUT",
    ]
    assert env_of(cluster)[-1] == {"name": "CH_TIMEOUT", "value": "30s"}
    assert "CH_TIMEOUT=30s (was unset)" in result.message


async def test_a_container_without_env_gets_one(cluster: Cluster, resources: Resources) -> None:
    controller = settle(cluster, containers=[{"name": "jangar", "image": "jangar:1"}])
    async with background(controller.run):
        result, _ = await run_handler("kubernetes.set_env", PARAMS, resources)
    assert result.outcome is Outcome.SUCCEEDED, result.message
    assert env_of(cluster) == [{"name": "CH_DATABASE", "value": "torghut"}]


async def test_values_already_set_are_noop_with_the_current_values(
    cluster: Cluster, resources: Resources
) -> None:
    settle(cluster)
    result, _ = await run_handler(
        "kubernetes.set_env", {**PARAMS, "env": {"CH_DATABASE": "default", "PORT": "8080"}}, resources
    )
    assert result.outcome is Outcome.NOOP, result.message
    assert "already has CH_DATABASE=default, PORT=8080" in result.message
    assert result.details["current"] == {"CH_DATABASE": "default", "PORT": "8080"}
    assert patches(cluster) == []


async def test_a_value_from_a_reference_is_never_overwritten(cluster: Cluster, resources: Resources) -> None:
    settle(cluster)
    params = {**PARAMS, "env": {"CH_DATABASE": "torghut", "CH_PASSWORD": "hunter2"}}
    result, _ = await run_handler("kubernetes.set_env", params, resources)
    assert result.outcome is Outcome.FAILED
    assert not result.retryable
    assert "CH_PASSWORD set from valueFrom" in result.message
    assert "never overwritten with a literal" in result.message
    assert patches(cluster) == []
    assert env_of(cluster) == ENV


async def test_a_conflict_rereads_and_decides_again(cluster: Cluster, resources: Resources) -> None:
    controller = settle(cluster)
    changed: list[bool] = []

    def someone_else(call: Call) -> None:
        """Before our first patch, someone edits the Deployment (adds a variable in front)."""
        if call.verb == "patch" and not changed:
            changed.append(True)
            obj = current(cluster)
            env = [{"name": "FIRST", "value": "1"}, *env_of(cluster)]
            obj["spec"]["template"]["spec"]["containers"][0]["env"] = env
            cluster.modify(DEPLOYMENTS, NS, NAME, {"spec": {"template": obj["spec"]["template"]}})

    cluster.hooks.append(someone_else)
    async with background(controller.run):
        result, ctx = await run_handler("kubernetes.set_env", PARAMS, resources)
    assert result.outcome is Outcome.SUCCEEDED, result.message
    # the controller, rolling out the other change, may cause one more conflict: realistic
    *conflicts, second = patches(cluster)
    assert conflicts and {c.status for c in conflicts} == {409} and second.status == 200
    # decided again on what was re-read: CH_DATABASE is now entry 2, and FIRST stays
    assert second.body[1] == {
        "op": "add",
        "path": "/spec/template/spec/containers/0/env/2/value",
        "value": "torghut",
    }
    assert [v["name"] for v in env_of(cluster)] == [
        "FIRST",
        "PORT",
        "CH_DATABASE",
        "CH_PASSWORD",
        "LOG_LEVEL",
    ]
    assert env_of(cluster)[2] == {"name": "CH_DATABASE", "value": "torghut"}
    assert [step.name for step in ctx.timeline].count("conflict") == len(conflicts)


async def test_a_conflict_with_the_same_change_is_noop(cluster: Cluster, resources: Resources) -> None:
    settle(cluster)

    def someone_else(call: Call) -> None:
        if call.verb == "patch" and call.status == 0 and not patches(cluster):
            obj = current(cluster)
            obj["spec"]["template"]["spec"]["containers"][0]["env"][1]["value"] = "torghut"
            cluster.modify(DEPLOYMENTS, NS, NAME, {"spec": {"template": obj["spec"]["template"]}})

    cluster.hooks.append(someone_else)
    result, _ = await run_handler("kubernetes.set_env", PARAMS, resources)
    assert result.outcome is Outcome.NOOP, result.message
    assert [c.status for c in patches(cluster)] == [409]


async def test_endless_conflicts_give_up(cluster: Cluster, resources: Resources) -> None:
    settle(cluster)

    def always(call: Call) -> None:
        if call.verb == "patch":
            cluster.modify(DEPLOYMENTS, NS, NAME, {"metadata": {"labels": {"touched": "yes"}}})

    cluster.hooks.append(always)
    result, _ = await run_handler("kubernetes.set_env", PARAMS, resources)
    assert result.outcome is Outcome.FAILED
    assert result.retryable
    assert "changed under us 3 times" in result.message
    assert env_of(cluster) == ENV


async def test_a_rollout_that_never_completes_fails_at_the_timeout(
    cluster: Cluster, resources: Resources
) -> None:
    settle(cluster)  # no controller running: the new ReplicaSet never comes up
    result, _ = await run_handler("kubernetes.set_env", {**PARAMS, "verify_timeout": "300ms"}, resources)
    assert result.outcome is Outcome.FAILED
    assert result.retryable
    assert "set CH_DATABASE=torghut (was default), but the rollout did not complete within 0.3s" in (
        result.message
    )
    assert "observedGeneration" in result.message


CONTAINERS: list[dict[str, Any]] = [
    {"name": "jangar", "image": "jangar:1", "env": ENV},
    {"name": "proxy", "image": "envoy:1", "env": [{"name": "CH_DATABASE", "value": "other"}]},
]


async def test_several_containers_need_a_name(cluster: Cluster, resources: Resources) -> None:
    settle(cluster, containers=CONTAINERS)
    result, _ = await run_handler("kubernetes.set_env", PARAMS, resources)
    assert result.outcome is Outcome.FAILED
    assert "has 2 containers (jangar, proxy): name one with the `container` param" in result.message
    result, _ = await run_handler("kubernetes.set_env", {**PARAMS, "container": "sidecar"}, resources)
    assert result.outcome is Outcome.FAILED
    assert "has no container 'sidecar'; its containers: jangar, proxy" in result.message
    assert patches(cluster) == []


async def test_the_named_container_is_the_only_one_changed(cluster: Cluster, resources: Resources) -> None:
    controller = settle(cluster, containers=CONTAINERS)
    async with background(controller.run):
        result, _ = await run_handler("kubernetes.set_env", {**PARAMS, "container": "proxy"}, resources)
    assert result.outcome is Outcome.SUCCEEDED, result.message
    assert env_of(cluster, 0) == ENV
    assert env_of(cluster, 1) == [{"name": "CH_DATABASE", "value": "torghut"}]
    assert patches(cluster)[0].body[1]["path"] == "/spec/template/spec/containers/1/env/0/value"


async def test_dry_run_shows_the_exact_patch_and_sends_nothing(
    cluster: Cluster, resources: Resources
) -> None:
    settle(cluster)
    rv = current(cluster)["metadata"]["resourceVersion"]
    result, _ = await run_handler("kubernetes.set_env", PARAMS, resources, dry_run=True)
    assert result.outcome is Outcome.DRY_RUN, result.message
    assert "would set CH_DATABASE=torghut (was default) on container jangar" in result.message
    path = f"/apis/apps/v1/namespaces/{NS}/deployments/{NAME}"
    assert result.plan[0] == f"GET {path}"
    assert result.plan[1].startswith(
        f"PATCH {path} (application/json-patch+json) "
        f'[{{"op":"replace","path":"/metadata/resourceVersion","value":"{rv}"}},'
        '{"op":"add","path":"/spec/template/spec/containers/0/env/1/value","value":"torghut"}]'
    )
    assert result.details["patch"][1]["value"] == "torghut"
    assert {c.verb for c in cluster.calls} == {"get"}
    assert env_of(cluster) == ENV


def test_describe_gives_the_requests_without_io() -> None:
    spec = default_registry.get("kubernetes.set_env")
    assert spec is not None
    plan = spec.plan(spec.params.model_validate(PARAMS))
    assert plan[0] == f"GET /apis/apps/v1/namespaces/{NS}/deployments/{NAME}"
    assert "unless CH_DATABASE=torghut already" in plan[1]
    assert "the rule's verify_timeout" in plan[2]


@pytest.mark.parametrize(
    ("field", "bad", "says"),
    [
        ("namespace", "Jangar", "not a valid Kubernetes name"),
        ("deployment", "jangar/../x", "not a valid Kubernetes name"),
        ("container", "Jangar_1", "not a valid Kubernetes name"),
        ("env", {"CH-DATABASE": "x"}, "not a valid environment variable name"),
        ("env", {"1X": "x"}, "not a valid environment variable name"),
        ("env", {"CH_DATABASE": "torghut\nX=1"}, "control character"),
        ("env", {"CH_DATABASE": "tor\x1bghut"}, "control character"),
        ("env", {}, "at least 1 item"),
    ],
)
def test_params_are_validated(field: str, bad: Any, says: str) -> None:
    model = default_registry.get("kubernetes.set_env").params  # type: ignore[union-attr]
    with pytest.raises(ValidationError, match=says):
        model.model_validate({**PARAMS, field: bad})


RULES = b"""
rules:
  - name: jangar-ch-database
    matchers: ['alertname="JangarNoData"']
    handler: kubernetes.set_env
    target: deployment/jangar
    params:
      namespace: '{{ labels.namespace }}'
      deployment: '{{ labels.deployment }}'
      env: {CH_DATABASE: '{{ labels.database }}'}
"""


def _simulate(labels: dict[str, str]) -> dict[str, Any]:
    rules = parse_rules(RULES, "rules.yaml", default_registry)
    alert = {
        "status": "firing",
        "startsAt": "2024-01-01T00:00:00Z",
        "labels": {"alertname": "JangarNoData", **labels},
    }
    match: dict[str, Any] = simulate(rules, read_alerts(alert))[0]["matches"][0]
    return match


@pytest.mark.parametrize(
    ("labels", "says"),
    [
        (
            {"namespace": "jangar", "deployment": "Jangar;rm", "database": "torghut"},
            "not a valid Kubernetes name",
        ),
        ({"namespace": "../kube-system", "deployment": "jangar", "database": "torghut"}, "not a valid"),
        ({"namespace": "jangar", "deployment": "jangar", "database": "torghut\r\nX: 1"}, "control character"),
    ],
)
def test_hostile_labels_are_rejected_at_render(labels: dict[str, str], says: str) -> None:
    match = _simulate(labels)
    assert "plan" not in match
    assert match["error"].startswith("params for kubernetes.set_env: ")
    assert says in match["error"]


def test_a_label_value_is_data_in_the_plan() -> None:
    match = _simulate({"namespace": "jangar", "deployment": "jangar", "database": "torghut"})
    assert "unless CH_DATABASE=torghut already" in match["plan"][1]


def test_check_rejects_a_literal_bad_name() -> None:
    bad = RULES.replace(b"namespace: '{{ labels.namespace }}'", b"namespace: Jangar")
    with pytest.raises(RulesError, match="'Jangar' is not a valid Kubernetes name"):
        parse_rules(bad, "rules.yaml", default_registry)
