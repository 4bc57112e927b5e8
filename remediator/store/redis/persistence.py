"""Whether the Redis server persists anything (``CONFIG GET save`` / ``appendonly``).

A Redis that neither snapshots (RDB) nor keeps an append-only file loses everything at
a restart: accepted jobs, approvals in flight, held jobs, the record of repaired
episodes. ``serve`` says so at start; the generation marker (``generation.py``) tells
when it happened. Managed Redis often refuses CONFIG: then nothing can be said.
"""

from __future__ import annotations

from typing import Any

import structlog
from redis.asyncio.cluster import RedisCluster

from remediator.store.redis.common import FAILURES, text
from remediator.store.redis.connection import Client

log = structlog.get_logger("remediator.store.redis.store")


async def report_persistence(client: Client) -> None:
    """Log what the server persists; warn when it persists nothing (never raises)."""
    try:
        servers = [await _config(client, "save"), await _config(client, "appendonly")]
    except FAILURES as exc:
        log.info(
            "store.redis_persistence_unknown",
            error=str(exc),
            message="CONFIG GET is not allowed here: cannot tell whether Redis persists its data",
        )
        return
    saves, appendonly = servers
    bare = [n for n in saves if not saves[n].strip() and appendonly.get(n, "no") == "no"]
    first = next(iter(saves))
    log.info("store.redis_persistence", save=saves[first], appendonly=appendonly.get(first, "?"))
    if bare:
        log.warning(
            "store.redis_not_persistent",
            servers=bare,
            message=(
                "Redis persists nothing (save is empty and appendonly is no): a restart of Redis "
                "loses every accepted job, approvals in flight, held jobs and the record of "
                "repaired episodes (they would run again). Set appendonly yes (appendfsync "
                "everysec or always); a wipe is detected and reported (store.wiped)."
            ),
        )


async def _config(client: Client, name: str) -> dict[str, str]:
    """``name``'s value per server (every primary of a cluster)."""
    if isinstance(client, RedisCluster):
        found: Any = await client.execute_command("CONFIG", "GET", name, target_nodes=RedisCluster.PRIMARIES)
        return {str(node): _value(reply, name) for node, reply in found.items()}
    return {"redis": _value(await client.config_get(name), name)}


def _value(reply: Any, name: str) -> str:
    """A CONFIG GET reply (a dict, or a flat list of name, value) -> the value."""
    if isinstance(reply, dict):
        pairs = {text(k): text(v) for k, v in reply.items()}
    else:
        items = [text(v) for v in reply]
        pairs = dict(zip(items[::2], items[1::2], strict=False))
    return pairs.get(name, "")
