"""``flink.restart``: restart a FAILED Flink job by bumping its FlinkDeployment's restartNonce.

Precheck reads the ``FlinkDeployment`` (Flink Kubernetes Operator); only a
restart condition (job or lifecycle FAILED by default) leads to a write, a
transient state is left to the operator. The write is a JSON merge patch of
``spec.restartNonce`` guarded by the resourceVersion read, so a concurrent
change answers 409 and is re-read and decided again, never overwritten.
Verify polls until what people check by hand is true: the job is RUNNING, the
lifecycle STABLE, the JobManager deployment READY (``status.jobManagerDeploymentStatus``)
and the TaskManagers up: the operator's ``status.taskManager`` (the scale
subresource: ``replicas`` expected, ``labelSelector`` of their pods) names them, and
that many of its pods are Ready.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator

from handlers.gitops import App, GitOpsParams, drift, managing_app, refusal
from handlers.kube import ApiRequest, Label, api_client, client, send, send_patch
from remediator import (
    MAX_CONFLICTS,
    Context,
    HandlerParams,
    Observations,
    PermanentError,
    PollInterval,
    Result,
    VerifyTimeout,
    handler,
    planned_within,
    poll,
    rereading_conflicts,
    seconds,
    verify_within,
)

GROUP, VERSION, PLURAL, KIND = "flink.apache.org", "v1beta1", "flinkdeployments", "FlinkDeployment"

JobState = Literal[
    "INITIALIZING",
    "CREATED",
    "RUNNING",
    "FAILING",
    "FAILED",
    "CANCELLING",
    "CANCELED",
    "FINISHED",
    "RESTARTING",
    "SUSPENDED",
    "RECONCILING",
]
LifecycleState = Literal[
    "CREATED",
    "SUSPENDED",
    "UPGRADING",
    "DEPLOYED",
    "STABLE",
    "ROLLING_BACK",
    "ROLLED_BACK",
    "FAILED",
    "DELETING",
    "DELETED",
]
TRANSIENT_JOB = frozenset({"RESTARTING", "FAILING", "RECONCILING", "INITIALIZING", "CREATED", "CANCELLING"})
TRANSIENT_LIFECYCLE = frozenset({"CREATED", "UPGRADING", "DEPLOYED", "ROLLING_BACK", "DELETING"})
_ERROR_SHOWN = 500
VERIFY_CONDITIONS = (
    "status.jobStatus.state == RUNNING and status.lifecycleState == STABLE "
    "and status.jobManagerDeploymentStatus == READY "
    "and status.taskManager.replicas (> 0) pods matching status.taskManager.labelSelector are Ready"
)


class RestartWhen(HandlerParams):
    """Act when the job state OR the lifecycle state is one of these (never a transient one)."""

    job: list[JobState] = Field(default_factory=lambda: list[JobState](["FAILED"]))
    lifecycle: list[LifecycleState] = Field(default_factory=lambda: list[LifecycleState](["FAILED"]))

    @field_validator("job", "lifecycle")
    @classmethod
    def _not_transient(cls, value: list[str], info: ValidationInfo) -> list[str]:
        transient = TRANSIENT_JOB if info.field_name == "job" else TRANSIENT_LIFECYCLE
        if bad := sorted(set(value) & transient):
            raise ValueError(f"{', '.join(bad)}: transient, left to the operator; never a restart condition")
        return value


class FlinkRestartParams(GitOpsParams):
    namespace: Label
    name: Label
    restart_when: RestartWhen = Field(default_factory=RestartWhen)
    verify_timeout: VerifyTimeout = None
    poll_interval: PollInterval = 2.0


@dataclass(frozen=True)
class Seen:
    """What one read of the FlinkDeployment showed."""

    resource_version: str
    nonce: int
    job: str
    lifecycle: str
    error: str
    annotations: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, obj: dict[str, Any], where: str) -> Seen:
        spec = obj.get("spec") or {}
        status = obj.get("status") or {}
        nonce = spec.get("restartNonce") or 0
        if not isinstance(nonce, int) or isinstance(nonce, bool):
            raise PermanentError(f"{where}: spec.restartNonce is {nonce!r}, not an integer")
        error = status.get("error") or ""
        meta = obj.get("metadata") or {}
        return cls(
            resource_version=str(meta.get("resourceVersion") or ""),
            annotations=dict(meta.get("annotations") or {}),
            labels=dict(meta.get("labels") or {}),
            nonce=nonce,
            job=str((status.get("jobStatus") or {}).get("state") or ""),
            lifecycle=str(status.get("lifecycleState") or ""),
            error=error if isinstance(error, str) else str(error),
        )

    @property
    def healthy(self) -> bool:
        return self.job == "RUNNING" and self.lifecycle == "STABLE"

    def summary(self) -> str:
        text = f"job {self.job or 'unknown'}, lifecycle {self.lifecycle or 'unknown'}"
        if self.error:
            text += f"; error: {self.error[:_ERROR_SHOWN]}"
        return text

    def details(self) -> dict[str, Any]:
        return {
            "job_state": self.job,
            "lifecycle_state": self.lifecycle,
            "restart_nonce": self.nonce,
            "error": self.error[:_ERROR_SHOWN],
        }


def leave_alone(seen: Seen, when: RestartWhen) -> str | None:
    """Why not to restart (``None``: restart). A job Flink is already recovering is left alone."""
    if seen.job in TRANSIENT_JOB:
        return f"job state {seen.job} is transient (the operator or Flink is on it): left alone"
    if seen.job in when.job or seen.lifecycle in when.lifecycle:
        return None
    if seen.lifecycle in TRANSIENT_LIFECYCLE:
        return f"lifecycle {seen.lifecycle} is transient (the operator is on it): left alone"
    if seen.healthy:
        return "healthy: job RUNNING, lifecycle STABLE"
    if not seen.job and not seen.lifecycle:
        return "no status reported by the operator yet: left alone"
    return f"{seen.summary()}: not a restart condition"


def _get(params: FlinkRestartParams) -> ApiRequest:
    return ApiRequest(
        verb="get",
        group=GROUP,
        version=VERSION,
        plural=PLURAL,
        kind=KIND,
        namespace=params.namespace,
        name=params.name,
    )


def bump_request(params: FlinkRestartParams, resource_version: Any, nonce: Any) -> ApiRequest:
    body = {"metadata": {"resourceVersion": resource_version}, "spec": {"restartNonce": nonce}}
    return _get(params).with_body(body)


def _plan(params: FlinkRestartParams, timeout: str, seen: Seen | None = None) -> list[str]:
    when = " or ".join(
        [
            *(f"status.jobStatus.state == {s}" for s in params.restart_when.job),
            *(f"status.lifecycleState == {s}" for s in params.restart_when.lifecycle),
        ]
    )
    patch = (
        bump_request(params, seen.resource_version, seen.nonce + 1)
        if seen
        else bump_request(params, "<resourceVersion read>", "<restartNonce read + 1>")
    )
    condition = "" if seen else f"only if {when} (transient states are left alone): "
    return [
        str(_get(params)),
        f"{condition}{patch}; on 409 Conflict re-read and decide again (at most {MAX_CONFLICTS} attempts)",
        f"poll {_get(params)} every {seconds(params.poll_interval)} until "
        f"{VERIFY_CONDITIONS}, for up to {timeout}",
    ]


def _describe(params: FlinkRestartParams) -> list[str]:
    return _plan(params, planned_within(params))


class _FlinkDeployment:
    """Reads and patches one FlinkDeployment through the app's client."""

    def __init__(self, api: client.CustomObjectsApi, params: FlinkRestartParams, ctx: Context) -> None:
        self.api, self.params, self.ctx = api, params, ctx
        self.get_request = _get(params)
        self.where = self.get_request.target

    async def read(self, *, record: bool = True) -> Seen:
        p = self.params
        obj = await send(
            self.ctx,
            self.get_request,
            lambda timeout: self.api.get_namespaced_custom_object(
                GROUP, VERSION, p.namespace, PLURAL, p.name, _request_timeout=timeout
            ),
            record=record,
        )
        seen = Seen.of(obj, self.where)
        if record:
            self.ctx.step("observe", seen.summary(), **seen.details())
        return seen

    async def bump(self, seen: Seen) -> int:
        p, nonce = self.params, seen.nonce + 1
        request = bump_request(p, seen.resource_version, nonce)
        await send_patch(
            self.ctx,
            request,
            self.api.patch_namespaced_custom_object,
            GROUP,
            VERSION,
            p.namespace,
            PLURAL,
            p.name,
        )
        return nonce


@handler("flink.restart", params=FlinkRestartParams, describe=_describe)
async def flink_restart(params: FlinkRestartParams, ctx: Context) -> Result:
    """Restart a FAILED Flink job (bump spec.restartNonce), then wait for RUNNING and STABLE."""
    target = _FlinkDeployment(client.CustomObjectsApi(await api_client(ctx)), params, ctx)
    timeout = verify_within(params, ctx)

    async def attempt(seen: Seen) -> Result | int:
        """A Result when there is nothing to write, else the restartNonce written."""
        reason = leave_alone(seen, params.restart_when)
        if reason is not None:
            return Result.noop(f"{target.where}: {reason}", **seen.details())
        if not found:
            found.append(await managing_app(ctx, params, target.where, seen.annotations, seen.labels))
        app, nonce = found[0], seen.nonce + 1
        commit = (
            f"set `spec.restartNonce: {nonce}` on `FlinkDeployment/{params.name}` "
            f"(namespace {params.namespace}) in {app.in_git if app else 'Git'}"
        )
        if app is not None and app.self_heal and params.gitops == "respect":
            return Result.failed(
                refusal(
                    app,
                    target.where,
                    "Argo CD would revert the bumped restartNonce to Git's, and the operator "
                    "would restart the job again",
                    f"Restart through Git instead: {commit}",
                ),
                change_to_commit=commit,
                **app.details(),
                **seen.details(),
            )
        if ctx.dry_run:
            return Result.dry_run(
                _plan(params, seconds(timeout), seen),
                f"dry run: {target.where} has {seen.summary()}; would bump restartNonce "
                f"{seen.nonce} -> {nonce}; nothing done" + (f"; {drift(app, commit)}" if app else ""),
                **seen.details(),
            )
        return await target.bump(seen)

    found: list[App | None] = []
    done = await rereading_conflicts(
        ctx, await target.read(), attempt, target.read, where=target.where, undone="not restarted"
    )
    if isinstance(done, Result):
        return done
    result = await _verify(target, done, within=timeout)
    app = found[0] if found else None
    if app is not None:
        commit = (
            f"set `spec.restartNonce: {done}` on `FlinkDeployment/{params.name}` "
            f"(namespace {params.namespace}) in {app.in_git}"
        )
        result.message += f". {drift(app, commit)}"
        result.details.update(change_to_commit=commit, drift=True, **app.details())
    return result


@dataclass(frozen=True)
class Cluster:
    """What verify saw of the JobManager and the TaskManagers, besides the job."""

    jobmanager: str  # status.jobManagerDeploymentStatus
    taskmanagers: int  # status.taskManager.replicas: how many the operator expects
    selector: str  # status.taskManager.labelSelector
    ready: int  # pods matching the selector that are Ready (not terminating)

    @property
    def jobmanager_ready(self) -> bool:
        return self.jobmanager == "READY"

    @property
    def taskmanagers_up(self) -> bool:
        return self.taskmanagers > 0 and bool(self.selector) and self.ready >= self.taskmanagers

    def summary(self) -> str:
        jm = f"JobManager {self.jobmanager or 'not reported'}"
        if not self.selector or self.taskmanagers <= 0:
            return f"{jm}; TaskManagers not reported (status.taskManager empty)"
        return f"{jm}; TaskManagers {self.ready}/{self.taskmanagers} ready"

    def missing(self, seen: Seen) -> list[str]:
        """The verify conditions not (yet) met, in words."""
        out = []
        if seen.job != "RUNNING":
            out.append(f"job RUNNING (saw {seen.job or 'unknown'})")
        if seen.lifecycle != "STABLE":
            out.append(f"lifecycle STABLE (saw {seen.lifecycle or 'unknown'})")
        if not self.jobmanager_ready:
            out.append(f"JobManager deployment READY (saw {self.jobmanager or 'not reported'})")
        if not self.taskmanagers_up:
            if not self.selector or self.taskmanagers <= 0:
                out.append("TaskManagers up (status.taskManager not reported)")
            else:
                out.append(f"TaskManagers up (saw {self.ready}/{self.taskmanagers} ready)")
        return out

    def details(self) -> dict[str, Any]:
        return {
            "jobmanager_deployment_status": self.jobmanager,
            "taskmanagers_expected": self.taskmanagers,
            "taskmanagers_ready": self.ready,
            "taskmanager_selector": self.selector,
            "jobmanager_ready": self.jobmanager_ready,
            "taskmanagers_up": self.taskmanagers_up,
        }


def _cluster_fields(obj: dict[str, Any]) -> tuple[str, int, str]:
    """(status.jobManagerDeploymentStatus, status.taskManager.replicas, its labelSelector)."""
    status = obj.get("status") or {}
    tm = status.get("taskManager")
    tm = tm if isinstance(tm, dict) else {}
    replicas, selector = tm.get("replicas"), tm.get("labelSelector")
    return (
        str(status.get("jobManagerDeploymentStatus") or ""),
        replicas if isinstance(replicas, int) and not isinstance(replicas, bool) else 0,
        selector if isinstance(selector, str) else "",
    )


def _taskmanager_pods(params: FlinkRestartParams, selector: str) -> ApiRequest:
    return ApiRequest(
        verb="list",
        group="",
        version="v1",
        plural="pods",
        kind="Pod",
        namespace=params.namespace,
        label_selector=selector,
    )


def _pod_ready(pod: Any) -> bool:
    if pod.metadata is not None and pod.metadata.deletion_timestamp:
        return False
    conditions = (pod.status.conditions if pod.status is not None else None) or []
    return any(c.type == "Ready" and c.status == "True" for c in conditions)


async def _read_cluster(target: _FlinkDeployment, listed: set[str]) -> tuple[Seen, Cluster]:
    """One read of the FlinkDeployment, then (if it names them) of its TaskManager pods."""
    ctx, p = target.ctx, target.params
    obj = await send(
        ctx,
        target.get_request,
        lambda timeout: target.api.get_namespaced_custom_object(
            GROUP, VERSION, p.namespace, PLURAL, p.name, _request_timeout=timeout
        ),
        record=False,
    )
    seen = Seen.of(obj, target.where)
    jobmanager, expected, selector = _cluster_fields(obj)
    ready = 0
    if selector and expected > 0:
        core = client.CoreV1Api(await api_client(ctx))
        pods = await send(
            ctx,
            _taskmanager_pods(p, selector),
            lambda timeout: core.list_namespaced_pod(
                p.namespace, label_selector=selector, _request_timeout=timeout
            ),
            record=selector not in listed,
        )
        listed.add(selector)
        ready = sum(1 for pod in pods.items or [] if _pod_ready(pod))
    return seen, Cluster(jobmanager, expected, selector, ready)


async def _verify(target: _FlinkDeployment, nonce: int, within: float) -> Result:
    ctx, params = target.ctx, target.params
    ctx.step(
        "verify",
        f"poll {target.get_request} every {seconds(params.poll_interval)} until "
        f"job RUNNING, lifecycle STABLE, JobManager deployment READY and TaskManagers up "
        f"(status.taskManager.replicas pods matching its labelSelector Ready), for up to {seconds(within)}",
    )
    observed = Observations(ctx)
    observed_cluster = Observations(ctx, "observe.cluster")
    listed: set[str] = set()  # the TaskManager selectors whose pods were listed (recorded once each)

    async def probe() -> tuple[bool, tuple[Seen, Cluster]]:
        seen, cluster = await _read_cluster(target, listed)
        # the cluster first: the job's own observation stays the last step of a recovery
        observed_cluster.see(cluster.summary(), **cluster.details())
        observed.see(seen.summary(), **seen.details())
        return not cluster.missing(seen), (seen, cluster)

    recovered, (seen, cluster) = await poll(ctx, probe, every=params.poll_interval, within=within)
    details = {**seen.details(), **cluster.details()}
    if recovered:
        return Result.succeeded(
            f"{target.where} restarted (restartNonce {nonce}) and recovered: job RUNNING, lifecycle STABLE, "
            f"JobManager READY, TaskManagers {cluster.ready}/{cluster.taskmanagers} ready",
            **details,
        )
    missing = cluster.missing(seen)
    return Result.failed(
        f"{target.where} did not recover within {seconds(within)} of the restart "
        f"(restartNonce {nonce}): last status {seen.summary()}; {cluster.summary()}; "
        f"still missing: {', '.join(missing)}",
        retryable=True,
        missing=missing,
        **details,
    )
