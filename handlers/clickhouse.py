"""``clickhouse.restore_replica``: bring read-only replicated tables back, on every node.

Precheck reads ``system.replicas`` on every node. For each read-only (node, table):
when the node reaches Keeper and the replica's metadata is there, ``SYSTEM RESTART
REPLICA``; still read-only, or metadata gone, ``SYSTEM RESTORE REPLICA`` (21.7+).
A node that cannot reach Keeper gets no statement until it can (no restart can help
then, and ClickHouse 18.16 detaches the table when asked to). Verify: every node
reports ``is_readonly = 0`` and ``active_replicas = total_replicas``.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from typing import Any

from pydantic import Field, field_validator

from handlers.clickhouse_nodes import IDENTIFIER, Node, NodeView, Timeouts, quote, restart_sql, restore_sql
from handlers.clickhouse_statements import Statements
from remediator import (
    Checked,
    Context,
    Handler,
    HandlerParams,
    Observations,
    PermanentError,
    PollInterval,
    Result,
    RuleDuration,
    TemporaryError,
    handler,
    planned_within,
    poll,
    seconds,
    verify_within,
)

_NODE = re.compile(r"^(?:[A-Za-z0-9](?:[A-Za-z0-9_.-]{0,252})|\[[0-9A-Fa-f:.]+\]):(\d{1,5})$")


class RestoreReplicaParams(HandlerParams):
    nodes: list[str] = Field(min_length=1, max_length=64)
    """`host:port` list (native port); every node is checked and repaired, and a node that does not answer
    is reported, never skipped
    """
    database: str
    """must match `^[A-Za-z_][A-Za-z0-9_]*$`"""
    table: str | None = None
    """same rule; empty means every read-only replicated table of the database (unset: every read-only
    table)
    """
    verify_timeout: RuleDuration | None = Field(default=None, gt=0, le=3600)
    """duration (`60s`), at most `1h` (unset: the rule's `verify_timeout`)"""
    secure: bool = False
    """TLS on the native port"""
    connect_timeout: RuleDuration = Field(default=5.0, gt=0, le=60)
    """durations (at most `1m` / `10m`), applied to every call"""
    query_timeout: RuleDuration = Field(default=30.0, gt=0, le=600)
    """durations (at most `1m` / `10m`), applied to every call"""
    poll_interval: PollInterval = 2.0
    """duration between verification reads, at most `1m`"""

    @field_validator("nodes")
    @classmethod
    def _nodes(cls, value: list[str]) -> list[str]:
        for node in value:
            match = _NODE.fullmatch(node)
            if not match or not 0 < int(match.group(1)) < 65536:
                raise ValueError(f"node {node!r} must be host:port")
        if len(set(value)) != len(value):
            raise ValueError("nodes must not repeat")
        return value

    @field_validator("database")
    @classmethod
    def _database(cls, value: str) -> str:
        return _identifier(value, "database")

    @field_validator("table")
    @classmethod
    def _table(cls, value: str | None) -> str | None:
        # An empty table (e.g. `{{ labels.table | default('') }}`) means: every table.
        return _identifier(value, "table") if value else None


def _identifier(value: str, what: str) -> str:
    if not IDENTIFIER.fullmatch(value):
        raise ValueError(f"{what} {value!r} is not a plain identifier ({IDENTIFIER.pattern})")
    return value


def _scope(params: RestoreReplicaParams) -> str:
    return quote(params.database) + (f".{quote(params.table)}" if params.table else ".*")


def describe(params: RestoreReplicaParams) -> list[str]:
    """The plan without I/O (for ``remediator simulate``)."""
    target = (
        f"{quote(params.database)}.{quote(params.table)}"
        if params.table
        else (f"`{params.database}`.<each read-only table>")
    )
    verify = planned_within(params)
    return [
        f"read system.replicas for {_scope(params)} on {', '.join(params.nodes)}",
        f"per read-only node and table, once the node reaches Keeper: "
        f"SYSTEM RESTART REPLICA {target} (skipped when the replica's Keeper metadata is gone)",
        f"still read-only: SYSTEM RESTORE REPLICA {target} "
        "(ClickHouse >= 21.7; a refusal is reported verbatim)",
        f"verify within {verify}: is_readonly = 0 and active_replicas = total_replicas on every node",
    ]


@dataclass(frozen=True)
class Seen:
    """The precheck's reads: every node's view, and the read-only tables among them."""

    repair: Repair
    views: list[NodeView]
    targets: list[str]


@handler("clickhouse.restore_replica", params=RestoreReplicaParams, describe=describe)
class RestoreReplica(Handler[RestoreReplicaParams, Seen, Seen]):
    """Restart/restore read-only ClickHouse replicas on every node, then verify."""

    async def precheck(self, params: RestoreReplicaParams, ctx: Context) -> Checked[Seen]:
        _scope(params)  # identifiers again, before any I/O (params built without validation)
        repair = Repair(params, ctx)
        views = await repair.precheck()
        seen = Seen(repair, views, sorted({t for view in views for t in view.readonly()}))
        state = "; ".join(view.describe() for view in views)
        return Checked(state, seen, done=None if seen.targets else repair.healthy(views))

    async def act(self, params: RestoreReplicaParams, ctx: Context, seen: Seen) -> Seen | Result:
        repair, views = seen.repair, seen.views
        if ctx.dry_run:
            return Result.dry_run(await repair.plan(views), nodes=_seen(views))
        for view in views:
            if view.readonly():
                await repair.act(view.node, {t: view.replicas[t].replica_path for t in view.readonly()})
        return seen

    async def verify(self, params: RestoreReplicaParams, ctx: Context, acted: Seen) -> Result:
        return await acted.repair.verify(acted.targets)


class Repair:
    """One run of the handler: the nodes, what was done on them, and what they said."""

    def __init__(self, params: RestoreReplicaParams, ctx: Context) -> None:
        self.params = params
        self.ctx = ctx
        timeouts = Timeouts(connect=params.connect_timeout, query=params.query_timeout)
        self.nodes = {a: Node(a, secure=params.secure, timeouts=timeouts, ctx=ctx) for a in params.nodes}
        self.sql = Statements(self.nodes, ctx)
        self.held: dict[tuple[str, str], str] = {}  # (node, table) -> replica_path
        self.done: set[tuple[str, str]] = set()
        self.keeper_errors: dict[str, str] = {}  # node -> its answer to the Keeper probe

    async def read(self, tables: list[str] | None = None) -> list[NodeView]:
        tables = tables or ([self.params.table] if self.params.table else None)
        return list(
            await asyncio.gather(*(node.view(self.params.database, tables) for node in self.nodes.values()))
        )

    async def precheck(self) -> list[NodeView]:
        views = await self.read()
        for view in views:
            self.ctx.step("precheck", view.describe(), node=view.node, **view.as_dict())
        return views

    def healthy(self, views: list[NodeView]) -> Result:
        """Nothing read-only: noop, unless a node could not be checked or has no table."""
        seen = _seen(views)
        down = [view.describe() for view in views if not view.reachable]
        if down:
            raise TemporaryError("could not check every node: " + "; ".join(down), details={"nodes": seen})
        table = self.params.table
        missing = [v.node for v in views if table and table not in v.replicas]
        if missing or not any(view.replicas for view in views):
            what = (
                f"{quote(self.params.database)}.{quote(table)}"
                if table
                else (f"any replicated table in {quote(self.params.database)}")
            )
            where = ", ".join(missing or self.nodes)
            raise PermanentError(f"{what} not found in system.replicas on {where}", details={"nodes": seen})
        return Result.noop(
            "no read-only replica on any node: " + "; ".join(view.describe() for view in views), nodes=seen
        )

    async def plan(self, views: list[NodeView]) -> list[str]:
        """Dry run: the statements per node, from reads only (Keeper probes included)."""
        lines = []
        for view in views:
            if not view.reachable:
                lines.append(
                    f"{view.node}: unreachable ({view.error}); a real run reports it "
                    "and cannot verify until it answers"
                )
                continue
            if not view.readonly():
                lines.append(f"{view.node}: nothing read-only")
            for table in view.readonly():
                lines.extend(await self._plan_one(view, table))
        return lines

    async def _plan_one(self, view: NodeView, table: str) -> list[str]:
        node, db = view.node, self.params.database
        keeper = await self.sql.keeper(node, record=False)
        if keeper:
            return [
                f"{node}: no statement while Keeper is unreachable from it ({keeper}); "
                f"then SYSTEM RESTART REPLICA {quote(db)}.{quote(table)}"
            ]
        present = await self.sql.metadata(node, view.replicas[table].replica_path, record=False)
        restart = f"{node}: {restart_sql(db, table)}"
        restore = f"{node}: {restore_sql(db, table)}"
        if present:
            return [restart, restore + " (only if still read-only after the restart)"]
        return [restore + " (replica metadata missing in Keeper: restart skipped)"]

    async def act(self, node: str, paths: dict[str, str]) -> None:
        """Repair a node's read-only tables (table -> replica_path), or hold them while
        the node cannot reach Keeper."""
        keeper = await self.sql.keeper(node)
        for table, path in paths.items():
            if keeper:
                self.held[(node, table)] = path
                self.keeper_errors[node] = keeper
                self.ctx.step(
                    "hold",
                    f"{node}: {table}: no statement while the node cannot "
                    "reach Keeper (a restart cannot help; 18.16 detaches the table)",
                    node=node,
                    table=table,
                )
            else:
                self.held.pop((node, table), None)
                self.done.add((node, table))
                await self._repair(node, table, path)

    async def _repair(self, node: str, table: str, replica_path: str) -> None:
        """RESTART; still read-only -> RESTORE. Metadata gone -> straight to RESTORE."""
        db = self.params.database
        if await self.sql.metadata(node, replica_path):
            await self.sql.run(node, restart_sql(db, table))
            view = await self.nodes[node].view(db, [table])
            replica = view.replicas.get(table)
            self.ctx.step("reread", view.describe([table]), node=node, table=table, **view.as_dict())
            if replica is None or not replica.is_readonly:
                return  # writable again, or gone (reported by verify): no RESTORE
        else:
            self.ctx.step(
                "skip",
                f"{node}: {restart_sql(db, table)} skipped: the replica's "
                "metadata is missing in Keeper, a restart cannot make it writable",
                node=node,
                table=table,
            )
        await self.sql.run(node, restore_sql(db, table))

    async def verify(self, tables: list[str]) -> Result:
        """Poll until every node reports the tables healthy, or fail at verify_timeout."""
        timeout = verify_within(self.params, self.ctx)
        self.ctx.step(
            "verify",
            f"waiting up to {seconds(timeout)} for {', '.join(tables)} to be "
            "writable with every replica active on every node",
        )
        waiting = Observations(self.ctx, "verify.waiting")

        async def probe() -> tuple[bool, list[NodeView]]:
            views = await self.read(tables)
            bad = [v for v in views if not _ok(v, tables)]
            if bad:
                waiting.see("; ".join(v.describe(tables) for v in bad), nodes=_seen(views))
            return not bad, views

        healthy, views = await poll(
            self.ctx,
            probe,
            every=self.params.poll_interval,
            within=timeout,
            spare=1.0,
            between=self._act_held,
        )
        if healthy:
            return self._succeeded(views, tables)
        return self._failed(views, tables, timeout)

    async def _act_held(self, views: list[NodeView]) -> None:
        """Held tables still read-only get their statements once their node reaches Keeper."""
        for view in views:
            held = {t: p for (n, t), p in self.held.items() if n == view.node}
            if not held or not view.reachable:
                continue
            for table in list(held):
                replica = view.replicas.get(table)
                if replica is None or not replica.is_readonly:
                    del self.held[(view.node, table)]
                    del held[table]
            if held and not await self.sql.keeper(view.node, record=False):
                await self.act(view.node, held)

    def _succeeded(self, views: list[NodeView], tables: list[str]) -> Result:
        acted = sorted({f"{node}:{table}" for node, table in self.done})
        how = (
            f"statements run for {', '.join(acted)}"
            if acted
            else "no statement was needed once Keeper answered again"
        )
        refusals = self.sql.refusals()
        note = f" (server refusals: {refusals})" if refusals else ""
        return Result.succeeded(
            f"{', '.join(tables)} writable with every replica active on {', '.join(self.nodes)}; {how}{note}",
            nodes=_seen(views),
            statements=self.sql.recorded,
        )

    def _failed(self, views: list[NodeView], tables: list[str], timeout: float) -> Result:
        state = "; ".join(view.describe(tables) for view in views)
        refusals = self.sql.refusals()
        message = f"not recovered after {seconds(timeout)}: {state}"
        held = sorted({node for node, _ in self.held})
        if held:
            message += ". No statement was run on " + "; ".join(
                f"{node}, which cannot reach Keeper: {self.keeper_errors.get(node, '')}" for node in held
            )
        if refusals:
            message += f". Server refusals: {refusals}"
        return Result.failed(
            message,
            retryable=True,
            nodes=_seen(views),
            statements=self.sql.recorded,
            refusals=self.sql.refused(),
        )


def _ok(view: NodeView, tables: list[str]) -> bool:
    return view.reachable and all(t in view.replicas and view.replicas[t].healthy for t in tables)


def _seen(views: list[NodeView]) -> dict[str, Any]:
    return {view.node: view.as_dict() for view in views}
