"""What every part of the Redis store shares: the client, the keys, the scripts, and
how a Redis failure becomes ``StoreUnavailable``."""

from __future__ import annotations

import functools
from collections.abc import Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

import structlog
from redis.commands.core import AsyncScript
from redis.exceptions import RedisClusterException, RedisError

from remediator.errors import StoreUnavailable
from remediator.store.redis import scripts as lua
from remediator.store.redis.connection import Client
from remediator.store.redis.keys import Keys

P = ParamSpec("P")
T = TypeVar("T")
log = structlog.get_logger("remediator.store.redis.store")

FAILURES = (RedisError, RedisClusterException, OSError)  # OSError covers socket timeouts
_SCRIPTS = (
    "INTAKE",
    "ENQUEUE",
    "SETTLE_INTAKE",
    "ACK",
    "DEQUEUE",
    "RECLAIM",
    "RETIRE",
    "DEFER",
    "RELEASE_HELD",
    "JOB_STATE",
    "PROMOTE",
    "DEAD_LETTER",
    "DEPTH",
    "EXTEND",
    "RELEASE",
    "ACQUIRE_SLOT",
    "RECORD_FAILURE",
    "FIRING",
    "IS_FIRING",
    "RECORD_EVENT",
    "CLAIM_THREAD",
    "REQUEST_APPROVAL",
    "DECIDE_APPROVAL",
    "SET_APPROVAL_MESSAGE",
    "ADMIT",
    "CONCLUDE",
    "COUNT_FAILURE",
    "OPEN_SESSION",
    "BRAKE_ENTER",
    "BRAKE_RELEASE",
)


def unavailable(exc: BaseException) -> StoreUnavailable:
    return StoreUnavailable(f"redis: {type(exc).__name__}: {exc}")


def guarded(fn: Callable[P, Coroutine[Any, Any, T]]) -> Callable[P, Coroutine[Any, Any, T]]:
    """Turn every Redis failure of ``fn`` into ``StoreUnavailable``."""

    @functools.wraps(fn)
    async def call(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await fn(*args, **kwargs)
        except FAILURES as exc:
            raise unavailable(exc) from exc

    return call


def ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))


def text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class Backend:
    """The client, the keys and the registered scripts, shared by the store's parts."""

    def __init__(self, client: Client, keys: Keys) -> None:
        self.r = client
        self.keys = keys
        self.scripts: dict[str, AsyncScript] = {
            name: client.register_script(getattr(lua, name)) for name in _SCRIPTS
        }

    async def run(self, name: str, keys: list[str], args: list[Any]) -> Any:
        return await self.scripts[name](keys=keys, args=args)

    async def pttl(self, key: str) -> float:
        """Seconds the key has left (0.0: gone, or it never expires)."""
        left = int(await self.r.pttl(key))
        return left / 1000 if left > 0 else 0.0


class Part:
    """One part of the Redis store: the shared client (``_r``), keys and scripts (``_b``)."""

    def __init__(self, backend: Backend) -> None:
        self._b = backend
        self._r = backend.r
        self.keys = backend.keys
