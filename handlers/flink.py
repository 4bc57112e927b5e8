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

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator

from handlers.flink_verify import verify_restart
from handlers.gitops import App, GitOpsParams, drift, managing_app, refusal
from handlers.kube import ApiRequest, Label, api_client, client, send, send_patch
from remediator import (
    MAX_CONFLICTS,
    Checked,
    Context,
    Handler,
    HandlerParams,
    PermanentError,
    PollInterval,
    Result,
    VerifyTimeout,
    handler,
    planned_within,
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
    """the FlinkDeployment; each must be a DNS-1123 label (checked when params are rendered, so `remediator
    check`/`simulate` show a bad label)
    """
    name: Label
    """the FlinkDeployment; each must be a DNS-1123 label (checked when params are rendered, so `remediator
    check`/`simulate` show a bad label)
    """
    restart_when: RestartWhen = Field(default_factory=RestartWhen)
    """act when `status.jobStatus.state` or `status.lifecycleState` is in these lists; transient states may
    not be listed
    """
    verify_timeout: VerifyTimeout = None
    """duration: how long to wait for recovery (unset: the rule's `verify_timeout`)"""
    poll_interval: PollInterval = 2.0
    """duration (at most `1m`): how often verification reads the object"""


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


class FlinkDeployment:
    """Reads and patches one FlinkDeployment through the app's client."""

    def __init__(self, api: client.CustomObjectsApi, params: FlinkRestartParams, ctx: Context) -> None:
        self.api, self.params, self.ctx = api, params, ctx
        self.get_request = _get(params)
        self.where = self.get_request.target

    async def raw(self, *, record: bool = True) -> dict[str, Any]:
        """The FlinkDeployment as the API answers it."""
        p = self.params
        found: dict[str, Any] = await send(
            self.ctx,
            self.get_request,
            lambda timeout: self.api.get_namespaced_custom_object(
                GROUP, VERSION, p.namespace, PLURAL, p.name, _request_timeout=timeout
            ),
            record=record,
        )
        return found

    def parse(self, obj: dict[str, Any]) -> Seen:
        return Seen.of(obj, self.where)

    async def read(self, *, record: bool = True) -> Seen:
        seen = self.parse(await self.raw(record=record))
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


@dataclass
class Decided:
    """The FlinkDeployment as read, and the Argo CD Application that manages it (looked
    up once: a conflict re-reads the FlinkDeployment only)."""

    target: FlinkDeployment
    seen: Seen
    app: App | None = None
    looked_up: bool = False


@handler("flink.restart", params=FlinkRestartParams, describe=_describe)
class FlinkRestart(Handler[FlinkRestartParams, Decided, Decided]):
    """Restart a FAILED Flink job (bump spec.restartNonce), then wait for RUNNING and STABLE."""

    async def precheck(self, params: FlinkRestartParams, ctx: Context) -> Checked[Decided]:
        target = FlinkDeployment(client.CustomObjectsApi(await api_client(ctx)), params, ctx)
        decided = Decided(target, await target.read())
        done = await _decide(decided, params)
        return Checked(f"{target.where}: {decided.seen.summary()}", decided, done=done)

    async def act(self, params: FlinkRestartParams, ctx: Context, seen: Decided) -> Decided | Result:
        target, timeout = seen.target, verify_within(params, ctx)
        if ctx.dry_run:
            found, app, nonce = seen.seen, seen.app, seen.seen.nonce + 1
            return Result.dry_run(
                _plan(params, seconds(timeout), found),
                f"dry run: {target.where} has {found.summary()}; would bump restartNonce "
                f"{found.nonce} -> {nonce}; nothing done"
                + (f"; {drift(app, _commit(params, nonce, app))}" if app else ""),
                **found.details(),
            )

        async def attempt(found: Seen) -> Result | Seen:
            """A Result when there is nothing (left) to write, else the FlinkDeployment as bumped."""
            seen.seen = found
            if (done := await _decide(seen, params)) is not None:
                return done
            return dataclasses.replace(found, nonce=await target.bump(found))

        bumped = await rereading_conflicts(
            ctx, seen.seen, attempt, target.read, where=target.where, undone="not restarted"
        )
        if isinstance(bumped, Result):
            return bumped
        seen.seen = bumped
        return seen

    async def verify(self, params: FlinkRestartParams, ctx: Context, acted: Decided) -> Result:
        nonce, app = acted.seen.nonce, acted.app
        result = await verify_restart(acted.target, nonce, within=verify_within(params, ctx))
        if app is not None:
            commit = _commit(params, nonce, app)
            result.message += f". {drift(app, commit)}"
            result.details.update(change_to_commit=commit, drift=True, **app.details())
        return result


def _commit(params: FlinkRestartParams, nonce: int, app: App | None) -> str:
    return (
        f"set `spec.restartNonce: {nonce}` on `FlinkDeployment/{params.name}` "
        f"(namespace {params.namespace}) in {app.in_git if app else 'Git'}"
    )


async def _decide(decided: Decided, params: FlinkRestartParams) -> Result | None:
    """None: restart; else why not (noop: nothing to do; failed: Argo CD would undo it)."""
    target, seen = decided.target, decided.seen
    reason = leave_alone(seen, params.restart_when)
    if reason is not None:
        return Result.noop(f"{target.where}: {reason}", **seen.details())
    if not decided.looked_up:
        decided.app = await managing_app(target.ctx, params, target.where, seen.annotations, seen.labels)
        decided.looked_up = True
    app = decided.app
    if app is not None and app.self_heal and params.gitops == "respect":
        commit = _commit(params, seen.nonce + 1, app)
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
    return None
