"""``flink.restart`` against kmock's emulator over HTTP, with the real kubernetes-asyncio client.

The test plays the Flink operator (``FlinkOperator``): it walks the status after a
restartNonce change. The shipped Role is enforced on every request.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from remediator import Outcome, Resources
from remediator.cli.main import read_alerts, simulate
from remediator.errors import RulesError
from remediator.handling.registry import default_registry
from remediator.rules.ruleset import parse_rules
from tests.support.kube import (
    FLINK,
    Call,
    Cluster,
    FlinkOperator,
    Policy,
    background,
    flink_deployment,
    kube_env,
    run_handler,
)

NS, NAME = "torghut", "torghut-ta"
PARAMS: dict[str, Any] = {"namespace": NS, "name": NAME, "poll_interval": "50ms"}


def nonce(cluster: Cluster) -> Any:
    obj = cluster.get(FLINK, NS, NAME)
    assert obj is not None
    return obj["spec"].get("restartNonce")


def step_names(timeline: Any) -> list[str]:
    return [step.name for step in timeline]


async def test_failed_job_is_restarted_once_and_verified(cluster: Cluster, resources: Resources) -> None:
    read = cluster.put(
        FLINK,
        NS,
        flink_deployment(NAME, job="FAILED", lifecycle="FAILED", nonce=3, error="ClickHouse is readonly"),
    )
    operator = FlinkOperator(cluster, NS, NAME)
    async with background(operator.run):
        result, ctx = await run_handler("flink.restart", PARAMS, resources)

    assert result.outcome is Outcome.SUCCEEDED, result.message
    assert "restartNonce 4" in result.message
    assert nonce(cluster) == 4
    assert operator.restarts == 1
    patches = cluster.calls_to(FLINK, "patch")
    assert len(patches) == 1
    assert patches[0].content_type == "application/merge-patch+json"
    assert patches[0].body == {
        "metadata": {"resourceVersion": read["metadata"]["resourceVersion"]},
        "spec": {"restartNonce": 4},
    }
    assert cluster.get(FLINK, NS, NAME)["status"]["lifecycleState"] == "STABLE"  # type: ignore[index]
    # the timeline shows the order: read, decide, write, then verify by polling
    names = step_names(ctx.timeline)
    assert names[:4] == ["kube.get", "observe", "kube.patch", "verify"]
    assert ctx.timeline[-1].message == "job RUNNING, lifecycle STABLE"
    assert [c.verb for c in cluster.calls][:2] == ["get", "patch"]


def observed(ctx: Any, name: str) -> list[str]:
    return [step.message for step in ctx.timeline if step.name == name]


async def test_verify_waits_for_the_jobmanager_to_be_ready(cluster: Cluster, resources: Resources) -> None:
    """Job RUNNING and STABLE, but the JobManager deployment not READY: not recovered yet."""
    cluster.put(FLINK, NS, flink_deployment(NAME, job="FAILED", lifecycle="FAILED", nonce=3))
    # The walk ends at tick 5. DEPLOYING lasts one tick: 150 ms, three of the handler's
    # 50 ms polls, so a loaded machine does not make it miss that state.
    operator = FlinkOperator(cluster, NS, NAME, jobmanager_ready_after=12, tick=0.15)
    async with background(operator.run):
        result, ctx = await run_handler("flink.restart", PARAMS, resources)

    assert result.outcome is Outcome.SUCCEEDED, result.message
    assert "JobManager READY, TaskManagers 1/1 ready" in result.message
    assert result.details["jobmanager_deployment_status"] == "READY"
    assert result.details["jobmanager_ready"] is True and result.details["taskmanagers_up"] is True
    steps = [(s.name, s.message) for s in ctx.timeline]
    stable = steps.index(("observe", "job RUNNING, lifecycle STABLE"))
    waited = steps.index(("observe.cluster", "JobManager DEPLOYED_NOT_READY; TaskManagers 1/1 ready"))
    ready = steps.index(("observe.cluster", "JobManager READY; TaskManagers 1/1 ready"))
    assert waited < stable < ready == len(steps) - 1  # it kept polling after RUNNING/STABLE
    assert "JobManager DEPLOYING; TaskManagers 0/1 ready" in observed(ctx, "observe.cluster")


async def test_verify_waits_for_the_taskmanagers_then_succeeds(
    cluster: Cluster, resources: Resources
) -> None:
    cluster.put(FLINK, NS, flink_deployment(NAME, job="FAILED", lifecycle="FAILED", nonce=3))
    operator = FlinkOperator(cluster, NS, NAME, taskmanagers=2, taskmanagers_ready_after=10)
    async with background(operator.run):
        result, ctx = await run_handler("flink.restart", PARAMS, resources)

    assert result.outcome is Outcome.SUCCEEDED, result.message
    assert "TaskManagers 2/2 ready" in result.message
    assert result.details["taskmanagers_expected"] == 2
    assert result.details["taskmanagers_ready"] == 2
    assert result.details["taskmanager_selector"] == f"component=taskmanager,app={NAME}"
    seen = observed(ctx, "observe.cluster")
    assert "JobManager READY; TaskManagers 0/2 ready" in seen
    assert seen[-1] == "JobManager READY; TaskManagers 2/2 ready"
    steps = [(s.name, s.message) for s in ctx.timeline]
    assert steps.index(("observe", "job RUNNING, lifecycle STABLE")) < len(steps) - 1
    # the TaskManager pods are found by the operator's selector; the list is recorded once
    lists = [s.message for s in ctx.timeline if s.name == "kube.list"]
    assert lists == [f"GET /api/v1/namespaces/{NS}/pods?labelSelector=component%3Dtaskmanager%2Capp%3D{NAME}"]
    assert len([c for c in cluster.calls if c.verb == "list"]) > 1
    assert {c.query.get("labelSelector") for c in cluster.calls if c.verb == "list"} == {
        f"component=taskmanager,app={NAME}"
    }


@pytest.mark.parametrize(
    ("operator_args", "missing", "details"),
    [
        (
            {"jobmanager_ready_after": None},
            "JobManager deployment READY (saw DEPLOYED_NOT_READY)",
            {"jobmanager_ready": False, "taskmanagers_up": True},
        ),
        (
            {"taskmanagers_ready_after": None},
            "TaskManagers up (saw 0/1 ready)",
            {"jobmanager_ready": True, "taskmanagers_up": False, "taskmanagers_ready": 0},
        ),
    ],
)
async def test_timeout_names_the_condition_that_was_missing(
    cluster: Cluster,
    resources: Resources,
    operator_args: dict[str, Any],
    missing: str,
    details: dict[str, Any],
) -> None:
    cluster.put(FLINK, NS, flink_deployment(NAME, job="FAILED", lifecycle="FAILED", nonce=3))
    operator = FlinkOperator(cluster, NS, NAME, **operator_args)
    async with background(operator.run):
        result, _ = await run_handler("flink.restart", {**PARAMS, "verify_timeout": "0.8s"}, resources)

    assert result.outcome is Outcome.FAILED
    assert result.retryable
    assert "last status job RUNNING, lifecycle STABLE" in result.message  # the job itself looks fine
    assert result.message.endswith(f"still missing: {missing}")
    assert result.details["missing"] == [missing]
    assert details.items() <= result.details.items()


async def test_timeout_without_taskmanager_status_says_so(cluster: Cluster, resources: Resources) -> None:
    """An operator that reports no status.taskManager: never taken as TaskManagers up."""
    cluster.put(FLINK, NS, flink_deployment(NAME, job="FAILED", lifecycle="FAILED", nonce=3))
    operator = FlinkOperator(cluster, NS, NAME, taskmanagers=0)
    async with background(operator.run):
        result, ctx = await run_handler("flink.restart", {**PARAMS, "verify_timeout": "0.6s"}, resources)
    assert result.outcome is Outcome.FAILED
    assert result.message.endswith("still missing: TaskManagers up (status.taskManager not reported)")
    assert observed(ctx, "observe.cluster")[-1] == (
        "JobManager READY; TaskManagers not reported (status.taskManager empty)"
    )
    assert [c for c in cluster.calls if c.verb == "list"] == []  # no selector: nothing to list


async def test_missing_nonce_counts_from_zero(cluster: Cluster, resources: Resources) -> None:
    cluster.put(FLINK, NS, flink_deployment(NAME, job="RUNNING", lifecycle="FAILED"))
    async with background(FlinkOperator(cluster, NS, NAME).run):
        result, _ = await run_handler("flink.restart", PARAMS, resources)
    assert result.outcome is Outcome.SUCCEEDED, result.message
    assert nonce(cluster) == 1


@pytest.mark.parametrize("state", ["RESTARTING", "FAILING", "RECONCILING", "INITIALIZING", "CREATED"])
async def test_transient_state_is_left_untouched(cluster: Cluster, resources: Resources, state: str) -> None:
    before = cluster.put(FLINK, NS, flink_deployment(NAME, job=state, lifecycle="FAILED", nonce=7))
    result, _ = await run_handler("flink.restart", PARAMS, resources)
    assert result.outcome is Outcome.NOOP
    assert state in result.message and "transient" in result.message
    assert cluster.calls_to(FLINK, "patch") == []
    assert cluster.get(FLINK, NS, NAME) == before


async def test_healthy_job_is_noop(cluster: Cluster, resources: Resources) -> None:
    cluster.put(FLINK, NS, flink_deployment(NAME, job="RUNNING", lifecycle="STABLE", nonce=1))
    result, _ = await run_handler("flink.restart", PARAMS, resources)
    assert result.outcome is Outcome.NOOP
    assert "healthy" in result.message
    assert [c.verb for c in cluster.calls] == ["get"]


async def test_restart_when_is_configurable(cluster: Cluster, resources: Resources) -> None:
    cluster.put(FLINK, NS, flink_deployment(NAME, job="CANCELED", lifecycle="FAILED", nonce=2))
    only_job = {**PARAMS, "restart_when": {"job": ["FAILED"], "lifecycle": []}}
    result, _ = await run_handler("flink.restart", only_job, resources)
    assert result.outcome is Outcome.NOOP
    assert "not a restart condition" in result.message
    assert nonce(cluster) == 2

    model = default_registry.get("flink.restart").params  # type: ignore[union-attr]
    with pytest.raises(ValidationError, match="RUNING"):
        model.model_validate({**PARAMS, "restart_when": {"job": ["RUNING"]}})
    with pytest.raises(ValidationError, match="RESTARTING: transient"):
        model.model_validate({**PARAMS, "restart_when": {"job": ["FAILED", "RESTARTING"]}})
    with pytest.raises(ValidationError, match="UPGRADING: transient"):
        model.model_validate({**PARAMS, "restart_when": {"lifecycle": ["UPGRADING"]}})


async def test_conflict_during_the_patch_rereads_and_bumps_once(
    cluster: Cluster, resources: Resources
) -> None:
    read = cluster.put(FLINK, NS, flink_deployment(NAME, job="FAILED", lifecycle="FAILED", nonce=3))
    written: list[str] = []

    def operator_writes_status_first(call: Call) -> None:
        if call.verb == "patch" and not written:  # a concurrent status update wins the race
            changed = cluster.modify(FLINK, NS, NAME, {"status": {"error": "still failing"}})
            written.append(changed["metadata"]["resourceVersion"])

    cluster.hooks.append(operator_writes_status_first)
    async with background(FlinkOperator(cluster, NS, NAME).run):
        result, ctx = await run_handler("flink.restart", PARAMS, resources)

    assert result.outcome is Outcome.SUCCEEDED, result.message
    patches = cluster.calls_to(FLINK, "patch")
    assert [p.status for p in patches] == [409, 200]
    assert patches[0].body["metadata"]["resourceVersion"] == read["metadata"]["resourceVersion"]
    assert patches[1].body == {"metadata": {"resourceVersion": written[0]}, "spec": {"restartNonce": 4}}
    assert nonce(cluster) == 4  # bumped once, not twice
    assert "conflict" in step_names(ctx.timeline)


async def test_conflict_with_a_concurrent_restart_is_noop(cluster: Cluster, resources: Resources) -> None:
    cluster.put(FLINK, NS, flink_deployment(NAME, job="FAILED", lifecycle="FAILED", nonce=3))

    def someone_restarts_it(call: Call) -> None:
        if call.verb == "patch" and nonce(cluster) == 3:
            cluster.modify(
                FLINK,
                NS,
                NAME,
                {
                    "spec": {"restartNonce": 4},
                    "status": {"jobStatus": {"state": "RECONCILING"}, "lifecycleState": "UPGRADING"},
                },
            )

    cluster.hooks.append(someone_restarts_it)
    result, _ = await run_handler("flink.restart", PARAMS, resources)
    assert result.outcome is Outcome.NOOP
    assert "RECONCILING" in result.message
    assert [p.status for p in cluster.calls_to(FLINK, "patch")] == [409]
    assert nonce(cluster) == 4


async def test_endless_conflicts_give_up(cluster: Cluster, resources: Resources) -> None:
    cluster.put(FLINK, NS, flink_deployment(NAME, job="FAILED", lifecycle="FAILED", nonce=3))
    cluster.hooks.append(
        lambda call: (
            call.verb == "patch"
            and cluster.modify(
                FLINK, NS, NAME, {"metadata": {"labels": {"touched": str(time.monotonic_ns())}}}
            )
        )
    )
    result, _ = await run_handler("flink.restart", PARAMS, resources)
    assert result.outcome is Outcome.FAILED
    assert result.retryable
    assert "409 Conflict on every guarded patch" in result.message
    assert [p.status for p in cluster.calls_to(FLINK, "patch")] == [409, 409, 409]
    assert nonce(cluster) == 3


async def test_never_recovers_fails_at_the_timeout_with_its_last_status(
    cluster: Cluster, resources: Resources
) -> None:
    cluster.put(FLINK, NS, flink_deployment(NAME, job="FAILED", lifecycle="FAILED", nonce=3))
    error = "java.lang.RuntimeException: replica torghut.ta_bars is readonly"
    operator = FlinkOperator(
        cluster,
        NS,
        NAME,
        after_restart=[("RECONCILING", "UPGRADING"), ("RESTARTING", "DEPLOYED"), ("FAILED", "FAILED", error)],
    )
    started = time.monotonic()
    async with background(operator.run):
        result, ctx = await run_handler("flink.restart", {**PARAMS, "verify_timeout": "1s"}, resources)
    assert time.monotonic() - started >= 1.0
    assert result.outcome is Outcome.FAILED
    assert "did not recover within 1s" in result.message
    assert "last status job FAILED, lifecycle FAILED" in result.message
    assert error in result.message
    assert result.details["error"] == error
    assert nonce(cluster) == 4  # restarted once, then reported; no restart loop
    observed = [s.message for s in ctx.timeline if s.name == "observe"]
    assert observed[-1] == f"job FAILED, lifecycle FAILED; error: {error}"
    assert len(observed) >= 3  # before, while polling, and each change seen (not every poll)


async def test_verify_timeout_defaults_to_the_rules(cluster: Cluster, resources: Resources) -> None:
    cluster.put(FLINK, NS, flink_deployment(NAME, job="FAILED", lifecycle="FAILED", nonce=0))
    result, _ = await run_handler("flink.restart", PARAMS, resources, verify_timeout=0.3)
    assert result.outcome is Outcome.FAILED
    assert "did not recover within 0.3s" in result.message


async def test_not_found(cluster: Cluster, resources: Resources) -> None:
    result, _ = await run_handler("flink.restart", {**PARAMS, "name": "x"}, resources)
    assert result.outcome is Outcome.FAILED
    assert result.message == "FlinkDeployment torghut/x not found"
    assert not result.retryable
    assert [c.status for c in cluster.calls] == [404]


async def test_forbidden_patch_names_the_missing_permission(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, resources: Resources
) -> None:
    policy = Policy.shipped().without("patch", "flink.apache.org", "flinkdeployments")
    async with kube_env(tmp_path, monkeypatch, policy=policy) as cluster:
        before = cluster.put(FLINK, NS, flink_deployment(NAME, job="FAILED", lifecycle="FAILED"))
        result, _ = await run_handler("flink.restart", PARAMS, resources)
    assert result.outcome is Outcome.FAILED
    assert not result.retryable
    assert result.message.startswith(
        "forbidden: the service account may not patch flinkdeployments.flink.apache.org in namespace torghut"
    )
    assert 'cannot patch resource "flinkdeployments"' in result.message  # the server's words
    assert result.details["missing_permission"] == {
        "verb": "patch",
        "resource": "flinkdeployments.flink.apache.org",
        "namespace": NS,
    }
    assert cluster.get(FLINK, NS, NAME) == before


async def test_forbidden_in_a_namespace_the_role_does_not_cover(
    cluster: Cluster, resources: Resources
) -> None:
    result, _ = await run_handler("flink.restart", {**PARAMS, "namespace": "payments"}, resources)
    assert result.outcome is Outcome.FAILED
    assert "may not get flinkdeployments.flink.apache.org in namespace payments" in result.message


async def test_dry_run_reads_only_and_lists_the_exact_requests(
    cluster: Cluster, resources: Resources
) -> None:
    before = cluster.put(FLINK, NS, flink_deployment(NAME, job="FAILED", lifecycle="FAILED", nonce=3))
    rv = before["metadata"]["resourceVersion"]
    result, _ = await run_handler("flink.restart", PARAMS, resources, dry_run=True)
    assert result.outcome is Outcome.DRY_RUN
    assert "would bump restartNonce 3 -> 4" in result.message
    path = f"/apis/flink.apache.org/v1beta1/namespaces/{NS}/flinkdeployments/{NAME}"
    assert result.plan[0] == f"GET {path}"
    assert result.plan[1].startswith(
        f"PATCH {path} (application/merge-patch+json) "
        f'{{"metadata":{{"resourceVersion":"{rv}"}},"spec":{{"restartNonce":4}}}}'
    )
    assert result.plan[2].startswith(f"poll GET {path} every 0.05s until")
    assert {c.verb for c in cluster.calls} == {"get"}
    assert cluster.get(FLINK, NS, NAME) == before


async def test_dry_run_of_a_healthy_job_is_noop(cluster: Cluster, resources: Resources) -> None:
    cluster.put(FLINK, NS, flink_deployment(NAME, job="RUNNING", lifecycle="STABLE"))
    result, _ = await run_handler("flink.restart", PARAMS, resources, dry_run=True)
    assert result.outcome is Outcome.NOOP


def test_describe_gives_the_requests_without_io() -> None:
    spec = default_registry.get("flink.restart")
    assert spec is not None
    plan = spec.plan(spec.params.model_validate({"namespace": NS, "name": NAME}))
    path = f"/apis/flink.apache.org/v1beta1/namespaces/{NS}/flinkdeployments/{NAME}"
    assert plan[0] == f"GET {path}"
    assert "only if status.jobStatus.state == FAILED or status.lifecycleState == FAILED" in plan[1]
    assert f"PATCH {path} (application/merge-patch+json)" in plan[1]
    assert "the rule's verify_timeout" in plan[2]


BAD_NAMES = ["Torghut-TA", "torghut/ta", "../ta", "ta_1", "-ta", "ta-", "", "t" * 64, "ta.x"]


@pytest.mark.parametrize("bad", BAD_NAMES)
def test_names_are_validated_in_the_params(bad: str) -> None:
    model = default_registry.get("flink.restart").params  # type: ignore[union-attr]
    with pytest.raises(ValidationError, match="not a valid Kubernetes name"):
        model.model_validate({"namespace": NS, "name": bad})
    with pytest.raises(ValidationError, match="not a valid Kubernetes name"):
        model.model_validate({"namespace": bad, "name": NAME})


RULES = b"""
rules:
  - name: flink-ta-failed
    matchers: ['alertname="FlinkDeploymentFailed"']
    handler: flink.restart
    target: 'flink/{{ labels.namespace }}/{{ labels.name }}'
    params: {namespace: '{{ labels.namespace }}', name: '{{ labels.name }}'}
"""


def test_simulate_shows_a_label_that_is_not_a_kubernetes_name() -> None:
    rules = parse_rules(RULES, "rules.yaml", default_registry)
    alert = {
        "status": "firing",
        "startsAt": "2024-01-01T00:00:00Z",
        "labels": {"alertname": "FlinkDeploymentFailed", "namespace": "torghut", "name": "Torghut_TA"},
    }
    report = simulate(rules, read_alerts(alert))
    match = report[0]["matches"][0]
    assert "plan" not in match
    assert match["error"].startswith("params for flink.restart: name: ")
    assert "'Torghut_TA' is not a valid Kubernetes name" in match["error"]


def test_check_rejects_a_literal_name_that_is_not_a_kubernetes_name() -> None:
    bad = RULES.replace(b"namespace: '{{ labels.namespace }}'", b"namespace: Torghut")
    with pytest.raises(RulesError, match="'Torghut' is not a valid Kubernetes name"):
        parse_rules(bad, "rules.yaml", default_registry)
