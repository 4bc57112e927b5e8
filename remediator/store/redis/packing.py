"""Commands packed by hiredis (C), not by redis-py's asyncio packer (pure Python).

redis-py's synchronous client packs with hiredis when it is installed; its asyncio
client never does, and its packer copies the growing buffer once per argument. The
webhook's intake sends a few dozen arguments per request (jobs, job states, firing
index), where packing cost about as much as everything else the service does for the
request (bench/run.py, issue 17). ``hiredis`` comes with ``redis[hiredis]``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import hiredis
from redis.asyncio.connection import AbstractConnection

C = TypeVar("C", bound=type[AbstractConnection])

_made: dict[type[AbstractConnection], type[AbstractConnection]] = {}


def _packer(base: type[AbstractConnection]) -> Callable[..., list[bytes]]:
    fallback = base.pack_command

    def pack_command(self: AbstractConnection, *args: Any) -> list[bytes]:
        command = args[0]
        if isinstance(command, str):
            parts = (*command.encode().split(), *args[1:])
        elif b" " in command:
            parts = (*command.split(), *args[1:])
        else:
            parts = args
        try:
            return [hiredis.pack_command(parts)]
        except TypeError:
            # a bytearray or memoryview, or a value Redis cannot take (None, bool):
            # redis-py's own packer converts the first and names the second (DataError)
            return list(fallback(self, *args))

    return pack_command


def packed_by_hiredis(cls: C) -> C:
    """``cls`` (a connection class: plain, TLS, Unix socket, Sentinel-managed) packing
    its commands with hiredis; the same subclass for the same ``cls``."""
    if cls in _made.values():
        return cls
    if cls not in _made:
        _made[cls] = type(f"Hiredis{cls.__name__}", (cls,), {"pack_command": _packer(cls)})
    made: C = _made[cls]  # type: ignore[assignment]
    return made
