"""The systems remediator repairs, as the incident saw them.

- :class:`StorageMonitor` watches ``system.replicas`` on every ClickHouse node and
  records when storage was read-only (the windows the test compares against).
- :class:`FlinkJob` plays the Flink Kubernetes Operator and the job's JDBC sink: the
  job FAILS when ClickHouse turns read-only; after a ``restartNonce`` change it is
  redeployed and reaches RUNNING/STABLE a few seconds later, but only if storage is
  writable by then (FAILED again otherwise, as the real sink did).
- :class:`WsPods` plays the Deployment controller and kubelet for ``torghut-ws``:
  pods follow ``spec.replicas``; a pod is Ready only while it is the only pod (the
  upstream allows one connection: two pods at once are both unready) and its
  connection is not stuck. It records the most pods ever seen at once.
- :class:`JangarApp` is the Jangar dashboard: its Deployment (rolled out by the shared
  ``DeploymentController``), the Argo CD ``Application`` that manages it (auto-sync
  without self-heal), and ``query``, what its TA endpoint asks ClickHouse with the
  database its pods' ``CH_DATABASE`` names (``tests/support/jangar.py`` serves it).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import dataclass, field
from typing import Any

from demo.timeline import Timeline
from tests.support.clickhouse import ClickHouseCluster, ClickHouseHTTPError, ClickHouseNode
from tests.support.jangar import LABELS as JANGAR_POD_LABELS
from tests.support.kube import (
    APPLICATIONS,
    DEPLOYMENTS,
    FLINK,
    PODS,
    Cluster,
    DeploymentController,
    TaskManagerPods,
    application,
    deployment,
    flink_deployment,
)

DATABASE = "torghut"
TABLES = ("ta_microbars", "ta_signals")
NAMESPACE = "torghut"
FLINK_NAME = "torghut-ta"
WS_NAME = "torghut-ws"
WS_LABELS = {"app": "torghut-ws"}
JANGAR_NAME = "jangar"
ARGOCD_NAMESPACE = "argocd"
# app.kubernetes.io/instance: Argo CD's tracking label, naming the Application argocd/jangar
JANGAR_LABELS = {**JANGAR_POD_LABELS, "app.kubernetes.io/instance": JANGAR_NAME}


def read_replicas(node: ClickHouseNode, database: str = DATABASE) -> dict[str, int] | None:
    """``{table: is_readonly}`` as ``node`` reports it in ``system.replicas``; None if it
    does not answer."""
    try:
        text = node.query(
            f"SELECT table, is_readonly FROM system.replicas WHERE database = '{database}' ORDER BY table",
            timeout=5.0,
        )
    except (OSError, ClickHouseHTTPError):
        return None
    rows = [line.split("\t") for line in text.splitlines() if line]
    return {table: int(flag) for table, flag in rows}


@dataclass
class StorageMonitor:
    """Polls every node; ``writable`` is True when every table on every node is writable."""

    cluster: ClickHouseCluster
    timeline: Timeline
    interval: float = 0.5
    state: dict[str, dict[str, int] | None] = field(default_factory=dict)
    windows: list[list[float | None]] = field(default_factory=list)  # [start, end] read-only
    _writable: bool | None = None

    @property
    def writable(self) -> bool:
        return bool(self._writable)

    def unwritable_for(self) -> float:
        if self.windows and self.windows[-1][1] is None:
            start = self.windows[-1][0]
            assert start is not None
            return time.monotonic() - start
        return 0.0

    def readonly_at(self, at: float) -> bool:
        """Whether storage was read-only (as observed) at monotonic time ``at``."""
        return any(
            start is not None and start <= at and (end is None or at < end) for start, end in self.windows
        )

    async def refresh(self) -> None:
        state = await asyncio.to_thread(self._read)
        self._update(state, time.monotonic())

    async def run(self) -> None:
        while True:
            await self.refresh()
            await asyncio.sleep(self.interval)

    def _read(self) -> dict[str, dict[str, int] | None]:
        return {node.name: read_replicas(node) for node in self.cluster.nodes}

    def _update(self, state: dict[str, dict[str, int] | None], now: float) -> None:
        self.state = state
        writable = all(
            tables is not None and set(tables) == set(TABLES) and not any(tables.values())
            for tables in state.values()
        )
        if writable == self._writable:
            return
        first = self._writable is None
        self._writable = writable
        if not writable:
            self.windows.append([now, None])
        elif self.windows:
            self.windows[-1][1] = now
        if not first or not writable:
            self.timeline.note("clickhouse", self.describe())

    def describe(self) -> str:
        if self.writable:
            return "every replica of torghut.* is writable again on " + ", ".join(self.state)
        parts = []
        for node, tables in self.state.items():
            if tables is None:
                parts.append(f"{node}: no answer")
            else:
                readonly = [t for t, flag in tables.items() if flag]
                parts.append(f"{node}: {', '.join(readonly) or 'none'} read-only")
        return "replicas READ-ONLY (inserts refused): " + "; ".join(parts)


@dataclass(frozen=True)
class Bump:
    """One restartNonce change the operator saw."""

    at: float
    nonce: Any
    storage_writable: bool


@dataclass
class FlinkJob:
    """The Flink operator and job of FlinkDeployment ``torghut/torghut-ta``."""

    cluster: Cluster
    storage: StorageMonitor
    timeline: Timeline
    step_seconds: float = 0.7  # four status steps: RUNNING/STABLE ~3 s after the restart
    # The JDBC sink retries (3 times, with backoff) before it fails the job: a few seconds.
    fail_after: float = 5.0
    tick: float = 0.2
    bumps: list[Bump] = field(default_factory=list)
    failures: int = 0

    def __post_init__(self) -> None:
        # one status step after being created, the TaskManager pods are Ready
        self.pods = TaskManagerPods(self.cluster, NAMESPACE, FLINK_NAME, ready_after=1)

    def install(self) -> None:
        self.cluster.put(FLINK, NAMESPACE, flink_deployment(FLINK_NAME, job="RUNNING", lifecycle="STABLE"))
        self.pods.create()
        self.pods.tick()
        self.cluster.modify(
            FLINK,
            NAMESPACE,
            FLINK_NAME,
            {"status": {"jobManagerDeploymentStatus": "READY", "taskManager": self.pods.status()}},
        )

    def status(self) -> tuple[str, str]:
        obj = self.cluster.get(FLINK, NAMESPACE, FLINK_NAME) or {}
        status = obj.get("status") or {}
        return (
            str((status.get("jobStatus") or {}).get("state") or ""),
            str(status.get("lifecycleState") or ""),
        )

    def _nonce(self) -> Any:
        obj = self.cluster.get(FLINK, NAMESPACE, FLINK_NAME) or {}
        return (obj.get("spec") or {}).get("restartNonce")

    async def run(self) -> None:
        seen = self._nonce()
        while True:
            await asyncio.sleep(self.tick)
            nonce = self._nonce()
            if nonce != seen:
                self.bumps.append(Bump(time.monotonic(), nonce, self.storage.writable))
                self.timeline.note("flink", f"operator: restartNonce {seen} -> {nonce}: redeploying the job")
                seen = nonce
                await self._redeploy()
            elif self.status()[0] == "RUNNING" and self.storage.unwritable_for() >= self.fail_after:
                await self._fail("")

    async def _redeploy(self) -> None:
        self.pods.remove()  # the redeploy deletes the TaskManagers; new ones come once the job is scheduled
        for job, lifecycle, jobmanager in (
            ("RECONCILING", "UPGRADING", "DEPLOYING"),
            ("RECONCILING", "DEPLOYED", "DEPLOYED_NOT_READY"),
            ("CREATED", "DEPLOYED", "READY"),
            ("RUNNING", "DEPLOYED", "READY"),
        ):
            self.pods.tick()
            if job == "CREATED":
                self.pods.create()
            self.cluster.modify(
                FLINK,
                NAMESPACE,
                FLINK_NAME,
                {"status": {"jobManagerDeploymentStatus": jobmanager, "taskManager": self.pods.status()}},
            )
            self._set(job, lifecycle, None)
            await asyncio.sleep(self.step_seconds)
        if self.storage.writable:
            self._set("RUNNING", "STABLE", None)
            self.timeline.note(
                "flink", "job RUNNING, lifecycle STABLE: the JDBC sink writes to ClickHouse again"
            )
        else:
            await self._fail("after the restart, ")

    async def _fail(self, when: str) -> None:
        error = await asyncio.to_thread(self._sink_error)
        if error is None:
            return  # the insert went through: storage is writable after all
        self.failures += 1
        self._set("FAILED", "STABLE", f"JDBC sink: {error}")
        self.timeline.note("flink", f"{when}job FAILED: JDBC sink insert refused: {error}")

    def _sink_error(self) -> str | None:
        """The server's own answer to one sink insert (None: it was accepted)."""
        node = self.storage.cluster.nodes[0]
        try:
            node.query(
                f"INSERT INTO {DATABASE}.ta_signals (day, id, value) VALUES (today(), 1, 'sink')",
                timeout=10.0,
            )
        except ClickHouseHTTPError as exc:
            return str(exc).split(", e.what()")[0]
        except OSError as exc:
            return f"{node.name}: {exc}"
        return None

    def _set(self, job: str, lifecycle: str, error: str | None) -> None:
        self.cluster.modify(
            FLINK,
            NAMESPACE,
            FLINK_NAME,
            {"status": {"jobStatus": {"state": job}, "lifecycleState": lifecycle, "error": error}},
        )


@dataclass
class WsPods(DeploymentController):
    """Deployment controller + kubelet for ``torghut/torghut-ws`` (one upstream connection)."""

    timeline: Timeline | None = None
    tick: float = 0.1
    ready_after: int = 8  # ticks
    terminate_after: int = 8
    stuck: set[str] = field(default_factory=set)
    _shown: tuple[int, ...] = ()

    def install(self) -> None:
        self.cluster.put(DEPLOYMENTS, self.namespace, deployment(self.name, replicas=1, labels=WS_LABELS))

    def ready_replicas(self) -> int:
        dep = self.cluster.get(DEPLOYMENTS, self.namespace, self.name) or {}
        return int((dep.get("status") or {}).get("readyReplicas") or 0)

    def break_upstream(self) -> list[str]:
        """Every running pod's upstream connection hangs: the pods turn unready."""
        names = [p["metadata"]["name"] for p in self._pods() if not _terminating(p)]
        self.stuck.update(names)
        return names

    def _pods(self) -> list[dict[str, Any]]:
        selector = ",".join(f"{k}={v}" for k, v in WS_LABELS.items())
        return self.cluster.items(PODS, self.namespace, selector)

    def step(self) -> None:
        dep = self.cluster.get(DEPLOYMENTS, self.namespace, self.name)
        if dep is None:
            return
        desired = int(dep["spec"].get("replicas", 1))
        for pod in self._pods():
            self._age(pod)
        live = [p for p in self._pods() if not _terminating(p)]
        for pod in live[desired:]:
            name = pod["metadata"]["name"]
            self.cluster.modify(
                PODS,
                self.namespace,
                name,
                {
                    "metadata": {"deletionTimestamp": "2026-01-01T00:00:00Z"},
                    "status": {"conditions": [{"type": "Ready", "status": "False"}]},
                },
            )
            self._ages[name] = 0
        for _ in range(desired - len(live)):
            self._create(dep["spec"]["template"]["metadata"]["labels"])
        pods = self._pods()
        self.max_pods = max(self.max_pods, len(pods))
        self._readiness(pods)
        self._status(dep)

    def _age(self, pod: dict[str, Any]) -> None:
        name = pod["metadata"]["name"]
        self._ages[name] = age = self._ages.get(name, 0) + 1
        if _terminating(pod) and age >= self.terminate_after:
            self.cluster.remove(PODS, self.namespace, name)

    def _readiness(self, pods: list[dict[str, Any]]) -> None:
        crowded = len(pods) > 1  # two connections upstream: it refuses both
        for pod in pods:
            if _terminating(pod):
                continue
            name = pod["metadata"]["name"]
            started = self._ages.get(name, 0) >= self.ready_after
            ready = started and not crowded and name not in self.stuck
            if _ready(pod) != ready or (started and pod["status"].get("phase") != "Running"):
                self.cluster.modify(
                    PODS,
                    self.namespace,
                    name,
                    {
                        "status": {
                            "phase": "Running" if started else "Pending",
                            "conditions": [{"type": "Ready", "status": str(ready)}],
                        }
                    },
                )

    def _status(self, dep: dict[str, Any]) -> None:
        pods = self._pods()
        live = [p for p in pods if not _terminating(p)]
        ready = [p for p in live if _ready(p)]
        status = {
            "replicas": len(live),
            "readyReplicas": len(ready),
            "availableReplicas": len(ready),
            "updatedReplicas": len(live),
            "observedGeneration": dep["metadata"]["generation"],
        }
        if {k: (dep.get("status") or {}).get(k) for k in status} != status:
            self.cluster.modify(DEPLOYMENTS, self.namespace, self.name, {"status": status})
        shown = (
            int(dep["spec"].get("replicas", 1)),
            len(pods),
            len(live) - len(ready),
            len(ready),
            len(pods) - len(live),
        )
        if shown != self._shown and self.timeline is not None:
            self._shown = shown
            self.timeline.note("torghut-ws", self._describe(*shown))

    def _describe(self, replicas: int, pods: int, unready: int, ready: int, ending: int) -> str:
        parts = [f"{ready} ready"] if ready else []
        if unready:
            stuck = any(p["metadata"]["name"] in self.stuck for p in self._pods())
            parts.append(f"{unready} unready" + (" (upstream connection stuck)" if stuck else ""))
        if ending:
            parts.append(f"{ending} terminating")
        return f"spec.replicas {replicas}; {pods} pod(s)" + (f": {', '.join(parts)}" if parts else "")

    async def run(self) -> None:
        while True:
            with contextlib.suppress(KeyError):  # a pod removed between list and modify
                self.step()
            await asyncio.sleep(self.tick)


@dataclass
class JangarApp:
    """Jangar's Deployment ``torghut/jangar`` (two pods), managed by Argo CD without self-heal."""

    cluster: Cluster
    clickhouse: ClickHouseCluster
    timeline: Timeline
    controller: DeploymentController = field(init=False)

    def __post_init__(self) -> None:
        self.controller = DeploymentController(self.cluster, NAMESPACE, JANGAR_NAME, tick=0.1, ready_after=8)

    def install(self) -> None:
        self.cluster.put(APPLICATIONS, ARGOCD_NAMESPACE, application(JANGAR_NAME, self_heal=False))
        self.cluster.put(DEPLOYMENTS, NAMESPACE, self._deployment("torghut"))

    def _deployment(self, database: str) -> dict[str, Any]:
        env = [{"name": "PORT", "value": "8080"}, {"name": "CH_DATABASE", "value": database}]
        containers = [{"name": JANGAR_NAME, "image": "jangar:1.4.2", "env": env}]
        return deployment(JANGAR_NAME, replicas=2, labels=JANGAR_LABELS, containers=containers)

    def misconfigure(self) -> None:
        """A release synced from Git sets CH_DATABASE=default: the pods roll over to it."""
        dep = self.cluster.get(DEPLOYMENTS, NAMESPACE, JANGAR_NAME)
        assert dep is not None
        template = self._deployment("default")["spec"]["template"]
        self.cluster.modify(DEPLOYMENTS, NAMESPACE, JANGAR_NAME, {"spec": {"template": template}})

    def database(self) -> str:
        """CH_DATABASE as the Deployment says it."""
        dep = self.cluster.get(DEPLOYMENTS, NAMESPACE, JANGAR_NAME) or {}
        containers = dep.get("spec", {}).get("template", {}).get("spec", {}).get("containers") or [{}]
        env = {var["name"]: var.get("value") for var in containers[0].get("env") or []}
        return str(env.get("CH_DATABASE", ""))

    def query(self, database: str, symbol: str) -> tuple[int, str]:
        """Jangar's query for the latest TA rows, on the first ClickHouse node; ClickHouse's
        error 60 (a table that does not exist) is the UNKNOWN_TABLE Jangar answers with."""
        node = self.clickhouse.nodes[0]
        try:
            count = node.query(f"SELECT count() FROM {database}.ta_signals", timeout=5.0).strip()
        except ClickHouseHTTPError as exc:
            text = str(exc).split(", e.what()")[0]
            kind = "UNKNOWN_TABLE" if "Code: 60," in text else "CLICKHOUSE_ERROR"
            return 500, json.dumps({"error": kind, "message": text})
        except OSError as exc:
            return 502, json.dumps({"error": "CLICKHOUSE_UNREACHABLE", "message": str(exc)})
        return 200, json.dumps({"symbol": symbol, "database": database, "rows": int(count or 0)})

    async def run(self) -> None:
        await self.controller.run()


def _terminating(pod: dict[str, Any]) -> bool:
    return bool(pod["metadata"].get("deletionTimestamp"))


def _ready(pod: dict[str, Any]) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
