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

import re
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import AfterValidator, Field

from handlers.gitops import App, GitOpsParams, drift, managing_app, refusal
from handlers.kube import (
    ApiRequest,
    DeploymentAccess,
    Label,
    Subdomain,
    api_client,
    client,
    selector_string,
    send,
    shown,
)
from remediator import (
    MAX_CONFLICTS,
    Context,
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

REVISION = "deployment.kubernetes.io/revision"
MAX_VALUE = 32_768
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def env_name(value: str) -> str:
    if len(value) > 256 or not _ENV_NAME.fullmatch(value):
        raise ValueError(
            f"{value!r} is not a valid environment variable name (letters, digits and '_', "
            "not starting with a digit, at most 256)"
        )
    return value


def env_value(value: str) -> str:
    if len(value) > MAX_VALUE:
        raise ValueError(f"an environment variable value of {len(value)} characters (at most {MAX_VALUE})")
    if match := _CONTROL.search(value):
        raise ValueError(f"{value[:80]!r} holds a control character ({match.group()!r}): refused")
    return value


EnvName = Annotated[str, AfterValidator(env_name)]
EnvValue = Annotated[str, AfterValidator(env_value)]


class SetEnvParams(GitOpsParams):
    namespace: Label
    deployment: Subdomain
    container: Label | None = None  # default: the Deployment's only container
    env: Annotated[dict[EnvName, EnvValue], Field(min_length=1)]
    verify_timeout: VerifyTimeout = None
    poll_interval: PollInterval = 2.0


@dataclass(frozen=True)
class Var:
    """One entry of the container's env, as read."""

    name: str
    value: str  # "" when unset
    from_ref: bool  # set by valueFrom (a Secret, ConfigMap or field reference)


@dataclass(frozen=True)
class Seen:
    """What one read of the Deployment showed."""

    resource_version: str
    uid: str
    annotations: dict[str, str]
    labels: dict[str, str]
    generation: int
    revision: str
    selector: str
    container: str
    index: int  # of the container in spec.template.spec.containers
    env: tuple[Var, ...]
    replicas: int
    observed_generation: int
    updated: int
    ready: int
    current: int  # status.replicas

    @classmethod
    def of(cls, dep: Any, wanted: str | None, where: str) -> Seen:
        meta, spec, status = dep.metadata, dep.spec, dep.status
        containers = list(spec.template.spec.containers or [])
        index = _container_index([c.name for c in containers], wanted, where)
        env = tuple(
            Var(name=v.name, value=v.value or "", from_ref=v.value_from is not None)
            for v in containers[index].env or []
        )
        selector = spec.selector
        return cls(
            resource_version=str(meta.resource_version or ""),
            uid=str(meta.uid or ""),
            annotations=dict(meta.annotations or {}),
            labels=dict(meta.labels or {}),
            generation=int(meta.generation or 0),
            revision=str((meta.annotations or {}).get(REVISION) or ""),
            selector=selector_string(selector.match_labels, selector.match_expressions) if selector else "",
            container=containers[index].name,
            index=index,
            env=env,
            replicas=1 if spec.replicas is None else int(spec.replicas),
            observed_generation=int(getattr(status, "observed_generation", None) or 0),
            updated=int(getattr(status, "updated_replicas", None) or 0),
            ready=int(getattr(status, "ready_replicas", None) or 0),
            current=int(getattr(status, "replicas", None) or 0),
        )

    def current_values(self, names: list[str]) -> dict[str, str | None]:
        """The literal value of each name (``None``: not set)."""
        found: dict[str, str | None] = dict.fromkeys(names)
        for var in self.env:
            if var.name in found:
                found[var.name] = var.value
        return found

    def status(self) -> str:
        return (
            f"observedGeneration {self.observed_generation}/{self.generation}, replicas {self.replicas}, "
            f"updated {self.updated}, ready {self.ready}, status.replicas {self.current}"
        )

    def rolled_out(self) -> bool:
        return (
            self.observed_generation >= self.generation
            and self.updated == self.ready == self.current == self.replicas
        )


def _container_index(names: list[str], wanted: str | None, where: str) -> int:
    if wanted is not None:
        if wanted not in names:
            raise PermanentError(f"{where} has no container {wanted!r}; its containers: {', '.join(names)}")
        return names.index(wanted)
    if len(names) != 1:
        raise PermanentError(
            f"{where} has {len(names)} containers ({', '.join(names)}): name one with the `container` param"
        )
    return 0


def patch_ops(seen: Seen, env: dict[str, str]) -> list[dict[str, Any]]:
    """The JSON Patch: guard on the version read; set the named values in place, append new ones."""
    base = f"/spec/template/spec/containers/{seen.index}/env"
    ops: list[dict[str, Any]] = [
        {"op": "replace", "path": "/metadata/resourceVersion", "value": seen.resource_version}
    ]
    present = {var.name for var in seen.env}
    missing = [{"name": name, "value": value} for name, value in env.items() if name not in present]
    if not seen.env:
        return [*ops, {"op": "add", "path": base, "value": missing}]
    for i, var in enumerate(seen.env):
        if var.name in env and var.value != env[var.name]:
            ops.append({"op": "add", "path": f"{base}/{i}/value", "value": env[var.name]})
    ops.extend({"op": "add", "path": f"{base}/-", "value": var} for var in missing)
    return ops


def assignments(env: dict[str, str]) -> str:
    return ", ".join(f"{name}={value}" for name, value in env.items())


def _get(params: SetEnvParams) -> ApiRequest:
    return ApiRequest(
        verb="get",
        group="apps",
        version="v1",
        plural="deployments",
        kind="Deployment",
        namespace=params.namespace,
        name=params.deployment,
    )


def _list(params: SetEnvParams, plural: str, kind: str, selector: str) -> ApiRequest:
    return ApiRequest(
        verb="list",
        group="apps" if plural == "replicasets" else "",
        version="v1",
        plural=plural,
        kind=kind,
        namespace=params.namespace,
        label_selector=selector,
    )


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


@handler("kubernetes.set_env", params=SetEnvParams, describe=_describe)
async def set_env(params: SetEnvParams, ctx: Context) -> Result:
    """Set environment variables on one container of a Deployment, then wait for the rollout."""
    dep = _Deployment(await api_client(ctx), params, ctx)
    timeout = verify_within(params, ctx)
    names = list(params.env)
    found: list[App | None] = []

    async def managed(seen: Seen) -> App | None:
        """The managing Application, looked up once (a conflict re-reads the Deployment only)."""
        if not found:
            found.append(await managing_app(ctx, params, dep.where, seen.annotations, seen.labels))
        return found[0]

    async def attempt(seen: Seen) -> Result | Change:
        """A Result when there is nothing to write, else the change written."""
        where = f"container {seen.container} of {dep.where}"
        refs = sorted({var.name for var in seen.env if var.name in params.env and var.from_ref})
        if refs:
            return Result.failed(
                f"{where}: {', '.join(refs)} set from valueFrom (a Secret, ConfigMap or field "
                "reference); never overwritten with a literal: change the reference instead",
                container=seen.container,
                value_from=refs,
            )
        was = seen.current_values(names)
        ctx.step("observe", f"{where}: {', '.join(f'{n}={was[n]}' for n in names)}", current=was)
        if all(was[name] == value for name, value in params.env.items()):
            return Result.noop(
                f"{where} already has {assignments(params.env)}", container=seen.container, current=was
            )
        app = await managed(seen)
        commit = (
            f"set `{assignments(params.env)}` on container `{seen.container}` of "
            f"`deployment/{params.deployment}` (namespace {params.namespace}) in "
            f"{app.in_git if app else 'Git'}"
        )
        if app is not None and app.self_heal and params.gitops == "respect":
            return Result.failed(
                refusal(
                    app,
                    dep.where,
                    "Argo CD would revert a live patch within seconds",
                    f"Commit the change instead: {commit}",
                ),
                change_to_commit=commit,
                **app.details(),
            )
        change = Change(was=was, ops=patch_ops(seen, params.env), app=app, commit=commit)
        if ctx.dry_run:
            note = f"; {drift(app, commit)}" if app else ""
            return Result.dry_run(
                _plan(params, seconds(timeout), seen),
                f"dry run: would set {change.text(params.env)} on {where}; nothing done{note}",
                container=seen.container,
                patch=change.ops,
            )
        await dep.patch(change.ops)
        return change

    seen = await dep.read()
    done = await rereading_conflicts(ctx, seen, attempt, dep.read, where=dep.where, undone="nothing set")
    if isinstance(done, Result):
        return done
    return await _verify(dep, done, within=timeout)


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
