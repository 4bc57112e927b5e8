"""The handler kit: helpers every handler needs, so none writes them again.

Polling with a deadline, observations recorded only when they change, the
verify deadline a handler's params may override, and the re-read loop of a
write guarded by a version (HTTP 409). Nothing here imports a client library:
handlers bring their own (``handlers/kube.py`` for Kubernetes).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Protocol, TypeVar

from pydantic import Field

from remediator.durations import RuleDuration
from remediator.errors import TemporaryError
from remediator.handling.context import Context

T = TypeVar("T")
S = TypeVar("S")

MAX_CONFLICTS = 3  # guarded writes: re-read and try again this many times on a conflict
_RULES_VERIFY = "the rule's verify_timeout"

VerifyTimeout = Annotated[RuleDuration | None, Field(gt=0)]
"""A params field that overrides the rule's ``verify_timeout`` (``= None``: the rule's)."""
PollInterval = Annotated[RuleDuration, Field(gt=0, le=60)]
"""A params field: how long to sleep between two reads while verifying (e.g. ``= 2.0``)."""


class Conflict(TemporaryError):
    """A write guarded by a version (e.g. resourceVersion, HTTP 409) found the object changed."""


class VerifyParams(Protocol):
    """Params that may override the rule's ``verify_timeout``."""

    @property
    def verify_timeout(self) -> float | None:
        """Seconds to verify for (None: the rule's ``verify_timeout``)."""


def seconds(value: float) -> str:
    """``2.5`` -> ``'2.5s'``: how plans and messages show a duration."""
    return f"{value:g}s"


def verify_within(params: VerifyParams, ctx: Context) -> float:
    """Seconds to verify for: the params' ``verify_timeout``, else the rule's."""
    return params.verify_timeout or ctx.verify_timeout


def planned_within(params: VerifyParams) -> str:
    """The verify time as a plan shows it without a context (``remediator simulate``)."""
    return seconds(params.verify_timeout) if params.verify_timeout else _RULES_VERIFY


class Observations:
    """Records an observation in the timeline only when it differs from the previous one."""

    def __init__(self, ctx: Context, name: str = "observe") -> None:
        self._ctx = ctx
        self._name = name
        self._last: str | None = None

    def see(self, message: str, **data: Any) -> None:
        if message != self._last:
            self._ctx.step(self._name, message, **data)
            self._last = message


async def poll(
    ctx: Context,
    probe: Callable[[], Awaitable[tuple[bool, T]]],
    *,
    every: float,
    within: float,
    spare: float = 0.0,
    between: Callable[[T], Awaitable[None]] | None = None,
) -> tuple[bool, T]:
    """Call ``probe`` until it reports done or ``within`` seconds pass; return the last answer.

    The wait also ends ``spare`` seconds before the handler's deadline. ``between`` runs
    after each answer that is not done, while time is left, before the next sleep.
    """
    deadline = time.monotonic() + min(within, max(ctx.remaining() - spare, 0.0))
    while True:
        done, seen = await probe()
        if done or deadline - time.monotonic() <= 0:
            return done, seen
        if between is not None:
            await between(seen)
        await asyncio.sleep(max(0.0, min(every, deadline - time.monotonic())))


async def rereading_conflicts(
    ctx: Context,
    seen: S,
    attempt: Callable[[S], Awaitable[T]],
    reread: Callable[[], Awaitable[S]],
    *,
    where: str,
    undone: str,
) -> T:
    """``attempt(seen)``; on :class:`Conflict` re-read and try again, at most ``MAX_CONFLICTS`` times.

    ``attempt`` decides from what it is given and writes guarded by that version; a
    conflict is recorded as a ``conflict`` step. When every attempt conflicts, a
    :class:`TemporaryError` says ``where`` changed under us and the work is ``undone``.
    """
    for _ in range(MAX_CONFLICTS):
        try:
            return await attempt(seen)
        except Conflict as exc:
            ctx.step("conflict", f"{exc}; re-reading")
            seen = await reread()
    raise TemporaryError(
        f"{where} changed under us {MAX_CONFLICTS} times in a row "
        f"(409 Conflict on every guarded patch); {undone}"
    )
