"""``clickhouse.restore_replica`` against real ZooKeeper + two ClickHouse servers.

The servers are Debian's clickhouse-server 18.16 and zookeeper 3.8: old, but real
replication. Each test gets its own cluster (about 2 s to start) so a test that
breaks Keeper cannot leak into another. The handler runs through the real
executor with a real Context and Resources.
"""

from __future__ import annotations

import asyncio
import gc
import socket
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

import handlers  # noqa: F401  # registers the built-in handlers
from handlers.clickhouse import RestoreReplicaParams
from handlers.clickhouse_nodes import CLIENT_NAME
from remediator.cli.main import simulate
from remediator.errors import TemplateError
from remediator.handling.context import Context, Resources
from remediator.handling.execution import execute
from remediator.handling.registry import default_registry
from remediator.models import Alert, Outcome, Result, Step, new_event_id
from remediator.rules.ruleset import parse_rules, render
from remediator.settings import Settings
from tests.support.clickhouse import ClickHouseCluster, clickhouse_cluster
from tests.support.handlers import make_context
from tests.support.payloads import alert_model

DB = "torghut"
TABLES = ["ta_microbars", "ta_signals"]
SPEC = default_registry.get("clickhouse.restore_replica")
CLIENT = f"ClickHouse {CLIENT_NAME}"  # asynch prefixes the client name with "ClickHouse "


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[ClickHouseCluster]:
    # Also a replicated table in another database, and a plain MergeTree one, which
    # the handler must leave alone.
    with clickhouse_cluster(tmp_path, tables=[f"{DB}.{t}" for t in TABLES] + ["other.t"]) as c:
        for node in c.nodes:
            node.query(f"CREATE TABLE {DB}.plain (id UInt64) ENGINE = MergeTree ORDER BY id")
        yield c


@pytest.fixture
async def resources(cluster: ClickHouseCluster) -> AsyncIterator[Resources]:
    """The app's resources; closing them must close every connection to the nodes."""
    res = Resources(Settings())
    yield res
    await res.aclose()
    gc.collect()
    ports = {node.tcp_port for node in cluster.nodes}
    left = [
        sock
        for sock in gc.get_objects()
        if isinstance(sock, socket.socket)
        and sock.fileno() != -1
        and sock.family == socket.AF_INET
        and _peer_port(sock) in ports
    ]
    assert not left, f"connections left open after Resources.aclose(): {left}"


def _peer_port(sock: socket.socket) -> int | None:
    try:
        return int(sock.getpeername()[1])
    except OSError:
        return None


def _alert(**labels: str) -> Alert:
    return alert_model(
        "ClickHouseReplicaReadonly", "firing", datetime.now(UTC), severity="critical", database=DB, **labels
    )


def _context(
    resources: Resources, *, dry_run: bool = False, timeout: float = 100.0, verify_timeout: float = 60.0
) -> Context:
    return make_context(
        resources,
        event_id=new_event_id(),
        rule="clickhouse-replica-readonly",
        target=f"clickhouse/{DB}",
        alert=_alert(),
        dry_run=dry_run,
        deadline=timeout,
        verify_timeout=verify_timeout,
    )


async def _run(ctx: Context, params: dict[str, Any] | RestoreReplicaParams) -> Result:
    assert SPEC is not None
    if isinstance(params, dict):
        params = RestoreReplicaParams.model_validate(params)
    return await execute(SPEC, params, ctx, timeout=ctx.remaining())


def _steps(ctx: Context, name: str) -> list[Step]:
    return [step for step in ctx.timeline if step.name == name]


def _system_statements(result: Result) -> list[tuple[str, str]]:
    return [(s["node"], s["sql"]) for s in result.details["statements"] if s["sql"].startswith("SYSTEM ")]


def _replica_tables(cluster: ClickHouseCluster) -> dict[str, list[str]]:
    """Tables each node still has in system.replicas (18.16 drops a failed restart's table)."""
    return {
        node.name: [
            row[0]
            for row in node.rows(f"SELECT table FROM system.replicas WHERE database = '{DB}' ORDER BY table")
        ]
        for node in cluster.nodes
    }


async def test_healthy_replicas_are_a_noop(cluster: ClickHouseCluster, resources: Resources) -> None:
    ctx = _context(resources)
    result = await _run(ctx, {"nodes": cluster.addresses, "database": DB})

    assert result.outcome is Outcome.NOOP, result.message
    assert result.details["nodes"] == {
        address: {
            "reachable": True,
            "tables": {
                t: {"is_readonly": 0, "is_session_expired": 0, "active_replicas": 2, "total_replicas": 2}
                for t in TABLES
            },
        }
        for address in cluster.addresses
    }
    assert [step.data["node"] for step in _steps(ctx, "precheck")] == cluster.addresses
    # Only reads: the handler's queries in the server's own log.
    sent = cluster.wait_queries_from(CLIENT)
    assert all(sent[node.name] for node in cluster.nodes)
    assert not [q for queries in sent.values() for q in queries if not q.startswith("SELECT")]


async def test_keeper_down_holds_then_recovers_when_it_returns(
    cluster: ClickHouseCluster, resources: Resources
) -> None:
    cluster.zookeeper.stop()
    await asyncio.to_thread(cluster.wait_readonly, DB, True)
    ctx = _context(resources, verify_timeout=90.0, timeout=110.0)
    task = asyncio.create_task(
        _run(ctx, {"nodes": cluster.addresses, "database": DB, "poll_interval": "500ms"})
    )
    for _ in range(600):  # until the handler verifies (it polls every 0.5 s)
        if _steps(ctx, "verify") or task.done():
            break
        await asyncio.sleep(0.1)
    await asyncio.to_thread(cluster.zookeeper.start)  # Keeper is back while we verify
    result = await task

    assert result.outcome is Outcome.SUCCEEDED, result.message
    # Precheck found exactly the two read-only tables, on both nodes.
    for step in _steps(ctx, "precheck"):
        assert {t: s["is_readonly"] for t, s in step.data["tables"].items()} == {
            "ta_microbars": 1,
            "ta_signals": 1,
        }
    # Each node was asked whether it reaches Keeper; its refusal is kept verbatim.
    probes = [s for s in result.details["statements"] if "system.zookeeper" in s["sql"]]
    refused = [s for s in probes if not s["ok"]]
    assert {s["node"] for s in refused} == set(cluster.addresses)
    for probe in refused:
        assert probe["code"] == 999
        assert "All connection tries failed while connecting to ZooKeeper" in probe["message"]
    holds = _steps(ctx, "hold")
    assert {(s.data["node"], s.data["table"]) for s in holds} == {
        (a, t) for a in cluster.addresses for t in TABLES
    }
    names = [step.name for step in ctx.timeline]
    assert names.index("precheck") < names.index("hold") < names.index("verify")
    # No SYSTEM statement while Keeper was down (18.16 detaches a table it cannot restart);
    # once it answered, held replicas still read-only were restarted (unless 18.16's own
    # reconnect, every 10 s, got there first), each restart answered "Ok.".
    verify_at = _steps(ctx, "verify")[0].at
    restarts = [s for s in ctx.timeline if s.name == "sql" and s.data["sql"].startswith("SYSTEM")]
    assert all(s.at > verify_at for s in restarts)
    assert all(sql.startswith("SYSTEM RESTART REPLICA") for _, sql in _system_statements(result))
    assert all(
        s["ok"] and s["answer"] == "Ok."
        for s in result.details["statements"]
        if s["sql"].startswith("SYSTEM ")
    )
    assert _replica_tables(cluster) == {n.name: TABLES for n in cluster.nodes}
    assert cluster.readonly(DB) == {n.name: dict.fromkeys(TABLES, 0) for n in cluster.nodes}


async def test_lost_keeper_metadata_restore_refused_by_old_server(
    cluster: ClickHouseCluster, resources: Resources
) -> None:
    await asyncio.to_thread(cluster.zookeeper.wipe)  # the incident: metadata gone
    await asyncio.to_thread(cluster.wait_keeper)
    await asyncio.to_thread(cluster.wait_readonly, DB, True)
    params = {
        "nodes": cluster.addresses,
        "database": DB,
        "table": "ta_signals",
        "verify_timeout": "2s",
        "poll_interval": "500ms",
    }

    planned = await _run(_context(resources, dry_run=True), params)
    restore = "SYSTEM RESTORE REPLICA `torghut`.`ta_signals`"
    assert planned.outcome is Outcome.DRY_RUN, planned.message
    assert planned.plan == [
        f"{a}: {restore} (replica metadata missing in Keeper: restart skipped)" for a in cluster.addresses
    ]
    assert not [
        q for qs in cluster.wait_queries_from(CLIENT).values() for q in qs if not q.startswith("SELECT")
    ]

    ctx = _context(resources)
    result = await _run(ctx, params)

    assert result.outcome is Outcome.FAILED
    assert _system_statements(result) == [(a, restore) for a in cluster.addresses]
    # The server's own answer, verbatim: the same text it gives any client.
    # The HTTP interface quotes the query with a trailing newline; otherwise the same text.
    direct = cluster.nodes[0].query_error(restore).replace("\n", "")
    refusals = [r for r in result.details["refusals"] if r["sql"] == restore]
    assert [r["node"] for r in refusals] == cluster.addresses
    for refusal in refusals:
        assert refusal["code"] == 62
        assert refusal["message"].startswith(
            f"DB::Exception: Syntax error: failed at position 8: {restore[7:]}. Expected one of:"
        )
        assert refusal["message"] in direct
        assert f"{refusal['node']}: {restore} -> Code: 62. {refusal['message']}" in result.message
    assert {s.data["node"] for s in _steps(ctx, "skip")} == set(cluster.addresses)
    assert "not recovered after 2s" in result.message
    assert "ta_signals read-only" in result.message
    assert _replica_tables(cluster) == {n.name: TABLES for n in cluster.nodes}


async def test_a_node_that_is_down_is_reported(cluster: ClickHouseCluster, resources: Resources) -> None:
    down = cluster.nodes[1]
    await asyncio.to_thread(down.stop)
    ctx = _context(resources)
    result = await _run(ctx, {"nodes": cluster.addresses, "database": DB, "connect_timeout": "2s"})

    assert result.outcome is Outcome.FAILED
    assert result.retryable
    assert f"{down.address}: unreachable" in result.message
    assert result.details["nodes"][down.address]["reachable"] is False
    assert result.details["nodes"][cluster.addresses[0]]["reachable"] is True


async def test_dry_run_with_keeper_down_and_a_node_down(
    cluster: ClickHouseCluster, resources: Resources
) -> None:
    cluster.zookeeper.stop()
    await asyncio.to_thread(cluster.wait_readonly, DB, True)
    down = cluster.nodes[1]
    await asyncio.to_thread(down.stop)
    result = await _run(
        _context(resources, dry_run=True),
        {"nodes": cluster.addresses, "database": DB, "connect_timeout": "2s"},
    )

    assert result.outcome is Outcome.DRY_RUN, result.message
    up = cluster.addresses[0]
    assert [line.split(" (")[0] for line in result.plan] == [
        f"{up}: no statement while Keeper is unreachable from it",
        f"{up}: no statement while Keeper is unreachable from it",
        f"{down.address}: unreachable",
    ]
    assert result.plan[0].endswith("then SYSTEM RESTART REPLICA `torghut`.`ta_microbars`")
    sent = cluster.wait_queries_from(CLIENT)[cluster.nodes[0].name]
    assert sent
    assert not [q for q in sent if not q.startswith("SELECT")]


# The rule proposed for the shipped rules.yaml (docs/reference/handlers.md: clickhouse.restore_replica).
RULES = b"""
rules:
  - name: clickhouse-replica-readonly
    matchers: ['alertname="ClickHouseReplicaReadonly"', 'severity=~"critical|page"']
    handler: clickhouse.restore_replica
    target: 'clickhouse/{{ labels.database | default("torghut") }}'
    params:
      nodes: [chi-torghut-0:9000, chi-torghut-1:9000]
      database: '{{ labels.database | default("torghut") }}'
      table: '{{ labels.table | default("") }}'
"""


def test_rule_renders_for_one_table_or_the_whole_database() -> None:
    rule = parse_rules(RULES, "rules.yaml", default_registry).rules[0]
    one = render(rule, _alert(table="ta_signals"))
    assert one.target == "clickhouse/torghut"
    assert one.params.model_dump() == {
        "nodes": ["chi-torghut-0:9000", "chi-torghut-1:9000"],
        "database": "torghut",
        "table": "ta_signals",
        "verify_timeout": None,
        "secure": False,
        "connect_timeout": 5.0,
        "query_timeout": 30.0,
        "poll_interval": 2.0,
    }
    bare = Alert.model_validate(
        {
            "status": "firing",
            "startsAt": "2026-01-01T00:00:00Z",
            "labels": {"alertname": "ClickHouseReplicaReadonly", "severity": "critical"},
        }
    )
    every = render(rule, bare)
    assert (every.target, every.params.database, every.params.table) == (  # type: ignore[attr-defined]
        "clickhouse/torghut",
        "torghut",
        None,
    )


async def test_hostile_label_is_rejected_and_nothing_runs(
    cluster: ClickHouseCluster, resources: Resources
) -> None:
    for node in cluster.nodes:
        node.query(f"CREATE TABLE {DB}.y (id UInt64) ENGINE = Memory")
    hostile = "x; DROP TABLE y"
    rules = parse_rules(RULES, "rules.yaml", default_registry)
    alert = _alert(table=hostile)

    with pytest.raises(TemplateError, match="table 'x; DROP TABLE y' is not a plain identifier"):
        render(rules.rules[0], alert)
    [entry] = simulate(rules, [alert])
    assert "is not a plain identifier" in entry["matches"][0]["error"]
    # Even params that skipped validation are refused by the handler before any I/O.
    forged = RestoreReplicaParams.model_construct(
        nodes=cluster.addresses,
        database=DB,
        table=hostile,
        verify_timeout=None,
        secure=False,
        connect_timeout=5.0,
        query_timeout=30.0,
        poll_interval=1.0,
    )
    result = await _run(_context(resources), forged)
    assert result.outcome is Outcome.FAILED
    assert "refusing identifier 'x; DROP TABLE y'" in result.message

    assert cluster.queries_from(CLIENT) == {n.name: [] for n in cluster.nodes}
    assert all(node.query(f"EXISTS TABLE {DB}.y").strip() == "1" for node in cluster.nodes)
    # The log does record this client: a legitimate run shows up in it.
    await _run(_context(resources), {"nodes": cluster.addresses, "database": DB})
    assert all(cluster.wait_queries_from(CLIENT).values())


@pytest.mark.parametrize(
    "bad",
    [
        {"nodes": ["chi-0"]},
        {"nodes": ["chi-0:99999"]},
        {"nodes": ["a b:9000"]},
        {"nodes": []},
        {"nodes": ["a:9000", "a:9000"]},
        {"database": "torghut`"},
        {"table": "ta-signals"},
        {"table": "1st"},
        {"verify_timeout": "0s"},
    ],
)
def test_params_are_validated(bad: dict[str, Any]) -> None:
    params = {"nodes": ["chi-torghut-0:9000", "[::1]:9440"], "database": DB, **bad}
    with pytest.raises(ValueError):  # noqa: PT011 - each bad field has its own message
        RestoreReplicaParams.model_validate(params)


def test_empty_table_means_every_table_and_plan_needs_no_io() -> None:
    params = RestoreReplicaParams.model_validate(
        {"nodes": ["chi-torghut-0:9000", "chi-torghut-1:9000"], "database": DB, "table": ""}
    )
    assert params.table is None
    assert SPEC is not None
    plan = SPEC.plan(params)
    assert plan[0] == ("read system.replicas for `torghut`.* on chi-torghut-0:9000, chi-torghut-1:9000")
    assert "SYSTEM RESTORE REPLICA `torghut`.<each read-only table>" in plan[2]
