"""The state interface every replica shares, and its in-memory implementation.

``MemoryStore`` is the embedded default (one process, nothing survives a
restart). ``redis_store.RedisStore`` implements the same contract for
production; ``tests/test_store_contract.py`` runs against both.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import secrets
import time
from collections import Counter, OrderedDict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from remediator.models import Alert, AuditEvent, Job, NewJob


@dataclass(frozen=True)
class Delivery:
    """A job handed to one worker. ``deliveries`` counts hand-outs, this one included."""

    id: str
    job: Job
    deliveries: int


@dataclass(frozen=True)
class Pause:
    reason: str
    until: float  # epoch seconds
    by: str = ""


@dataclass(frozen=True)
class FailureCount:
    failures: int  # failures inside the window, this one included
    opened: bool  # True only for the failure that opened the circuit


class Store(Protocol):
    """All shared state. Every method raises ``StoreUnavailable`` when it cannot answer."""

    kind: str

    async def ping(self) -> None: ...
    async def close(self) -> None: ...

    # intake: index the alerts, then store the jobs, before the webhook answers 202
    async def accept(
        self, jobs: Sequence[Job | NewJob], firing: Sequence[Alert], resolved: Sequence[Alert]
    ) -> None: ...

    # queue
    async def dequeue(self, consumer: str, count: int, block: float) -> list[Delivery]: ...
    async def ack(self, delivery_id: str) -> None: ...
    async def touch(self, consumer: str, delivery_id: str) -> None: ...
    async def reclaim(self, consumer: str, min_idle: float, count: int) -> list[Delivery]: ...
    async def defer(self, delivery_id: str, job: Job, delay: float) -> None: ...
    async def promote_due(self) -> int: ...
    async def dead_letter(self, delivery: Delivery, reason: str) -> None: ...
    async def dead_letters(self, limit: int) -> list[dict[str, Any]]: ...
    async def queue_depth(self) -> int: ...

    # leases and concurrency budgets
    # ``holder`` (an event id) is kept with the lease: a loser can say whom it lost to
    async def acquire_lease(self, target: str, ttl: float, holder: str = "") -> str | None: ...
    async def extend_lease(self, target: str, token: str, ttl: float) -> bool: ...
    async def release_lease(self, target: str, token: str) -> bool: ...
    async def lease_remaining(self, target: str) -> float: ...
    async def lease_holder(self, target: str) -> str | None: ...
    async def acquire_slot(self, group: str, limit: int, token: str, ttl: float) -> bool: ...
    async def release_slot(self, group: str, token: str) -> None: ...

    # the timeline of a run cut short by a shutdown, for the run that re-delivers the job
    async def stash_timeline(self, event_id: str, steps: str, ttl: float) -> None: ...
    async def take_timeline(self, event_id: str) -> str | None: ...

    # cooldowns, attempts, circuits, episodes
    async def set_cooldown(self, rule: str, target: str, ttl: float) -> None: ...
    async def cooldown_remaining(self, rule: str, target: str) -> float: ...
    async def record_failure(
        self, rule: str, target: str, window: float, max_attempts: int
    ) -> FailureCount: ...
    async def reset_failures(self, rule: str, target: str) -> None: ...
    async def circuit_remaining(self, rule: str, target: str) -> float: ...
    async def episode_done(self, rule: str, episode: str) -> bool: ...
    async def mark_episode(self, rule: str, episode: str, ttl: float) -> None: ...
    # True for the first caller only: this resolution of this episode is announced once
    async def claim_resolution(self, rule: str, episode: str, ttl: float) -> bool: ...

    # firing-alert index (inhibition and the "resolved already?" gate)
    async def firing_labels(self) -> list[dict[str, str]]: ...
    async def is_firing(self, fingerprint: str, starts_at: str) -> bool: ...

    # pause
    async def set_pause(self, pause: Pause) -> None: ...
    async def clear_pause(self) -> bool: ...
    async def get_pause(self) -> Pause | None: ...

    # audit
    async def record_event(self, event: AuditEvent) -> None: ...
    async def get_event(self, event_id: str) -> AuditEvent | None: ...
    async def list_events(
        self, limit: int, cursor: str | None = None, rule: str | None = None,
        outcome: str | None = None,
    ) -> tuple[list[AuditEvent], str | None]: ...

    # Slack threads per (rule, target): the first replica to set one wins
    async def claim_thread(self, rule: str, target: str, ts: str, ttl: float) -> str: ...
    async def get_thread(self, rule: str, target: str) -> str | None: ...


def episode_key(alert: Alert) -> str:
    return alert.episode


def lease_token(holder: str) -> str:
    """A fresh lease value: a random token, then who holds it (``<hex>:<holder>``)."""
    return f"{secrets.token_hex(16)}:{holder}"


def holder_of(token: object) -> str | None:
    """The holder kept in a lease value (``None``: no lease; ``""``: none was named)."""
    if token is None:
        return None
    value = token.decode() if isinstance(token, bytes) else str(token)
    return value.partition(":")[2]


class _Expiring:
    """A dict whose entries vanish at their deadline (monotonic clock).

    With a ``cap``, the oldest entry (the first set, or set again, longest ago) goes
    when one more would exceed it; ``evicted`` is called for each live one dropped.
    """

    def __init__(self, cap: int | None = None,
                 evicted: Callable[[], None] | None = None) -> None:
        self._data: dict[str, tuple[Any, float]] = {}
        self._sweep_at = 4096  # sweep when the dict grows past this; then double it
        self._cap, self._evicted = cap, evicted

    def __len__(self) -> int:
        return len(self._data)

    def get(self, key: str) -> Any:
        item = self._data.get(key)
        if item is None:
            return None
        if item[1] <= time.monotonic():
            del self._data[key]
            return None
        return item[0]

    def set(self, key: str, value: Any, ttl: float) -> None:
        if self._cap is not None:
            self._data.pop(key, None)  # set again: now the newest
        self._data[key] = (value, time.monotonic() + ttl)
        if len(self._data) > self._sweep_at:
            self.sweep()
            self._sweep_at = max(4096, 2 * len(self._data))
        while self._cap is not None and len(self._data) > self._cap:
            oldest = next(iter(self._data))
            _, deadline = self._data.pop(oldest)
            if deadline > time.monotonic() and self._evicted is not None:
                self._evicted()

    def remaining(self, key: str) -> float:
        if self.get(key) is None:
            return 0.0
        return max(0.0, self._data[key][1] - time.monotonic())

    def pop(self, key: str) -> Any:
        item = self._data.pop(key, None)
        return None if item is None or item[1] <= time.monotonic() else item[0]

    def sweep(self) -> None:
        now = time.monotonic()
        for key in [k for k, (_, dl) in self._data.items() if dl <= now]:
            del self._data[key]


class MemoryStore:
    """One process, nothing survives a restart. Same semantics as RedisStore."""

    kind = "memory"

    def __init__(
        self, *, firing_ttl: float = 6 * 3600.0, audit_max_events: int = 10_000,
        max_deliveries: int = 5, max_firing: int = 100_000, max_episodes: int = 100_000,
    ) -> None:
        # Per-alert state is capped by count, the oldest evicted first, so an alert storm
        # cannot take the process's memory: the TTLs alone let 150k alerts hold 400+ MiB.
        self.evictions: Counter[str] = Counter()
        self.on_evict: Callable[[str], None] | None = None  # e.g. a metric; set by the app
        self._max_firing = max_firing
        self._firing_ttl = firing_ttl
        self._audit_max = audit_max_events
        self._seq = itertools.count(1)
        self._ready: deque[str] = deque()
        self._entries: dict[str, Job] = {}
        self._pending: dict[str, tuple[str, float, int]] = {}  # id -> consumer, at, count
        self._deferred: list[tuple[float, int, str]] = []
        self._deferred_jobs: dict[str, Job] = {}
        self._dead: deque[dict[str, Any]] = deque(maxlen=1000)
        self._cond = asyncio.Condition()
        self._kv = _Expiring()  # leases, cooldowns, circuits, threads: per target, not capped
        self._episodes = _Expiring(max_episodes, lambda: self._evict("episode"))
        self._resolutions = _Expiring(max_episodes, lambda: self._evict("resolution"))
        self._slots: dict[str, dict[str, float]] = {}
        self._attempts: dict[str, list[float]] = {}
        self._firing: dict[str, tuple[str, dict[str, str], float]] = {}
        self._firing_sweep_at = 4096
        self._pause: Pause | None = None
        self._events: OrderedDict[str, AuditEvent] = OrderedDict()
        self._event_seq: dict[str, int] = {}
        self.max_deliveries = max_deliveries

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def accept(
        self, jobs: Sequence[Job | NewJob], firing: Sequence[Alert], resolved: Sequence[Alert]
    ) -> None:
        now = time.time()
        expires = now + self._firing_ttl
        if len(self._firing) > self._firing_sweep_at:  # drop alerts that stopped being sent
            self._firing = {fp: item for fp, item in self._firing.items() if item[2] > now}
            self._firing_sweep_at = max(4096, 2 * len(self._firing))
        for alert in firing:
            self._firing.pop(alert.fingerprint, None)  # sent again: now the newest
            self._firing[alert.fingerprint] = (
                alert.starts_at.isoformat(), dict(alert.labels), expires,
            )
        while len(self._firing) > self._max_firing:  # the oldest sent goes first
            del self._firing[next(iter(self._firing))]
            self._evict("firing")
        for alert in resolved:
            self._firing.pop(alert.fingerprint, None)
        if jobs:
            async with self._cond:
                for job in jobs:
                    self._push(job if isinstance(job, Job) else job.to_job())
                self._cond.notify(len(jobs))

    def _push(self, job: Job) -> None:
        entry = f"{int(time.time() * 1000)}-{next(self._seq)}"
        self._entries[entry] = job
        self._ready.append(entry)

    async def dequeue(self, consumer: str, count: int, block: float) -> list[Delivery]:
        async with self._cond:
            if not self._ready:
                try:
                    await asyncio.wait_for(self._cond.wait_for(lambda: bool(self._ready)), block)
                except TimeoutError:
                    return []
            out: list[Delivery] = []
            while self._ready and len(out) < count:
                entry = self._ready.popleft()
                self._pending[entry] = (consumer, time.monotonic(), 1)
                out.append(Delivery(entry, self._entries[entry], 1))
            return out

    async def ack(self, delivery_id: str) -> None:
        self._pending.pop(delivery_id, None)
        self._entries.pop(delivery_id, None)

    async def touch(self, consumer: str, delivery_id: str) -> None:
        item = self._pending.get(delivery_id)
        if item is not None:
            self._pending[delivery_id] = (consumer, time.monotonic(), item[2])

    async def reclaim(self, consumer: str, min_idle: float, count: int) -> list[Delivery]:
        now, out = time.monotonic(), list[Delivery]()
        for entry, (_, at, n) in list(self._pending.items()):
            if len(out) >= count:
                break
            if now - at >= min_idle:
                self._pending[entry] = (consumer, now, n + 1)
                out.append(Delivery(entry, self._entries[entry], n + 1))
        return out

    async def defer(self, delivery_id: str, job: Job, delay: float) -> None:
        token = secrets.token_hex(8)
        self._deferred_jobs[token] = job
        heapq.heappush(self._deferred, (time.time() + delay, next(self._seq), token))
        await self.ack(delivery_id)

    async def promote_due(self) -> int:
        now, moved = time.time(), 0
        async with self._cond:
            while self._deferred and self._deferred[0][0] <= now:
                _, _, token = heapq.heappop(self._deferred)
                self._push(self._deferred_jobs.pop(token))
                moved += 1
            if moved:
                self._cond.notify(moved)
        return moved

    async def dead_letter(self, delivery: Delivery, reason: str) -> None:
        self._dead.append({
            "id": delivery.id, "event_id": delivery.job.event_id, "rule": delivery.job.rule,
            "deliveries": delivery.deliveries, "reason": reason, "at": time.time(),
        })
        await self.ack(delivery.id)

    async def dead_letters(self, limit: int) -> list[dict[str, Any]]:
        return list(self._dead)[-limit:][::-1]

    async def queue_depth(self) -> int:
        return len(self._entries) + len(self._deferred)

    async def acquire_lease(self, target: str, ttl: float, holder: str = "") -> str | None:
        key = f"lease:{target}"
        if self._kv.get(key) is not None:
            return None
        token = lease_token(holder)
        self._kv.set(key, token, ttl)
        return token

    async def extend_lease(self, target: str, token: str, ttl: float) -> bool:
        key = f"lease:{target}"
        if self._kv.get(key) != token:
            return False
        self._kv.set(key, token, ttl)
        return True

    async def release_lease(self, target: str, token: str) -> bool:
        key = f"lease:{target}"
        if self._kv.get(key) != token:
            return False
        self._kv.pop(key)
        return True

    async def lease_remaining(self, target: str) -> float:
        return self._kv.remaining(f"lease:{target}")

    async def lease_holder(self, target: str) -> str | None:
        return holder_of(self._kv.get(f"lease:{target}"))

    async def stash_timeline(self, event_id: str, steps: str, ttl: float) -> None:
        self._kv.set(f"interrupted:{event_id}", steps, ttl)

    async def take_timeline(self, event_id: str) -> str | None:
        value = self._kv.pop(f"interrupted:{event_id}")
        return None if value is None else str(value)

    async def acquire_slot(self, group: str, limit: int, token: str, ttl: float) -> bool:
        now = time.monotonic()
        slots = {t: dl for t, dl in self._slots.get(group, {}).items() if dl > now}
        self._slots[group] = slots
        if token not in slots and len(slots) >= limit:
            return False
        slots[token] = now + ttl
        return True

    async def release_slot(self, group: str, token: str) -> None:
        self._slots.get(group, {}).pop(token, None)

    async def set_cooldown(self, rule: str, target: str, ttl: float) -> None:
        if ttl > 0:
            self._kv.set(f"cooldown:{rule}|{target}", "1", ttl)

    async def cooldown_remaining(self, rule: str, target: str) -> float:
        return self._kv.remaining(f"cooldown:{rule}|{target}")

    async def record_failure(
        self, rule: str, target: str, window: float, max_attempts: int
    ) -> FailureCount:
        key, now = f"{rule}|{target}", time.time()
        recent = [t for t in self._attempts.get(key, []) if t > now - window] + [now]
        self._attempts[key] = recent
        opened = False
        if len(recent) >= max_attempts and self._kv.get(f"circuit:{key}") is None:
            self._kv.set(f"circuit:{key}", "1", window)
            opened = True
        return FailureCount(len(recent), opened)

    async def reset_failures(self, rule: str, target: str) -> None:
        self._attempts.pop(f"{rule}|{target}", None)

    async def circuit_remaining(self, rule: str, target: str) -> float:
        return self._kv.remaining(f"circuit:{rule}|{target}")

    async def episode_done(self, rule: str, episode: str) -> bool:
        return self._episodes.get(f"{rule}:{episode}") is not None

    async def mark_episode(self, rule: str, episode: str, ttl: float) -> None:
        self._episodes.set(f"{rule}:{episode}", "1", ttl)

    async def claim_resolution(self, rule: str, episode: str, ttl: float) -> bool:
        key = f"{rule}:{episode}"
        if self._resolutions.get(key) is not None:
            return False
        self._resolutions.set(key, "1", ttl)
        return True

    def _evict(self, kind: str) -> None:
        self.evictions[kind] += 1
        if self.on_evict is not None:
            self.on_evict(kind)

    def sizes(self) -> dict[str, int]:
        """Entries per capped map (for tests and the memory bench)."""
        return {"firing": len(self._firing), "episode": len(self._episodes),
                "resolution": len(self._resolutions)}

    async def firing_labels(self) -> list[dict[str, str]]:
        now = time.time()
        for fp in [fp for fp, (_, _, exp) in self._firing.items() if exp <= now]:
            del self._firing[fp]
        return [labels for _, labels, _ in self._firing.values()]

    async def is_firing(self, fingerprint: str, starts_at: str) -> bool:
        item = self._firing.get(fingerprint)
        return item is not None and item[0] == starts_at and item[2] > time.time()

    async def set_pause(self, pause: Pause) -> None:
        self._pause = pause

    async def clear_pause(self) -> bool:
        was = await self.get_pause() is not None  # an expired pause is no pause
        self._pause = None
        return was

    async def get_pause(self) -> Pause | None:
        if self._pause is not None and self._pause.until <= time.time():
            self._pause = None
        return self._pause

    async def record_event(self, event: AuditEvent) -> None:
        self._events[event.event_id] = event
        self._events.move_to_end(event.event_id)
        self._event_seq[event.event_id] = next(self._seq)
        while len(self._events) > self._audit_max:
            old, _ = self._events.popitem(last=False)
            self._event_seq.pop(old, None)

    async def get_event(self, event_id: str) -> AuditEvent | None:
        return self._events.get(event_id)

    async def list_events(
        self, limit: int, cursor: str | None = None, rule: str | None = None,
        outcome: str | None = None,
    ) -> tuple[list[AuditEvent], str | None]:
        before = int(cursor) if cursor and cursor.isdigit() else None
        out: list[AuditEvent] = []
        last_seq = 0
        for event in reversed(self._events.values()):
            seq = self._event_seq[event.event_id]
            if before is not None and seq >= before:
                continue
            if rule and event.rule != rule:
                continue
            if outcome and outcome not in (event.outcome.value, event.outcome_label):
                continue
            if len(out) >= limit:
                return out, str(last_seq)
            out.append(event)
            last_seq = seq
        return out, None

    async def claim_thread(self, rule: str, target: str, ts: str, ttl: float) -> str:
        key = f"thread:{rule}|{target}"
        current = self._kv.get(key)
        if current is not None:
            return str(current)
        self._kv.set(key, ts, ttl)
        return ts

    async def get_thread(self, rule: str, target: str) -> str | None:
        value = self._kv.get(f"thread:{rule}|{target}")
        return None if value is None else str(value)
