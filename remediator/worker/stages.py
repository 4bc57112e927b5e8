"""The interface of the pipeline's stages, and what a stage may answer.

Like Alertmanager's notify ``Stage``: one small class per step of a job's way, called
with the job's ``Run``. A stage answers ``Skip`` (the job ends ``skipped:<reason>``),
``Defer`` (the job waits and comes back) or None (go on); it never raises to change the
flow. ``first_stop`` runs a list of stages in order: the pipeline is one such list
(``pipeline.Pipeline.stages``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from remediator.models import Job, SkipReason
from remediator.worker.runs import Run


@dataclass(frozen=True)
class Skip:
    """Stop here: the job is recorded as ``skipped:<reason>`` with this message."""

    reason: SkipReason
    message: str


@dataclass(frozen=True)
class Defer:
    """Not yet: put the job back to wait ``delay`` seconds (None: DEFER_INTERVAL).

    ``reason`` labels the ``deferred`` metric; ``first`` is when the waiting began
    (kept across deferrals, so a stage can give up after a while). ``job``: the job to
    queue instead (a retry counts its attempt there; its steps so far are kept).
    ``hold``: held by a pause or a maintenance window (released at once when a pause is
    lifted).
    """

    reason: str
    message: str
    first: float
    delay: float | None = None
    job: Job | None = None
    hold: bool = False


Stop = Skip | Defer


class Stage(Protocol):
    """One step of a job's way through the pipeline."""

    async def __call__(self, run: Run) -> Stop | None:
        """Why the job stops here, or None to go on to the next stage."""


async def first_stop(stages: list[Stage], run: Run) -> Stop | None:
    """Run ``stages`` in order; the first that stops the job wins."""
    for stage in stages:
        stop = await stage(run)
        if stop is not None:
            return stop
    return None
