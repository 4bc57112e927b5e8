"""Starts every system of the incident on free loopback ports, and stops them all after.

ZooKeeper + two ClickHouse 18.16 servers with the replicated torghut tables, the
Kubernetes API emulator with the FlinkDeployment, the torghut-ws and jangar Deployments
and Jangar's Argo CD Application (and their simulated controllers), a Jangar stand-in,
a Redis, two ``remediator serve`` replicas sharing it behind a Service, Alertmanager
with the shipped receiver, the Slack stand-in, and Prometheus (the alert source).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractContextManager, AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import aiohttp

from demo.observe import Observer, ReplicaLog
from demo.overlay import Overlay, alertmanager_config, rules_overlay
from demo.prometheus import JANGAR_GROUP, AlertSource, JangarProbe, Targets, TorghutTargets, load_rules
from demo.service_proxy import Backend, ServiceProxy
from demo.timeline import Timeline
from demo.world import (
    DATABASE,
    NAMESPACE,
    TABLES,
    WS_NAME,
    FlinkJob,
    JangarApp,
    StorageMonitor,
    WsPods,
)
from tests.support.alertmanager import Alertmanager, run_alertmanagers
from tests.support.clickhouse import ClickHouseCluster, clickhouse_cluster
from tests.support.jangar import Jangar, running_jangar
from tests.support.kube import DEPLOYMENTS, Cluster, Policies, background, running_cluster
from tests.support.redis_server import RedisServer
from tests.support.service import RemediatorProcess, run_remediator
from tests.support.slack_server import SlackServer

T = TypeVar("T")
REPLICAS = ("replica-a", "replica-b")
SLACK_CHANNEL = "#torghut-alerts"
QUEUE_TIMINGS = {
    "REMEDIATOR_RECLAIM_IDLE": "4s",
    "REMEDIATOR_HEARTBEAT": "1s",
    "REMEDIATOR_DEFER_INTERVAL": "1s",
}


@dataclass
class Environment:
    workdir: Path
    timeline: Timeline
    session: aiohttp.ClientSession
    clickhouse: ClickHouseCluster
    kube: Cluster
    slack: SlackServer
    redis: RedisServer
    alertmanager: Alertmanager
    proxy: ServiceProxy
    replicas: list[ReplicaLog]
    storage: StorageMonitor
    flink: FlinkJob
    ws: WsPods
    jangar: JangarApp
    jangar_site: Jangar  # the stand-in serving Jangar's TA endpoint
    jangar_probe: JangarProbe
    source: AlertSource
    observer: Observer
    overlay: Overlay
    alertmanager_changes: list[str]
    admin_token: str

    def alive(self) -> list[ReplicaLog]:
        return [r for r in self.replicas if r.alive]

    async def admin_get(self, path: str) -> Any:
        """GET an admin API path from the first live replica (they share the store)."""
        headers = {"Authorization": f"Bearer {self.admin_token}"}
        for replica in self.alive():
            url = replica.process.url + path
            with contextlib.suppress(aiohttp.ClientConnectionError):
                async with self.session.get(url, headers=headers) as response:
                    response.raise_for_status()
                    return await response.json()
        raise RuntimeError(f"no live replica answered {path}")


async def in_thread(stack: AsyncExitStack, manager: AbstractContextManager[T]) -> T:
    """Enter a blocking context manager in a thread; exit it (in a thread) with the stack."""
    value = await asyncio.to_thread(manager.__enter__)

    async def leave() -> None:
        await asyncio.to_thread(manager.__exit__, None, None, None)

    stack.push_async_callback(leave)
    return value


async def all_of(*starts: Awaitable[Any]) -> list[Any]:
    """Start things in parallel; if one fails, raise after the others are done (so each
    one that started is registered for cleanup)."""
    results = await asyncio.gather(*starts, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return results


@contextlib.asynccontextmanager
async def environment(workdir: Path, timeline: Timeline) -> AsyncIterator[Environment]:
    await asyncio.to_thread(workdir.mkdir, parents=True, exist_ok=True)
    webhook_token, admin_token = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    async with AsyncExitStack() as stack:
        session = await stack.enter_async_context(
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15))
        )
        slack = await SlackServer().start()
        stack.push_async_callback(slack.close)
        kube, kubeconfig = await stack.enter_async_context(
            running_cluster(workdir, policy=Policies.shipped())
        )
        proxy = ServiceProxy(backends=[], timeline=timeline)
        await proxy.start()
        stack.push_async_callback(proxy.close)
        token_file = workdir / "webhook-token"
        token_file.write_text(webhook_token, encoding="utf-8")
        am_config, am_changes = alertmanager_config(proxy.url + "/webhooks/alertmanager", token_file)
        timeline.say("Starting ZooKeeper, 2 ClickHouse servers, Redis and Alertmanager ...")
        started = time.monotonic()
        clickhouse, redis, alertmanagers = await all_of(
            in_thread(
                stack,
                clickhouse_cluster(
                    workdir / "clickhouse", nodes=2, tables=[f"{DATABASE}.{table}" for table in TABLES]
                ),
            ),
            in_thread(stack, RedisServer.running(workdir / "redis")),
            in_thread(stack, run_alertmanagers(workdir / "alertmanager", [am_config])),
        )
        storage = StorageMonitor(clickhouse, timeline)
        flink = FlinkJob(kube, storage, timeline)
        ws = WsPods(cluster=kube, namespace=NAMESPACE, name=WS_NAME, timeline=timeline)
        jangar = JangarApp(kube, clickhouse, timeline)
        flink.install()
        ws.install()
        jangar.install()
        await stack.enter_async_context(background(storage.run, flink.run, ws.run, jangar.run))
        site = await stack.enter_async_context(running_jangar(kube, jangar.query))
        overlay = rules_overlay(clickhouse.addresses, site.url)
        rules = overlay.write(workdir / "rules.yaml")
        env = {
            "REMEDIATOR_REDIS_URL": redis.url,
            "REMEDIATOR_WEBHOOK_TOKEN": webhook_token,
            "REMEDIATOR_ADMIN_TOKEN": admin_token,
            "REMEDIATOR_DRY_RUN": "false",
            "REMEDIATOR_SLACK_BOT_TOKEN": slack.token,
            "REMEDIATOR_SLACK_CHANNEL": SLACK_CHANNEL,
            "REMEDIATOR_SLACK_API_URL": slack.api_url,
            "KUBECONFIG": str(kubeconfig),
            **QUEUE_TIMINGS,
        }
        timeline.say("Starting two remediator replicas (python -m remediator serve) ...")
        processes: list[RemediatorProcess] = await all_of(
            *(in_thread(stack, run_remediator(workdir / name, rules, env=env)) for name in REPLICAS)
        )
        replicas = [ReplicaLog(name, process) for name, process in zip(REPLICAS, processes, strict=True)]
        proxy.backends = [Backend(r.name, r.process.url) for r in replicas]
        await _healthy(storage, flink, kube, site)
        timeline.say(f"Everything is up and healthy after {time.monotonic() - started:.0f}s.")
        probe = JangarProbe(session, site.url)
        source = AlertSource(
            alertmanager_url=alertmanagers[0].url,
            evaluate=Targets([TorghutTargets(clickhouse, kube), probe]),
            timeline=timeline,
            rules={**load_rules(), **load_rules(name=JANGAR_GROUP)},
        )
        observer = Observer(replicas, kube, timeline)
        yield Environment(
            workdir=workdir,
            timeline=timeline,
            session=session,
            clickhouse=clickhouse,
            kube=kube,
            slack=slack,
            redis=redis,
            alertmanager=alertmanagers[0],
            proxy=proxy,
            replicas=replicas,
            storage=storage,
            flink=flink,
            ws=ws,
            jangar=jangar,
            jangar_site=site,
            jangar_probe=probe,
            source=source,
            observer=observer,
            overlay=overlay,
            alertmanager_changes=am_changes,
            admin_token=admin_token,
        )


async def _healthy(
    storage: StorageMonitor, flink: FlinkJob, kube: Cluster, site: Jangar, within: float = 60.0
) -> None:
    """Until storage is writable, the Flink job RUNNING/STABLE, torghut-ws ready and every
    Jangar pod up on database torghut."""
    checks: dict[str, Callable[[], bool]] = {
        "ClickHouse writable": lambda: storage.writable,
        "Flink RUNNING/STABLE": lambda: flink.status() == ("RUNNING", "STABLE"),
        "torghut-ws ready": lambda: bool(
            ((kube.get(DEPLOYMENTS, NAMESPACE, WS_NAME) or {}).get("status") or {}).get("readyReplicas")
        ),
        "jangar ready": lambda: site.ready_databases() == ["torghut", "torghut"],
    }
    deadline = time.monotonic() + within
    while failing := [name for name, check in checks.items() if not check()]:
        if time.monotonic() > deadline:
            raise TimeoutError(f"the systems did not become healthy: {failing}")
        await asyncio.sleep(0.2)
