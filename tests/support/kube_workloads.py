"""More of the cluster for the everyday-repair handlers: StatefulSets, DaemonSets, Nodes,
bare pods, HorizontalPodAutoscalers and PodDisruptionBudgets, as objects and as the
controllers (and kubelet) that keep them, played by the test.

The API semantics (the ``scale`` subresource, ``pods/eviction`` with budgets, ``DELETE``,
field selectors, cluster-scoped nodes) are the emulator's (:mod:`tests.support.kube`);
this module plays what the control plane would do next:

- :class:`StatefulSetController`: pods ``<name>-<ordinal>`` with a ``controller-revision-hash``;
  a changed template rolls out from the highest ordinal down (``RollingUpdate``, honouring
  ``partition``), one pod at a time, each replacement with the same name and a new UID;
  ``OnDelete`` updates nothing by itself. ``status`` as the real controller writes it
  (``currentRevision`` catches up with ``updateRevision`` once every pod is updated).
- :class:`DaemonSetController`: one pod per Node, replaced node by node on a template change
  (``maxUnavailable`` 1).
- :class:`Kubelet`: pods of no simulated controller (bare pods, evicted pods) turn Ready and,
  once deleted, are gone after a grace of ``terminate_after`` ticks.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tests.support.kube import (
    DAEMONSETS,
    HPAS,
    NODES,
    PDBS,
    PODS,
    STATEFULSETS,
    Cluster,
)

REVISION_HASH = "controller-revision-hash"
POD_NAME_LABEL = "statefulset.kubernetes.io/pod-name"
MIRROR = "kubernetes.io/config.mirror"
READY = {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}


# ---- objects -------------------------------------------------------------------------------
def stateful_set(
    name: str,
    *,
    replicas: int,
    labels: dict[str, str],
    strategy: str = "RollingUpdate",
    partition: int | None = None,
) -> dict[str, Any]:
    update: dict[str, Any] = {"type": strategy}
    if partition is not None:
        update["rollingUpdate"] = {"partition": partition}
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": name, "labels": dict(labels)},
        "spec": {
            "replicas": replicas,
            "serviceName": name,
            "selector": {"matchLabels": dict(labels)},
            "updateStrategy": update,
            "template": {
                "metadata": {"labels": dict(labels)},
                "spec": {"containers": [{"name": name, "image": f"{name}:1"}]},
            },
        },
        "status": {"replicas": 0},
    }


def daemon_set(name: str, *, labels: dict[str, str], strategy: str = "RollingUpdate") -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": name, "labels": dict(labels)},
        "spec": {
            "selector": {"matchLabels": dict(labels)},
            "updateStrategy": {"type": strategy},
            "template": {
                "metadata": {"labels": dict(labels)},
                "spec": {"containers": [{"name": name, "image": f"{name}:1"}]},
            },
        },
        # the four counts the API always returns (the client refuses a DaemonSet without them)
        "status": {
            "currentNumberScheduled": 0,
            "desiredNumberScheduled": 0,
            "numberMisscheduled": 0,
            "numberReady": 0,
        },
    }


def node(
    name: str, *, unschedulable: bool = False, annotations: dict[str, str] | None = None
) -> dict[str, Any]:
    spec: dict[str, Any] = {"unschedulable": True} if unschedulable else {}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {"kubernetes.io/hostname": name},
            "annotations": annotations or {},
        },
        "spec": spec,
        "status": {"conditions": [{"type": "Ready", "status": "True"}]},
    }


def pod(
    name: str,
    *,
    labels: dict[str, str] | None = None,
    node_name: str | None = None,
    owner: dict[str, Any] | None = None,
    ready: bool = True,
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A pod; ``owner``: the object (with ``metadata.uid``) whose controller reference it carries."""
    meta: dict[str, Any] = {"name": name, "labels": dict(labels or {})}
    if annotations:
        meta["annotations"] = dict(annotations)
    if owner is not None:
        meta["ownerReferences"] = [controller_ref(owner)]
    spec: dict[str, Any] = {"containers": [{"name": "main", "image": "app:1"}]}
    if node_name:
        spec["nodeName"] = node_name
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta,
        "spec": spec,
        "status": copy.deepcopy(READY) if ready else {"phase": "Pending"},
    }


def controller_ref(owner: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def job(name: str, *, owner: dict[str, Any] | None = None) -> dict[str, Any]:
    """A Job (e.g. a CronJob's, with ``owner``)."""
    meta: dict[str, Any] = {"name": name}
    if owner is not None:
        meta["ownerReferences"] = [controller_ref(owner)]
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": meta,
        "spec": {
            "template": {
                "metadata": {"labels": {"job-name": name}},
                "spec": {"restartPolicy": "Never", "containers": [{"name": "main", "image": "app:1"}]},
            }
        },
        "status": {},
    }


def hpa(
    name: str, *, kind: str, target: str, min_replicas: int = 2, max_replicas: int = 10
) -> dict[str, Any]:
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": name},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": kind, "name": target},
            "minReplicas": min_replicas,
            "maxReplicas": max_replicas,
        },
        "status": {"currentReplicas": min_replicas, "desiredReplicas": min_replicas},
    }


def pdb(name: str, *, labels: dict[str, str], min_available: int) -> dict[str, Any]:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": name},
        "spec": {"minAvailable": min_available, "selector": {"matchLabels": dict(labels)}},
    }


# ---- the control plane, played -------------------------------------------------------------
def _hash(template: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()[:10]


def _terminating(pod: dict[str, Any]) -> bool:
    return bool(pod["metadata"].get("deletionTimestamp"))


def _is_ready(pod: dict[str, Any]) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in (pod.get("status") or {}).get("conditions") or []
    )


def _owned(pod: dict[str, Any], uid: str) -> bool:
    return any(ref.get("uid") == uid for ref in pod["metadata"].get("ownerReferences") or [])


@dataclass
class _PodAges:
    """The kubelet's part for pods a controller made: Ready after ``ready_after`` ticks, gone
    ``terminate_after`` ticks after being deleted."""

    cluster: Cluster
    namespace: str
    ready_after: int
    terminate_after: int
    ages: dict[str, int] = field(default_factory=dict)

    def age(self, pod: dict[str, Any]) -> None:
        name = pod["metadata"]["name"]
        key = f"{name}/{pod['metadata']['uid']}"
        age = self.ages.get(key, 0) + 1
        if _terminating(pod):
            dying = f"{key}/terminating"
            age = self.ages.get(dying, 0) + 1
            self.ages[dying] = age
            if age >= self.terminate_after:
                self.cluster.remove(PODS, self.namespace, name)
            return
        self.ages[key] = age
        if age == self.ready_after and not _is_ready(pod):
            self.cluster.modify(PODS, self.namespace, name, {"status": copy.deepcopy(READY)})


@dataclass
class StatefulSetController:
    cluster: Cluster
    namespace: str
    name: str
    tick: float = 0.02
    ready_after: int = 3
    terminate_after: int = 4
    created: list[str] = field(default_factory=list)  # "name/uid" of every pod it made

    def __post_init__(self) -> None:
        self._kubelet = _PodAges(self.cluster, self.namespace, self.ready_after, self.terminate_after)

    def step(self) -> None:
        sts = self.cluster.get(STATEFULSETS, self.namespace, self.name)
        if sts is None:
            return
        spec, uid = sts["spec"], sts["metadata"]["uid"]
        revision = f"{self.name}-{_hash(spec['template'])}"
        for existing in self._pods(uid):
            self._kubelet.age(existing)
        pods = {int(p["metadata"]["name"].rsplit("-", 1)[1]): p for p in self._pods(uid)}
        desired = int(spec.get("replicas", 1))
        strategy = spec.get("updateStrategy") or {}
        partition = int((strategy.get("rollingUpdate") or {}).get("partition") or 0)
        self._converge(sts, pods, desired, revision, strategy.get("type", "RollingUpdate"), partition)
        self._write_status(sts, revision)

    def _converge(
        self,
        sts: dict[str, Any],
        pods: dict[int, dict[str, Any]],
        desired: int,
        revision: str,
        kind: str,
        partition: int,
    ) -> None:
        """One action per tick, in order (OrderedReady): make the next missing ordinal, remove
        the highest extra one, or replace the highest pod of an old revision."""
        if any(_terminating(p) for p in pods.values()):
            return  # wait for the pod being replaced or removed to be gone
        for ordinal in range(desired):
            if ordinal not in pods:
                self._create(sts, ordinal, revision)
                return
            if not _is_ready(pods[ordinal]):
                return
        extra = sorted((o for o in pods if o >= desired), reverse=True)
        if extra:
            self.cluster.modify(PODS, self.namespace, pods[extra[0]]["metadata"]["name"], _DELETED)
            return
        if kind != "RollingUpdate":
            return
        old = [o for o in sorted(pods, reverse=True) if o >= partition and _revision(pods[o]) != revision]
        if old:
            self.cluster.modify(PODS, self.namespace, pods[old[0]]["metadata"]["name"], _DELETED)

    def _create(self, sts: dict[str, Any], ordinal: int, revision: str) -> None:
        template = sts["spec"]["template"]
        name = f"{self.name}-{ordinal}"
        labels = {**template["metadata"]["labels"], REVISION_HASH: revision, POD_NAME_LABEL: name}
        made = self.cluster.put(
            PODS,
            self.namespace,
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": name, "labels": labels, "ownerReferences": [controller_ref(sts)]},
                "spec": copy.deepcopy(template["spec"]),
                "status": {"phase": "Pending"},
            },
        )
        self.created.append(f"{name}/{made['metadata']['uid']}")

    def _pods(self, uid: str) -> list[dict[str, Any]]:
        return [p for p in self.cluster.items(PODS, self.namespace) if _owned(p, uid)]

    def _write_status(self, sts: dict[str, Any], revision: str) -> None:
        live = [p for p in self._pods(sts["metadata"]["uid"]) if not _terminating(p)]
        updated = [p for p in live if _revision(p) == revision]
        old = (sts.get("status") or {}).get("currentRevision") or revision
        desired = int(sts["spec"].get("replicas", 1))
        current = revision if len(updated) == len(live) == desired else old
        status = {
            "replicas": len(live),
            "readyReplicas": sum(1 for p in live if _is_ready(p)),
            "availableReplicas": sum(1 for p in live if _is_ready(p)),
            "currentReplicas": sum(1 for p in live if _revision(p) == current),
            "updatedReplicas": len(updated),
            "currentRevision": current,
            "updateRevision": revision,
            "observedGeneration": sts["metadata"]["generation"],
        }
        if {k: (sts.get("status") or {}).get(k) for k in status} != status:
            self.cluster.modify(STATEFULSETS, self.namespace, self.name, {"status": status})

    async def run(self) -> None:
        while True:
            self.step()
            await asyncio.sleep(self.tick)


_DELETED = {"metadata": {"deletionTimestamp": "2024-01-01T00:00:00Z"}}


def _revision(pod: dict[str, Any]) -> str:
    return str((pod["metadata"].get("labels") or {}).get(REVISION_HASH, ""))


@dataclass
class DaemonSetController:
    cluster: Cluster
    namespace: str
    name: str
    tick: float = 0.02
    ready_after: int = 3
    terminate_after: int = 4
    created: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._kubelet = _PodAges(self.cluster, self.namespace, self.ready_after, self.terminate_after)

    def step(self) -> None:
        ds = self.cluster.get(DAEMONSETS, self.namespace, self.name)
        if ds is None:
            return
        uid = ds["metadata"]["uid"]
        revision = f"{_hash(ds['spec']['template'])}"
        for existing in self._pods(uid):
            self._kubelet.age(existing)
        nodes = [n["metadata"]["name"] for n in self.cluster.items(NODES, None)]
        on: dict[str, list[dict[str, Any]]] = {n: [] for n in nodes}
        for existing in self._pods(uid):
            on.setdefault(existing["spec"].get("nodeName", ""), []).append(existing)
        rolling = (ds["spec"].get("updateStrategy") or {}).get("type", "RollingUpdate") == "RollingUpdate"
        busy = any(_terminating(p) or not _is_ready(p) for pods in on.values() for p in pods)
        for node_name in nodes:
            if not on[node_name]:
                self._create(ds, node_name, revision)
                busy = True
        if rolling and not busy:
            for node_name in nodes:
                stale = [p for p in on[node_name] if _revision(p) != revision]
                if stale:  # maxUnavailable 1: one node at a time
                    self.cluster.modify(PODS, self.namespace, stale[0]["metadata"]["name"], _DELETED)
                    break
        self._write_status(ds, revision, len(nodes))

    def _create(self, ds: dict[str, Any], node_name: str, revision: str) -> None:
        template = ds["spec"]["template"]
        name = f"{self.name}-{uuid.uuid4().hex[:5]}"
        labels = {**template["metadata"]["labels"], REVISION_HASH: revision}
        made = self.cluster.put(
            PODS,
            self.namespace,
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": name, "labels": labels, "ownerReferences": [controller_ref(ds)]},
                "spec": {**copy.deepcopy(template["spec"]), "nodeName": node_name},
                "status": {"phase": "Pending"},
            },
        )
        self.created.append(f"{name}/{made['metadata']['uid']}")

    def _pods(self, uid: str) -> list[dict[str, Any]]:
        return [p for p in self.cluster.items(PODS, self.namespace) if _owned(p, uid)]

    def _write_status(self, ds: dict[str, Any], revision: str, desired: int) -> None:
        live = [p for p in self._pods(ds["metadata"]["uid"]) if not _terminating(p)]
        ready = [p for p in live if _is_ready(p)]
        status = {
            "desiredNumberScheduled": desired,
            "currentNumberScheduled": len(live),
            "numberMisscheduled": 0,
            "numberReady": len(ready),
            "numberAvailable": len(ready),
            "updatedNumberScheduled": sum(1 for p in live if _revision(p) == revision),
            "observedGeneration": ds["metadata"]["generation"],
        }
        if {k: (ds.get("status") or {}).get(k) for k in status} != status:
            self.cluster.modify(DAEMONSETS, self.namespace, self.name, {"status": status})

    async def run(self) -> None:
        while True:
            self.step()
            await asyncio.sleep(self.tick)


@dataclass
class Kubelet:
    """The kubelet for the pods ``mine`` picks (default: pods with no controller simulated
    here): a Pending pod is Ready after ``ready_after`` ticks, a deleted one gone after
    ``terminate_after``."""

    cluster: Cluster
    namespace: str | None = None  # None: every namespace
    mine: Callable[[dict[str, Any]], bool] = lambda pod: True
    tick: float = 0.02
    ready_after: int = 2
    terminate_after: int = 3
    _ages: dict[str, int] = field(default_factory=dict)

    def step(self) -> None:
        for found in self.cluster.items(PODS, self.namespace):
            if not self.mine(found):
                continue
            meta = found["metadata"]
            key = f"{meta['namespace']}/{meta['name']}/{meta['uid']}/{_terminating(found)}"
            age = self._ages[key] = self._ages.get(key, 0) + 1
            if _terminating(found) and age >= self.terminate_after:
                self.cluster.remove(PODS, meta["namespace"], meta["name"])
            elif not _terminating(found) and age >= self.ready_after and not _is_ready(found):
                self.cluster.modify(PODS, meta["namespace"], meta["name"], {"status": copy.deepcopy(READY)})

    async def run(self) -> None:
        while True:
            self.step()
            await asyncio.sleep(self.tick)


__all__ = [
    "HPAS",
    "MIRROR",
    "PDBS",
    "REVISION_HASH",
    "DaemonSetController",
    "Kubelet",
    "StatefulSetController",
    "controller_ref",
    "daemon_set",
    "hpa",
    "job",
    "node",
    "pdb",
    "pod",
    "stateful_set",
]
