"""A rule's ``context:``: what people need to see before anyone acts, gathered by plugins.

The core knows the interface only; the ``handlers`` package registers the gatherers
(``handlers/gatherers/``: ``kubernetes.logs``, ``kubernetes.events``, ``prometheus.query``),
as it registers its handlers. A gatherer is one async function ``gather(params, ctx) ->
str``: the text to show (a log's last lines, the target's Events, a query's value), or an
exception saying why it could not. The worker (``worker/gathering.py``) renders the
params, applies the entry's timeout, bounds the text, redacts secrets and notes a failure;
a gatherer does none of that itself.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from remediator.durations import Duration
from remediator.handling.context import Context
from remediator.handling.escapes import Finalizer

MAX_TIMEOUT = 60.0  # seconds: context is gathered before acting, never for long


class GatherParams(BaseModel):
    """Base of every context entry's params: unknown params are errors; every entry has a
    ``timeout`` (how long its gathering may take)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    timeout: Duration = Field(default=10.0, gt=0, le=MAX_TIMEOUT)


Gather = Callable[[Any, Context], Awaitable[str]]
"""``gather(params, ctx)``: the text to show; raises with the reason it could not."""

Prepare = Callable[[Context], Awaitable[None]]
"""``prepare(ctx)``: make the kind's client ready (import a library, read a config), before
any entry's timeout starts: a replica's first gathering is not cut by a slow import."""


@dataclass(frozen=True)
class GathererSpec:
    """One kind of context entry: its name in ``rules.yaml``, params model, how substituted
    values are escaped, the title of an entry (no I/O) and the function that gathers it."""

    kind: str
    gather: Gather
    params: type[GatherParams]
    describe: Callable[[Any], str]
    escapes: dict[str, Finalizer] = field(default_factory=dict)
    keep: str = "head"  # "tail": beyond the size bound, the end is kept (a log's last lines)
    prepare: Prepare | None = None
