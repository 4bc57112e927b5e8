"""What a handler receives besides its params: the typed, frozen context."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

import aiohttp
import structlog

from remediator.models import Alert, Step
from remediator.settings import Settings

T = TypeVar("T")


class Resources:
    """Clients owned by the app: created lazily on first use, closed at shutdown.

    Handlers borrow them (``await ctx.resources.get("kubernetes", make, close)``);
    only the app calls ``aclose``.
    """

    def __init__(self, settings: Settings, http: aiohttp.ClientSession | None = None) -> None:
        self.settings = settings
        self._http = http
        self._items: dict[str, tuple[Any, Callable[[Any], Awaitable[None]]]] = {}
        self._lock = asyncio.Lock()

    @property
    def http(self) -> aiohttp.ClientSession:
        if self._http is None or self._http.closed:
            raise RuntimeError("the app's HTTP session is not open")
        return self._http

    async def get(
        self,
        key: str,
        factory: Callable[[], Awaitable[T]],
        close: Callable[[T], Awaitable[None]],
    ) -> T:
        if key in self._items:
            return cast(T, self._items[key][0])
        async with self._lock:
            if key not in self._items:
                value = await factory()
                self._items[key] = (value, cast(Callable[[Any], Awaitable[None]], close))
            return cast(T, self._items[key][0])

    async def forget(self, key: str) -> None:
        """Close and drop one resource (e.g. a broken connection) so it is made anew."""
        async with self._lock:
            item = self._items.pop(key, None)
        if item is not None:
            await _close_quietly(item)

    async def aclose(self) -> None:
        items, self._items = list(self._items.values()), {}
        for item in reversed(items):
            await _close_quietly(item)


async def _close_quietly(item: tuple[Any, Callable[[Any], Awaitable[None]]]) -> None:
    value, close = item
    try:
        await close(value)
    except Exception as exc:  # closing must never break shutdown
        structlog.get_logger().warning("resource.close_failed", error=repr(exc))


@dataclass(frozen=True, kw_only=True)
class Context:
    """Everything a handler may use. Frozen: handlers read it, never change it."""

    event_id: str
    rule: str
    target: str
    alert: Alert
    dry_run: bool
    deadline: float  # time.monotonic() by which the handler must be done
    verify_timeout: float
    log: Any  # structlog BoundLogger with event_id, fingerprint, rule, target bound
    resources: Resources
    timeline: list[Step] = field(default_factory=list)

    def step(self, name: str, message: str = "", **data: Any) -> None:
        """Record a step in the event's timeline and log it."""
        self.timeline.append(Step(at=time.time(), name=name, message=message, data=data))
        self.log.info(f"handler.{name}", message=message, **data)

    def remaining(self) -> float:
        """Seconds left before the executor's deadline."""
        return max(0.0, self.deadline - time.monotonic())
