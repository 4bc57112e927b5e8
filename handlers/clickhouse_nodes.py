"""ClickHouse nodes for ``clickhouse.restore_replica``: SQL, connections, replica state.

Identifiers are validated and backquoted here (the only place SQL text is built);
values travel as asynch parameters (escaped by the driver). Each node has one
native connection, owned by the app through ``ctx.resources`` (opened lazily,
closed at shutdown). Every call has a connection timeout and a query timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from handlers.lazy import LazyModule
from remediator import Context, PermanentError

if TYPE_CHECKING:
    import asynch
    from asynch import errors
else:  # imported at the first ClickHouse call (handlers/lazy.py)
    asynch = LazyModule("asynch")
    errors = LazyModule("asynch.errors")

IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
CLIENT_NAME = "remediator"
# Columns of system.replicas we read; those a server lacks are left out
# (18.16 has no zookeeper_exception). The ZooKeeper-backed ones can make the
# whole SELECT fail on old servers when a table's metadata is gone.
BASE_COLUMNS = ("table", "is_readonly", "is_session_expired", "replica_path")
KEEPER_COLUMNS = ("active_replicas", "total_replicas")
OPTIONAL_COLUMNS = ("zookeeper_exception",)


def quote(name: str) -> str:
    """Backquote an identifier that matches ``IDENTIFIER``; anything else is refused."""
    if not IDENTIFIER.fullmatch(name):
        raise PermanentError(f"refusing identifier {name!r}: must match {IDENTIFIER.pattern}")
    return f"`{name}`"


def restart_sql(database: str, table: str) -> str:
    return f"SYSTEM RESTART REPLICA {quote(database)}.{quote(table)}"


def restore_sql(database: str, table: str) -> str:
    return f"SYSTEM RESTORE REPLICA {quote(database)}.{quote(table)}"


COLUMNS_SQL = "SELECT name FROM system.columns WHERE database = 'system' AND table = 'replicas'"
KEEPER_PROBE_SQL = "SELECT count() FROM system.zookeeper WHERE path = '/'"
METADATA_PROBE_SQL = "SELECT count() FROM system.zookeeper WHERE path = %(path)s"


class Refused(Exception):
    """The server answered with an error: its code and message, verbatim."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"Code: {code}. {message}")
        self.code = code
        self.message = message


class Unreachable(Exception):
    """No answer from the node: connection refused, timed out, or broken."""


@dataclass
class Replica:
    """One replicated table as one node reports it."""

    table: str
    is_readonly: bool
    is_session_expired: bool
    replica_path: str
    active_replicas: int | None = None
    total_replicas: int | None = None
    zookeeper_exception: str = ""

    @property
    def healthy(self) -> bool:
        return (
            not self.is_readonly
            and self.total_replicas is not None
            and self.total_replicas > 0
            and self.active_replicas == self.total_replicas
        )

    def describe(self) -> str:
        state = "read-only" if self.is_readonly else "writable"
        if self.is_session_expired:
            state += ", Keeper session expired"
        if self.total_replicas is not None:
            state += f", {self.active_replicas}/{self.total_replicas} replicas active"
        if self.zookeeper_exception:
            state += f", Keeper error: {self.zookeeper_exception}"
        return f"{self.table} {state}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "is_readonly": int(self.is_readonly),
            "is_session_expired": int(self.is_session_expired),
            "active_replicas": self.active_replicas,
            "total_replicas": self.total_replicas,
            **({"zookeeper_exception": self.zookeeper_exception} if self.zookeeper_exception else {}),
        }


@dataclass
class NodeView:
    """What one node said about the database's replicas (or why it said nothing)."""

    node: str
    replicas: dict[str, Replica] = field(default_factory=dict)
    error: str = ""  # the node could not be read at all
    note: str = ""  # read, but the ZooKeeper-backed columns failed (verbatim error)

    @property
    def reachable(self) -> bool:
        return not self.error

    def readonly(self) -> list[str]:
        return [name for name, replica in self.replicas.items() if replica.is_readonly]

    def describe(self, tables: list[str] | None = None) -> str:
        if self.error:
            return f"{self.node}: unreachable ({self.error})"
        shown = [self.replicas[t].describe() for t in (tables or self.replicas) if t in self.replicas]
        missing = [t for t in (tables or []) if t not in self.replicas]
        parts = shown + [f"{t} not found in system.replicas" for t in missing]
        note = f" [system.replicas: {self.note}]" if self.note else ""
        return f"{self.node}: " + ("; ".join(parts) or "no replicated tables") + note

    def as_dict(self) -> dict[str, Any]:
        if self.error:
            return {"reachable": False, "error": self.error}
        data: dict[str, Any] = {
            "reachable": True,
            "tables": {n: r.as_dict() for n, r in self.replicas.items()},
        }
        if self.note:
            data["keeper_columns_error"] = self.note
        return data


class NodeClient:
    """One asynch connection to one node, one query at a time.

    After any error the connection is closed and the next query opens a new one:
    ClickHouse 18.16 answers a statement it cannot parse with a second Exception
    packet, so the stream is not at a packet boundary afterwards (asynch's Pool
    then fails its liveness ping and loses the socket).
    """

    def __init__(self, options: dict[str, Any]) -> None:
        self._options = options
        self._conn: asynch.Connection | None = None
        self._lock = asyncio.Lock()

    async def query(self, sql: str, args: dict[str, Any] | None) -> list[dict[str, Any]]:
        async with self._lock:
            if self._conn is None:
                self._conn = asynch.Connection(**self._options)
            conn = self._conn
            try:
                await conn.connect()
                async with conn.cursor() as cursor:
                    await cursor.execute(sql, args)
                    names = [column[0] for column in cursor.description or []]
                    rows = await cursor.fetchall() if names else []
            except BaseException:
                self._conn = None
                await _close(conn)
                raise
        return [dict(zip(names, row, strict=True)) for row in rows]

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await _close(conn)


async def _close(conn: asynch.Connection) -> None:
    with contextlib.suppress(Exception):
        await conn.close()


@dataclass(frozen=True)
class Timeouts:
    connect: float
    query: float


class Node:
    """One ClickHouse server, borrowed from the app's resources for one handler run."""

    def __init__(self, address: str, *, secure: bool, timeouts: Timeouts, ctx: Context) -> None:
        self.address = address
        host, _, port = address.rpartition(":")
        self.host = host.strip("[]")
        self.port = int(port)
        self.secure = secure
        self.timeouts = timeouts
        self.ctx = ctx
        settings = ctx.resources.settings
        self.user = settings.clickhouse_user
        self.key = f"clickhouse:{self.user}@{self.address}:{'tls' if secure else 'tcp'}"
        self._columns: list[str] | None = None

    async def _client(self) -> NodeClient:
        password = self.ctx.resources.settings.clickhouse_password
        options = dict(
            host=self.host,
            port=self.port,
            user=self.user,
            password=password.get_secret_value() if password else "",
            secure=self.secure,
            client_name=CLIENT_NAME,
            connect_timeout=self.timeouts.connect,
            send_receive_timeout=self.timeouts.query,
            sync_request_timeout=self.timeouts.connect,
        )

        async def make() -> NodeClient:
            return NodeClient(options)

        return await self.ctx.resources.get(self.key, make, NodeClient.close)

    async def query(self, sql: str, args: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """Rows as dicts. Raises ``Refused`` (server error) or ``Unreachable``."""
        budget = min(self.timeouts.connect + self.timeouts.query, max(self.ctx.remaining(), 0.1))
        try:
            async with asyncio.timeout(budget):
                client = await self._client()
                return await client.query(sql, args)
        except errors.ServerException as exc:
            raise Refused(int(exc.code or 0), str(exc.message)) from exc
        except TimeoutError as exc:
            raise Unreachable(f"no answer within {budget:.3g}s") from exc
        except (errors.ClickHouseException, OSError) as exc:
            raise Unreachable(str(exc) or type(exc).__name__) from exc

    async def columns(self) -> list[str]:
        """The system.replicas columns this server has, among those we read."""
        if self._columns is None:
            rows = await self.query(COLUMNS_SQL)
            have = {row["name"] for row in rows}
            wanted = (*BASE_COLUMNS, *KEEPER_COLUMNS, *OPTIONAL_COLUMNS)
            self._columns = [name for name in wanted if name in have]
        return self._columns

    async def view(self, database: str, tables: list[str] | None) -> NodeView:
        """Read system.replicas for ``database`` (optionally only ``tables``)."""
        view = NodeView(node=self.address)
        try:
            columns = await self.columns()
            try:
                rows = await self._replicas(columns, database, tables)
            except Refused as exc:  # old servers: a Keeper error fails the whole SELECT
                view.note = str(exc)
                rows = await self._replicas([c for c in columns if c not in KEEPER_COLUMNS], database, tables)
        except (Refused, Unreachable) as exc:
            view.error = str(exc)
            return view
        view.replicas = {row["table"]: _replica(row) for row in rows}
        return view

    async def _replicas(
        self, columns: list[str], database: str, tables: list[str] | None
    ) -> list[dict[str, Any]]:
        return await self.query(*replicas_query(columns, database, tables))


def replicas_query(columns: list[str], database: str, tables: list[str] | None) -> tuple[str, dict[str, Any]]:
    """The read of ``system.replicas`` (precheck and verify): the SQL and its parameters."""
    where = "database = %(database)s" + (" AND table IN %(tables)s" if tables else "")
    args: dict[str, Any] = {"database": database}
    if tables:
        args["tables"] = tuple(tables)
    return f"SELECT {', '.join(columns)} FROM system.replicas WHERE {where} ORDER BY table", args


def _replica(row: dict[str, Any]) -> Replica:
    def number(name: str) -> int | None:
        return int(row[name]) if row.get(name) is not None else None

    return Replica(
        table=str(row["table"]),
        is_readonly=bool(row["is_readonly"]),
        is_session_expired=bool(row.get("is_session_expired", 0)),
        replica_path=str(row.get("replica_path", "")),
        active_replicas=number("active_replicas"),
        total_replicas=number("total_replicas"),
        zookeeper_exception=str(row.get("zookeeper_exception") or ""),
    )
