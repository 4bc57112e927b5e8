"""``kubernetes.cordon`` and ``kubernetes.uncordon``: take a node out of scheduling (and
drain it), or put it back.

``cordon`` merge-patches ``spec.unschedulable: true`` on the Node. With ``drain: true`` it
then evicts the node's pods through the Eviction API (``pods/<name>/eviction``), so every
PodDisruptionBudget is respected: a budget that allows no disruption now answers 429, and
the eviction is tried again every ``poll_interval`` until ``verify_timeout`` runs out.
DaemonSet pods (their controller would put them back at once) and mirror pods (the
kubelet's static pods, annotated ``kubernetes.io/config.mirror``) are left alone. A pod
with no controller would be gone for good: the drain is refused, naming it. More pods to
evict than ``max_pods`` is refused before anything is done. Verify: the node is
unschedulable and, when draining, none of those pods is left on it (terminating included).

``uncordon`` removes ``spec.unschedulable``. Nodes are cluster-scoped: the permissions
(get/patch nodes, list pods in every namespace, create pods/eviction) are a ClusterRole of
their own, in the opt-in component ``deploy/components/node-rbac``.

Argo CD: a Node that an Application manages, with ``spec.unschedulable`` in Git, would be
set back by self-heal: refused unless ``gitops: override``; otherwise nothing to report.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any, cast

from pydantic import Field

from handlers.gitops import GitOpsParams, field_in_git, managing_app, refusal
from handlers.kube import ApiRequest, Subdomain, api_client, client, send, send_patch, shown
from handlers.workloads import terminating
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
    seconds,
    verify_within,
)

MIRROR = "kubernetes.io/config.mirror"
CORDON: dict[str, Any] = {"spec": {"unschedulable": True}}
UNCORDON: dict[str, Any] = {"spec": {"unschedulable": None}}


class CordonParams(GitOpsParams):
    node: Subdomain
    """DNS-1123 subdomain"""
    drain: bool = False
    """(`cordon` only) also evict the node's pods"""
    max_pods: int = Field(default=10, ge=1, le=1000)
    """(`cordon` only) at most this many pods to evict (1 to 1000): more is refused before anything is done"""
    verify_timeout: VerifyTimeout = None
    """duration: how long the evictions may be retried and the drain waited for (unset: the rule's)"""
    poll_interval: PollInterval = 2.0
    """duration (at most `1m`)"""


class UncordonParams(GitOpsParams):
    node: Subdomain
    """DNS-1123 subdomain"""
    verify_timeout: VerifyTimeout = None
    """duration: how long the evictions may be retried and the drain waited for (unset: the rule's)"""
    poll_interval: PollInterval = 2.0
    """duration (at most `1m`)"""


def node_request(name: str) -> ApiRequest:
    return ApiRequest(
        verb="get", group="", version="v1", plural="nodes", kind="Node", namespace="", name=name
    )


def node_pods_request(name: str) -> ApiRequest:
    return ApiRequest(
        verb="list",
        group="",
        version="v1",
        plural="pods",
        kind="Pod",
        namespace="",
        field_selector=f"spec.nodeName={name}",
    )


def eviction_body(namespace: str, name: str) -> dict[str, Any]:
    return {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": name, "namespace": namespace}}


def eviction_request(namespace: str, name: str) -> ApiRequest:
    return ApiRequest(
        verb="create",
        group="",
        version="v1",
        plural="pods",
        kind="Pod",
        namespace=namespace,
        name=name,
        subresource="eviction",
        body=eviction_body(namespace, name),
    )


@dataclass(frozen=True)
class NodePods:
    """The pods on a node, as a drain sorts them."""

    evict: tuple[tuple[str, str], ...] = ()  # (namespace, name)
    skipped: tuple[str, ...] = ()  # DaemonSet and mirror pods: "ns/name (why)"
    bare: tuple[str, ...] = ()  # no controller: a drain would lose them
    leaving: tuple[str, ...] = ()  # terminating already

    @classmethod
    def of(cls, pods: list[Any]) -> NodePods:
        evict, skipped, bare, leaving = [], [], [], []
        for pod in pods:
            meta = pod.metadata
            name = f"{meta.namespace}/{meta.name}"
            owner = next((r for r in meta.owner_references or [] if r.controller), None)
            if MIRROR in (meta.annotations or {}):
                skipped.append(f"{name} (mirror pod)")
            elif owner is not None and owner.kind == "DaemonSet":
                skipped.append(f"{name} (DaemonSet {owner.name})")
            elif terminating(pod):
                leaving.append(name)
            elif owner is None:
                bare.append(name)
            else:
                evict.append((str(meta.namespace), str(meta.name)))
        return cls(tuple(evict), tuple(skipped), tuple(bare), tuple(leaving))

    @property
    def left(self) -> list[str]:
        """What a drained node may not have: pods to evict and pods still terminating."""
        return [f"{ns}/{name}" for ns, name in self.evict] + list(self.leaving) + list(self.bare)

    def summary(self) -> str:
        parts = [f"{len(self.evict)} to evict"]
        if self.leaving:
            parts.append(f"{len(self.leaving)} terminating")
        if self.bare:
            parts.append(f"{len(self.bare)} without a controller")
        if self.skipped:
            parts.append(f"{len(self.skipped)} left alone ({shown(list(self.skipped))})")
        return ", ".join(parts)


class _Node:
    """One node, and the pods on it, through the app's client."""

    def __init__(self, api: client.ApiClient, ctx: Context, name: str) -> None:
        self.core, self.ctx, self.name = client.CoreV1Api(api), ctx, name
        self.request = node_request(name)
        self.where = self.request.target

    async def read(self, *, record: bool = True) -> Any:
        return await send(
            self.ctx,
            self.request,
            lambda timeout: self.core.read_node(self.name, _request_timeout=timeout),
            record=record,
        )

    async def patch(self, body: dict[str, Any]) -> None:
        await send_patch(self.ctx, self.request.with_body(body), self.core.patch_node, self.name)

    async def pods(self, *, record: bool = True) -> NodePods:
        found = await send(
            self.ctx,
            node_pods_request(self.name),
            lambda timeout: self.core.list_pod_for_all_namespaces(
                field_selector=f"spec.nodeName={self.name}", _request_timeout=timeout
            ),
            record=record,
        )
        return NodePods.of(list(found.items or []))

    async def evict(self, namespace: str, name: str) -> None:
        body = eviction_body(namespace, name)
        await send(
            self.ctx,
            eviction_request(namespace, name),
            lambda timeout: self.core.create_namespaced_pod_eviction(
                name, namespace, cast(Any, body), _request_timeout=timeout
            ),
        )


def unschedulable(node: Any) -> bool:
    return bool(getattr(node.spec, "unschedulable", None))


async def _gitops(node: _Node, obj: Any, params: GitOpsParams) -> Result | None:
    """Refuse a change of spec.unschedulable that a self-healing Application would revert."""
    meta = obj.metadata
    app = await managing_app(node.ctx, params, node.where, meta.annotations, meta.labels)
    if app is None or not app.self_heal or params.gitops == "override":
        return None
    if not field_in_git(meta.annotations, list(meta.managed_fields or []), ("spec", "unschedulable")):
        return None
    return Result.failed(
        refusal(
            app,
            node.where,
            "Git sets spec.unschedulable, so Argo CD would set it back",
            f"Change spec.unschedulable of the Node in {app.in_git}",
        ),
        **app.details(),
    )


# ---- cordon ------------------------------------------------------------------------------------
def _cordon_plan(params: CordonParams, within: str, pods: NodePods | None = None) -> list[str]:
    node = node_request(params.node)
    plan = [str(node), str(node.with_body(CORDON))]
    if not params.drain:
        return [*plan, f"poll {node} until spec.unschedulable is true, for up to {within}"]
    plan.insert(1, f"{node_pods_request(params.node)} (DaemonSet and mirror pods are left alone)")
    if pods is None:
        plan.append(
            f"for each pod to evict (at most {params.max_pods}): {eviction_request('<namespace>', '<pod>')}; "
            f"a 429 from a PodDisruptionBudget: try again every {seconds(params.poll_interval)}, "
            f"within {within}"
        )
    else:
        plan += [str(eviction_request(ns, name)) for ns, name in pods.evict]
        plan.append(
            f"(a 429 from a PodDisruptionBudget: try again every {seconds(params.poll_interval)}, "
            f"within {within})"
        )
    plan.append(f"poll {node_pods_request(params.node)} until none of those pods is left, for up to {within}")
    return plan


def _describe_cordon(params: CordonParams) -> list[str]:
    return _cordon_plan(params, planned_within(params))


@dataclass(frozen=True)
class Cordoning:
    node: _Node
    cordoned: bool  # unschedulable already
    pods: NodePods = field(default_factory=NodePods)
    evicted: tuple[str, ...] = ()


@handler("kubernetes.cordon", params=CordonParams, describe=_describe_cordon)
class Cordon(Handler[CordonParams, Cordoning, Cordoning]):
    """Mark a node unschedulable; with drain, evict its pods through the Eviction API."""

    async def precheck(self, params: CordonParams, ctx: Context) -> Checked[Cordoning]:
        node = _Node(await api_client(ctx), ctx, params.node)
        obj = await node.read()
        cordoned = unschedulable(obj)
        state = f"{node.where}: {'unschedulable' if cordoned else 'schedulable'}"
        pods = NodePods()
        if params.drain:
            pods = await node.pods()
            state += f"; pods: {pods.summary()}"
        looked = Cordoning(node, cordoned, pods)
        ctx.step("observe", state)
        if refused := _drain_refused(params, node, pods):
            return Checked(state, looked, done=refused)
        if cordoned and not pods.evict and not pods.leaving:
            drained = " and drained" if params.drain else ""
            return Checked(state, looked, done=Result.noop(f"{node.where} is cordoned{drained} already"))
        return Checked(state, looked, done=await _gitops(node, obj, params))

    async def act(self, params: CordonParams, ctx: Context, seen: Cordoning) -> Cordoning | Result:
        node, within = seen.node, verify_within(params, ctx)
        if ctx.dry_run:
            what = f"cordon {node.where}" + (
                f" and evict {len(seen.pods.evict)} pod(s)" if params.drain else ""
            )
            return Result.dry_run(
                _cordon_plan(params, seconds(within), seen.pods if params.drain else None),
                f"dry run: would {what}; nothing done",
                evict=[f"{ns}/{name}" for ns, name in seen.pods.evict],
            )
        if not seen.cordoned:
            await node.patch(CORDON)
        if not params.drain:
            return seen
        pods = await node.pods()  # again: what is there once the node takes no new pod
        if refused := _drain_refused(params, node, pods):
            return refused
        return await _evict_all(node, pods, params, deadline=time.monotonic() + within)

    async def verify(self, params: CordonParams, ctx: Context, acted: Cordoning) -> Result:
        node, within = acted.node, verify_within(params, ctx)
        ctx.step(
            "verify",
            f"poll {node.request}{' and ' + str(node_pods_request(params.node)) if params.drain else ''} "
            "every "
            f"{seconds(params.poll_interval)} until it is unschedulable"
            f"{' with none of its pods left' if params.drain else ''}, for up to {seconds(within)}",
        )
        observed = Observations(ctx)

        async def probe() -> tuple[bool, str]:
            if not unschedulable(await node.read(record=False)):
                observed.see(f"{node.where} is schedulable")
                return False, "the node is schedulable again"
            if not params.drain:
                return True, ""
            left = (await node.pods(record=False)).left
            observed.see(f"{len(left)} pod(s) left: {shown(left)}" if left else "no pod left to evict")
            return not left, f"{len(left)} pod(s) still on it: {shown(left)}"

        done, last = await poll(ctx, probe, every=params.poll_interval, within=within)
        evicted = (
            f"; evicted {len(acted.evicted)} pod(s): {shown(list(acted.evicted))}" if acted.evicted else ""
        )
        if not done:
            return Result.failed(
                f"{node.where} was cordoned{evicted}, but {last} after {seconds(within)}",
                retryable=True,
                evicted=list(acted.evicted),
            )
        drained = " and drained" if params.drain else ""
        return Result.succeeded(f"{node.where} cordoned{drained}{evicted}", evicted=list(acted.evicted))


def _drain_refused(params: CordonParams, node: _Node, pods: NodePods) -> Result | None:
    if not params.drain:
        return None
    if pods.bare:
        return Result.failed(
            f"refused to drain {node.where}: {len(pods.bare)} pod(s) have no controller and would be gone "
            "for "
            f"good: {shown(list(pods.bare))}; move or delete them first; not cordoned",
            bare=list(pods.bare),
        )
    if len(pods.evict) > params.max_pods:
        return Result.failed(
            f"refused to drain {node.where}: {len(pods.evict)} pods to evict, more than max_pods "
            f"{params.max_pods}; nothing evicted",
            pods=len(pods.evict),
        )
    return None


async def _evict_all(
    node: _Node, pods: NodePods, params: CordonParams, *, deadline: float
) -> Cordoning | Result:
    """Evict every pod; a 429 (a disruption budget) is tried again until ``deadline``."""
    ctx, evicted, blocked = node.ctx, [], dict[str, str]()
    waiting = list(pods.evict)
    while waiting:
        for namespace, name in list(waiting):
            try:
                await node.evict(namespace, name)
            except TemporaryError as exc:
                if exc.details.get("status") != 429:
                    raise
                if blocked.get(f"{namespace}/{name}") != str(exc):
                    ctx.step("evict.blocked", f"{namespace}/{name}: {exc}; trying again")
                blocked[f"{namespace}/{name}"] = str(exc)
                continue
            except PermanentError as exc:
                if exc.details.get("status") != 404:
                    raise
            waiting.remove((namespace, name))
            blocked.pop(f"{namespace}/{name}", None)
            evicted.append(f"{namespace}/{name}")
        if not waiting:
            break
        if time.monotonic() + params.poll_interval > deadline:
            return Result.failed(
                f"{node.where} is cordoned, but {len(waiting)} pod(s) could not be evicted before the "
                f"verify_timeout: {'; '.join(blocked.values()) or shown([f'{n}/{p}' for n, p in waiting])}"
                f"{'; evicted ' + shown(evicted) if evicted else ''}",
                retryable=True,
                evicted=evicted,
                blocked=sorted(blocked),
            )
        await asyncio.sleep(params.poll_interval)
    return Cordoning(node, True, pods, tuple(evicted))


# ---- uncordon ------------------------------------------------------------------------------------
def _uncordon_plan(params: UncordonParams, within: str) -> list[str]:
    node = node_request(params.node)
    return [
        str(node),
        str(node.with_body(UNCORDON)),
        f"poll {node} until it is schedulable, for up to {within}",
    ]


def _describe_uncordon(params: UncordonParams) -> list[str]:
    return _uncordon_plan(params, planned_within(params))


@handler("kubernetes.uncordon", params=UncordonParams, describe=_describe_uncordon)
class Uncordon(Handler[UncordonParams, _Node, _Node]):
    """Mark a node schedulable again (undo kubernetes.cordon)."""

    async def precheck(self, params: UncordonParams, ctx: Context) -> Checked[_Node]:
        node = _Node(await api_client(ctx), ctx, params.node)
        obj = await node.read()
        if not unschedulable(obj):
            return Checked(
                f"{node.where}: schedulable", node, done=Result.noop(f"{node.where} is schedulable already")
            )
        return Checked(f"{node.where}: unschedulable", node, done=await _gitops(node, obj, params))

    async def act(self, params: UncordonParams, ctx: Context, seen: _Node) -> _Node | Result:
        if ctx.dry_run:
            return Result.dry_run(
                _uncordon_plan(params, seconds(verify_within(params, ctx))),
                f"dry run: would uncordon {seen.where}; nothing done",
            )
        await seen.patch(UNCORDON)
        return seen

    async def verify(self, params: UncordonParams, ctx: Context, acted: _Node) -> Result:
        within = verify_within(params, ctx)

        async def probe() -> tuple[bool, None]:
            return not unschedulable(await acted.read(record=False)), None

        done, _ = await poll(ctx, probe, every=params.poll_interval, within=within)
        if not done:
            return Result.failed(
                f"{acted.where} is still unschedulable {seconds(within)} after the patch", retryable=True
            )
        return Result.succeeded(f"{acted.where} uncordoned: schedulable again")
