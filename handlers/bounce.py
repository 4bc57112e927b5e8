"""``kubernetes.bounce``: scale a Deployment to 0 and back, never running two copies.

For workloads whose upstream allows one connection, where a rolling restart
would briefly run two pods. The replica count is recorded in an annotation on
the Deployment before anything else, so a run that crashed mid-bounce is
resumed by the next one instead of recording 0.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from handlers.deployments import DeploymentAccess, deployment_request, list_request
from handlers.gitops import GitOpsParams, managing_app, refusal, replicas_in_git
from handlers.kube import (
    ApiRequest,
    Label,
    Subdomain,
    api_client,
    client,
    selector_string,
    send,
    shown,
)
from remediator import (
    Checked,
    Context,
    Handler,
    Observations,
    PermanentError,
    PollInterval,
    Result,
    TemporaryError,
    VerifyTimeout,
    handler,
    planned_within,
    poll,
    rereading_conflicts,
    seconds,
    verify_within,
)

ANNOTATION = "remediator.io/bounce-replicas"
MAX_REPLICAS = 10_000


class BounceParams(GitOpsParams):
    namespace: Label
    """DNS-1123 label"""
    deployment: Subdomain
    """DNS-1123 subdomain"""
    verify_timeout: VerifyTimeout = None
    """duration: bound of each wait (pods gone; pods ready); keep the rule's `timeout` above twice this
    (unset: the rule's)
    """
    poll_interval: PollInterval = 2.0
    """duration (at most `1m`): how often the waits poll"""


@dataclass(frozen=True)
class Seen:
    """What one read of the Deployment showed."""

    resource_version: str
    generation: int
    replicas: int
    recorded: int | None  # the annotation of an interrupted bounce
    selector: str
    ready: int
    current: int  # status.replicas
    observed_generation: int
    annotations: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    replicas_in_git: bool | None = None  # when Argo CD manages it (see handlers/gitops.py)

    @classmethod
    def of(cls, dep: Any, where: str) -> Seen:
        meta, spec, status = dep.metadata, dep.spec, dep.status
        selector = spec.selector
        return cls(
            resource_version=str(meta.resource_version or ""),
            generation=int(meta.generation or 0),
            replicas=1 if spec.replicas is None else int(spec.replicas),
            recorded=_recorded((meta.annotations or {}).get(ANNOTATION), where),
            selector=selector_string(selector.match_labels, selector.match_expressions) if selector else "",
            ready=int(getattr(status, "ready_replicas", None) or 0),
            current=int(getattr(status, "replicas", None) or 0),
            observed_generation=int(getattr(status, "observed_generation", None) or 0),
            annotations=dict(meta.annotations or {}),
            labels=dict(meta.labels or {}),
            replicas_in_git=replicas_in_git(meta.annotations, meta.managed_fields),
        )

    def ready_at(self, count: int) -> bool:
        return self.observed_generation >= self.generation and self.ready == count and self.current == count

    def summary(self) -> str:
        return (
            f"spec.replicas {self.replicas}, status.replicas {self.current}, "
            f"readyReplicas {self.ready}, observedGeneration {self.observed_generation}/"
            f"{self.generation}"
        )


def _recorded(value: str | None, where: str) -> int | None:
    if value is None:
        return None
    if not value.isdigit() or int(value) > MAX_REPLICAS:
        raise PermanentError(
            f"{where}: annotation {ANNOTATION}={value!r} is not a replica count; fix or remove it"
        )
    return int(value)


def _deployment(params: BounceParams) -> ApiRequest:
    return deployment_request(params.namespace, params.deployment)


def _pods(params: BounceParams, selector: str) -> ApiRequest:
    return list_request(params.namespace, selector)


def record_body(resource_version: Any, replicas: Any) -> dict[str, Any]:
    return {"metadata": {"resourceVersion": resource_version, "annotations": {ANNOTATION: str(replicas)}}}


def scale_body(replicas: Any) -> dict[str, Any]:
    return {"spec": {"replicas": replicas}}


FORGET_BODY: dict[str, Any] = {"metadata": {"annotations": {ANNOTATION: None}}}


def _plan(params: BounceParams, timeout: str, seen: Seen | None = None) -> list[str]:
    dep = _deployment(params)
    pods = (
        str(_pods(params, seen.selector))
        if seen
        else f"{_pods(params, '')}?labelSelector=<the Deployment's selector>"
    )
    if seen is None:
        count: Any = "<recorded>"
        record = (
            f"{dep.with_body(record_body('<resourceVersion read>', '<spec.replicas>'))} "
            "(skipped when the annotation is already there: resume with its count)"
        )
    elif seen.recorded is None:
        count = seen.replicas
        record = str(dep.with_body(record_body(seen.resource_version, seen.replicas)))
    else:
        count = seen.recorded
        record = f"resume: {ANNOTATION}={seen.recorded} is already recorded"
    every = seconds(params.poll_interval)
    return [
        str(dep),
        pods,
        record,
        str(dep.with_body(scale_body(0))),
        f"poll {pods} every {every} until no pod is left, for up to {timeout}",
        str(dep.with_body(scale_body(count))),
        f"poll {dep} every {every} until status.readyReplicas == status.replicas == {count} "
        f"and observedGeneration is current, for up to {timeout}",
        str(dep.with_body(FORGET_BODY)),
    ]


def _describe(params: BounceParams) -> list[str]:
    return _plan(params, planned_within(params))


class _Deployment(DeploymentAccess):
    """Reads, patches and lists the pods of one Deployment through the app's client."""

    def __init__(self, api: client.ApiClient, params: BounceParams, ctx: Context) -> None:
        super().__init__(api, ctx, _deployment(params), params.namespace, params.deployment)
        self.params = params

    async def read(self, *, record: bool = True) -> Seen:
        return Seen.of(await self.read_deployment(record=record), self.where)

    async def pods(self, selector: str, *, record: bool = True) -> list[str]:
        """Names of the pods matching ``selector`` (terminating ones included)."""
        p = self.params
        found = await send(
            self.ctx,
            _pods(p, selector),
            lambda timeout: self.core.list_namespaced_pod(
                p.namespace, label_selector=selector, _request_timeout=timeout
            ),
            record=record,
        )
        return [pod.metadata.name for pod in found.items or []]


@dataclass(frozen=True)
class Bouncing:
    """The Deployment as the precheck read it; once scaled to 0, every pod gone and scaled
    back, the ``count`` verify waits for."""

    dep: _Deployment
    seen: Seen
    count: int = 0


@handler("kubernetes.bounce", params=BounceParams, describe=_describe)
class Bounce(Handler[BounceParams, Bouncing, Bouncing]):
    """Scale a Deployment to 0, wait until its pods are gone, scale it back, wait until ready."""

    async def precheck(self, params: BounceParams, ctx: Context) -> Checked[Bouncing]:
        dep = _Deployment(await api_client(ctx), params, ctx)
        seen = await dep.read()
        if not seen.selector:
            raise PermanentError(f"{dep.where} has an empty selector; refusing to bounce")
        pods = await dep.pods(seen.selector)
        state = f"{seen.summary()}; {len(pods)} pod(s): {shown(pods)}"
        ctx.step("observe", state, pods=pods)
        looked = Bouncing(dep, seen)
        if seen.recorded is None and seen.replicas == 0:
            nothing = f"{dep.where} is scaled to 0 and no bounce is in progress: nothing to bounce"
            return Checked(state, looked, done=Result.noop(nothing, replicas=0))
        return Checked(state, looked, done=await _gitops(dep, seen))

    async def act(self, params: BounceParams, ctx: Context, seen: Bouncing) -> Bouncing | Result:
        dep, timeout = seen.dep, verify_within(params, ctx)
        if ctx.dry_run:
            count = seen.seen.replicas if seen.seen.recorded is None else seen.seen.recorded
            return Result.dry_run(
                _plan(params, seconds(timeout), seen.seen),
                f"dry run: would bounce {dep.where} to 0 and back to {count}; nothing done",
                replicas=count,
            )
        count = await _record(dep, seen.seen)
        await dep.patch(scale_body(0))
        gone, left = await _wait_gone(dep, seen.seen.selector, timeout)
        if not gone:
            return Result.failed(
                f"{len(left)} pod(s) of {dep.where} still exist {seconds(timeout)} after scaling to 0: "
                f"{shown(left)}; left at 0 replicas with {ANNOTATION}={count}, so the next run "
                "resumes",
                retryable=True,
                pods=left,
                replicas=count,
            )
        await dep.patch(scale_body(count))
        return dataclasses.replace(seen, count=count)

    async def verify(self, params: BounceParams, ctx: Context, acted: Bouncing) -> Result:
        return await _ready(acted.dep, acted.count, within=verify_within(params, ctx))


async def _gitops(dep: _Deployment, seen: Seen) -> Result | None:
    """Refuse to bounce what a self-healing Argo CD app would scale back up mid-bounce."""
    params = dep.params
    app = await managing_app(dep.ctx, params, dep.where, seen.annotations, seen.labels)
    if app is None or not app.self_heal or seen.replicas_in_git is False:
        return None
    known = "Git sets" if seen.replicas_in_git else "it cannot be told whether Git sets (assumed it does)"
    why = (
        f"{known} spec.replicas, so Argo CD would scale the Deployment back up while the old "
        "pod is still terminating: the two pods at once a bounce exists to prevent"
    )
    if params.gitops == "override":
        dep.ctx.step("gitops", f"{why}; bouncing anyway (gitops: override)")
        return None
    return Result.failed(
        refusal(
            app,
            dep.where,
            why,
            f"To bounce, turn off self-heal on {app.ref} for the bounce (or have it ignore "
            "/spec/replicas with ignoreDifferences), or drop replicas from the manifest in "
            f"{app.in_git}",
        ),
        **app.details(),
    )


async def _record(dep: _Deployment, seen: Seen) -> int:
    """The count to restore: the annotation of an interrupted bounce, else record spec.replicas."""

    async def attempt(seen: Seen) -> int:
        if seen.recorded is not None:
            dep.ctx.step(
                "resume",
                f"{ANNOTATION}={seen.recorded} found on {dep.where}: resuming "
                f"an interrupted bounce with {seen.recorded} replica(s)",
            )
            return seen.recorded
        if seen.replicas == 0:
            raise TemporaryError(f"{dep.where} was scaled to 0 by someone else while we read it; not bounced")
        await dep.patch(record_body(seen.resource_version, seen.replicas))
        return seen.replicas

    return await rereading_conflicts(dep.ctx, seen, attempt, dep.read, where=dep.where, undone="not bounced")


async def _ready(dep: _Deployment, count: int, within: float) -> Result:
    """Wait until the Deployment is back at ``count`` ready replicas, then forget the count."""
    ctx, every = dep.ctx, dep.params.poll_interval
    ctx.step(
        "verify",
        f"poll {dep.request} every {seconds(every)} until readyReplicas == "
        f"{count}, for up to {seconds(within)}",
    )
    observed = Observations(ctx)

    async def probe() -> tuple[bool, Seen]:
        seen = await dep.read(record=False)
        observed.see(seen.summary())
        return seen.ready_at(count), seen

    ready, seen = await poll(ctx, probe, every=every, within=within)
    if not ready:
        return Result.failed(
            f"{dep.where} was scaled back to {count} but is not ready after {seconds(within)}: "
            f"{seen.summary()}; {ANNOTATION} is left so the next run resumes",
            retryable=True,
            replicas=count,
            ready=seen.ready,
        )
    await dep.patch(FORGET_BODY)
    return Result.succeeded(
        f"{dep.where} bounced: scaled to 0, all pods gone, back to {count} ready replica(s)", replicas=count
    )


async def _wait_gone(dep: _Deployment, selector: str, within: float) -> tuple[bool, list[str]]:
    ctx, every = dep.ctx, dep.params.poll_interval
    ctx.step(
        "wait",
        f"poll {_pods(dep.params, selector)} every {seconds(every)} until no pod is "
        f"left, for up to {seconds(within)}",
    )
    observed = Observations(ctx)

    async def probe() -> tuple[bool, list[str]]:
        names = await dep.pods(selector, record=False)
        observed.see(f"{len(names)} pod(s) left: {shown(names)}" if names else "no pod left", pods=names)
        return not names, names

    return await poll(ctx, probe, every=every, within=within)
