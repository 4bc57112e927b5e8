"""``admit`` and ``conclude`` made of the parts' single calls: the memory store (which never
yields between them, so it stays atomic) and Redis Cluster (whose keys live on several
nodes: the lease is taken first and the checks are made again under it).

The checks are the same as the ADMIT script's, in the same order (``store.admission``).
"""

from __future__ import annotations

from remediator.store.admission import Admission, Admitted, Concluded, Conclusion
from remediator.store.base import Store


async def admit_in_steps(store: Store, ask: Admission) -> Admitted:
    """``admit`` one call at a time."""
    if await store.pauses.pauses_version() != ask.pauses:
        return Admitted("pauses_changed")
    stop = await _checks(store, ask)
    if stop is not None or ask.lease <= 0:
        return stop or Admitted(copies=await store.intake.intake_copies(ask.job))
    job, target, locks = ask.job, ask.target, store.locks
    token = await locks.acquire_lease(target, ask.lease, job.event_id)
    if token is None:
        return Admitted(
            "locked", left=await locks.lease_remaining(target), holder=await locks.lease_holder(target)
        )
    # Under the lease, again: a run that just finished set them before it let go.
    stop = await _checks(store, ask)
    if stop is None and ask.group and not await locks.acquire_slot(ask.group, ask.limit, ask.slot, ask.lease):
        stop = Admitted("concurrency")
    if stop is not None:
        await locks.release_lease(target, token)
        return stop
    await store.jobs.set_job_state(job.event_id, "running", ask.running, target)
    return Admitted(token=token, copies=await store.intake.intake_copies(job))


async def _checks(store: Store, ask: Admission) -> Admitted | None:
    job, gates = ask.job, store.gates
    alert = job.alert
    if ask.automatic and not await store.firing.is_firing(alert.fingerprint, alert.starts_at.isoformat()):
        return Admitted("resolved")
    if ask.automatic and await gates.episode_done(job.rule, alert.episode):
        return Admitted("duplicate")
    if ask.check_cooldown and (left := await gates.cooldown_remaining(job.rule, ask.target)) > 0:
        return Admitted("cooldown", left=left)
    if ask.check_circuit and (left := await gates.circuit_remaining(job.rule, ask.target)) > 0:
        return Admitted("circuit", left=left)
    return None


async def conclude_in_steps(store: Store, end: Conclusion) -> Concluded:
    """``conclude`` one call at a time (no job is handed over)."""
    job, rule, gates = end.job, end.job.rule, store.gates
    if end.cooldown > 0:
        await gates.set_cooldown(rule, end.target, end.cooldown)
    if end.reset_failures:
        await gates.reset_failures(rule, end.target)
    if end.episode_ttl > 0:
        await gates.mark_episode(rule, job.alert.episode, end.episode_ttl)
    if end.forget_resolution:
        await gates.forget_resolution(rule, end.forget_resolution)
    copies = await store.intake.settle_intake(job, end.done)
    await store.audit.record_event(end.event(copies))
    if end.ack is not None:
        await store.queue.ack(end.ack)
    if end.slot is not None and end.group:
        await store.locks.release_slot(end.group, end.slot)
    if end.token is not None:
        await store.locks.release_lease(end.target, end.token)
    return Concluded(copies)
