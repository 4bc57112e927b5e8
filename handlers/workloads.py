"""Workloads (Deployment, StatefulSet, DaemonSet) for the everyday-repair handlers: the
requests that name them, one read of a workload as a rollout sees it, and its pods.

``kubernetes.rollout_restart`` and ``kubernetes.scale`` share it. A rollout is complete as
``kubectl rollout status`` says (per kind, below); a pod belongs to an old revision when its
``pod-template-hash`` (Deployment) or ``controller-revision-hash`` (StatefulSet, DaemonSet)
label names a template the workload no longer has.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from handlers.kube import ApiRequest, client, selector_string, send, send_patch
from remediator import Context

Kind = Literal["Deployment", "StatefulSet", "DaemonSet"]
ScalableKind = Literal["Deployment", "StatefulSet"]
PLURALS: dict[str, str] = {
    "Deployment": "deployments",
    "StatefulSet": "statefulsets",
    "DaemonSet": "daemonsets",
}
# The label that tells a pod's template revision apart, per kind.
HASH_LABEL: dict[str, str] = {
    "Deployment": "pod-template-hash",
    "StatefulSet": "controller-revision-hash",
    "DaemonSet": "controller-revision-hash",
}


def workload_request(kind: str, namespace: str, name: str, subresource: str = "") -> ApiRequest:
    """``GET /apis/apps/v1/namespaces/<ns>/<plural>/<name>[/<subresource>]``."""
    return ApiRequest(
        verb="get",
        group="apps",
        version="v1",
        plural=PLURALS[kind],
        kind=kind,
        namespace=namespace,
        name=name,
        subresource=subresource,
    )


def pods_request(namespace: str, selector: str) -> ApiRequest:
    return ApiRequest(
        verb="list",
        group="",
        version="v1",
        plural="pods",
        kind="Pod",
        namespace=namespace,
        label_selector=selector,
    )


@dataclass(frozen=True)
class Rollout:
    """One read of a workload: its rollout's state, in the terms of ``kubectl rollout status``."""

    kind: str
    where: str  # "Deployment web/api"
    uid: str
    resource_version: str
    generation: int
    observed: int
    selector: str
    desired: int  # spec.replicas, or desiredNumberScheduled for a DaemonSet
    current: int  # status.replicas (currentNumberScheduled)
    ready: int
    updated: int
    available: int
    strategy: str  # RollingUpdate, Recreate, OnDelete
    paused: bool = False
    partition: int = 0
    current_revision: str = ""  # a StatefulSet's status.currentRevision
    update_revision: str = ""  # a StatefulSet's status.updateRevision
    annotations: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    template_annotations: dict[str, str] = field(default_factory=dict)
    managed_fields: tuple[Any, ...] = ()

    @classmethod
    def of(cls, kind: str, obj: Any, where: str) -> Rollout:
        meta, spec, status = obj.metadata, obj.spec, obj.status
        selector = spec.selector
        strategy = getattr(spec, "strategy", None) or getattr(spec, "update_strategy", None)
        rolling = getattr(strategy, "rolling_update", None)
        template_meta = spec.template.metadata if spec.template is not None else None

        def count(name: str) -> int:
            return int(getattr(status, name, None) or 0)

        daemon = kind == "DaemonSet"
        return cls(
            kind=kind,
            where=where,
            uid=str(meta.uid or ""),
            resource_version=str(meta.resource_version or ""),
            generation=int(meta.generation or 0),
            observed=count("observed_generation"),
            selector=selector_string(selector.match_labels, selector.match_expressions) if selector else "",
            desired=count("desired_number_scheduled")
            if daemon
            else (1 if spec.replicas is None else int(spec.replicas)),
            current=count("current_number_scheduled") if daemon else count("replicas"),
            ready=count("number_ready") if daemon else count("ready_replicas"),
            updated=count("updated_number_scheduled") if daemon else count("updated_replicas"),
            available=count("number_available") if daemon else count("available_replicas"),
            strategy=str(getattr(strategy, "type", None) or "RollingUpdate"),
            paused=bool(getattr(spec, "paused", None)),
            partition=int(getattr(rolling, "partition", None) or 0) if kind == "StatefulSet" else 0,
            current_revision=str(getattr(status, "current_revision", None) or ""),
            update_revision=str(getattr(status, "update_revision", None) or ""),
            annotations=dict(meta.annotations or {}),
            labels=dict(meta.labels or {}),
            template_annotations=dict((template_meta.annotations if template_meta else None) or {}),
            managed_fields=tuple(meta.managed_fields or ()),
        )

    def complete(self) -> bool:
        """The rollout is done, as ``kubectl rollout status`` decides it for the kind."""
        if self.observed < self.generation:
            return False
        if self.kind == "Deployment":
            return self.updated == self.desired == self.current == self.available == self.ready
        if self.kind == "StatefulSet":
            return (
                self.ready == self.desired == self.current
                and self.updated == self.desired
                and self.current_revision == self.update_revision
            )
        return self.updated == self.desired == self.available == self.current

    def ready_at(self, count: int) -> bool:
        """``count`` replicas, every one Ready, none more (terminating ones are not counted)."""
        return self.observed >= self.generation and self.desired == self.current == self.ready == count

    def summary(self) -> str:
        generation = f"observedGeneration {self.observed}/{self.generation}"
        if self.kind == "DaemonSet":
            return (
                f"{generation}, desired {self.desired}, scheduled {self.current}, updated {self.updated}, "
                f"ready {self.ready}, available {self.available}"
            )
        text = (
            f"{generation}, replicas {self.desired}, status.replicas {self.current}, updated {self.updated}, "
            f"ready {self.ready}, available {self.available}"
        )
        if self.kind == "StatefulSet":
            current, update = self.current_revision or "-", self.update_revision or "-"
            text += f", currentRevision {current}, updateRevision {update}"
        return text


class Workload:
    """One workload through the app's client, as ``request`` names it: read it, patch it (or its
    ``scale``), list the pods of its selector."""

    def __init__(self, api: client.ApiClient, ctx: Context, kind: str, namespace: str, name: str) -> None:
        self.apps, self.core = client.AppsV1Api(api), client.CoreV1Api(api)
        self.ctx, self.kind, self.namespace, self.name = ctx, kind, namespace, name
        self.request = workload_request(kind, namespace, name)
        self.where = self.request.target

    async def read(self, *, record: bool = True) -> Rollout:
        method = {
            "Deployment": self.apps.read_namespaced_deployment,
            "StatefulSet": self.apps.read_namespaced_stateful_set,
            "DaemonSet": self.apps.read_namespaced_daemon_set,
        }[self.kind]
        obj = await send(
            self.ctx,
            self.request,
            lambda timeout: method(self.name, self.namespace, _request_timeout=timeout),
            record=record,
        )
        return Rollout.of(self.kind, obj, self.where)

    async def patch(self, body: dict[str, Any]) -> None:
        """A JSON merge patch of the workload itself."""
        method = {
            "Deployment": self.apps.patch_namespaced_deployment,
            "StatefulSet": self.apps.patch_namespaced_stateful_set,
            "DaemonSet": self.apps.patch_namespaced_daemon_set,
        }[self.kind]
        await send_patch(self.ctx, self.request.with_body(body), method, self.name, self.namespace)

    async def patch_scale(self, body: dict[str, Any]) -> None:
        """A JSON merge patch of the ``scale`` subresource (Deployment or StatefulSet)."""
        method = {
            "Deployment": self.apps.patch_namespaced_deployment_scale,
            "StatefulSet": self.apps.patch_namespaced_stateful_set_scale,
        }[self.kind]
        request = workload_request(self.kind, self.namespace, self.name, "scale").with_body(body)
        await send_patch(self.ctx, request, method, self.name, self.namespace)

    async def pods(self, selector: str, *, record: bool = True) -> list[Any]:
        """The pods of ``selector`` (terminating ones included)."""
        found = await send(
            self.ctx,
            pods_request(self.namespace, selector),
            lambda timeout: self.core.list_namespaced_pod(
                self.namespace, label_selector=selector, _request_timeout=timeout
            ),
            record=record,
        )
        return list(found.items or [])


def revision_of(kind: str, pod: Any) -> str:
    """The template revision a pod was made from (its hash label), "" when it has none."""
    return str((pod.metadata.labels or {}).get(HASH_LABEL[kind], ""))


def terminating(pod: Any) -> bool:
    return pod.metadata.deletion_timestamp is not None


def pod_ready(pod: Any) -> bool:
    """The pod's Ready condition is True (and it is not being deleted)."""
    if terminating(pod):
        return False
    conditions = getattr(pod.status, "conditions", None) or []
    return any(c.type == "Ready" and c.status == "True" for c in conditions)
