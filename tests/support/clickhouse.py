"""Real ZooKeeper + ClickHouse replicas on free ports, for tests and demos.

``clickhouse_cluster(tmp, tables=[...])`` starts one ZooKeeper and N ClickHouse
servers (each with its own ports and data directory under ``tmp``), creates the
given ``ReplicatedMergeTree`` tables on every node, and stops everything on exit.
The cluster object can stop and start ZooKeeper (which makes every replicated
table read-only) and stop or start a node. ``query`` talks to a node over its
HTTP port, so setup and assertions need no driver.

Works with the Debian packages (``clickhouse-server`` 18.16, ``zookeeper`` 3.8).
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.procs import free_port, require_binary, stop_process, wait_port

CLICKHOUSE_SERVER = "/usr/sbin/clickhouse-server"
ZOOKEEPER_CLASSPATH = "/etc/zookeeper/conf:/usr/share/java/*"
ZOOKEEPER_JAR = "/usr/share/java/zookeeper.jar"
ZK_SESSION_TIMEOUT_MS = 3000  # short, so a stopped ZooKeeper shows quickly as read-only


def require_clickhouse() -> tuple[str, str]:
    """(clickhouse-server, java) paths; skips locally, fails in CI when missing."""
    server = require_binary(CLICKHOUSE_SERVER)
    java = require_binary("java")
    require_binary(ZOOKEEPER_JAR)
    return server, java


@dataclass
class ZooKeeper:
    """A standalone ZooKeeper on ``port`` with its data under ``root``."""

    root: Path
    java: str
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0) -> None:
        if self.running:
            return
        data = self.root / "data"
        data.mkdir(parents=True, exist_ok=True)
        config = self.root / "zoo.cfg"
        config.write_text(
            f"tickTime=200\ndataDir={data}\nclientPort={self.port}\n"
            "clientPortAddress=127.0.0.1\nmaxSessionTimeout=10000\n"
            "admin.enableServer=false\n4lw.commands.whitelist=ruok\n",
            encoding="utf-8",
        )
        log = (self.root / "zookeeper.log").open("ab")
        self.proc = subprocess.Popen(
            [
                self.java,
                "-Xmx128m",
                "-XX:+UseSerialGC",
                "-XX:TieredStopAtLevel=1",
                "-Dzookeeper.root.logger=INFO,CONSOLE",
                "-cp",
                ZOOKEEPER_CLASSPATH,
                "org.apache.zookeeper.server.quorum.QuorumPeerMain",
                str(config),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        log.close()
        self._wait_serving(timeout)

    def _wait_serving(self, timeout: float) -> None:
        """Until ZooKeeper answers ``ruok`` with ``imok`` (an open port is not enough)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(
                    f"zookeeper exited with {self.proc.returncode}; see {self.root / 'zookeeper.log'}"
                )
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=1.0) as sock,
            ):
                sock.sendall(b"ruok")
                if sock.recv(16) == b"imok":
                    return
            time.sleep(0.1)
        raise TimeoutError(f"zookeeper not serving on {self.port} after {timeout}s")

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)
            self.proc = None

    def wipe(self) -> None:
        """Lose every znode (the incident: Keeper comes back empty): stop, delete, start."""
        self.stop()
        shutil.rmtree(self.root / "data", ignore_errors=True)
        self.start()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


@dataclass
class ClickHouseNode:
    """One ClickHouse server: its own ports, config and data under ``root``."""

    name: str
    root: Path
    server: str
    zookeeper_port: int
    tcp_port: int = field(default_factory=free_port)
    http_port: int = field(default_factory=free_port)
    interserver_port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        """``host:port`` of the native protocol, as the handler's ``nodes`` wants it."""
        return f"127.0.0.1:{self.tcp_port}"

    def start(self, timeout: float = 60.0) -> None:
        if self.running:
            return
        config = self._write_config()
        log = (self.root / "stdout.log").open("ab")
        self.proc = subprocess.Popen(
            [self.server, f"--config-file={config}"],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=self.root,
        )
        log.close()
        self._wait_ready(timeout)

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc, timeout=30.0)
            self.proc = None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def query(self, sql: str, timeout: float = 30.0) -> str:
        """Run ``sql`` over HTTP; returns the TSV answer or raises ``ClickHouseHTTPError``."""
        url = f"http://127.0.0.1:{self.http_port}/?" + urllib.parse.urlencode({"query": sql})
        request = urllib.request.Request(url, method="POST", data=b"")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return str(response.read().decode())
        except urllib.error.HTTPError as exc:
            body = exc.read().decode(errors="replace")
            exc.close()
            raise ClickHouseHTTPError(f"{self.name}: {body.strip()}") from None

    def query_error(self, sql: str) -> str:
        """The error text the server answers ``sql`` with (which must fail)."""
        try:
            self.query(sql)
        except ClickHouseHTTPError as exc:
            return str(exc)
        raise AssertionError(f"{sql!r} did not fail on {self.name}")

    def rows(self, sql: str) -> list[list[str]]:
        return [line.split("\t") for line in self.query(sql).splitlines() if line]

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(
                    f"clickhouse {self.name} exited with {self.proc.returncode}; "
                    f"see {self.root / 'log' / 'server.log'}"
                )
            with contextlib.suppress(OSError, ClickHouseHTTPError):
                if self.query("SELECT 1", timeout=2.0).strip() == "1":
                    wait_port(self.tcp_port, timeout=max(0.1, deadline - time.monotonic()))
                    return
            time.sleep(0.1)
        raise TimeoutError(f"clickhouse {self.name} not ready after {timeout}s")

    def _write_config(self) -> Path:
        for sub in ("data", "tmp", "log", "user_files", "format_schemas"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        users = self.root / "users.xml"
        users.write_text(_USERS, encoding="utf-8")
        config = self.root / "config.xml"
        config.write_text(
            _CONFIG.format(
                root=self.root,
                tcp_port=self.tcp_port,
                http_port=self.http_port,
                interserver_port=self.interserver_port,
                zookeeper_port=self.zookeeper_port,
                session_timeout=ZK_SESSION_TIMEOUT_MS,
                replica=self.name,
                users=users,
            ),
            encoding="utf-8",
        )
        return config


class ClickHouseHTTPError(Exception):
    """The server answered an HTTP query with an error (its text is the message)."""


@dataclass
class ClickHouseCluster:
    zookeeper: ZooKeeper
    nodes: list[ClickHouseNode]

    @property
    def addresses(self) -> list[str]:
        return [node.address for node in self.nodes]

    def create_tables(self, tables: Sequence[str]) -> None:
        """Create ``db.table`` as ReplicatedMergeTree on every node (and its database)."""
        for node in self.nodes:
            for qualified in tables:
                database, table = qualified.split(".")
                node.query(f"CREATE DATABASE IF NOT EXISTS {database}")
                node.query(
                    f"CREATE TABLE IF NOT EXISTS {database}.{table} "
                    "(day Date, id UInt64, value String) ENGINE = ReplicatedMergeTree("
                    f"'/clickhouse/tables/{database}/{table}', '{{replica}}') "
                    "PARTITION BY toYYYYMM(day) ORDER BY id"
                )

    def readonly(self, database: str) -> dict[str, dict[str, int]]:
        """``{node name: {table: is_readonly}}`` as each running node reports it."""
        seen: dict[str, dict[str, int]] = {}
        for node in self.nodes:
            if node.running:
                rows = node.rows(
                    "SELECT table, is_readonly FROM system.replicas "
                    f"WHERE database = '{database}' ORDER BY table"
                )
                seen[node.name] = {table: int(flag) for table, flag in rows}
        return seen

    def wait_readonly(self, database: str, expected: bool, timeout: float = 60.0) -> None:
        """Wait until every table of ``database`` on every running node is (not) read-only."""
        deadline = time.monotonic() + timeout
        seen: dict[str, dict[str, int]] = {}
        while time.monotonic() < deadline:
            seen = self.readonly(database)
            flags = [flag for tables in seen.values() for flag in tables.values()]
            if flags and all(bool(flag) is expected for flag in flags):
                return
            time.sleep(0.2)
        raise TimeoutError(f"replicas not {'read-only' if expected else 'writable'} after {timeout}s: {seen}")

    def wait_keeper(self, timeout: float = 60.0) -> None:
        """Until every running node can read from ZooKeeper again."""
        deadline = time.monotonic() + timeout
        for node in self.nodes:
            while node.running:
                try:
                    node.query("SELECT count() FROM system.zookeeper WHERE path = '/'")
                    break
                except ClickHouseHTTPError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.2)

    def flush_logs(self) -> None:
        for node in self.nodes:
            if node.running:
                node.query("SYSTEM FLUSH LOGS")

    def queries_from(self, client_name: str, *, settle: float = 1.0) -> dict[str, list[str]]:
        """Per node, every query a client of that name sent (from ``system.query_log``).

        18.16's SYSTEM FLUSH LOGS writes only what its log thread has already taken
        from its queue, so wait ``settle`` seconds first (flush_interval is 0.5 s).
        """
        time.sleep(settle)
        self.flush_logs()
        return {
            node.name: [
                query.replace("\\n", "\n").replace("\\'", "'")
                for (query,) in node.rows(
                    "SELECT query FROM system.query_log WHERE type IN (1, 3) "
                    f"AND client_name = '{client_name}' ORDER BY event_time, query_start_time"
                )
            ]
            for node in self.nodes
            if node.running
        }

    def wait_queries_from(self, client_name: str, timeout: float = 30.0) -> dict[str, list[str]]:
        """Like ``queries_from``, but until every running node logged at least one query."""
        deadline = time.monotonic() + timeout
        while True:
            sent = self.queries_from(client_name, settle=0.5)
            if all(sent.values()) or time.monotonic() > deadline:
                return sent

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
        self.zookeeper.stop()


@contextlib.contextmanager
def clickhouse_cluster(
    tmp: Path, *, nodes: int = 2, tables: Sequence[str] = ()
) -> Iterator[ClickHouseCluster]:
    """Start ZooKeeper and ``nodes`` ClickHouse servers under ``tmp``; create ``tables``."""
    server, java = require_clickhouse()
    zookeeper = ZooKeeper(root=tmp / "zookeeper", java=java)
    cluster = ClickHouseCluster(
        zookeeper=zookeeper,
        nodes=[
            ClickHouseNode(
                name=f"node{i + 1}", root=tmp / f"node{i + 1}", server=server, zookeeper_port=zookeeper.port
            )
            for i in range(nodes)
        ],
    )
    try:
        zookeeper.start()
        for node in cluster.nodes:
            node.start()
        cluster.create_tables(tables)
        yield cluster
    finally:
        cluster.stop()


_CONFIG = """<?xml version="1.0"?>
<yandex>
    <logger>
        <level>information</level>
        <log>{root}/log/server.log</log>
        <errorlog>{root}/log/server.err.log</errorlog>
        <size>50M</size>
        <count>1</count>
    </logger>
    <listen_host>127.0.0.1</listen_host>
    <tcp_port>{tcp_port}</tcp_port>
    <http_port>{http_port}</http_port>
    <interserver_http_port>{interserver_port}</interserver_http_port>
    <interserver_http_host>127.0.0.1</interserver_http_host>
    <max_connections>256</max_connections>
    <keep_alive_timeout>3</keep_alive_timeout>
    <max_concurrent_queries>50</max_concurrent_queries>
    <uncompressed_cache_size>8388608</uncompressed_cache_size>
    <mark_cache_size>8388608</mark_cache_size>
    <path>{root}/data/</path>
    <tmp_path>{root}/tmp/</tmp_path>
    <user_files_path>{root}/user_files/</user_files_path>
    <format_schema_path>{root}/format_schemas/</format_schema_path>
    <users_config>{users}</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <mlock_executable>false</mlock_executable>
    <zookeeper>
        <node><host>127.0.0.1</host><port>{zookeeper_port}</port></node>
        <session_timeout_ms>{session_timeout}</session_timeout_ms>
        <operation_timeout_ms>2000</operation_timeout_ms>
    </zookeeper>
    <macros>
        <replica>{replica}</replica>
    </macros>
    <merge_tree>
        <zookeeper_session_expiration_check_period>1</zookeeper_session_expiration_check_period>
    </merge_tree>
    <query_log>
        <database>system</database>
        <table>query_log</table>
        <flush_interval_milliseconds>500</flush_interval_milliseconds>
    </query_log>
</yandex>
"""

_USERS = """<?xml version="1.0"?>
<yandex>
    <profiles>
        <default>
            <log_queries>1</log_queries>
            <max_memory_usage>1000000000</max_memory_usage>
        </default>
    </profiles>
    <users>
        <default>
            <password></password>
            <networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
            <profile>default</profile>
            <quota>default</quota>
        </default>
    </users>
    <quotas>
        <default>
            <interval>
                <duration>3600</duration>
                <queries>0</queries>
                <errors>0</errors>
                <result_rows>0</result_rows>
                <read_rows>0</read_rows>
                <execution_time>0</execution_time>
            </interval>
        </default>
    </quotas>
</yandex>
"""
