"""``admit`` and ``conclude`` on one Redis server: one script call each (``scripts.ADMIT``,
``scripts.CONCLUDE``). Their keys span hash slots, so on Redis Cluster the store runs
the same steps one by one instead (``store.admission``)."""

from __future__ import annotations

import time

from remediator.models import Job
from remediator.store.admission import Admission, AdmitStop, Admitted, Conclusion
from remediator.store.base import collapses, holder_of, lease_token
from remediator.store.redis.common import Backend, guarded, ms, text

_STOPS: frozenset[AdmitStop] = frozenset(
    ("", "pauses_changed", "resolved", "duplicate", "cooldown", "circuit", "locked", "concurrency")
)
# Copies that arrive while the outcome is written: build the event again, at most this often.
_ROUNDS = 4


class RedisAdmission:
    """The start and the end of a run, each in one round trip."""

    def __init__(self, backend: Backend, max_events: int, retention: float) -> None:
        self._b = backend
        self.keys = backend.keys
        self._max = max_events
        self._retention = retention

    def marker(self, job: Job) -> str:
        """The job's intake marker (a key no job owns, for one that is never collapsed)."""
        status = job.alert.status if collapses(job) else "manual"
        return self.keys.intake(status, job.rule, job.alert.episode if collapses(job) else "-")

    @guarded
    async def admit(self, ask: Admission) -> Admitted:
        job, target, k = ask.job, ask.target, self.keys
        rule, alert = job.rule, job.alert
        keys = [
            k.pauses_version,
            k.firing_index,
            k.firing_alerts,
            k.episode(rule, alert.episode),
            k.cooldown(rule, target),
            k.circuit(rule, target),
            k.lease(target),
            k.slots(ask.group or "-"),
            k.job_states,
            self.marker(job),
        ]
        token = lease_token(job.event_id) if ask.lease > 0 else ""
        args = [
            ask.pauses,
            alert.fingerprint,
            alert.starts_at.isoformat(),
            int(ask.automatic),
            int(ask.check_cooldown),
            int(ask.check_circuit),
            ms(ask.lease) if ask.lease > 0 else 0,
            token,
            ask.slot if ask.group else "",
            ask.limit,
            job.event_id,
            ask.running,
            target,
            repr(time.time()),
        ]
        stop, left, held, copies = await self._b.run("ADMIT", keys, args)
        name = text(stop)
        if name not in _STOPS:
            raise RuntimeError(f"ADMIT answered {name!r}")
        seconds = int(left) / 1000 if int(left) > 0 else 0.0
        if name == "locked":
            return Admitted("locked", left=seconds, holder=holder_of(held))
        if name:
            return Admitted(name, left=seconds)
        return Admitted(token=token or None, copies=int(copies))

    @guarded
    async def conclude(self, end: Conclusion) -> int:
        job, target, k = end.job, end.target, self.keys
        rule = job.rule
        keys = [
            self.marker(job),
            k.audit,
            k.event(job.event_id),
            k.job_states,
            k.stream,
            k.lease(target or "-"),
            k.slots(end.group or "-"),
            k.cooldown(rule, target),
            k.attempts(rule, target),
            k.episode(rule, job.alert.episode),
        ]
        expected = end.expected
        for round_ in range(_ROUNDS):
            event = end.event(expected)
            if round_ == _ROUNDS - 1:
                expected = -1  # copies still arriving: record this count, settle them all
            args = [
                job.event_id,
                expected,
                int(end.done),
                event.model_dump_json(by_alias=True),
                event.rule,
                event.outcome.value,
                event.outcome_label,
                self._max,
                ms(self._retention),
                event.event_id,
                k.event(""),
                k.group,
                end.ack or "",
                end.token or "",
                end.slot if end.slot is not None and end.group else "",
                ms(end.cooldown) if end.cooldown > 0 else 0,
                int(end.reset_failures),
                ms(end.episode_ttl) if end.episode_ttl > 0 else 0,
            ]
            written, copies = await self._b.run("CONCLUDE", keys, args)
            if int(written):
                return int(copies)
            expected = int(copies)
        raise AssertionError("unreachable: the last round records whatever the count")
