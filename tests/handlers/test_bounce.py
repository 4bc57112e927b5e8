"""``kubernetes.bounce`` against kmock's emulator over HTTP, with the real kubernetes-asyncio
client.

The test plays the Deployment controller and the kubelet (``DeploymentController``):
pods follow ``spec.replicas``, deleted pods stay listed while they terminate, and
``status`` follows the pods. The shipped Role is enforced on every request.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus, unquote

import pytest
from pydantic import ValidationError

from handlers.bounce import ANNOTATION
from remediator import Outcome, Resources
from remediator.handling.registry import default_registry
from tests.support.kube import (
    DEPLOYMENTS,
    PODS,
    Call,
    Cluster,
    DeploymentController,
    Policy,
    app_resources,
    background,
    deployment,
    kube_env,
    run_handler,
)

NS, NAME = "torghut", "torghut-ws"
LABELS = {"app.kubernetes.io/name": "torghut-ws"}
SELECTOR = "app.kubernetes.io/name=torghut-ws"
PARAMS: dict[str, Any] = {"namespace": NS, "deployment": NAME, "poll_interval": "50ms"}


def settle(cluster: Cluster, replicas: int, **options: Any) -> DeploymentController:
    """A Deployment with ``replicas`` ready pods and a controller for it; another app beside."""
    cluster.put(DEPLOYMENTS, NS, deployment(NAME, replicas=replicas, labels=LABELS))
    cluster.put(
        PODS,
        NS,
        {
            "metadata": {"name": "torghut-api-1", "labels": {"app": "api"}},
            "spec": {"containers": [{"name": "api"}]},
        },
    )
    controller = DeploymentController(cluster, NS, NAME, **options)
    for _ in range(controller.ready_after + 1):
        controller.step()
    controller.max_pods = len(cluster.items(PODS, NS, SELECTOR))
    return controller


def current(cluster: Cluster) -> dict[str, Any]:
    obj = cluster.get(DEPLOYMENTS, NS, NAME)
    assert obj is not None
    return obj


def actions(calls: list[Call]) -> list[str]:
    """The call log with repeated polls folded: what the handler did, in order."""
    out: list[str] = []
    for call in calls:
        text = f"{call.verb} {call.plural}"
        if call.verb == "patch":
            text += f" {call.body}"
        if not out or out[-1] != text or call.verb == "patch":
            out.append(text)
    return out


def happy_path(replicas: int, resource_version: str) -> list[str]:
    return [
        "get deployments",
        "list pods",
        f"patch deployments {{'metadata': {{'resourceVersion': '{resource_version}', "
        f"'annotations': {{'{ANNOTATION}': '{replicas}'}}}}}}",
        "patch deployments {'spec': {'replicas': 0}}",
        "list pods",
        f"patch deployments {{'spec': {{'replicas': {replicas}}}}}",
        "get deployments",
        f"patch deployments {{'metadata': {{'annotations': {{'{ANNOTATION}': None}}}}}}",
    ]


@pytest.mark.parametrize("replicas", [1, 3])
async def test_bounce_scales_to_zero_waits_for_no_pod_and_back(
    cluster: Cluster, resources: Resources, replicas: int
) -> None:
    controller = settle(cluster, replicas)
    old_pods = set(controller.created)
    read_rv = current(cluster)["metadata"]["resourceVersion"]
    at_scale_up: list[tuple[int, int]] = []

    def snapshot(call: Call) -> None:
        if call.verb == "patch" and call.body == {"spec": {"replicas": replicas}}:
            at_scale_up.append((current(cluster)["spec"]["replicas"], len(cluster.items(PODS, NS, SELECTOR))))

    cluster.hooks.append(snapshot)
    async with background(controller.run):
        result, ctx = await run_handler("kubernetes.bounce", PARAMS, resources)

    assert result.outcome is Outcome.SUCCEEDED, result.message
    assert actions(cluster.calls) == happy_path(replicas, read_rv)
    assert [c.content_type for c in cluster.calls if c.verb == "patch"] == [
        "application/merge-patch+json"
    ] * 4
    assert {c.query.get("labelSelector") for c in cluster.calls if c.verb == "list"} == {SELECTOR}
    assert at_scale_up == [(0, 0)]  # 0 replicas and no pod left before scaling back up
    assert controller.max_pods == replicas  # never an extra copy, not even while terminating
    final = current(cluster)
    assert final["spec"]["replicas"] == replicas
    assert final["status"]["readyReplicas"] == replicas
    assert ANNOTATION not in (final["metadata"].get("annotations") or {})
    pods = {p["metadata"]["name"] for p in cluster.items(PODS, NS, SELECTOR)}
    assert len(pods) == replicas and not pods & old_pods  # all new pods
    assert cluster.get(PODS, NS, "torghut-api-1") is not None  # another app: untouched
    assert [s.name for s in ctx.timeline][:5] == [
        "kube.get",
        "kube.list",
        "observe",
        "kube.patch",
        "kube.patch",
    ]
    assert "no pod left" in [s.message for s in ctx.timeline]


async def test_crash_after_scale_to_zero_is_resumed_from_the_annotation(
    cluster: Cluster, resources: Resources, tmp_path: Path
) -> None:
    controller = settle(cluster, 1, terminate_after=10)
    scaled_to_zero = asyncio.Event()
    cluster.hooks.append(lambda call: call.body == {"spec": {"replicas": 0}} and scaled_to_zero.set())  # type: ignore[func-returns-value]
    async with background(controller.run):
        first = asyncio.create_task(run_handler("kubernetes.bounce", PARAMS, resources))
        await asyncio.wait_for(scaled_to_zero.wait(), 30)
        first.cancel()  # the worker dies right after scaling to 0
        with contextlib.suppress(asyncio.CancelledError):
            await first
        crashed = current(cluster)
        assert crashed["spec"]["replicas"] == 0
        assert crashed["metadata"]["annotations"][ANNOTATION] == "1"

        cluster.calls.clear()
        async with app_resources() as fresh:  # another replica of the service picks it up
            result, ctx = await run_handler("kubernetes.bounce", PARAMS, fresh)

    assert result.outcome is Outcome.SUCCEEDED, result.message
    assert result.details["replicas"] == 1
    recorded = [
        c
        for c in cluster.calls
        if c.verb == "patch" and ANNOTATION in (c.body.get("metadata") or {}).get("annotations", {})
    ]
    assert [c.body["metadata"]["annotations"][ANNOTATION] for c in recorded] == [None]
    assert "resume" in [s.name for s in ctx.timeline]
    final = current(cluster)
    assert final["spec"]["replicas"] == 1 and final["status"]["readyReplicas"] == 1
    assert ANNOTATION not in (final["metadata"].get("annotations") or {})
    assert controller.max_pods == 1


async def test_a_deployment_scaled_to_zero_is_left_alone(cluster: Cluster, resources: Resources) -> None:
    settle(cluster, 0)
    result, _ = await run_handler("kubernetes.bounce", PARAMS, resources)
    assert result.outcome is Outcome.NOOP
    assert "scaled to 0" in result.message
    assert [c.verb for c in cluster.calls] == ["get", "list"]


async def test_pods_that_never_go_keep_it_at_zero_with_the_annotation(
    cluster: Cluster, resources: Resources
) -> None:
    controller = settle(cluster, 1, terminate_after=10**9)  # stuck terminating (a finalizer)
    stuck = controller.created[0]
    async with background(controller.run):
        result, _ = await run_handler("kubernetes.bounce", {**PARAMS, "verify_timeout": "500ms"}, resources)
    assert result.outcome is Outcome.FAILED and result.retryable
    assert f"1 pod(s) of Deployment {NS}/{NAME} still exist 0.5s after scaling to 0" in (result.message)
    assert stuck in result.message
    assert f"left at 0 replicas with {ANNOTATION}=1" in result.message
    left = current(cluster)
    assert left["spec"]["replicas"] == 0
    assert left["metadata"]["annotations"][ANNOTATION] == "1"
    assert controller.max_pods == 1


async def test_not_ready_after_scale_up_fails_with_the_last_status(
    cluster: Cluster, resources: Resources
) -> None:
    controller = settle(cluster, 1)
    controller.ready_after = 10**9  # the new pod never becomes ready
    async with background(controller.run):
        result, _ = await run_handler("kubernetes.bounce", {**PARAMS, "verify_timeout": "500ms"}, resources)
    assert result.outcome is Outcome.FAILED and result.retryable
    assert "was scaled back to 1 but is not ready after 0.5s" in result.message
    assert "readyReplicas 0" in result.message
    assert current(cluster)["metadata"]["annotations"][ANNOTATION] == "1"


async def test_conflict_on_the_guarded_record_rereads(cluster: Cluster, resources: Resources) -> None:
    controller = settle(cluster, 1)
    touched: list[bool] = []

    def hpa_touches_it(call: Call) -> None:
        if call.verb == "patch" and not touched:
            touched.append(True)
            cluster.modify(DEPLOYMENTS, NS, NAME, {"metadata": {"labels": {"touched": "yes"}}})

    cluster.hooks.append(hpa_touches_it)
    async with background(controller.run):
        result, ctx = await run_handler("kubernetes.bounce", PARAMS, resources)
    assert result.outcome is Outcome.SUCCEEDED, result.message
    patches = [c for c in cluster.calls if c.verb == "patch"]
    assert [c.status for c in patches[:2]] == [409, 200]
    assert patches[0].body["metadata"]["annotations"] == patches[1].body["metadata"]["annotations"]
    assert "conflict" in [s.name for s in ctx.timeline]


async def test_not_found(cluster: Cluster, resources: Resources) -> None:
    result, _ = await run_handler("kubernetes.bounce", {**PARAMS, "deployment": "nope"}, resources)
    assert result.outcome is Outcome.FAILED
    assert result.message == "Deployment torghut/nope not found"


async def test_forbidden_list_fails_before_any_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, resources: Resources
) -> None:
    policy = Policy.shipped().without("list", "", "pods")
    async with kube_env(tmp_path, monkeypatch, policy=policy) as cluster:
        before = settle(cluster, 1) and current(cluster)
        result, _ = await run_handler("kubernetes.bounce", PARAMS, resources)
    assert result.outcome is Outcome.FAILED
    assert result.message.startswith("forbidden: the service account may not list pods in namespace torghut")
    assert result.details["missing_permission"] == {"verb": "list", "resource": "pods", "namespace": NS}
    assert [c.verb for c in cluster.calls] == ["get", "list"]
    assert current(cluster) == before


async def test_forbidden_patch_names_deployments_apps(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, resources: Resources
) -> None:
    policy = Policy.shipped().without("patch", "apps", "deployments")
    async with kube_env(tmp_path, monkeypatch, policy=policy) as cluster:
        settle(cluster, 1)
        result, _ = await run_handler("kubernetes.bounce", PARAMS, resources)
    assert "may not patch deployments.apps in namespace torghut" in result.message
    assert ANNOTATION not in (current(cluster)["metadata"].get("annotations") or {})


async def test_an_invalid_annotation_is_reported(cluster: Cluster, resources: Resources) -> None:
    settle(cluster, 1)
    cluster.modify(DEPLOYMENTS, NS, NAME, {"metadata": {"annotations": {ANNOTATION: "lots"}}})
    result, _ = await run_handler("kubernetes.bounce", PARAMS, resources)
    assert result.outcome is Outcome.FAILED
    assert f"annotation {ANNOTATION}='lots' is not a replica count" in result.message
    assert all(c.verb != "patch" for c in cluster.calls)


async def test_dry_run_reads_only_and_lists_the_exact_requests(
    cluster: Cluster, resources: Resources
) -> None:
    settle(cluster, 2)
    before = current(cluster)
    rv = before["metadata"]["resourceVersion"]
    result, _ = await run_handler("kubernetes.bounce", PARAMS, resources, dry_run=True)
    assert result.outcome is Outcome.DRY_RUN
    dep = f"/apis/apps/v1/namespaces/{NS}/deployments/{NAME}"
    pods = f"/api/v1/namespaces/{NS}/pods?labelSelector={quote_plus(SELECTOR)}"
    merge = "(application/merge-patch+json)"
    assert result.plan == [
        f"GET {dep}",
        f"GET {pods}",
        f'PATCH {dep} {merge} {{"metadata":{{"resourceVersion":"{rv}","annotations":'
        f'{{"{ANNOTATION}":"2"}}}}}}',
        f'PATCH {dep} {merge} {{"spec":{{"replicas":0}}}}',
        f"poll GET {pods} every 0.05s until no pod is left, for up to 30s",
        f'PATCH {dep} {merge} {{"spec":{{"replicas":2}}}}',
        f"poll GET {dep} every 0.05s until status.readyReplicas == status.replicas == 2 and "
        "observedGeneration is current, for up to 30s",
        f'PATCH {dep} {merge} {{"metadata":{{"annotations":{{"{ANNOTATION}":null}}}}}}',
    ]
    assert {c.verb for c in cluster.calls} == {"get", "list"}
    # exactly what was sent (yarl may normalise the percent-encoding of the query)
    assert [unquote(c.raw) for c in cluster.calls] == [unquote(line) for line in result.plan[:2]]
    assert current(cluster) == before


def test_describe_gives_the_requests_without_io() -> None:
    spec = default_registry.get("kubernetes.bounce")
    assert spec is not None
    plan = spec.plan(spec.params.model_validate({"namespace": NS, "deployment": NAME}))
    assert plan[0] == f"GET /apis/apps/v1/namespaces/{NS}/deployments/{NAME}"
    assert "(skipped when the annotation is already there: resume with its count)" in plan[2]
    assert plan[3].endswith('{"spec":{"replicas":0}}')
    assert len(plan) == 8


@pytest.mark.parametrize("bad", ["Torghut-WS", "ws/x", "ws_1", "-ws", "", "w" * 254])
def test_names_are_validated_in_the_params(bad: str) -> None:
    model = default_registry.get("kubernetes.bounce").params  # type: ignore[union-attr]
    with pytest.raises(ValidationError, match="not a valid Kubernetes name"):
        model.model_validate({"namespace": NS, "deployment": bad})
    with pytest.raises(ValidationError, match="not a valid Kubernetes name"):
        model.model_validate({"namespace": bad or "a.b", "deployment": NAME})
    assert model.model_validate({"namespace": NS, "deployment": "torghut-ws.v2"})
