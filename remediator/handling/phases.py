"""The handler interface: three phases, each callable on its own.

``precheck`` reads the target's current state and says so in words a human can read
(``Checked.state``: shown in an approval request, which is asked after the precheck, and
in the timeline); it may end the run at once (``Checked.done``: nothing to
do is ``noop``; a refusal is ``failed``). ``act`` changes the target from what the
precheck saw; in a dry run it changes nothing and answers the plan (``Result.dry_run``).
It returns a ``Result`` to end the run (a dry run, nothing left to do after a re-read,
a failure), or what it did, for ``verify``. ``verify`` waits until the target recovered
(or the deadline passed) and answers the run's ``Result``.

Handlers raise ``TemporaryError``/``PermanentError`` for what they cannot do; the executor
(``execution.py``) turns every exception, timeout and lost lease into a failed Result.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from remediator.handling.context import Context
from remediator.models import Result

P = TypeVar("P")  # the handler's params model
S = TypeVar("S")  # what the precheck saw, handed to act
A = TypeVar("A")  # what act did, handed to verify


@dataclass(frozen=True)
class Checked(Generic[S]):
    """What a precheck saw: ``state`` in words; ``seen`` for act; ``done`` ends the run
    with that result instead (``noop``: nothing to do; ``failed``: a refusal)."""

    state: str
    seen: S
    done: Result | None = None


class Handler(ABC, Generic[P, S, A]):
    """Subclass, implement the three phases, and register it with ``@handler``."""

    @abstractmethod
    async def precheck(self, params: P, ctx: Context) -> Checked[S]:
        """Read the target's current state; decide whether there is anything to do."""

    @abstractmethod
    async def act(self, params: P, ctx: Context, seen: S) -> A | Result:
        """Change the target (in a dry run: only the plan); a Result ends the run."""

    @abstractmethod
    async def verify(self, params: P, ctx: Context, acted: A) -> Result:
        """Wait until the target recovered; the run's result."""


async def run_phases(phases: Handler[Any, Any, Any], params: Any, ctx: Context) -> Result:
    """precheck, then act, then verify: the whole handler, as the executor runs it."""
    checked = await phases.precheck(params, ctx)
    if not isinstance(checked, Checked):
        return Result.failed(f"the precheck returned {type(checked).__name__}, not Checked")
    if checked.done is not None:
        return checked.done
    acted = await phases.act(params, ctx, checked.seen)
    if isinstance(acted, Result):
        return acted
    return await phases.verify(params, ctx, acted)
