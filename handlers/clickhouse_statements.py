"""The statements ``clickhouse.restore_replica`` runs, each recorded with the node's answer.

Every statement and its answer go to the timeline (unless a probe asks not to be
recorded) and to the result's ``statements``; a server's refusal is kept verbatim.
"""

from __future__ import annotations

from typing import Any

from handlers.clickhouse_nodes import KEEPER_PROBE_SQL, METADATA_PROBE_SQL, Node, Refused, Unreachable
from remediator import Context


class Statements:
    """Runs statements on the run's nodes and keeps what each one answered."""

    def __init__(self, nodes: dict[str, Node], ctx: Context) -> None:
        self.nodes = nodes
        self.ctx = ctx
        self.recorded: list[dict[str, Any]] = []

    async def keeper(self, node: str, *, record: bool = True) -> str:
        """'' when the node reaches Keeper, else the node's (verbatim) answer."""
        answer = await self.run(node, KEEPER_PROBE_SQL, record=record)
        return "" if answer is None else answer

    async def metadata(self, node: str, path: str, *, record: bool = True) -> bool:
        """Whether the replica's metadata exists in Keeper (asked through the node)."""
        rows: list[dict[str, Any]] = []
        answer = await self.run(node, METADATA_PROBE_SQL, {"path": path}, record=record, rows=rows)
        return answer is None and bool(rows) and int(next(iter(rows[0].values()))) > 0

    async def run(
        self,
        node: str,
        sql: str,
        args: dict[str, Any] | None = None,
        *,
        record: bool = True,
        rows: list[dict[str, Any]] | None = None,
    ) -> str | None:
        """Run one statement; record it and the answer. Returns None or the error text."""
        shown = sql if args is None else f"{sql} -- {args}"
        entry: dict[str, Any] = {"node": node, "sql": shown}
        error: str | None
        if record:
            self.ctx.step("sql", f"{node}: {shown}", node=node, sql=shown)
        try:
            result = await self.nodes[node].query(sql, args)
        except Refused as exc:
            entry.update(ok=False, code=exc.code, message=exc.message)
            error = str(exc)
        except Unreachable as exc:
            entry.update(ok=False, unreachable=True, message=str(exc))
            error = f"unreachable: {exc}"
        else:
            entry.update(ok=True, answer=_answer(result))
            if rows is not None:
                rows.extend(result)
            error = None
        if record:
            self.recorded.append(entry)
            data = {("server_message" if k == "message" else k): v for k, v in entry.items() if k != "sql"}
            self.ctx.step("answer", f"{node}: " + (error or entry["answer"]), **data)
        return error

    def refused(self) -> list[dict[str, Any]]:
        """The recorded statements the server refused (with its code)."""
        return [s for s in self.recorded if "code" in s]

    def refusals(self) -> str:
        """The refused SYSTEM statements, one line each, as the server put it."""
        return "; ".join(
            f"{s['node']}: {s['sql']} -> Code: {s['code']}. {s['message']}"
            for s in self.refused()
            if s["sql"].startswith("SYSTEM ")
        )


def _answer(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "Ok."
    return "; ".join(", ".join(f"{k}={v}" for k, v in row.items()) for row in rows[:5])
