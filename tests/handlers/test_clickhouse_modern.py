"""``clickhouse.restore_replica``'s SQL on ClickHouse 26 (chdb-core), with a real ZooKeeper.

The native-protocol handler is tested end to end on Debian's 18.16 servers
(tests/handlers/test_clickhouse.py); 18.16 refuses ``SYSTEM RESTORE REPLICA``, so the
incident's own repair is proven here, on the engine of PyPI's ``chdb-core``:

- the incident: a ``ReplicatedMergeTree`` table with two parts loses its Keeper
  metadata; ``system.replicas`` shows it read-only with "No node, path .../log";
- every statement the handler sends, taken from the handler's modules (not copied),
  with its parameters substituted by the asynch driver exactly as it sends them:
  the column discovery, the ``system.replicas`` read (incl. ``zookeeper_exception``),
  the Keeper and metadata probes, ``SYSTEM RESTART REPLICA``, ``SYSTEM RESTORE REPLICA``;
- RESTORE puts the table's and the replica's metadata and both parts back in
  ZooKeeper (read with kazoo, a ZooKeeper client).

Limits of the in-process engine, asserted so they stay known: the replica never
becomes writable (no interserver port: ``is_readonly`` stays 1), and
``system.zookeeper`` does not exist (the probes parse, and are refused as an unknown
table, not as bad SQL).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from asynch.proto.connection import Connection as AsynchConnection
from kazoo.client import KazooClient  # type: ignore[import-untyped]

from handlers.clickhouse_nodes import (
    BASE_COLUMNS,
    COLUMNS_SQL,
    KEEPER_COLUMNS,
    KEEPER_PROBE_SQL,
    METADATA_PROBE_SQL,
    OPTIONAL_COLUMNS,
    replicas_query,
    restart_sql,
    restore_sql,
)
from tests.support.chdb_engine import Answer, ChdbProcess, keeper_config, require_chdb
from tests.support.clickhouse import ZOOKEEPER_JAR, ZooKeeper
from tests.support.procs import require_binary

pytestmark = pytest.mark.timeout(90)

DB, TABLE = "torghut", "ta_bars"
TABLE_PATH = f"/clickhouse/tables/{DB}/{TABLE}"
REPLICA_PATH = f"{TABLE_PATH}/replicas/r1"
COLUMNS = "(day Date, id UInt64, value String)"
WANTED = [*BASE_COLUMNS, *KEEPER_COLUMNS, *OPTIONAL_COLUMNS]
NO_LOG = f"No node, path {TABLE_PATH}/log"


def sent(sql: str, args: dict[str, Any] | None = None) -> str:
    """The statement as the handler's driver sends it (asynch substitutes the parameters)."""
    return sql if args is None else str(AsynchConnection.substitute_params(sql, args))


def ok(answer: Answer) -> Answer:
    assert answer.ok, f"{answer.sql}: {answer.error}"
    return answer


@dataclass
class Incident:
    """A chdb engine whose replicated table lost its Keeper metadata, and that Keeper."""

    engine: ChdbProcess
    keeper: KazooClient
    parts: list[str]  # the table's parts before the loss

    def replicas(self, columns: list[str], tables: list[str] | None = None) -> Answer:
        return ok(self.engine.query(sent(*replicas_query(columns, DB, tables))))

    def active_parts(self) -> list[str]:
        sql = f"SELECT name FROM system.parts WHERE database = '{DB}' AND table = '{TABLE}' AND active"
        return sorted(row[0] for row in ok(self.engine.query(sql)).rows)


@pytest.fixture(scope="module")
def incident(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Incident]:
    """ZooKeeper, then chdb: the table with two parts, then its Keeper metadata deleted."""
    require_chdb()
    java = require_binary("java")
    require_binary(ZOOKEEPER_JAR)
    root = tmp_path_factory.mktemp("chdb")
    zookeeper = ZooKeeper(root / "zookeeper", java)
    zookeeper.start()
    keeper = KazooClient(hosts=f"127.0.0.1:{zookeeper.port}", timeout=10.0)
    keeper.start(timeout=30)
    config = keeper_config(root, zookeeper.port)
    try:
        with ChdbProcess(root / "data", config) as engine:
            for sql in (
                f"CREATE DATABASE {DB}",
                # The replica is never writable in chdb, so the parts are written by a plain
                # MergeTree of the same structure and moved in while no engine runs.
                f"CREATE TABLE {DB}.staging {COLUMNS} ENGINE = MergeTree ORDER BY id",
                f"INSERT INTO {DB}.staging VALUES (today(), 1, 'bar')",
                f"INSERT INTO {DB}.staging VALUES (today(), 2, 'signal')",
                f"CREATE TABLE {DB}.{TABLE} {COLUMNS} "
                f"ENGINE = ReplicatedMergeTree('{TABLE_PATH}', '{{replica}}') ORDER BY id",
            ):
                ok(engine.query(sql))
            paths = dict(
                ok(
                    engine.query(f"SELECT name, data_paths[1] FROM system.tables WHERE database = '{DB}'")
                ).rows
            )
            parts = sorted(
                row[0]
                for row in ok(
                    engine.query("SELECT name FROM system.parts WHERE table = 'staging' AND active")
                ).rows
            )
        assert keeper.exists(f"{REPLICA_PATH}/metadata"), "the replica was created in ZooKeeper"
        keeper.delete(TABLE_PATH, recursive=True)  # the incident: Keeper came back without it
        for part in parts:
            shutil.copytree(Path(paths["staging"]) / part, Path(paths[TABLE]) / part)
        with ChdbProcess(root / "data", config) as engine:
            yield Incident(engine, keeper, parts)
    finally:
        keeper.stop()
        keeper.close()
        zookeeper.stop()


# The tests share one engine and run in file order: the reads before the repair, then the repair.


def test_the_precheck_reads_on_clickhouse_26(incident: Incident) -> None:
    # column discovery: every column the handler reads exists on 26, zookeeper_exception too
    discovery = ok(incident.engine.query(COLUMNS_SQL))
    assert discovery.columns == ["name"]
    have = {row[0] for row in discovery.rows}
    assert set(WANTED) <= have, sorted(set(WANTED) - have)

    # the read of system.replicas, as the precheck and verify send it (all of the database,
    # and the named tables): the columns asked, and the incident's state
    for tables in (None, [TABLE]):
        answer = incident.replicas(WANTED, tables)
        assert answer.columns == WANTED
        [row] = answer.dicts()
        assert row["table"] == TABLE
        assert row["is_readonly"] == 1
        assert row["is_session_expired"] == 0
        assert row["replica_path"] == REPLICA_PATH
        # 18.16 fails the whole SELECT here; 26 answers, with nothing active
        assert (row["active_replicas"], row["total_replicas"]) == (0, 0)
        assert NO_LOG in row["zookeeper_exception"]
        assert "KEEPER_EXCEPTION" in row["zookeeper_exception"]

    # the fallback read without the Keeper columns (for servers that fail the full one)
    fallback = [c for c in WANTED if c not in KEEPER_COLUMNS]
    assert incident.replicas(fallback).columns == fallback
    # a table the server lacks is simply absent
    assert incident.replicas(WANTED, ["nope"]).rows == []


def test_the_keeper_probes_parse_but_chdb_has_no_system_zookeeper(incident: Incident) -> None:
    for sql in (sent(KEEPER_PROBE_SQL), sent(METADATA_PROBE_SQL, {"path": REPLICA_PATH})):
        assert ok(incident.engine.query(f"EXPLAIN AST {sql}")).rows  # it parses
        answer = incident.engine.query(sql)
        assert answer.code == 60, answer.error  # UNKNOWN_TABLE, not a syntax error (62)
        assert "system.zookeeper" in answer.error
    # the path is a value, escaped by the driver: a quote cannot end the literal
    hostile = sent(METADATA_PROBE_SQL, {"path": "/x' OR 1 = 1 --"})
    assert ok(incident.engine.query(f"EXPLAIN AST {hostile}")).rows
    assert "'/x\\' OR 1 = 1 --'" in hostile


def test_restart_then_restore_rebuilds_the_lost_keeper_metadata(incident: Incident) -> None:
    keeper, engine = incident.keeper, incident.engine
    assert incident.active_parts() == incident.parts
    assert keeper.exists(TABLE_PATH) is None

    # SYSTEM RESTART REPLICA: accepted, but it cannot bring back what Keeper lost
    assert ok(engine.query(restart_sql(DB, TABLE), timeout=30)).rows == []
    [row] = incident.replicas(WANTED).dicts()
    assert row["is_readonly"] == 1
    assert NO_LOG in row["zookeeper_exception"]
    assert keeper.exists(TABLE_PATH) is None

    # SYSTEM RESTORE REPLICA: the incident's repair
    started = time.monotonic()
    assert ok(engine.query(restore_sql(DB, TABLE), timeout=30)).rows == []
    assert time.monotonic() - started < 30
    [row] = incident.replicas(WANTED).dicts()
    assert row["zookeeper_exception"] == ""  # Keeper answers for the table again
    assert row["is_readonly"] == 1  # chdb's limit: no interserver port, never writable

    # ZooKeeper has the table's and the replica's metadata back, and every part
    for node in ("metadata", "columns", "log", "replicas", "blocks"):
        assert keeper.exists(f"{TABLE_PATH}/{node}"), node
    for node in ("metadata", "columns", "is_lost", "log_pointer", "queue", "parts"):
        assert keeper.exists(f"{REPLICA_PATH}/{node}"), node
    metadata, _ = keeper.get(f"{TABLE_PATH}/metadata")
    assert b"primary key: id" in metadata
    columns, _ = keeper.get(f"{REPLICA_PATH}/columns")
    assert b"`value` String" in columns
    restored = sorted(keeper.get_children(f"{REPLICA_PATH}/parts"))
    assert restored == incident.active_parts()  # re-attached (renumbered), each one in Keeper
    assert len(restored) == len(incident.parts)
    assert ok(engine.query(f"SELECT count(), sum(id) FROM {DB}.{TABLE}")).rows == [[2, 3]]  # data kept

    # RESTORE with the metadata present (the handler's step after a RESTART that left the
    # replica read-only) is refused, and the handler reports the server's words
    again = engine.query(restore_sql(DB, TABLE), timeout=30)
    assert not again.ok
    assert again.code == 36, again.error  # BAD_ARGUMENTS
    assert f"Replica path is present at {REPLICA_PATH} - nothing to restore" in again.error
