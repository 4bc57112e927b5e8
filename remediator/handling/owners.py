"""A rule's ``resolve:``: the workload that owns a pod, found before the lease.

The core knows the interface only; the ``handlers`` package registers the resolver that asks
Kubernetes (``handlers/owners.py``), as it registers its handlers. ``resolve`` follows the
pod's controlling ``ownerReferences``: Pod -> ReplicaSet -> Deployment, StatefulSet,
DaemonSet, Job -> CronJob. The rule's target and params may then use ``owner.kind``,
``owner.name``, ``owner.namespace`` (and ``owner.pod``), so every pod of one Deployment
is repaired under one lease.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from remediator.handling.context import Context


@dataclass(frozen=True)
class Owner:
    """The workload a pod belongs to, and the chain of references that led there."""

    kind: str  # Deployment, StatefulSet, DaemonSet, CronJob, Job, ReplicaSet...
    name: str
    namespace: str
    pod: str
    chain: tuple[str, ...] = ()  # ("Pod web/api-7d9f-x2", "ReplicaSet web/api-7d9f", "Deployment web/api")

    def as_context(self) -> dict[str, Any]:
        """What templates see as ``owner``."""
        return {"kind": self.kind, "name": self.name, "namespace": self.namespace, "pod": self.pod}

    def describe(self) -> str:
        return " -> ".join(self.chain) or f"{self.kind} {self.namespace}/{self.name}"


class PodGone(Exception):
    """The pod no longer exists (crash-looping pods are replaced all the time): nothing to
    resolve, and nothing to repair for this alert. The job ends ``skipped:gone``."""


OwnerResolver = Callable[[str, str, Context], Awaitable[Owner]]
"""``resolve(namespace, pod, ctx)``: the pod's owner; raises PodGone, or a handler error
(a PermanentError: no controlling owner, a 403...) that fails the job with its message."""
