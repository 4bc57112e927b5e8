"""``admit`` and ``conclude`` on one Redis server: one script call each (``scripts.ADMIT``,
``scripts.CONCLUDE``), their keys and values in one JSON argument. Their keys span hash
slots, so on Redis Cluster the store runs the same steps one by one instead
(``store.admission``)."""

from __future__ import annotations

import time
from typing import Any

import orjson

from remediator.models import Job
from remediator.store.admission import Admission, AdmitStop, Admitted, Concluded, Conclusion
from remediator.store.redis.audit import RedisAudit
from remediator.store.redis.common import Backend, guarded, ms, text
from remediator.store.redis.queue import RedisQueue
from remediator.store.values import Delivery, holder_of, lease_token

_STOPS: frozenset[AdmitStop] = frozenset(
    ("", "pauses_changed", "resolved", "duplicate", "cooldown", "circuit", "locked", "concurrency")
)
# Copies that arrive while the outcome is written: build the event again, at most this often.
_ROUNDS = 4


class RedisAdmission:
    """The start and the end of a run, each in one round trip."""

    def __init__(self, backend: Backend, queue: RedisQueue, audit: RedisAudit) -> None:
        self._b = backend
        self._queue = queue
        self._audit = audit
        self.keys = backend.keys

    def marker(self, job: Job) -> str:
        """The job's intake marker. A marker counts for the job whose event id it holds, so a
        manual replay (never collapsed: it owns none) may read the same key and find 0."""
        return self.keys.intake(job.alert.status, job.rule, job.alert.episode)

    @guarded
    async def admit(self, ask: Admission) -> Admitted:
        job, target, k = ask.job, ask.target, self.keys
        rule, alert = job.rule, job.alert
        token = lease_token(job.event_id) if ask.lease > 0 else ""
        request = {
            "keys": {
                "pauses": k.pauses_version,
                "index": k.firing_index,
                "alerts": k.firing_alerts,
                "episode": k.episode(rule, alert.episode),
                "cooldown": k.cooldown(rule, target),
                "circuit": k.circuit(rule, target),
                "lease": k.lease(target),
                "slots": k.slots(ask.group or "-"),
                "states": k.job_states,
                "marker": self.marker(job),
            },
            "pauses": ask.pauses,
            "fingerprint": alert.fingerprint,
            "starts_at": alert.starts_at.isoformat(),
            "automatic": ask.automatic,
            "cooldown": ask.check_cooldown,
            "circuit": ask.check_circuit,
            "lease": ms(ask.lease) if ask.lease > 0 else 0,
            "token": token,
            "slot": ask.slot if ask.group else "",
            "limit": ask.limit,
            "id": job.event_id,
            "why": ask.running,
            "target": target,
            "now": time.time(),
        }
        stop, left, held, copies = await self._b.run("ADMIT", [], [orjson.dumps(request)])
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
    async def conclude(self, end: Conclusion) -> Concluded:
        job, target, k = end.job, end.target, self.keys
        rule = job.rule
        request: dict[str, Any] = {
            "keys": {
                "marker": self.marker(job),
                "audit": k.audit,
                "event": k.event(job.event_id),
                "states": k.job_states,
                "stream": self._queue.locate(end.ack)[0] if end.ack else k.stream,
                "lease": k.lease(target or "-"),
                "slots": k.slots(end.group or "-"),
                "cooldown": k.cooldown(rule, target),
                "attempts": k.attempts(rule, target),
                "episode": k.episode(rule, job.alert.episode),
                "resolution": k.resolution(rule, end.forget_resolution) if end.forget_resolution else "",
            },
            "id": job.event_id,
            "done": end.done,
            "group": k.group,
            "ack": self._queue.locate(end.ack)[1] if end.ack else "",
            "token": end.token or "",
            "slot": end.slot if end.slot is not None and end.group else "",
            "cooldown": ms(end.cooldown) if end.cooldown > 0 else 0,
            "reset": end.reset_failures,
            "episode": ms(end.episode_ttl) if end.episode_ttl > 0 else 0,
            "next": end.next_for,
            "queue": self._queue.queue_args(),
        }
        expected = end.expected
        for round_ in range(_ROUNDS):
            event = end.event(expected)
            last = round_ == _ROUNDS - 1  # copies still arriving: record this count, settle them all
            request["expected"] = -1 if last else expected
            request["record"] = self._audit.record_fields(event)
            args = [orjson.dumps(request), event.model_dump_json(by_alias=True)]
            written, copies, *handed = await self._b.run("CONCLUDE", [], args)
            if int(written):
                return Concluded(int(copies), await self._next(handed))
            expected = int(copies)
        raise AssertionError("unreachable: the last round records whatever the count")

    async def _next(self, handed: list[Any]) -> Delivery | None:
        """The job ``take`` handed over inside the script, as a delivery."""
        if not handed or not handed[0]:
            return None
        deliveries = await self._queue.deliveries(handed[:1])
        return deliveries[0] if deliveries else None
