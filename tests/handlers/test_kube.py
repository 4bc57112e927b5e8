"""``handlers/kube.py``: names, requests, the app-owned client, error mapping, timeouts;
and the emulator's API semantics the handler tests rely on."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from kubernetes_asyncio import client

from handlers.kube import RESOURCE_KEY, ApiRequest, api_client, dns1123_label, selector_string
from remediator import Outcome, Resources
from remediator.handling.execution import execute
from remediator.handling.registry import default_registry
from tests.support.handlers import make_context
from tests.support.kube import (
    FLINK,
    ApiAnswer,
    Call,
    Cluster,
    app_resources,
    flink_deployment,
    kube_env,
    merge_patch,
    run_handler,
    selector_matches,
)
from tests.support.procs import free_port

NS, NAME = "torghut", "torghut-ta"
PARAMS = {"namespace": NS, "name": NAME, "poll_interval": "50ms"}


@pytest.fixture
async def cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Cluster]:
    async with kube_env(tmp_path, monkeypatch) as cluster:
        cluster.put(FLINK, NS, flink_deployment(NAME, job="RUNNING", lifecycle="STABLE"))
        yield cluster


@pytest.mark.parametrize("good", ["torghut", "a", "torghut-ws-2", "0abc", "a" * 63])
def test_dns1123_label_accepts(good: str) -> None:
    assert dns1123_label(good) == good


@pytest.mark.parametrize("bad", ["", "A", "a_b", "a.b", "-a", "a-", "a" * 64, "a b", "ä"])
def test_dns1123_label_rejects(bad: str) -> None:
    with pytest.raises(ValueError, match="not a valid Kubernetes name"):
        dns1123_label(bad)


def test_selector_string_covers_labels_and_expressions() -> None:
    expressions = [
        client.V1LabelSelectorRequirement(key="tier", operator="In", values=["a", "b"]),
        client.V1LabelSelectorRequirement(key="canary", operator="DoesNotExist"),
        client.V1LabelSelectorRequirement(key="zone", operator="NotIn", values=["x"]),
        client.V1LabelSelectorRequirement(key="owner", operator="Exists"),
    ]
    text = selector_string({"app": "ws", "release": "r1"}, expressions)
    assert text == "app=ws,release=r1,tier in (a,b),!canary,zone notin (x),owner"
    assert selector_matches(text, {"app": "ws", "release": "r1", "tier": "b", "owner": "me"})
    assert not selector_matches(
        text, {"app": "ws", "release": "r1", "tier": "b", "owner": "me", "canary": "1"}
    )
    assert not selector_matches(text, {"app": "ws", "release": "r1", "tier": "c", "owner": "me"})


def test_requests_render_exactly() -> None:
    get = ApiRequest(
        verb="get",
        group="apps",
        version="v1",
        plural="deployments",
        kind="Deployment",
        namespace="torghut",
        name="ws",
    )
    assert str(get) == "GET /apis/apps/v1/namespaces/torghut/deployments/ws"
    assert str(get.with_body({"spec": {"replicas": 0}})) == (
        "PATCH /apis/apps/v1/namespaces/torghut/deployments/ws "
        '(application/merge-patch+json) {"spec":{"replicas":0}}'
    )
    pods = ApiRequest(
        verb="list",
        group="",
        version="v1",
        plural="pods",
        kind="Pod",
        namespace="torghut",
        label_selector="app=ws",
    )
    assert str(pods) == "GET /api/v1/namespaces/torghut/pods?labelSelector=app%3Dws"
    assert (pods.resource, get.resource) == ("pods", "deployments.apps")


async def test_the_client_is_owned_by_the_app_and_closed_at_shutdown(cluster: Cluster) -> None:
    resources = app_resources()
    async with resources as owner:
        ctx = make_context(owner)
        first = await api_client(ctx)
        assert await api_client(ctx) is first
        result, _ = await run_handler("flink.restart", PARAMS, owner)
        assert result.outcome is Outcome.NOOP
        assert await api_client(ctx) is first  # handlers borrow it; they do not close it
        session = first.rest_client.pool_manager
        assert not session.closed
    assert session.closed  # the app closed it at shutdown
    assert RESOURCE_KEY not in owner._items


async def test_without_any_configuration_the_reason_is_clear(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, resources: Resources
) -> None:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing"))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    result, _ = await run_handler("flink.restart", PARAMS, resources)
    assert result.outcome is Outcome.FAILED and not result.retryable
    assert result.message.startswith("no Kubernetes API configuration: not running in a cluster")
    assert str(tmp_path / "missing") in result.message
    # issue 25 (item 12): one message that says what is missing, no contradiction after it
    assert "there is no kubeconfig file at" in result.message and "Invalid kube-config" not in result.message


async def test_an_unreachable_api_is_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, resources: Resources
) -> None:
    from tests.support.kube import write_kubeconfig

    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    result, _ = await run_handler("flink.restart", PARAMS, resources)
    assert result.outcome is Outcome.FAILED and result.retryable
    assert "cannot reach the Kubernetes API" in result.message


async def test_every_call_has_a_timeout(cluster: Cluster, resources: Resources) -> None:
    async def slow_api(call: Call) -> None:
        await asyncio.sleep(3.0)

    cluster.hooks.append(slow_api)
    spec = default_registry.get("flink.restart")
    assert spec is not None
    ctx = make_context(resources, deadline=0.8)  # the handler's deadline bounds each call
    started = time.monotonic()
    result = await execute(spec, spec.params.model_validate(PARAMS), ctx, timeout=10)
    assert time.monotonic() - started < 2.5  # not the 3s the server takes
    assert result.outcome is Outcome.FAILED and result.retryable
    assert "no answer from the Kubernetes API within" in result.message


@pytest.mark.parametrize(("code", "retryable"), [(503, True), (429, True), (401, False), (422, False)])
async def test_api_errors_become_clear_outcomes(
    cluster: Cluster, resources: Resources, code: int, retryable: bool
) -> None:
    def fail(call: Call) -> None:
        raise ApiAnswer(code, "Whatever", f"the server says {code}")

    cluster.hooks.append(fail)
    result, _ = await run_handler("flink.restart", PARAMS, resources)
    assert result.outcome is Outcome.FAILED
    assert result.retryable is retryable
    assert f"the server says {code}" in result.message
    assert result.details["status"] == code


# ---- the emulator's semantics (what the handler tests rely on) ---------------------------


def test_merge_patch_follows_rfc_7386() -> None:
    target = {"a": "b", "c": {"d": "e", "f": "g"}, "l": [1, 2]}
    patch = {"a": "z", "c": {"f": None}, "l": [3], "n": {"x": 1}}
    assert merge_patch(target, patch) == {"a": "z", "c": {"d": "e"}, "l": [3], "n": {"x": 1}}


async def test_the_clients_default_patch_type_is_not_a_merge_patch(
    cluster: Cluster, resources: Resources
) -> None:
    """Why the handlers force application/merge-patch+json: for a dict body the client
    sends JSON Patch to custom objects, which the API server rejects."""
    api = client.CustomObjectsApi(await api_client(make_context(resources)))
    with pytest.raises(client.ApiException) as caught:
        await api.patch_namespaced_custom_object(
            "flink.apache.org",
            "v1beta1",
            NS,
            "flinkdeployments",
            NAME,
            {"spec": {"restartNonce": 9}},
            _request_timeout=5,
        )
    assert caught.value.status == 400
    assert cluster.calls[-1].content_type == "application/json-patch+json"
    assert cluster.get(FLINK, NS, NAME)["spec"].get("restartNonce") is None  # type: ignore[index]


async def test_a_stale_resource_version_conflicts(cluster: Cluster, resources: Resources) -> None:
    api = client.CustomObjectsApi(await api_client(make_context(resources)))
    stale = cluster.get(FLINK, NS, NAME)["metadata"]["resourceVersion"]  # type: ignore[index]
    cluster.modify(FLINK, NS, NAME, {"status": {"error": "x"}})
    with pytest.raises(client.ApiException) as caught:
        await api.patch_namespaced_custom_object(
            "flink.apache.org",
            "v1beta1",
            NS,
            "flinkdeployments",
            NAME,
            {"metadata": {"resourceVersion": stale}, "spec": {"restartNonce": 1}},
            # the .pyi stubs omit _content_type although the runtime accepts it
            _content_type="application/merge-patch+json",
            _request_timeout=5,
        )  # type: ignore[call-arg]
    assert caught.value.status == 409
    assert "the object has been modified" in caught.value.body  # type: ignore[operator]
