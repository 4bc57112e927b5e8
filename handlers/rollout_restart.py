"""``kubernetes.rollout_restart``: a rolling restart, as ``kubectl rollout restart`` does it.

The write is one JSON merge patch of the workload's pod template: the annotation
``kubectl.kubernetes.io/restartedAt`` set to the time of the run (RFC 3339, UTC). The new
template makes the controller replace every pod, the way its update strategy says.

Precheck refuses what would never complete: a paused Deployment (it does not roll out
until resumed), a StatefulSet or DaemonSet whose update strategy is ``OnDelete`` (it
replaces a pod only when someone deletes it), a StatefulSet with a ``partition`` (the pods
below it keep the old revision). A workload at 0 replicas has nothing to restart (noop).

Verify: the rollout completes as ``kubectl rollout status`` says, and no pod of a revision
it had before the restart is left, terminating ones included.

Argo CD: the annotation is not in Git, and Argo CD ignores fields its manifest does not
set (its own "restart" action sets the same annotation), so a managed workload is
restarted without drift. Only when Git sets that annotation itself would self-heal put
it back (and restart again): then the restart is refused unless ``gitops: override``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from handlers.gitops import GitOpsParams, drift, field_in_git, managing_app, refusal
from handlers.kube import Label, Subdomain, api_client, shown
from handlers.workloads import Kind, Rollout, Workload, pods_request, revision_of, workload_request
from remediator import (
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
    seconds,
    verify_within,
)

RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
_TEMPLATE_PATH = ("spec", "template", "metadata", "annotations", RESTARTED_AT)


class RolloutRestartParams(GitOpsParams):
    namespace: Label
    """DNS-1123 label"""
    kind: Kind = "Deployment"
    """`Deployment`, `StatefulSet` or `DaemonSet`"""
    name: Subdomain
    """DNS-1123 subdomain"""
    verify_timeout: VerifyTimeout = None
    """duration: how long to wait for the rollout (unset: the rule's)"""
    poll_interval: PollInterval = 2.0
    """duration (at most `1m`)"""


def restart_body(at: str) -> dict[str, object]:
    return {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: at}}}}}


def now_rfc3339() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _plan(params: RolloutRestartParams, at: str, within: str, selector: str) -> list[str]:
    request = workload_request(params.kind, params.namespace, params.name)
    return [
        str(request),
        f"{pods_request(params.namespace, selector)} (the revisions of the pods before the restart)",
        str(request.with_body(restart_body(at))),
        f"poll {request} every {seconds(params.poll_interval)} until the rollout is complete "
        f"(kubectl rollout status) and {pods_request(params.namespace, selector)} shows no pod of an "
        f"earlier revision, for up to {within}",
    ]


def _describe(params: RolloutRestartParams) -> list[str]:
    return _plan(params, "<the time of the run, RFC 3339>", planned_within(params), "<the selector>")


@dataclass(frozen=True)
class Looked:
    """The workload as the precheck read it, and the pod revisions it had."""

    workload: Workload
    seen: Rollout
    old: frozenset[str]  # the revisions of its pods before the restart
    note: str = ""  # what Argo CD's management means here


@dataclass(frozen=True)
class Restarted:
    workload: Workload
    old: frozenset[str]
    at: str
    note: str


@handler("kubernetes.rollout_restart", params=RolloutRestartParams, describe=_describe)
class RolloutRestart(Handler[RolloutRestartParams, Looked, Restarted]):
    """Restart a Deployment, StatefulSet or DaemonSet as `kubectl rollout restart` does."""

    async def precheck(self, params: RolloutRestartParams, ctx: Context) -> Checked[Looked]:
        workload = Workload(await api_client(ctx), ctx, params.kind, params.namespace, params.name)
        seen = await workload.read()
        pods = await workload.pods(seen.selector) if seen.selector else []
        old = frozenset(r for r in (revision_of(params.kind, p) for p in pods) if r)
        state = f"{seen.summary()}; {len(pods)} pod(s)"
        ctx.step("observe", f"{workload.where}: {state}", pods=[p.metadata.name for p in pods])
        looked = Looked(workload, seen, old)
        refused = _refused(seen, params)
        if refused is not None:
            return Checked(state, looked, done=refused)
        if seen.desired == 0:
            return Checked(
                state, looked, done=Result.noop(f"{workload.where} has 0 replicas: no pod to restart")
            )
        gitops = await _gitops(workload, seen, params, ctx)
        if isinstance(gitops, Result):
            return Checked(state, looked, done=gitops)
        return Checked(state, Looked(workload, seen, old, gitops))

    async def act(self, params: RolloutRestartParams, ctx: Context, seen: Looked) -> Restarted | Result:
        at = now_rfc3339()
        if ctx.dry_run:
            return Result.dry_run(
                _plan(params, at, seconds(verify_within(params, ctx)), seen.seen.selector),
                f"dry run: would restart {seen.workload.where} (restartedAt {at}); nothing done{seen.note}",
                restarted_at=at,
            )
        await seen.workload.patch(restart_body(at))
        return Restarted(seen.workload, seen.old, at, seen.note)

    async def verify(self, params: RolloutRestartParams, ctx: Context, acted: Restarted) -> Result:
        workload, within = acted.workload, verify_within(params, ctx)
        ctx.step(
            "verify",
            f"poll {workload.request} every {seconds(params.poll_interval)} until the rollout is complete "
            f"and no pod of the revisions {', '.join(sorted(acted.old)) or '(none)'} is left, "
            f"for up to {seconds(within)}",
        )
        observed = Observations(ctx)

        async def probe() -> tuple[bool, str]:
            seen = await workload.read(record=False)
            if not seen.complete():
                observed.see(seen.summary())
                return False, seen.summary()
            left = [
                p.metadata.name
                for p in await workload.pods(seen.selector, record=False)
                if revision_of(params.kind, p) in acted.old
            ]
            if left:
                text = f"{seen.summary()}; {len(left)} pod(s) of the old revision left: {shown(left)}"
                observed.see(text, pods=left)
                return False, text
            return True, seen.summary()

        done, last = await poll(ctx, probe, every=params.poll_interval, within=within)
        if not done:
            return Result.failed(
                f"{workload.where} was restarted (restartedAt {acted.at}), but the rollout did not complete "
                f"within {seconds(within)}: {last}{acted.note}",
                retryable=True,
                restarted_at=acted.at,
            )
        return Result.succeeded(
            f"{workload.where} restarted (restartedAt {acted.at}): rollout complete, no pod of the old "
            f"revision left ({last}){acted.note}",
            restarted_at=acted.at,
        )


def _refused(seen: Rollout, params: RolloutRestartParams) -> Result | None:
    """A restart that would never complete, refused with why and what to do instead."""
    where = seen.where
    if seen.kind == "Deployment" and seen.paused:
        return Result.failed(
            f"{where} is paused (spec.paused: true): a restart would never roll out. Resume it first "
            f"(kubectl -n {params.namespace} rollout resume deployment/{params.name}); not restarted"
        )
    if seen.strategy == "OnDelete":
        return Result.failed(
            f"{where} has updateStrategy OnDelete: its controller replaces a pod only when someone "
            "deletes it, so a restart would never complete. Delete its pods instead "
            "(kubernetes.delete_pod); not restarted"
        )
    if seen.partition > 0:
        return Result.failed(
            f"{where} has updateStrategy.rollingUpdate.partition {seen.partition}: its pods below ordinal "
            f"{seen.partition} keep the old revision, so a restart would never complete; not restarted"
        )
    return None


async def _gitops(
    workload: Workload, seen: Rollout, params: RolloutRestartParams, ctx: Context
) -> str | Result:
    """The note for the result (""), or the refusal of a restart self-heal would undo."""
    app = await managing_app(ctx, params, workload.where, seen.annotations, seen.labels)
    if app is None:
        return ""
    in_git = field_in_git(seen.annotations, list(seen.managed_fields), _TEMPLATE_PATH)
    if not in_git:
        ctx.step(
            "gitops",
            f"Git does not set {RESTARTED_AT} on the pod template: Argo CD ignores the restart "
            "(its own restart action sets the same annotation); no drift",
        )
        return ""
    commit = (
        f"set `{RESTARTED_AT}` on the pod template of `{params.kind.lower()}/{params.name}` in {app.in_git}"
    )
    if app.self_heal and params.gitops == "respect":
        return Result.failed(
            refusal(
                app,
                workload.where,
                f"Git sets {RESTARTED_AT} on the pod template, so Argo CD would put its value back "
                "and restart the pods once more",
                f"Restart through Git instead: {commit}",
            ),
            change_to_commit=commit,
            **app.details(),
        )
    return f". {drift(app, commit)}"
