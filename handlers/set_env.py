"""``kubernetes.set_env``: ensure environment variables on one container of a Deployment.

Precheck reads the Deployment: every value already set -> ``noop``; a variable set
from ``valueFrom`` (a Secret or ConfigMap reference) is never overwritten with a
literal -> ``failed``. The write is ONE JSON Patch of that container's ``env``
(RFC 6902: only the named variables' values, new ones appended; every other
variable and the order stay as they are), guarded by the resourceVersion read: a
concurrent change answers 409 and is re-read and decided again. Verify waits for
the rollout: observedGeneration current, updated = ready = desired replicas, and no
pod of an old ReplicaSet left (terminating ones included).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import Field

from handlers.container_env import REVISION, EnvName, EnvValue, Seen, assignments, patch_ops
from handlers.deployments import DeploymentAccess, deployment_request, list_request
from handlers.gitops import App, GitOpsParams, drift, managing_app, refusal
from handlers.kube import (
    ApiRequest,
    Label,
    Subdomain,
    api_client,
    client,
    send,
    shown,
)
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


class SetEnvParams(GitOpsParams):
    namespace: Label
    """DNS-1123 label"""
    deployment: Subdomain
    """DNS-1123 subdomain"""
    container: Label | None = None  # default: the Deployment's only container
    """DNS-1123 label. With several containers and none named, the run fails and names them (unset: the
    only one)
    """
    env: Annotated[dict[EnvName, EnvValue], Field(min_length=1)]
    """map of name -> value, at least one. Names: letters, digits and `_`, not starting with a digit.
    Values are data: templated, at most 32768 characters, any control character (`\\x00`-`\\x1f`,
    `\\x7f`-`\\x9f`, line breaks included) refused at render
    """
    verify_timeout: VerifyTimeout = None
    """duration: how long to wait for the rollout (unset: the rule's)"""
    poll_interval: PollInterval = 2.0
    """duration (at most `1m`)"""


def _get(params: SetEnvParams) -> ApiRequest:
    return deployment_request(params.namespace, params.deployment)


def _list(params: SetEnvParams, plural: str, kind: str, selector: str) -> ApiRequest:
    return list_request(params.namespace, selector, plural, kind)


def _verify_plan(params: SetEnvParams, timeout: str, selector: str) -> str:
    return (
        f"poll {_get(params)} every {seconds(params.poll_interval)} until observedGeneration is current "
        f"and updated == ready == status.replicas == spec.replicas, then "
        f"{_list(params, 'replicasets', 'ReplicaSet', selector)} and "
        f"{_list(params, 'pods', 'Pod', selector)} until no pod of an old ReplicaSet is left, "
        f"for up to {timeout}"
    )


def _plan(params: SetEnvParams, timeout: str, seen: Seen | None = None) -> list[str]:
    dep = _get(params)
    if seen is not None:
        patch = f"{dep.with_body(patch_ops(seen, params.env))}"
        selector = seen.selector
    else:
        which = f"container {params.container!r}" if params.container else "the only container"
        patch = (
            f"unless {assignments(params.env)} already (a valueFrom variable is never overwritten): "
            f"{dep.with_body([])} with a JSON Patch of {which}'s env: "
            '{"op":"replace","path":"/metadata/resourceVersion"} with the version read, '
            '{"op":"add","path":".../env/<i>/value"} for each variable present, '
            '{"op":"add","path":".../env/-"} for each one missing'
        )
        selector = "<the Deployment's selector>"
    return [
        str(dep),
        f"{patch}; on 409 Conflict re-read and decide again (at most {MAX_CONFLICTS} attempts)",
        _verify_plan(params, timeout, selector),
    ]


def _describe(params: SetEnvParams) -> list[str]:
    return _plan(params, planned_within(params))


class _Deployment(DeploymentAccess):
    """Reads and patches one Deployment, lists its ReplicaSets and pods."""

    def __init__(self, api: client.ApiClient, params: SetEnvParams, ctx: Context) -> None:
        super().__init__(api, ctx, _get(params), params.namespace, params.deployment)
        self.params = params

    async def read(self, *, record: bool = True) -> Seen:
        return Seen.of(await self.read_deployment(record=record), self.params.container, self.where)

    async def old_pods(self, seen: Seen, *, record: bool) -> list[str]:
        """Pods (terminating ones included) of this Deployment's ReplicaSets but the current one."""
        p = self.params
        sets = await send(
            self.ctx,
            _list(p, "replicasets", "ReplicaSet", seen.selector),
            lambda timeout: self.apps.list_namespaced_replica_set(
                p.namespace, label_selector=seen.selector, _request_timeout=timeout
            ),
            record=record,
        )
        old = {
            rs.metadata.name
            for rs in sets.items or []
            if _owned_by(rs, seen.uid) and (rs.metadata.annotations or {}).get(REVISION) != seen.revision
        }
        pods = await send(
            self.ctx,
            _list(p, "pods", "Pod", seen.selector),
            lambda timeout: self.core.list_namespaced_pod(
                p.namespace, label_selector=seen.selector, _request_timeout=timeout
            ),
            record=record,
        )
        return [
            pod.metadata.name
            for pod in pods.items or []
            if any(ref.name in old for ref in pod.metadata.owner_references or [])
        ]


def _owned_by(obj: Any, uid: str) -> bool:
    return any(ref.uid == uid for ref in obj.metadata.owner_references or [])


@dataclass(frozen=True)
class Change:
    """The variables to write, with what they were."""

    was: dict[str, str | None]
    ops: list[dict[str, Any]]
    app: App | None = None
    commit: str = ""

    def text(self, env: dict[str, str]) -> str:
        return ", ".join(
            f"{name}={value} (was {'unset' if self.was[name] is None else self.was[name]})"
            for name, value in env.items()
        )


@dataclass
class Decided:
    """The Deployment as read, what to write (or why not), and the Argo CD Application
    that manages it (looked up once: a conflict re-reads the Deployment only)."""

    dep: _Deployment
    seen: Seen
    change: Change | Result | None = None
    app: App | None = None
    looked_up: bool = False


@handler("kubernetes.set_env", params=SetEnvParams, describe=_describe)
class SetEnv(Handler[SetEnvParams, Decided, Change]):
    """Set environment variables on one container of a Deployment, then wait for the rollout."""

    async def precheck(self, params: SetEnvParams, ctx: Context) -> Checked[Decided]:
        dep = _Deployment(await api_client(ctx), params, ctx)
        decided = Decided(dep, await dep.read())
        change = await _decide(decided, params)
        state = f"container {decided.seen.container} of {dep.where}: {decided.seen.status()}"
        return Checked(state, decided, done=change if isinstance(change, Result) else None)

    async def act(self, params: SetEnvParams, ctx: Context, seen: Decided) -> Change | Result:
        dep, change = seen.dep, seen.change
        if not isinstance(change, Change):  # the precheck ended the run with it
            return change or Result.failed("kubernetes.set_env: act without a decision (handler bug)")
        if ctx.dry_run:
            where = f"container {seen.seen.container} of {dep.where}"
            note = f"; {drift(change.app, change.commit)}" if change.app else ""
            return Result.dry_run(
                _plan(params, seconds(verify_within(params, ctx)), seen.seen),
                f"dry run: would set {change.text(params.env)} on {where}; nothing done{note}",
                container=seen.seen.container,
                patch=change.ops,
            )

        async def attempt(decision: Change | Result) -> Change | Result:
            """Write the change decided on what was read (a Result: nothing to write)."""
            if isinstance(decision, Change):
                await dep.patch(decision.ops)
            return decision

        async def reread() -> Change | Result:
            seen.seen = await dep.read()
            return await _decide(seen, params)

        first: Change | Result = change
        return await rereading_conflicts(ctx, first, attempt, reread, where=dep.where, undone="nothing set")

    async def verify(self, params: SetEnvParams, ctx: Context, acted: Change) -> Result:
        dep = _Deployment(await api_client(ctx), params, ctx)
        return await _verify(dep, acted, within=verify_within(params, ctx))


async def _decide(decided: Decided, params: SetEnvParams) -> Change | Result:
    """The change to write on what was read, or the Result that ends the run: a variable set
    from valueFrom (failed), every value set already (noop), Argo CD would revert it."""
    dep, seen, ctx, names = decided.dep, decided.seen, decided.dep.ctx, list(params.env)
    where = f"container {seen.container} of {dep.where}"
    refs = sorted({var.name for var in seen.env if var.name in params.env and var.from_ref})
    if refs:
        decided.change = Result.failed(
            f"{where}: {', '.join(refs)} set from valueFrom (a Secret, ConfigMap or field "
            "reference); never overwritten with a literal: change the reference instead",
            container=seen.container,
            value_from=refs,
        )
        return decided.change
    was = seen.current_values(names)
    ctx.step("observe", f"{where}: {', '.join(f'{n}={was[n]}' for n in names)}", current=was)
    if all(was[name] == value for name, value in params.env.items()):
        decided.change = Result.noop(
            f"{where} already has {assignments(params.env)}", container=seen.container, current=was
        )
        return decided.change
    if not decided.looked_up:
        decided.app = await managing_app(ctx, params, dep.where, seen.annotations, seen.labels)
        decided.looked_up = True
    app = decided.app
    commit = (
        f"set `{assignments(params.env)}` on container `{seen.container}` of "
        f"`deployment/{params.deployment}` (namespace {params.namespace}) in "
        f"{app.in_git if app else 'Git'}"
    )
    if app is not None and app.self_heal and params.gitops == "respect":
        decided.change = Result.failed(
            refusal(
                app,
                dep.where,
                "Argo CD would revert a live patch within seconds",
                f"Commit the change instead: {commit}",
            ),
            change_to_commit=commit,
            **app.details(),
        )
        return decided.change
    decided.change = Change(was=was, ops=patch_ops(seen, params.env), app=app, commit=commit)
    return decided.change


async def _verify(dep: _Deployment, change: Change, within: float) -> Result:
    ctx, params = dep.ctx, dep.params
    ctx.step("verify", _verify_plan(params, seconds(within), "<the Deployment's selector>"))
    observed = Observations(ctx)
    set_text = change.text(params.env)

    async def probe() -> tuple[bool, str]:
        seen = await dep.read(record=False)
        if not seen.rolled_out():
            observed.see(seen.status())
            return False, seen.status()
        left = await dep.old_pods(seen, record=False)
        if left:
            text = f"{seen.status()}; {len(left)} pod(s) of an old ReplicaSet left: {shown(left)}"
            observed.see(text, pods=left)
            return False, text
        return True, seen.status()

    done, last = await poll(ctx, probe, every=params.poll_interval, within=within)
    details: dict[str, Any] = {"patch": change.ops, "was": change.was}
    note = ""
    if change.app is not None:
        note = f". {drift(change.app, change.commit)}"
        details.update(change_to_commit=change.commit, drift=True, **change.app.details())
    if not done:
        return Result.failed(
            f"{dep.where}: set {set_text}, but the rollout did not complete within {seconds(within)}: "
            f"{last}{note}",
            retryable=True,
            **details,
        )
    return Result.succeeded(
        f"{dep.where}: set {set_text}; rollout complete ({last}; no pod of an old ReplicaSet left){note}",
        **details,
    )
