"""What happened, gathered from the systems themselves once the incident is over: the audit
(admin API), ClickHouse's query_log, the Kubernetes API's call log, the simulated
controllers, Prometheus's alerts and the Slack channel (``summary`` prints it)."""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from demo.observe import patches
from demo.world import DATABASE, TABLES, Bump
from handlers.clickhouse_nodes import CLIENT_NAME
from remediator.api.times import parse_time
from tests.support.clickhouse import ClickHouseCluster, ClickHouseHTTPError
from tests.support.slack_server import SlackServer, render_message

if TYPE_CHECKING:
    from demo.environment import Environment

CLICKHOUSE_CLIENT = f"ClickHouse {CLIENT_NAME}"  # asynch prefixes the client name
ACTING = ("succeeded", "noop", "failed")
_EVENT = re.compile(r"Event `([A-Za-z0-9_-]+)`")


@dataclass(frozen=True)
class AlertLine:
    name: str
    brief: str
    fired: float  # seconds after the break
    resolved: float | None


@dataclass(frozen=True)
class SlackThread:
    title: str
    ts: str
    event_id: str  # the event that opened it (shown in the first message)
    replies: list[tuple[str, str, str]]  # (ts, kind, first line), in order

    def kinds(self) -> list[str]:
        return [kind for _, kind, _ in self.replies]


def orphans(threads: list[SlackThread], killed_event: str | None) -> list[SlackThread]:
    """Threads a killed replica opened but never recorded: it posted the first message and
    died before storing the thread's ts, so the re-run of the same job opened another one.
    Such a thread has no reply, and another thread carries the same event."""
    return [
        t
        for t in threads
        if killed_event
        and t.event_id == killed_event
        and not t.replies
        and any(o is not t and o.event_id == killed_event for o in threads)
    ]


@dataclass
class Kill:
    """The replica the scenario killed in the middle of a repair (``scenario._kill``)."""

    replica: str
    pid: int
    event_id: str
    rule: str
    started_at: float  # monotonic
    killed_at: float  # monotonic
    killed_epoch: float  # time.time(), to compare with audit timestamps


@dataclass
class Report:
    recovered: bool
    time_to_recovery: float | None
    alerts: list[AlertLine]
    events: list[dict[str, Any]]  # audit events with their timelines, oldest first
    accepted: list[str]  # event ids the replicas answered 202 for
    clickhouse_statements: list[tuple[str, str]]  # (node address, SYSTEM ...) from query_log
    nonce_patches: list[float]  # seconds after the break
    bumps: list[Bump]
    bumps_while_readonly: list[Bump]
    readonly_windows: list[tuple[float, float | None]]
    scale_patches: list[tuple[float, int]]
    max_ws_pods: int
    flink_failures: int
    kill: Kill | None
    replicas: dict[str, str]  # remediator's replica id -> demo name
    slack: list[SlackThread]
    slack_text: str
    replication: str
    t0_epoch: float  # the break, on the wall clock (audit timestamps are wall-clock)
    changes: list[str] = field(default_factory=list)
    jangar_database: str = ""  # CH_DATABASE on deployment/jangar at the end
    jangar_answer: str = ""  # what Jangar's TA endpoint answers at the end

    @property
    def missing(self) -> list[str]:
        recorded = {e["event_id"] for e in self.events}
        return sorted(set(self.accepted) - recorded)

    def acting(self, rule: str) -> list[dict[str, Any]]:
        """The audit events of ``rule`` in which its handler ran (not skipped)."""
        return [e for e in self.events if e["rule"] == rule and e["outcome"] in ACTING]

    def replica_of(self, event: dict[str, Any]) -> str:
        replica = str(event.get("replica", "?"))
        return self.replicas.get(replica, replica)

    def rel_epoch(self, epoch: float) -> float:
        """Seconds after the break of a wall-clock time (as the audit records them)."""
        return epoch - self.t0_epoch

    def orphans(self) -> list[SlackThread]:
        return orphans(self.slack, self.kill.event_id if self.kill else None)

    def threads(self) -> list[SlackThread]:
        """The Slack threads, without the orphan a killed replica may have left."""
        left = self.orphans()
        return [t for t in self.slack if t not in left]

    def thread(self, title_part: str) -> SlackThread | None:
        return next((t for t in self.threads() if title_part in t.title), None)


def in_seconds(event: dict[str, Any]) -> dict[str, Any]:
    """An event as the API answers it (RFC 3339 times) with its times as epoch seconds,
    the report's arithmetic."""
    steps = [step | {"at": parse_time(step["at"])} for step in event.get("timeline") or []]
    times = {name: parse_time(event[name]) for name in ("received_at", "finished_at")}
    return event | times | {"timeline": steps}


async def collect(env: Environment, *, kill: Kill | None, recovered_at: float | None) -> Report:
    rel = env.timeline.rel
    assert env.timeline.t0 is not None
    t0_epoch = time.time() - (time.monotonic() - env.timeline.t0)
    summaries = (await env.admin_get("/api/v1/events?limit=500"))["events"]
    events = [in_seconds(await env.admin_get(f"/api/v1/events/{s['event_id']}")) for s in summaries]
    events.sort(key=lambda e: (e["finished_at"], e["event_id"]))
    audited = sum(
        1
        for e in events
        for s in (e.get("details") or {}).get("statements") or []
        if str(s.get("sql", "")).startswith("SYSTEM")
    )
    statements = await asyncio.to_thread(_system_statements, env.clickhouse, audited)
    replication = await asyncio.to_thread(_replication, env.clickhouse)
    bumps = env.flink.bumps
    return Report(
        recovered=recovered_at is not None,
        time_to_recovery=None if recovered_at is None else rel(recovered_at),
        alerts=[
            AlertLine(
                a.name, a.brief(), rel(a.fired_at), None if a.resolved_at is None else rel(a.resolved_at)
            )
            for a in env.source.history
        ],
        events=events,
        accepted=env.proxy.accepted_event_ids(),
        clickhouse_statements=statements,
        nonce_patches=[
            rel(c.at)
            for c in patches(env.kube, "flinkdeployments", lambda b: "restartNonce" in (b.get("spec") or {}))
        ],
        bumps=bumps,
        bumps_while_readonly=[b for b in bumps if env.storage.readonly_at(b.at) or not b.storage_writable],
        readonly_windows=[
            (rel(s), None if e is None else rel(e)) for s, e in env.storage.windows if s is not None
        ],
        scale_patches=[
            (rel(c.at), int(c.body["spec"]["replicas"]))
            for c in patches(env.kube, "deployments", lambda b: "replicas" in (b.get("spec") or {}))
        ],
        max_ws_pods=env.ws.max_pods,
        flink_failures=env.flink.failures,
        kill=kill,
        replicas={e["replica"]: _demo_name(env, e["replica"]) for e in events},
        slack=slack_threads(env.slack),
        slack_text=env.slack.render_threads(),
        replication=replication,
        t0_epoch=t0_epoch,
        changes=list(env.overlay.changes),
        jangar_database=env.jangar.database(),
        jangar_answer=await _jangar_answer(env),
    )


async def _jangar_answer(env: Environment) -> str:
    """Jangar's TA endpoint, asked once more at the end."""
    try:
        async with env.session.get(env.jangar_site.url) as response:
            return f"HTTP {response.status} {(await response.text())[:200]}"
    except (OSError, TimeoutError) as exc:
        return f"no answer: {exc!r}"


def _demo_name(env: Environment, replica_id: str) -> str:
    for replica in env.replicas:
        if f"-{replica.pid}-" in replica_id:
            return replica.name
    return replica_id


def _system_statements(
    cluster: ClickHouseCluster, audited: int, within: float = 20.0
) -> list[tuple[str, str]]:
    """Every SYSTEM statement remediator sent, per node, from the servers' query_log (read
    again until it holds at least the ``audited`` ones: 18.16 writes its log lazily)."""
    address = {node.name: node.address for node in cluster.nodes}
    deadline = time.monotonic() + within
    while True:
        by_node = cluster.queries_from(CLICKHOUSE_CLIENT)
        found = [
            (address[node], sql)
            for node, queries in by_node.items()
            for sql in queries
            if sql.lstrip().upper().startswith("SYSTEM")
        ]
        if len(found) >= audited or time.monotonic() > deadline:
            return found


def _replication(cluster: ClickHouseCluster, within: float = 30.0) -> str:
    """Insert one row per table on the first node; wait for it on the others."""
    first, others = cluster.nodes[0], cluster.nodes[1:]
    marker = time.time_ns() % 10**12
    try:
        for table in TABLES:
            first.query(
                f"INSERT INTO {DATABASE}.{table} (day, id, value) "
                f"VALUES (today(), {marker}, 'after the incident')"
            )
    except ClickHouseHTTPError as exc:
        return f"insert refused: {exc}"
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        counts = [
            int(node.query(f"SELECT count() FROM {DATABASE}.{table} WHERE id = {marker}").strip() or 0)
            for node in others
            for table in TABLES
        ]
        if all(counts):
            return (
                f"ok: a row inserted into each of {', '.join(TABLES)} on {first.name} "
                f"replicated to {', '.join(n.name for n in others)}"
            )
        time.sleep(0.5)
    return f"the rows inserted on {first.name} did not replicate within {within:g}s"


def slack_threads(slack: SlackServer) -> list[SlackThread]:
    threads = []
    for updated in slack.top_level():
        parent = updated.as_posted()  # the first message shows the latest state: read it as posted
        replies = [(m.ts, _kind(m.text), render_message(m)[0]) for m in slack.replies(parent)]
        event = _EVENT.search("\n".join(render_message(parent)))
        threads.append(
            SlackThread(
                title=parent.text.split(" · ")[0],
                ts=parent.ts,
                event_id=event[1] if event else "",
                replies=replies,
            )
        )
    return threads


def _kind(text: str) -> str:
    for prefix, kind in (
        ("🔧", "started"),
        ("✅", "succeeded"),
        ("💤", "noop"),
        ("❌", "failed"),
        ("🧪", "dry_run"),
        ("🚨", "escalated"),
        ("🟢", "resolved"),
    ):
        if text.startswith(prefix):
            return kind
    return "other"


def handler_started(event: dict[str, Any]) -> float:
    """When the handler of an audit event started (wall clock; its end if it never did)."""
    for step in event.get("timeline") or []:
        if step["name"] == "handler.started":
            return float(step["at"])
    return float(event["finished_at"])
