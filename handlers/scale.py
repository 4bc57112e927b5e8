"""``kubernetes.scale``: set a Deployment's or StatefulSet's replicas through its ``scale``
subresource, within bounds the rule sets.

Precheck reads the workload and the namespace's HorizontalPodAutoscalers: a count outside
``[min, max]`` is refused, and so is a workload an HPA targets (the HPA would undo the
change within a minute: change its minReplicas/maxReplicas instead). The count it already
has is a noop. The write is one JSON merge patch of ``<kind>/<name>/scale`` guarded by the
resourceVersion read (409: read again and decide again). Verify: that many replicas, every
one Ready, none more.

Argo CD: when Git sets ``spec.replicas`` (known from the last applied configuration or
Argo CD's managed fields; no sign: assumed), a self-healing Application would scale the
workload back: refused unless ``gitops: override``; without self-heal the drift and the
replica count to commit are reported.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import Field, model_validator

from handlers.gitops import GitOpsParams, drift, managing_app, refusal, replicas_in_git
from handlers.kube import ApiRequest, Label, Subdomain, api_client, client, send
from handlers.workloads import Rollout, ScalableKind, Workload, workload_request
from remediator import (
    MAX_CONFLICTS,
    Checked,
    Context,
    Handler,
    Observations,
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

MAX_REPLICAS = 10_000


class ScaleParams(GitOpsParams):
    namespace: Label
    """DNS-1123 label"""
    kind: ScalableKind = "Deployment"
    """`Deployment` or `StatefulSet`"""
    name: Subdomain
    """DNS-1123 subdomain"""
    replicas: int = Field(ge=0, le=MAX_REPLICAS)
    """the count to set (0 to 10000; may be templated)"""
    min: int = Field(ge=0, le=MAX_REPLICAS)
    """bounds: a `replicas` outside `[min, max]` is refused (`check` refuses one written in the rule; a
    templated one fails the job at its precheck)
    """
    max: int = Field(ge=0, le=MAX_REPLICAS)
    """bounds: a `replicas` outside `[min, max]` is refused (`check` refuses one written in the rule; a
    templated one fails the job at its precheck)
    """
    verify_timeout: VerifyTimeout = None
    """duration: how long to wait for the Ready replicas (unset: the rule's)"""
    poll_interval: PollInterval = 2.0
    """duration (at most `1m`)"""

    @model_validator(mode="after")
    def _bounds(self) -> ScaleParams:
        if self.min > self.max:
            raise ValueError(f"min ({self.min}) is more than max ({self.max})")
        return self


def _check(raw: dict[str, Any]) -> tuple[str, str] | None:
    """A count written in the rule outside its own bounds can never run: say so at ``check``."""
    values = [raw.get(key) for key in ("replicas", "min", "max")]
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        replicas, low, high = values
        assert isinstance(replicas, int) and isinstance(low, int) and isinstance(high, int)
        if low <= high and not low <= replicas <= high:
            return "replicas", f"{replicas} is outside [min, max] = [{low}, {high}]"
    return None


def hpa_request(namespace: str) -> ApiRequest:
    return ApiRequest(
        verb="list",
        group="autoscaling",
        version="v2",
        plural="horizontalpodautoscalers",
        kind="HorizontalPodAutoscaler",
        namespace=namespace,
    )


def scale_body(resource_version: Any, replicas: Any) -> dict[str, Any]:
    return {"metadata": {"resourceVersion": resource_version}, "spec": {"replicas": replicas}}


def _plan(params: ScaleParams, within: str, resource_version: str = "<resourceVersion read>") -> list[str]:
    request = workload_request(params.kind, params.namespace, params.name)
    scale = workload_request(params.kind, params.namespace, params.name, "scale")
    return [
        str(request),
        f"{hpa_request(params.namespace)} (refused when one targets {params.kind} {params.name})",
        f"{scale.with_body(scale_body(resource_version, params.replicas))}; on 409 Conflict re-read and "
        f"decide again (at most {MAX_CONFLICTS} attempts)",
        f"poll {request} every {seconds(params.poll_interval)} until {params.replicas} replica(s), every "
        f"one Ready, for up to {within}",
    ]


def _describe(params: ScaleParams) -> list[str]:
    return _plan(params, planned_within(params))


@dataclass(frozen=True)
class Decided:
    workload: Workload
    seen: Rollout
    note: str = ""  # the drift the change leaves in Argo CD


@handler("kubernetes.scale", params=ScaleParams, describe=_describe, check=_check)
class Scale(Handler[ScaleParams, Decided, Decided]):
    """Set a Deployment's or StatefulSet's replicas through its scale subresource, within [min, max]."""

    async def precheck(self, params: ScaleParams, ctx: Context) -> Checked[Decided]:
        api = await api_client(ctx)
        workload = Workload(api, ctx, params.kind, params.namespace, params.name)
        seen = await workload.read()
        state = f"{workload.where}: {seen.summary()}"
        decided = Decided(workload, seen)
        if not params.min <= params.replicas <= params.max:
            refused = Result.failed(
                f"refused: {params.replicas} replica(s) is outside [min, max] = [{params.min}, {params.max}] "
                f"for {workload.where}; not scaled",
                replicas=params.replicas,
            )
            return Checked(state, decided, done=refused)
        autoscaler = await _autoscaler(api, ctx, params)
        if autoscaler:
            refused = Result.failed(
                f"refused: {autoscaler} targets {workload.where} and would undo the change; change the "
                "HorizontalPodAutoscaler's minReplicas/maxReplicas instead; not scaled",
                autoscaler=autoscaler,
            )
            return Checked(state, decided, done=refused)
        if seen.desired == params.replicas:
            done = Result.noop(
                f"{workload.where} is already at {params.replicas} replica(s) ({seen.ready} ready)",
                replicas=params.replicas,
            )
            return Checked(state, decided, done=done)
        gitops = await _gitops(workload, seen, params, ctx)
        if isinstance(gitops, Result):
            return Checked(state, decided, done=gitops)
        return Checked(state, Decided(workload, seen, gitops))

    async def act(self, params: ScaleParams, ctx: Context, seen: Decided) -> Decided | Result:
        workload = seen.workload
        if ctx.dry_run:
            return Result.dry_run(
                _plan(params, seconds(verify_within(params, ctx)), seen.seen.resource_version),
                f"dry run: would scale {workload.where} from {seen.seen.desired} to {params.replicas} "
                f"replica(s); nothing done{seen.note}",
                replicas=params.replicas,
                was=seen.seen.desired,
            )

        async def attempt(read: Rollout) -> Rollout:
            await workload.patch_scale(scale_body(read.resource_version, params.replicas))
            return read

        async def reread() -> Rollout:
            return await workload.read()

        first = await rereading_conflicts(
            ctx, seen.seen, attempt, reread, where=workload.where, undone="not scaled"
        )
        return Decided(workload, first, seen.note)

    async def verify(self, params: ScaleParams, ctx: Context, acted: Decided) -> Result:
        workload, within, count = acted.workload, verify_within(params, ctx), params.replicas
        ctx.step(
            "verify",
            f"poll {workload.request} every {seconds(params.poll_interval)} until {count} replica(s), "
            f"every one Ready, for up to {seconds(within)}",
        )
        observed = Observations(ctx)

        async def probe() -> tuple[bool, Rollout]:
            seen = await workload.read(record=False)
            observed.see(seen.summary())
            return seen.ready_at(count), seen

        ready, seen = await poll(ctx, probe, every=params.poll_interval, within=within)
        was = acted.seen.desired
        if not ready:
            return Result.failed(
                f"{workload.where} was scaled from {was} to {count}, but {count} Ready replica(s) were not "
                f"there within {seconds(within)}: {seen.summary()}{acted.note}",
                retryable=True,
                replicas=count,
                was=was,
                ready=seen.ready,
            )
        return Result.succeeded(
            f"{workload.where} scaled from {was} to {count} replica(s), all Ready{acted.note}",
            replicas=count,
            was=was,
        )


async def _autoscaler(api: client.ApiClient, ctx: Context, params: ScaleParams) -> str:
    """The HorizontalPodAutoscaler that targets the workload ("" when none does)."""
    autoscaling = client.AutoscalingV2Api(api)
    found = await send(
        ctx,
        hpa_request(params.namespace),
        lambda timeout: autoscaling.list_namespaced_horizontal_pod_autoscaler(
            params.namespace, _request_timeout=timeout
        ),
    )
    for item in found.items or []:
        ref = item.spec.scale_target_ref
        group, _, _ = str(ref.api_version or "").rpartition("/")  # "apps/v1" -> "apps"; "v1" -> ""
        if ref.kind == params.kind and ref.name == params.name and group in ("apps", ""):
            low = item.spec.min_replicas if item.spec.min_replicas is not None else 1
            return (
                f"HorizontalPodAutoscaler {params.namespace}/{item.metadata.name} "
                f"(min {low}, max {item.spec.max_replicas})"
            )
    return ""


async def _gitops(workload: Workload, seen: Rollout, params: ScaleParams, ctx: Context) -> str | Result:
    app = await managing_app(ctx, params, workload.where, seen.annotations, seen.labels)
    in_git = replicas_in_git(seen.annotations, list(seen.managed_fields))
    if app is None or in_git is False:
        return ""
    commit = f"set `replicas: {params.replicas}` on `{params.kind.lower()}/{params.name}` in {app.in_git}"
    if app.self_heal and params.gitops == "respect":
        known = "Git sets" if in_git else "it cannot be told whether Git sets (assumed it does)"
        return Result.failed(
            refusal(
                app,
                workload.where,
                f"{known} spec.replicas, so Argo CD would scale it back",
                f"Commit the change instead: {commit}",
            ),
            change_to_commit=commit,
            **app.details(),
        )
    return f". {drift(app, commit)}"
