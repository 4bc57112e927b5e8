"""Waiting in tests: one ``eventually`` for every "until this holds, within that long"."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar, overload

if TYPE_CHECKING:
    from remediator.models import AuditEvent
    from remediator.store.base import Store

T = TypeVar("T")


@overload
async def eventually(
    check: Callable[[], Awaitable[T]], *, within: float = ..., every: float = ..., what: str = ...
) -> T: ...
@overload
async def eventually(
    check: Callable[[], T], *, within: float = ..., every: float = ..., what: str = ...
) -> T: ...
async def eventually(
    check: Callable[[], Any], *, within: float = 10.0, every: float = 0.02, what: str = "the condition"
) -> Any:
    """Call ``check`` (plain or async) until it answers something truthy, and return that.

    The deadline is on the event loop's clock, so a test on looptime's clock waits in
    loop time (and takes none of it for real); an assertion error names ``what``.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        value = check()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {within:g}s waiting for {what}")
        await asyncio.sleep(every)


async def wait_event(store: Store, event_id: str, within: float = 20.0) -> AuditEvent:
    """The audit event of ``event_id``, once it is recorded."""
    found = await eventually(lambda: store.audit.get_event(event_id), within=within, what=f"event {event_id}")
    assert found is not None
    return found
