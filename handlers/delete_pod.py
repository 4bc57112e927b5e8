"""``kubernetes.delete_pod``: delete one pod so that its controller makes a new one.

Precheck reads the pod. Only a pod with a controlling owner (``ownerReferences`` with
``controller: true``: a ReplicaSet, StatefulSet, DaemonSet, Job...) is deleted: a bare
pod would be gone for good, so it is refused unless the rule says ``allow_bare: true``.
A pod already gone, or already terminating, is a noop.

The delete carries the UID read as a precondition, so a replacement that took the name
meanwhile (a StatefulSet's) is never deleted by mistake (409: noop, it was replaced
already). Verify: a replacement from the same owner is Ready (a StatefulSet's has the same
name: told apart by its UID); for a bare pod, that the pod is gone.

Argo CD: deleting a pod with a controller changes no object Argo CD manages. A bare pod
that an Application tracks is reported: a self-healing one re-creates it, otherwise the
Application shows it Missing until synced.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, cast

from pydantic import Field

from handlers.gitops import GitOpsParams, managing_app
from handlers.kube import ApiRequest, Label, Subdomain, api_client, client, send, shown
from handlers.workloads import pod_ready, pods_request, terminating
from remediator import (
    Checked,
    Conflict,
    Context,
    Handler,
    Observations,
    PermanentError,
    PollInterval,
    Result,
    RuleDuration,
    VerifyTimeout,
    handler,
    planned_within,
    poll,
    seconds,
    verify_within,
)


class DeletePodParams(GitOpsParams):
    namespace: Label
    """DNS-1123 label"""
    pod: Subdomain
    """DNS-1123 subdomain"""
    grace_period: RuleDuration | None = Field(default=None, ge=0, le=86400)  # None: the pod's own
    """duration (`0s` to `1d`): `gracePeriodSeconds` of the delete (unset: the pod's own)"""
    allow_bare: bool = False
    """also delete a pod with no controlling owner (nothing replaces it)"""
    verify_timeout: VerifyTimeout = None
    """duration: how long to wait for the replacement (unset: the rule's)"""
    poll_interval: PollInterval = 2.0
    """duration (at most `1m`)"""


def pod_request(namespace: str, name: str) -> ApiRequest:
    return ApiRequest(
        verb="get", group="", version="v1", plural="pods", kind="Pod", namespace=namespace, name=name
    )


def delete_body(uid: str, grace: float | None) -> dict[str, Any]:
    body: dict[str, Any] = {"preconditions": {"uid": uid}}
    if grace is not None:
        body["gracePeriodSeconds"] = round(grace)
    return body


def _delete_request(params: DeletePodParams, uid: str) -> ApiRequest:
    request = pod_request(params.namespace, params.pod)
    return ApiRequest(
        verb="delete",
        group="",
        version="v1",
        plural="pods",
        kind="Pod",
        namespace=request.namespace,
        name=request.name,
        body=delete_body(uid, params.grace_period),
    )


@dataclass(frozen=True)
class Seen:
    """One read of the pod."""

    uid: str
    owner: str  # "ReplicaSet web/api-7d9f" ("" for a bare pod)
    owner_uid: str
    labels: dict[str, str]
    annotations: dict[str, str]
    terminating: bool

    @classmethod
    def of(cls, pod: Any) -> Seen:
        meta = pod.metadata
        ref = next((r for r in meta.owner_references or [] if r.controller), None)
        return cls(
            uid=str(meta.uid or ""),
            owner=f"{ref.kind} {meta.namespace}/{ref.name}" if ref is not None else "",
            owner_uid=str(ref.uid) if ref is not None else "",
            labels=dict(meta.labels or {}),
            annotations=dict(meta.annotations or {}),
            terminating=terminating(pod),
        )

    @property
    def selector(self) -> str:
        """The pod's own labels: its replacement, made from the same template, has them too."""
        return ",".join(f"{key}={value}" for key, value in sorted(self.labels.items()))


def _plan(params: DeletePodParams, within: str, seen: Seen | None = None) -> list[str]:
    uid = seen.uid if seen is not None else "<the UID read>"
    if seen is not None and not seen.owner:
        gone = pod_request(params.namespace, params.pod)
        wait = f"poll {gone} until it is gone (a bare pod: nothing replaces it)"
    else:
        selector = seen.selector if seen is not None else "<the pod's labels>"
        wait = (
            f"poll {pods_request(params.namespace, selector)} every {seconds(params.poll_interval)} until a "
            "pod of the same owner that was not there before the delete is Ready"
        )
    plan = [
        f"{pod_request(params.namespace, params.pod)} (refused unless it has a controlling owner"
        f"{'' if not params.allow_bare else ', or allow_bare'})",
        f"{_delete_request(params, uid)} (409: replaced already, nothing deleted)",
        f"{wait}, for up to {within}",
    ]
    if seen is None or seen.owner:
        selector = seen.selector if seen is not None else "<the pod's labels>"
        plan.insert(1, f"{pods_request(params.namespace, selector)} (the owner's pods before the delete)")
    return plan


def _describe(params: DeletePodParams) -> list[str]:
    return _plan(params, planned_within(params))


class _Pod:
    def __init__(self, api: client.ApiClient, ctx: Context, params: DeletePodParams) -> None:
        self.core, self.ctx, self.params = client.CoreV1Api(api), ctx, params
        self.request = pod_request(params.namespace, params.pod)
        self.where = self.request.target

    async def read(self, *, record: bool = True) -> Seen | None:
        """The pod, or None when it is gone."""
        p = self.params
        try:
            found = await send(
                self.ctx,
                self.request,
                lambda timeout: self.core.read_namespaced_pod(p.pod, p.namespace, _request_timeout=timeout),
                record=record,
            )
        except PermanentError as exc:
            if exc.details.get("status") == 404:
                return None
            raise
        return Seen.of(found)

    async def delete(self, seen: Seen) -> None:
        p = self.params
        body = delete_body(seen.uid, p.grace_period)
        await send(
            self.ctx,
            _delete_request(p, seen.uid),
            lambda timeout: self.core.delete_namespaced_pod(
                p.pod, p.namespace, body=cast(Any, body), _request_timeout=timeout
            ),
        )

    async def siblings(self, seen: Seen, *, record: bool = False) -> list[Any]:
        """The pods of the same owner as ``seen``, it included (terminating ones too)."""
        p = self.params
        found = await send(
            self.ctx,
            pods_request(p.namespace, seen.selector),
            lambda timeout: self.core.list_namespaced_pod(
                p.namespace, label_selector=seen.selector, _request_timeout=timeout
            ),
            record=record,
        )
        return [
            pod
            for pod in found.items or []
            if any(
                ref.controller and ref.uid == seen.owner_uid for ref in pod.metadata.owner_references or []
            )
        ]


@dataclass(frozen=True)
class Looked:
    pod: _Pod
    seen: Seen
    note: str = ""
    before: frozenset[str] = frozenset()  # the UIDs of the owner's pods before the delete


@handler("kubernetes.delete_pod", params=DeletePodParams, describe=_describe)
class DeletePod(Handler[DeletePodParams, Looked, Looked]):
    """Delete a pod with a controlling owner; wait until its replacement is Ready."""

    async def precheck(self, params: DeletePodParams, ctx: Context) -> Checked[Looked]:
        pod = _Pod(await api_client(ctx), ctx, params)
        seen = await pod.read()
        if seen is None:
            gone = Seen("", "", "", {}, {}, False)
            return Checked(
                f"{pod.where} is gone", Looked(pod, gone), done=Result.noop(f"{pod.where} is gone already")
            )
        state = f"{pod.where}: owner {seen.owner or 'none (a bare pod)'}" + (
            ", terminating" if seen.terminating else ""
        )
        looked = Looked(pod, seen)
        if seen.terminating:
            return Checked(state, looked, done=Result.noop(f"{pod.where} is being deleted already"))
        if not seen.owner and not params.allow_bare:
            refused = Result.failed(
                f"{pod.where} has no controlling owner: nothing would replace it, so it is not deleted "
                "(set `allow_bare: true` in the rule's params to delete bare pods)"
            )
            return Checked(state, looked, done=refused)
        note = ""
        if not seen.owner:
            app = await managing_app(ctx, params, pod.where, seen.annotations, seen.labels)
            if app is not None:
                note = (
                    f". {app.ref} self-heals and re-creates it"
                    if app.self_heal
                    else f". Argo CD drift: {app.ref} shows the pod Missing until it syncs"
                )
        return Checked(state, Looked(pod, seen, note))

    async def act(self, params: DeletePodParams, ctx: Context, seen: Looked) -> Looked | Result:
        pod = seen.pod
        if ctx.dry_run:
            return Result.dry_run(
                _plan(params, seconds(verify_within(params, ctx)), seen.seen),
                f"dry run: would delete {pod.where} (owner {seen.seen.owner or 'none'}); "
                f"nothing done{seen.note}",
                owner=seen.seen.owner,
            )
        before: frozenset[str] = frozenset()
        if seen.seen.owner:  # its replacement is a pod of the owner that was not there before
            before = frozenset(str(p.metadata.uid) for p in await pod.siblings(seen.seen, record=True))
        try:
            await pod.delete(seen.seen)
        except Conflict:
            return Result.noop(f"{pod.where} was replaced since it was read (another UID): nothing deleted")
        except PermanentError as exc:
            if exc.details.get("status") != 404:
                raise
            return Result.noop(f"{pod.where} was gone before the delete: nothing deleted")
        return dataclasses.replace(seen, before=before | {seen.seen.uid})

    async def verify(self, params: DeletePodParams, ctx: Context, acted: Looked) -> Result:
        pod, seen, within = acted.pod, acted.seen, verify_within(params, ctx)
        if not seen.owner:
            return await _gone(pod, seen, params, within, acted.note)
        ctx.step(
            "verify",
            f"poll {pods_request(params.namespace, seen.selector)} every {seconds(params.poll_interval)} "
            f"until a pod of {seen.owner} that was not there before the delete is Ready, for up to "
            f"{seconds(within)}",
        )
        observed = Observations(ctx)

        async def probe() -> tuple[bool, list[str]]:
            others = [p for p in await pod.siblings(seen) if p.metadata.uid not in acted.before]
            ready = [p.metadata.name for p in others if pod_ready(p)]
            names = [f"{p.metadata.name} ({'Ready' if pod_ready(p) else 'not Ready'})" for p in others]
            observed.see(f"new pods of {seen.owner}: {shown(names) or 'none yet'}")
            return bool(ready), ready

        done, ready = await poll(ctx, probe, every=params.poll_interval, within=within)
        if not done:
            return Result.failed(
                f"{pod.where} was deleted, but no replacement from {seen.owner} was Ready within "
                f"{seconds(within)}",
                retryable=True,
                owner=seen.owner,
            )
        same = " (same name, new UID)" if params.pod in ready else ""
        return Result.succeeded(
            f"{pod.where} deleted; {seen.owner} replaced it: {shown(ready)} Ready{same}",
            owner=seen.owner,
            replacement=ready,
        )


async def _gone(pod: _Pod, seen: Seen, params: DeletePodParams, within: float, note: str) -> Result:
    """A bare pod: it is gone (or, when Argo CD re-created it, the new one has another UID)."""
    pod.ctx.step(
        "verify", f"poll {pod.request} until the pod with UID {seen.uid} is gone, for up to {seconds(within)}"
    )

    async def probe() -> tuple[bool, None]:
        now = await pod.read(record=False)
        return now is None or now.uid != seen.uid, None

    done, _ = await poll(pod.ctx, probe, every=params.poll_interval, within=within)
    if not done:
        return Result.failed(f"{pod.where} is still there {seconds(within)} after its delete", retryable=True)
    return Result.succeeded(f"{pod.where} deleted (a bare pod: nothing replaces it){note}")
