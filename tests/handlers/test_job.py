"""``kubernetes.job`` against kmock's emulator over HTTP, with the real kubernetes-asyncio client.

:class:`JobController` plays the Job controller and the kubelet: one pod per Job, its
log served at ``pods/NAME/log``, then Complete or Failed. The shipped Role is enforced.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest
import structlog

from handlers.job import EVENT_LABEL, job_name
from remediator import Alert, Context, Outcome, Resources, Result
from remediator.errors import RulesError
from remediator.handling.execution import execute
from remediator.handling.registry import HandlerParams, default_registry
from remediator.rules.ruleset import parse_rules, render
from tests.support.kube import (
    JOBS,
    PODS,
    Cluster,
    JobController,
    Policy,
    background,
    container_view,
    kube_env,
)
from tests.support.payloads import alert

NS = "torghut"
PARAMS: dict[str, Any] = {
    "namespace": NS,
    "image": "registry.example/tools/fix-disk:1.2",
    "command": ["/bin/fix-disk"],
    "args": ["--host", "db-1"],
    "env": {"MODE": "safe"},
    "service_account": "disk-fixer",
    "active_deadline": "5m",
    "ttl_after_finished": "1h",
    "poll_interval": "50ms",
}
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")


def make_alert(**labels: str) -> Alert:
    return Alert.model_validate(
        alert("DiskFull", annotations={"summary": "disk full"}, **(labels or {"host": "db-1"}))
    )


async def run_job(
    params: dict[str, Any] | HandlerParams,
    resources: Resources,
    *,
    event_id: str = "0190aa0bb0cc42",
    the_alert: Alert | None = None,
    dry_run: bool = False,
    limit: float = 30.0,
) -> Result:
    spec = default_registry.get("kubernetes.job")
    assert spec is not None
    ctx = Context(
        event_id=event_id,
        rule="fix-disk",
        target="host/db-1",
        alert=the_alert or make_alert(),
        dry_run=dry_run,
        deadline=time.monotonic() + limit,
        verify_timeout=10.0,
        log=structlog.get_logger("test"),
        resources=resources,
    )
    validated = spec.params.model_validate(params) if isinstance(params, dict) else params
    return await execute(spec, validated, ctx, timeout=limit)


def created(cluster: Cluster) -> list[dict[str, Any]]:
    return [call.body for call in cluster.calls_to(JOBS, "create") if call.status == 201]


async def test_creates_the_job_from_the_template_waits_and_reports_the_log(
    cluster: Cluster, resources: Resources
) -> None:
    jobs = JobController(cluster, NS, log="".join(f"line {i}\n" for i in range(100)))
    async with background(jobs.run):
        result = await run_job({**PARAMS, "log_lines": 3}, resources)
    name = job_name("fix-disk", "0190aa0bb0cc42")
    assert result.outcome is Outcome.SUCCEEDED, result.message
    assert result.message == f"Job {NS}/{name} completed; log: line 99"
    assert result.details["log"] == "line 97\nline 98\nline 99\n"
    assert result.details["pod"] == jobs.pods[0] and result.details["adopted"] is False
    [body] = created(cluster)
    assert body["metadata"]["name"] == name and body["metadata"]["namespace"] == NS
    assert body["metadata"]["labels"][EVENT_LABEL] == "0190aa0bb0cc42"
    spec = body["spec"]
    assert (spec["backoffLimit"], spec["activeDeadlineSeconds"], spec["ttlSecondsAfterFinished"]) == (
        0,
        300,
        3600,
    )
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] == "Never" and pod["serviceAccountName"] == "disk-fixer"
    assert "automountServiceAccountToken" not in pod
    [container] = pod["containers"]
    assert container["image"] == PARAMS["image"]
    assert container["command"] == ["/bin/fix-disk"] and container["args"] == ["--host", "db-1"]
    env = {item["name"]: item["value"] for item in container["env"]}
    assert env["ALERT_NAME"] == "DiskFull" and env["ALERT_LABEL_HOST"] == "db-1"
    assert env["ALERT_ANNOTATION_SUMMARY"] == "disk full" and env["MODE"] == "safe"
    assert [c.raw for c in cluster.calls if c.plural == "pods/log"] == [
        f"GET /api/v1/namespaces/{NS}/pods/{jobs.pods[0]}/log?container=job&tailLines=3"
    ]


async def test_without_a_service_account_the_pod_gets_no_api_token(
    cluster: Cluster, resources: Resources
) -> None:
    params = {"namespace": NS, "image": "busybox:1.36", "poll_interval": "50ms", "alert_env": False}
    async with background(JobController(cluster, NS).run):
        result = await run_job(params, resources)
    assert result.outcome is Outcome.SUCCEEDED, result.message
    [body] = created(cluster)
    pod = body["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False and "serviceAccountName" not in pod
    assert "env" not in pod["containers"][0]


@pytest.mark.parametrize(
    ("outcome", "reason"),
    [
        ("fail", "BackoffLimitExceeded: Job has reached the specified backoff limit"),
        ("deadline", "DeadlineExceeded: Job was active longer than specified deadline"),
    ],
)
async def test_a_failed_job_fails_with_its_reason_and_log(
    cluster: Cluster, resources: Resources, outcome: str, reason: str
) -> None:
    async with background(JobController(cluster, NS, outcome=outcome, log="disk still full\n").run):
        result = await run_job(PARAMS, resources)
    assert result.outcome is Outcome.FAILED and not result.retryable
    name = job_name("fix-disk", "0190aa0bb0cc42")
    assert result.message == f"Job {NS}/{name} failed: {reason}; log: disk still full"
    assert result.details["log"] == "disk still full\n"


async def test_a_job_delivered_again_adopts_the_job_it_created(
    cluster: Cluster, resources: Resources
) -> None:
    jobs = JobController(cluster, NS, outcome="hang")
    async with background(jobs.run):
        first = await run_job({**PARAMS, "verify_timeout": "300ms"}, resources)
        assert first.outcome is Outcome.FAILED and first.retryable
        assert "did not finish within 0.3s (active 1, succeeded 0, failed 0)" in first.message
        jobs.outcome = "succeed"
        again = await run_job(PARAMS, resources)
    assert again.outcome is Outcome.SUCCEEDED and again.details["adopted"] is True
    assert len(created(cluster)) == 1 and [c.status for c in cluster.calls_to(JOBS, "create")] == [201, 409]
    assert len(cluster.items(JOBS, NS)) == 1 and len(jobs.pods) == 1


async def test_another_event_gets_its_own_job(cluster: Cluster, resources: Resources) -> None:
    async with background(JobController(cluster, NS).run):
        one = await run_job(PARAMS, resources, event_id="e1")
        two = await run_job(PARAMS, resources, event_id="e2")
    assert one.outcome is two.outcome is Outcome.SUCCEEDED
    assert one.details["job"] != two.details["job"] and len(cluster.items(JOBS, NS)) == 2


async def test_a_job_of_the_same_name_that_is_not_ours_is_not_adopted(
    cluster: Cluster, resources: Resources
) -> None:
    name = job_name("fix-disk", "0190aa0bb0cc42")
    pod = {"spec": {"restartPolicy": "Never", "containers": [{"name": "x", "image": "x:1"}]}}
    foreign = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name}, "spec": {"template": pod}}
    cluster.put(JOBS, NS, foreign)
    result = await run_job(PARAMS, resources)
    assert result.outcome is Outcome.FAILED and not result.retryable
    assert result.message == (
        f"Job {NS}/{name} already exists and is not this event's "
        f"(its {EVENT_LABEL} label is None); not adopted"
    )


async def test_dry_run_creates_nothing_and_shows_the_job(cluster: Cluster, resources: Resources) -> None:
    result = await run_job(PARAMS, resources, dry_run=True)
    assert result.outcome is Outcome.DRY_RUN and cluster.calls == []
    name = job_name("fix-disk", "0190aa0bb0cc42")
    assert result.plan[0].startswith(
        f'POST /apis/batch/v1/namespaces/{NS}/jobs (application/json) {{"apiVersion"'
    )
    assert f'"name":"{name}"' in result.plan[0]
    assert result.message == f"dry run: would create Job {NS}/{name}; nothing done"


async def test_a_role_without_create_on_jobs_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, resources: Resources
) -> None:
    policy = Policy.shipped().without("create", "batch", "jobs")
    async with kube_env(tmp_path, monkeypatch, policy=policy) as cluster:
        result = await run_job(PARAMS, resources)
    assert result.outcome is Outcome.FAILED and not result.retryable
    assert result.message.startswith(
        f"forbidden: the service account may not create jobs.batch in namespace {NS} (grant verb 'create'"
    )
    assert [c.status for c in cluster.calls] == [403]


async def test_no_log_is_not_a_failure(cluster: Cluster, resources: Resources) -> None:
    jobs = JobController(cluster, NS)
    async with background(jobs.run):
        cluster.hooks.append(lambda call: _drop_pods(cluster) if call.plural == "pods" else None)
        result = await run_job(PARAMS, resources)
    assert result.outcome is Outcome.SUCCEEDED
    assert result.details["log"] == "(no pod of the Job is left to read a log from)"


def _drop_pods(cluster: Cluster) -> None:
    for pod in cluster.items(PODS, NS):
        cluster.remove(PODS, NS, pod["metadata"]["name"])


# ---- names and labels -------------------------------------------------------------------------


@pytest.mark.parametrize("rule", ["fix-disk", "x" * 63, "a.b_c--D", "9-lives", "..."])
def test_job_names_are_dns_labels_and_deterministic_per_event(rule: str) -> None:
    name = job_name(rule, "event-1")
    assert len(name) <= 63 and _DNS_LABEL.fullmatch(name), name
    assert name == job_name(rule, "event-1") != job_name(rule, "event-2")
    assert name.startswith("remediator-")


HOSTILE_RULES = """
rules:
  - name: fix-disk
    matchers: ['alertname="DiskFull"']
    handler: kubernetes.job
    target: 'host/x'
    params:
      namespace: torghut
      image: registry.example/fix:1
      command: [/bin/fix, '{{ labels.host }}']
      args: ['{{ annotations.summary }}']
      env: {HOST: '{{ labels.host }}'}
      poll_interval: 50ms
"""


@pytest.mark.parametrize("value", ["; rm -rf /", "$(touch pwned)", "`id`", "a\nb", "' \" *"])
async def test_hostile_labels_reach_the_job_as_plain_values(
    cluster: Cluster, resources: Resources, value: str
) -> None:
    rules = parse_rules(HOSTILE_RULES.encode(), "rules.yaml", default_registry)
    the_alert = Alert.model_validate(alert("DiskFull", annotations={"summary": value}, host=value))
    plan = render(rules.rules[0], the_alert)
    async with background(JobController(cluster, NS).run):
        result = await run_job(plan.params, resources, the_alert=the_alert)
    assert result.outcome is Outcome.SUCCEEDED, result.message
    [container] = created(cluster)[0]["spec"]["template"]["spec"]["containers"]
    argv, env = container_view(container)  # after the kubelet's $(VAR) expansion
    assert argv == ["/bin/fix", value, value]
    assert env["HOST"] == env["ALERT_LABEL_HOST"] == value


# ---- remediator check -------------------------------------------------------------------------

CHECK_RULES = """
rules:
  - name: fix
    matchers: ['alertname="DiskFull"']
    handler: kubernetes.job
    target: 'host/x'
    params: {params}
"""


@pytest.mark.parametrize(
    ("params", "problem"),
    [
        (
            "{namespace: ns, image: '{{ labels.image }}'}",
            "'image' for kubernetes.job: must be written in the rule",
        ),
        ("{namespace: ns, image: 'a b'}", "'a b' is not an image reference"),
        (
            "{namespace: ns, image: x:1, command: ['{{ labels.p }}']}",
            "command[0] '{{ labels.p }}' is a template",
        ),
        (
            "{namespace: ns, image: x:1, service_account: '{{ labels.sa }}'}",
            "'service_account' for kubernetes.job: must be written in the rule",
        ),
        ("{namespace: NS, image: x:1}", "'NS' is not a valid Kubernetes name"),
        ("{namespace: ns, image: x:1, active_deadline: 600}", "600 has no unit"),
        (
            "{namespace: ns, image: x:1, env: {ALERT_X: y}}",
            "ALERT_* and REMEDIATOR_* variables are set by the handler",
        ),
        ("{image: x:1}", "missing params for kubernetes.job: namespace"),
        ("{namespace: ns, image: x:1, backoff_limit: 11}", "less than or equal to 10"),
    ],
)
def test_check_refuses_bad_params_clearly(params: str, problem: str) -> None:
    with pytest.raises(RulesError) as info:
        parse_rules(CHECK_RULES.format(params=params).encode(), "rules.yaml", default_registry)
    assert problem in info.value.problems[0], info.value.problems
