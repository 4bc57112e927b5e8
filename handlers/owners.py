"""The resolver of a rule's ``resolve:``: from a pod to the workload that owns it.

It follows the controlling ``ownerReferences`` (``controller: true``), reading each object
on the way (``get`` pods, replicasets.apps, jobs.batch: the Role grants exactly these):

- Pod -> ReplicaSet -> its Deployment (a ReplicaSet with no owner is the owner itself);
- Pod -> StatefulSet, Pod -> DaemonSet (named by the pod's reference: not read);
- Pod -> Job -> its CronJob (a Job with no owner is the owner itself);
- any other controller (an operator's custom resource): that object, as the pod names it.

A pod that is gone raises ``PodGone`` (the job ends ``skipped:gone``); a pod without a
controlling owner fails the job with that reason.
"""

from __future__ import annotations

from typing import Any

from handlers.kube import ApiRequest, api_client, client, send
from remediator import Context, Owner, PermanentError, PodGone, owner_resolver


def _get(group: str, plural: str, kind: str, namespace: str, name: str) -> ApiRequest:
    version = "v1"
    return ApiRequest(
        verb="get", group=group, version=version, plural=plural, kind=kind, namespace=namespace, name=name
    )


def _controller(obj: Any) -> Any | None:
    return next((ref for ref in obj.metadata.owner_references or [] if ref.controller), None)


async def resolve_owner(namespace: str, pod: str, ctx: Context) -> Owner:
    """The owner of ``pod`` in ``namespace``, following controlling ownerReferences."""
    api = await api_client(ctx)
    core, apps, batch = client.CoreV1Api(api), client.AppsV1Api(api), client.BatchV1Api(api)
    request = _get("", "pods", "Pod", namespace, pod)
    try:
        found = await send(
            ctx, request, lambda timeout: core.read_namespaced_pod(pod, namespace, _request_timeout=timeout)
        )
    except PermanentError as exc:
        if exc.details.get("status") == 404:
            raise PodGone(f"{request.target} is gone (replaced or deleted since the alert fired)") from exc
        raise
    chain = [request.target]
    ref = _controller(found)
    if ref is None:
        raise PermanentError(
            f"{request.target} has no controlling owner (no ownerReference with controller: true): "
            "there is no workload to resolve it to"
        )
    kind, name = str(ref.kind), str(ref.name)
    parent: Any
    if kind == "ReplicaSet":
        replica_set = _get("apps", "replicasets", "ReplicaSet", namespace, name)
        parent = await send(
            ctx,
            replica_set,
            lambda timeout: apps.read_namespaced_replica_set(name, namespace, _request_timeout=timeout),
        )
        chain.append(replica_set.target)
        kind, name = _up(parent, kind, name)
    elif kind == "Job":
        job = _get("batch", "jobs", "Job", namespace, name)
        parent = await send(
            ctx, job, lambda timeout: batch.read_namespaced_job(name, namespace, _request_timeout=timeout)
        )
        chain.append(job.target)
        kind, name = _up(parent, kind, name)
    owner = f"{kind} {namespace}/{name}"
    if chain[-1] != owner:
        chain.append(owner)
    return Owner(kind=kind, name=name, namespace=namespace, pod=pod, chain=tuple(chain))


def _up(obj: Any, kind: str, name: str) -> tuple[str, str]:
    """The controller of a ReplicaSet or a Job, or the object itself when it has none."""
    ref = _controller(obj)
    return (str(ref.kind), str(ref.name)) if ref is not None else (kind, name)


owner_resolver(resolve_owner)
