"""``flink.restart``'s verification: the job RUNNING, the lifecycle STABLE, the JobManager
deployment READY (``status.jobManagerDeploymentStatus``) and the TaskManagers up: the
operator's ``status.taskManager`` (the scale subresource: ``replicas`` expected,
``labelSelector`` of their pods) names them, and that many of its pods are Ready.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from handlers.deployments import list_request
from handlers.kube import ApiRequest, api_client, client, send
from remediator import Observations, Result, poll, seconds

if TYPE_CHECKING:
    from handlers.flink import FlinkDeployment, FlinkRestartParams, Seen


@dataclass(frozen=True)
class Cluster:
    """What verify saw of the JobManager and the TaskManagers, besides the job."""

    jobmanager: str  # status.jobManagerDeploymentStatus
    taskmanagers: int  # status.taskManager.replicas: how many the operator expects
    selector: str  # status.taskManager.labelSelector
    ready: int  # pods matching the selector that are Ready (not terminating)

    @property
    def jobmanager_ready(self) -> bool:
        return self.jobmanager == "READY"

    @property
    def taskmanagers_up(self) -> bool:
        return self.taskmanagers > 0 and bool(self.selector) and self.ready >= self.taskmanagers

    def summary(self) -> str:
        jm = f"JobManager {self.jobmanager or 'not reported'}"
        if not self.selector or self.taskmanagers <= 0:
            return f"{jm}; TaskManagers not reported (status.taskManager empty)"
        return f"{jm}; TaskManagers {self.ready}/{self.taskmanagers} ready"

    def missing(self, seen: Seen) -> list[str]:
        """The verify conditions not (yet) met, in words."""
        out = []
        if seen.job != "RUNNING":
            out.append(f"job RUNNING (saw {seen.job or 'unknown'})")
        if seen.lifecycle != "STABLE":
            out.append(f"lifecycle STABLE (saw {seen.lifecycle or 'unknown'})")
        if not self.jobmanager_ready:
            out.append(f"JobManager deployment READY (saw {self.jobmanager or 'not reported'})")
        if not self.taskmanagers_up:
            if not self.selector or self.taskmanagers <= 0:
                out.append("TaskManagers up (status.taskManager not reported)")
            else:
                out.append(f"TaskManagers up (saw {self.ready}/{self.taskmanagers} ready)")
        return out

    def details(self) -> dict[str, Any]:
        return {
            "jobmanager_deployment_status": self.jobmanager,
            "taskmanagers_expected": self.taskmanagers,
            "taskmanagers_ready": self.ready,
            "taskmanager_selector": self.selector,
            "jobmanager_ready": self.jobmanager_ready,
            "taskmanagers_up": self.taskmanagers_up,
        }


def _cluster_fields(obj: dict[str, Any]) -> tuple[str, int, str]:
    """(status.jobManagerDeploymentStatus, status.taskManager.replicas, its labelSelector)."""
    status = obj.get("status") or {}
    tm = status.get("taskManager")
    tm = tm if isinstance(tm, dict) else {}
    replicas, selector = tm.get("replicas"), tm.get("labelSelector")
    return (
        str(status.get("jobManagerDeploymentStatus") or ""),
        replicas if isinstance(replicas, int) and not isinstance(replicas, bool) else 0,
        selector if isinstance(selector, str) else "",
    )


def _taskmanager_pods(params: FlinkRestartParams, selector: str) -> ApiRequest:
    return list_request(params.namespace, selector)


def _pod_ready(pod: Any) -> bool:
    if pod.metadata is not None and pod.metadata.deletion_timestamp:
        return False
    conditions = (pod.status.conditions if pod.status is not None else None) or []
    return any(c.type == "Ready" and c.status == "True" for c in conditions)


async def _read_cluster(target: FlinkDeployment, listed: set[str]) -> tuple[Seen, Cluster]:
    """One read of the FlinkDeployment, then (if it names them) of its TaskManager pods."""
    ctx, p = target.ctx, target.params
    obj = await target.raw(record=False)
    seen = target.parse(obj)
    jobmanager, expected, selector = _cluster_fields(obj)
    ready = 0
    if selector and expected > 0:
        core = client.CoreV1Api(await api_client(ctx))
        pods = await send(
            ctx,
            _taskmanager_pods(p, selector),
            lambda timeout: core.list_namespaced_pod(
                p.namespace, label_selector=selector, _request_timeout=timeout
            ),
            record=selector not in listed,
        )
        listed.add(selector)
        ready = sum(1 for pod in pods.items or [] if _pod_ready(pod))
    return seen, Cluster(jobmanager, expected, selector, ready)


async def verify_restart(target: FlinkDeployment, nonce: int, within: float) -> Result:
    ctx, params = target.ctx, target.params
    ctx.step(
        "verify",
        f"poll {target.get_request} every {seconds(params.poll_interval)} until "
        f"job RUNNING, lifecycle STABLE, JobManager deployment READY and TaskManagers up "
        f"(status.taskManager.replicas pods matching its labelSelector Ready), for up to {seconds(within)}",
    )
    observed = Observations(ctx)
    observed_cluster = Observations(ctx, "observe.cluster")
    listed: set[str] = set()  # the TaskManager selectors whose pods were listed (recorded once each)

    async def probe() -> tuple[bool, tuple[Seen, Cluster]]:
        seen, cluster = await _read_cluster(target, listed)
        # the cluster first: the job's own observation stays the last step of a recovery
        observed_cluster.see(cluster.summary(), **cluster.details())
        observed.see(seen.summary(), **seen.details())
        return not cluster.missing(seen), (seen, cluster)

    recovered, (seen, cluster) = await poll(ctx, probe, every=params.poll_interval, within=within)
    details = {**seen.details(), **cluster.details()}
    if recovered:
        return Result.succeeded(
            f"{target.where} restarted (restartNonce {nonce}) and recovered: job RUNNING, lifecycle STABLE, "
            f"JobManager READY, TaskManagers {cluster.ready}/{cluster.taskmanagers} ready",
            **details,
        )
    missing = cluster.missing(seen)
    return Result.failed(
        f"{target.where} did not recover within {seconds(within)} of the restart "
        f"(restartNonce {nonce}): last status {seen.summary()}; {cluster.summary()}; "
        f"still missing: {', '.join(missing)}",
        retryable=True,
        missing=missing,
        **details,
    )
