"""The incident, replayed: break what broke on 2026-01-01, let remediator heal it, and
collect what happened (``run`` is what ``make demo`` and ``tests/e2e/test_demo.py`` drive).

1. ZooKeeper (the Keeper) is stopped: both ClickHouse servers turn every replica of
   ``torghut.*`` read-only. The Flink job's JDBC sink fails a few seconds later.
2. The first repair remediator starts is the ClickHouse one. The replica running it
   is SIGKILLed right after it starts: the job must be re-delivered to the other
   replica once its lease expires.
3. The websocket ingester's pod gets stuck on its upstream connection (unready), and
   Jangar, the dashboard, is synced by Argo CD to a release that reads CH_DATABASE=default:
   its TA endpoint answers UNKNOWN_TABLE.
4. Keeper comes back a few seconds after the surviving replica has taken the
   ClickHouse repair over (ClickHouse 18.16 cannot be repaired while Keeper is gone).
5. Everything is watched until every alert has resolved and every accepted job has
   its audit event.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from demo.environment import Environment, environment
from demo.observe import Record
from demo.overlay import CLICKHOUSE_RULE
from demo.report import Kill, Report, collect, orphans, slack_threads
from demo.timeline import Timeline
from tests.support.kube import background


@dataclass
class Options:
    kill_replica: bool = True
    keeper_back_after: float = 4.0  # after the surviving replica started the ClickHouse repair
    first_repair_within: float = 60.0
    recovery_within: float = 150.0  # from the break until every alert has resolved
    settle_within: float = 60.0  # then, until every accepted job has its audit event
    out: TextIO | None = field(default_factory=lambda: sys.stdout)


async def run(workdir: Path, options: Options | None = None) -> Report:
    options = options or Options()
    timeline = Timeline(out=options.out)
    async with environment(workdir, timeline) as env:
        _intro(env)
        async with background(env.observer.run, lambda: env.source.run(env.session)):
            kill = await _incident(env, options)
            recovered_at = await _wait_recovered(env, options)
            await _wait_settled(env, options, kill)
        return await collect(env, kill=kill, recovered_at=recovered_at)


def _intro(env: Environment) -> None:
    say = env.timeline.say
    say(f"\nThe shipped rules.yaml, changed for the demo (written to {env.workdir / 'rules.yaml'}):")
    for change in env.overlay.changes:
        say(f"  - {change}")
    say(
        "  - REMEDIATOR_RECLAIM_IDLE 60s -> 4s, HEARTBEAT 5s -> 1s, DEFER_INTERVAL 5s -> 1s "
        "(a killed replica's job is re-delivered within seconds)"
    )
    say("The shipped alertmanager.yml, changed for the demo:")
    for change in env.alertmanager_changes:
        say(f"  - {change}")
    say(
        "Prometheus (played by the demo) evaluates the four shipped alerts every 2s with "
        "`for: 0s` (shipped: 2m-5m).\n"
    )
    say(
        "What happens: ZooKeeper is stopped (every replica goes read-only; the Flink job's "
        "JDBC sink\nfails a few seconds later). The replica that starts the first repair is "
        "SIGKILLed at once;\nthe torghut-ws pod hangs on its upstream connection; Argo CD rolls "
        "Jangar out with CH_DATABASE=default\n(its Application has no self-heal). ZooKeeper "
        "comes back a few seconds after the other replica\nhas taken the ClickHouse repair "
        "over. Nobody touches anything else.\n"
    )
    say("Timeline (seconds from the moment Keeper is lost):")


async def _incident(env: Environment, options: Options) -> Kill | None:
    note = env.timeline.note
    env.timeline.start()
    note("incident", "ZooKeeper (the ClickHouse Keeper) is lost: stopped")
    await asyncio.to_thread(env.clickhouse.zookeeper.stop)
    first = await _first_clickhouse_start(env, options.first_repair_within)
    kill = None
    if options.kill_replica:
        kill = _kill(env, first)
    pods = env.ws.break_upstream()
    note("incident", f"torghut-ws: pod {', '.join(pods)} hangs on its upstream connection (unready)")
    env.jangar.misconfigure()
    note(
        "incident",
        "jangar: Argo CD syncs a release from Git with CH_DATABASE=default (the TA tables live in "
        "torghut): the pods roll over to it",
    )
    await _keeper_back(env, options, first, kill)
    return kill


async def _first_clickhouse_start(env: Environment, within: float) -> Record:
    found = await env.observer.wait_for(
        lambda: env.observer.find("remediation.started", rule=CLICKHOUSE_RULE), within
    )
    if not found:
        raise TimeoutError(f"no replica started the ClickHouse repair within {within:g}s of the break")
    return found[0]


def _kill(env: Environment, started: Record) -> Kill:
    replica = next(r for r in env.replicas if r.name == started.replica)
    os.kill(replica.pid, signal.SIGKILL)
    replica.process.proc.wait(10)
    now = time.monotonic()
    env.timeline.note(
        "incident",
        f"SIGKILL {replica.name} (pid {replica.pid}) "
        f"{now - started.logged_at:.1f}s after it started the ClickHouse repair "
        f"(event {started.event_id}): its job must not be lost",
    )
    env.observer.notes[started.event_id] = f": re-delivered, {replica.name} was killed while running it"
    return Kill(
        replica=replica.name,
        pid=replica.pid,
        event_id=started.event_id,
        rule=started.data.get("rule", ""),
        started_at=started.logged_at,
        killed_at=now,
        killed_epoch=time.time(),
    )


async def _keeper_back(env: Environment, options: Options, first: Record, kill: Kill | None) -> None:
    """Keeper returns ``keeper_back_after`` seconds after the repair that survives started
    (the re-delivered one when a replica was killed); at the latest after 60 s."""
    taken_over = first
    if kill is not None:
        again = await env.observer.wait_for(
            lambda: [
                r
                for r in env.observer.find("remediation.started", event_id=kill.event_id)
                if r.replica != kill.replica
            ],
            within=60.0,
        )
        if not again:
            env.timeline.note("incident", "no replica took the killed ClickHouse repair over within 60s")
        else:
            taken_over = again[0]
    await asyncio.sleep(max(0.0, taken_over.logged_at + options.keeper_back_after - time.monotonic()))
    await asyncio.to_thread(env.clickhouse.zookeeper.start)
    env.timeline.note(
        "incident",
        f"ZooKeeper is back, with its data ({options.keeper_back_after:g}s "
        "after the surviving replica took the repair over)",
    )


async def _wait_recovered(env: Environment, options: Options) -> float | None:
    """Until every alert that fired has resolved and the systems are healthy."""
    assert env.timeline.t0 is not None
    deadline = env.timeline.t0 + options.recovery_within
    while time.monotonic() < deadline:
        alerts = env.source.history
        healthy = (
            env.storage.writable
            and env.flink.status() == ("RUNNING", "STABLE")
            and env.ws.ready_replicas() > 0
            and set(env.jangar_site.ready_databases()) == {"torghut"}
        )
        if alerts and healthy and all(a.resolved_at is not None for a in alerts):
            last = max(a.resolved_at for a in alerts if a.resolved_at is not None)
            env.timeline.note(
                "incident",
                f"every alert has resolved: recovered {env.timeline.rel(last):.1f}s after Keeper was lost",
            )
            return last
        await asyncio.sleep(0.5)
    env.timeline.note("incident", f"NOT recovered within {options.recovery_within:g}s")
    return None


async def _wait_settled(env: Environment, options: Options, kill: Kill | None) -> None:
    """Until every job a replica accepted has its audit event and Slack has had its say."""
    deadline = time.monotonic() + options.settle_within
    missing: list[str] = []
    while time.monotonic() < deadline:
        accepted = set(env.proxy.accepted_event_ids())
        recorded = {e["event_id"] for e in await _events(env)}
        missing = sorted(accepted - recorded)
        if not missing and _resolved_in_slack(env, kill):
            return
        await asyncio.sleep(1.0)
    env.timeline.note(
        "incident",
        f"{len(missing)} accepted job(s) still without an audit "
        f"event after {options.settle_within:g}s: {missing}",
    )


async def _events(env: Environment) -> list[dict[str, str]]:
    page = await env.admin_get("/api/v1/events?limit=500")
    return list(page["events"])


def _resolved_in_slack(env: Environment, kill: Kill | None) -> bool:
    """Each thread remediator opened has its "Resolved" reply (posted asynchronously)."""
    threads = slack_threads(env.slack)
    left = orphans(threads, kill.event_id if kill else None)
    return bool(threads) and all("resolved" in t.kinds() for t in threads if t not in left)


def run_sync(workdir: Path, options: Options) -> Report:
    return asyncio.run(run(workdir, options))
