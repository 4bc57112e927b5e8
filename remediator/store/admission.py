"""The two store calls that start and end a job's run: ``admit`` and ``conclude``.

``admit`` asks, in one call, everything the store knows that may stop a job: the pause
list it was checked against is still current, the alert still fires, its episode is not
yet repaired, no cooldown, no open circuit; then (unless it only checks: ``lease`` 0) it
takes the target's lease and the concurrency slot and marks the job running. The answer
is "go, with this lease" or the first of those that stops it (``Admitted.stop``), in
that order. This is the one place these checks are written (with the ADMIT script that
runs them in one call on Redis): the pipeline asks it, never the single parts.

``conclude`` records the end in one call: the state a result leaves (cooldown, failures
reset, episode repaired), the intake marker settled, the audit event, the ack, and the
lease and slot given back.

On one Redis server each is one Lua script (``redis/admission.py``). The memory store and
Redis Cluster (whose keys live on several nodes) run the same steps one by one
(``stepwise.py``): the memory store never yields between them, so it stays atomic; on a
cluster the lease is taken first and the checks are made again under it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from remediator.models import AuditEvent, Job
from remediator.store.values import Delivery

AdmitStop = Literal[
    "", "pauses_changed", "resolved", "duplicate", "cooldown", "circuit", "locked", "concurrency"
]


@dataclass(frozen=True, kw_only=True)
class Admission:
    """What one job asks before its handler may run.

    ``pauses``: the version of the pause list the job was checked against (``pauses``
    of the store); another version stops it with ``pauses_changed`` and nothing taken.
    ``lease``: the lease's ttl in seconds; 0 checks only and takes nothing (the check-only
    mode: a rule that waits for approval, and a job whose target does not render, ask
    this way). ``slot``: a fresh token for a slot of ``group`` (at most ``limit`` held).
    ``running``: the job state's why once admitted.
    """

    job: Job
    target: str
    pauses: int
    automatic: bool
    check_cooldown: bool
    check_circuit: bool
    lease: float = 0.0
    group: str = ""
    limit: int = 0
    slot: str = ""
    running: str = ""


@dataclass(frozen=True)
class Admitted:
    """``stop`` is "" when the job may run (with ``token`` when a lease was asked for).

    ``left``: seconds of the cooldown or circuit that stopped it, or of the lease held by
    another run (``holder``: its event id). ``copies``: deliveries collapsed into this
    job at intake so far.
    """

    stop: AdmitStop = ""
    token: str | None = None
    left: float = 0.0
    holder: str | None = None
    copies: int = 0


@dataclass(frozen=True, kw_only=True)
class Conclusion:
    """How a job ended, to record in one call.

    ``event(copies)`` builds the audit event for the number of deliveries collapsed into
    the job (the intake marker's count, known for certain only inside the call);
    ``expected`` is the count the caller last saw (``Admitted.copies``). ``done``: the
    episode is repaired or the resolution handled (the intake marker stays). ``ack``: the
    delivery to acknowledge (None: leave it). ``token``/``slot``: the lease on ``target``
    and the slot of ``group`` to give back. ``cooldown`` (seconds, 0: none),
    ``reset_failures`` and ``episode_ttl`` (seconds, 0: none) are what a success or a dry
    run leaves on the rule and target. ``forget_resolution``: the resolution claimed under
    this key (``Gates.claim_resolution``'s episode) is news again: a new run acted on the
    target ("" none). ``next_for``: a consumer that wants its next job handed over in the
    same call ("" none).
    """

    job: Job
    event: Callable[[int], AuditEvent]
    expected: int = 0
    done: bool = False
    ack: str | None = None
    target: str = ""
    token: str | None = None
    group: str = ""
    slot: str | None = None
    cooldown: float = 0.0
    reset_failures: bool = False
    episode_ttl: float = 0.0
    forget_resolution: str = ""
    next_for: str = ""


@dataclass(frozen=True)
class Concluded:
    """The copies the recorded event counts, and the consumer's next job when it asked
    for one (``next_for``) and the store hands jobs over this way (Redis, one server:
    it saves the worker its next read; elsewhere None, and the worker reads as usual)."""

    copies: int
    next: Delivery | None = None
