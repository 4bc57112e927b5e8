"""The two store calls that start and end a job's run: ``admit`` and ``conclude``.

``admit`` asks, in one call, everything the store knows that may stop a job: the pause
list it was checked against is still current, the alert still fires, its episode is not
yet repaired, no cooldown, no open circuit; then it takes the target's lease and the
concurrency slot and marks the job running. The answer is "go, with this lease" or the
first of those that stops it (``Admitted.stop``), in that order.

``conclude`` records the end in one call: the state a result leaves (cooldown, failures
reset, episode repaired), the intake marker settled, the audit event, the ack, and the
lease and slot given back.

On one Redis server each is one Lua script (``redis/admission.py``). The memory store and
Redis Cluster (whose keys live on several nodes) run the same steps one by one
(``admit_in_steps``, ``conclude_in_steps``): the memory store never yields between them,
so it stays atomic; on a cluster the lease is taken first and the checks are made again
under it, as the worker did before this call existed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from remediator.models import AuditEvent, Job

if TYPE_CHECKING:
    from remediator.store.base import Delivery, Store

AdmitStop = Literal[
    "", "pauses_changed", "resolved", "duplicate", "cooldown", "circuit", "locked", "concurrency"
]


@dataclass(frozen=True, kw_only=True)
class Admission:
    """What one job asks before its handler may run.

    ``pauses``: the version of the pause list the job was checked against (``pauses``
    of the store); another version stops it with ``pauses_changed`` and nothing taken.
    ``lease``: the lease's ttl in seconds; 0 checks only (a rule that waits for approval
    asks first, then again to take the lease). ``slot``: a fresh token for a slot of
    ``group`` (at most ``limit`` held). ``running``: the job state's why once admitted.
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
    run leaves on the rule and target. ``next_for``: a consumer that wants its next job
    handed over in the same call ("" none).
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
    next_for: str = ""


@dataclass(frozen=True)
class Concluded:
    """The copies the recorded event counts, and the consumer's next job when it asked
    for one (``next_for``) and the store hands jobs over this way (Redis, one server:
    it saves the worker its next read; elsewhere None, and the worker reads as usual)."""

    copies: int
    next: Delivery | None = None


async def admit_in_steps(store: Store, ask: Admission) -> Admitted:
    """``admit`` made of the store's single calls (memory store, Redis Cluster)."""
    if await store.pauses_version() != ask.pauses:
        return Admitted("pauses_changed")
    stop = await _checks(store, ask)
    if stop is not None or ask.lease <= 0:
        return stop or Admitted(copies=await store.intake_copies(ask.job))
    job, target = ask.job, ask.target
    token = await store.acquire_lease(target, ask.lease, job.event_id)
    if token is None:
        return Admitted(
            "locked", left=await store.lease_remaining(target), holder=await store.lease_holder(target)
        )
    # Under the lease, again: a run that just finished set them before it let go.
    stop = await _checks(store, ask)
    if stop is None and ask.group and not await store.acquire_slot(ask.group, ask.limit, ask.slot, ask.lease):
        stop = Admitted("concurrency")
    if stop is not None:
        await store.release_lease(target, token)
        return stop
    await store.set_job_state(job.event_id, "running", ask.running, target)
    return Admitted(token=token, copies=await store.intake_copies(job))


async def _checks(store: Store, ask: Admission) -> Admitted | None:
    job = ask.job
    if ask.automatic and not await store.is_firing(job.alert.fingerprint, job.alert.starts_at.isoformat()):
        return Admitted("resolved")
    if ask.automatic and await store.episode_done(job.rule, job.alert.episode):
        return Admitted("duplicate")
    if ask.check_cooldown and (left := await store.cooldown_remaining(job.rule, ask.target)) > 0:
        return Admitted("cooldown", left=left)
    if ask.check_circuit and (left := await store.circuit_remaining(job.rule, ask.target)) > 0:
        return Admitted("circuit", left=left)
    return None


async def conclude_in_steps(store: Store, end: Conclusion) -> Concluded:
    """``conclude`` made of the store's single calls (no job is handed over)."""
    job, rule = end.job, end.job.rule
    if end.cooldown > 0:
        await store.set_cooldown(rule, end.target, end.cooldown)
    if end.reset_failures:
        await store.reset_failures(rule, end.target)
    if end.episode_ttl > 0:
        await store.mark_episode(rule, job.alert.episode, end.episode_ttl)
    copies = await store.settle_intake(job, end.done)
    await store.record_event(end.event(copies))
    if end.ack is not None:
        await store.ack(end.ack)
    if end.slot is not None and end.group:
        await store.release_slot(end.group, end.slot)
    if end.token is not None:
        await store.release_lease(end.target, end.token)
    return Concluded(copies)
