"""The fourth repair of the incident through the running app: the shipped rule
``jangar-ch-database`` on the example payload, ``kubernetes.set_env`` against the
Kubernetes emulator, the probe against a Jangar stand-in that reads its pods' env.

Changed from the shipped rule (and only this): the probe's URL points at the stand-in,
and the timings are short.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml

import handlers  # noqa: F401  (registers the built-in handlers)
from remediator.handling.registry import default_registry
from tests.conftest import MakeHarness
from tests.support.jangar import LABELS, NAME, NAMESPACE, Jangar, running_jangar
from tests.support.kube import (
    DEPLOYMENTS,
    PODS,
    REPLICASETS,
    REVISION,
    Cluster,
    DeploymentController,
    background,
    deployment,
    kube_env,
)
from tests.support.payloads import example
from tests.support.procs import ROOT

# The memory store and the gates on looptime's clock: their waits pass without real sleeps.
pytestmark = pytest.mark.looptime

RULE = "jangar-ch-database"
SHIPPED_URL = "http://jangar.{{ labels.namespace }}.svc.cluster.local/api/torghut/ta/latest?symbol=NVDA"


def shipped_rule(jangar: Jangar) -> str:
    document = yaml.safe_load((ROOT / "rules.yaml").read_text(encoding="utf-8"))
    (rule,) = [r for r in document["rules"] if r["name"] == RULE]
    assert rule["probe"]["url"] == SHIPPED_URL  # what is replaced below
    rule["probe"].update(url=jangar.url, interval="50ms", timeout="2s")
    rule["params"]["poll_interval"] = "50ms"
    rule.update(verify_timeout="10s", timeout="30s")
    return yaml.safe_dump({"rules": [rule]})


@pytest.fixture
async def cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Cluster]:
    async with kube_env(tmp_path, monkeypatch) as cluster:
        yield cluster


def jangar_deployment(database: str) -> dict[str, Any]:
    env = [{"name": "PORT", "value": "8080"}, {"name": "CH_DATABASE", "value": database}]
    containers = [{"name": NAME, "image": "jangar:1.4.2", "env": env}]
    return deployment(NAME, replicas=2, labels=LABELS, containers=containers)


def install(cluster: Cluster, database: str) -> DeploymentController:
    cluster.put(DEPLOYMENTS, NAMESPACE, jangar_deployment(database))
    controller = DeploymentController(cluster, NAMESPACE, NAME)
    for _ in range(controller.ready_after + 1):
        controller.step()
    return controller


def release(cluster: Cluster, controller: DeploymentController, database: str) -> None:
    """A new release of the pod template, rolled out completely."""
    template = jangar_deployment(database)["spec"]["template"]
    cluster.modify(DEPLOYMENTS, NAMESPACE, NAME, {"spec": {"template": template}})
    for _ in range(50):
        controller.step()


async def repair(
    harness: MakeHarness, cluster: Cluster, jangar: Jangar, controller: DeploymentController
) -> Any:
    h = await harness(shipped_rule(jangar), registry=default_registry)
    async with background(controller.run):
        event_id = await h.post_one(example("jangar-unknown-table-firing"))
        return await h.event(event_id, timeout=30)


async def test_the_shipped_rule_sets_ch_database_and_the_probe_proves_data(
    harness: MakeHarness, cluster: Cluster
) -> None:
    controller = install(cluster, "default")
    async with running_jangar(cluster) as jangar:
        event = await repair(harness, cluster, jangar, controller)
        assert event.outcome_label == "succeeded", event.message
        assert event.rule == RULE and event.target == "deployment/torghut/jangar"
        assert jangar.configured_database() == "torghut"
        assert set(jangar.ready_databases()) == {"torghut"}
        probes = [s for s in event.timeline if s.name == "probe"]
        first, last = probes[0], probes[-1]
        assert first.data["phase"] == "before" and not first.data["passed"]
        assert first.message.startswith("HTTP 500: ") and "(UNKNOWN_TABLE)" in first.message
        assert last.data == {"phase": "after", "passed": True, "status": 200}
        names = [s.name for s in event.timeline]
        assert names.index("probe") < names.index("handler.started") < names.index("handler.finished")
        assert names.index("handler.finished") < len(names) - names[::-1].index("probe") - 1
        assert event.message.endswith("; probe passes: HTTP 200")
        assert jangar.answers[-1] == ("torghut", 200)
        assert len(cluster.calls_to(DEPLOYMENTS, "patch")) == 1


async def test_a_release_undone_reuses_its_replica_set_and_the_rollout_completes(
    harness: MakeHarness, cluster: Cluster
) -> None:
    """torghut, then a release with default, then the rule sets torghut back: the pod template
    is the first one again, so its ReplicaSet is reused with the next revision (as Kubernetes
    does) and the rollout completes."""
    controller = install(cluster, "torghut")
    release(cluster, controller, "default")
    async with running_jangar(cluster) as jangar:
        assert set(jangar.ready_databases()) == {"default"}
        event = await repair(harness, cluster, jangar, controller)
        assert event.outcome_label == "succeeded", event.message
        assert set(jangar.ready_databases()) == {"torghut"}
    first = sorted(cluster.items(REPLICASETS, NAMESPACE), key=lambda rs: rs["metadata"]["name"])
    revisions = {rs["spec"]["template"]["spec"]["containers"][0]["env"][1]["value"]: rs for rs in first}
    assert revisions["torghut"]["metadata"]["annotations"][REVISION] == "3"
    dep = cluster.get(DEPLOYMENTS, NAMESPACE, NAME)
    assert dep is not None and dep["metadata"]["annotations"][REVISION] == "3"


async def test_a_jangar_that_answers_data_already_is_left_alone(
    harness: MakeHarness, cluster: Cluster
) -> None:
    controller = install(cluster, "torghut")
    async with running_jangar(cluster) as jangar:
        event = await repair(harness, cluster, jangar, controller)
    assert (event.outcome_label, event.message) == ("noop", "probe passes: HTTP 200")
    assert cluster.calls_to(DEPLOYMENTS, "patch") == [] and cluster.calls_to(DEPLOYMENTS) == []
    assert jangar.answers == [("torghut", 200)]


async def test_a_200_carrying_clickhouses_error_is_not_data(harness: MakeHarness, cluster: Cluster) -> None:
    """Jangar versions that wrap the error in a 200: the shipped probe's reject_body fails them."""

    def wrapped(database: str, symbol: str) -> tuple[int, str]:
        if database != "torghut":
            return 200, '{"ok": false, "error": "Code: 60. (UNKNOWN_TABLE)"}'
        return 200, '{"ok": true, "rows": [{"close": 138.31}]}'

    controller = install(cluster, "default")
    async with running_jangar(cluster, wrapped) as jangar:
        event = await repair(harness, cluster, jangar, controller)
    assert event.outcome_label == "succeeded", event.message
    (before, *_) = [s for s in event.timeline if s.name == "probe"]
    assert before.message.startswith("HTTP 200, the body contains /UNKNOWN_TABLE/: ")
    assert len(cluster.items(PODS, NAMESPACE, "app=jangar")) == 2
