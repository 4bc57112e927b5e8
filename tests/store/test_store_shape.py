"""The store's shape: one interface per part, and both stores hand out parts that implement
every method of their interface, with the same signatures."""

from __future__ import annotations

import inspect

import pytest

from remediator.store.base import (
    Approvals,
    Audit,
    Brakes,
    CredentialFailures,
    Firing,
    Gates,
    Generation,
    Intake,
    Jobs,
    Locks,
    Pauses,
    Queue,
    Sessions,
    Store,
    Threads,
)
from remediator.store.memory import MemoryStore
from remediator.store.redis.approvals import RedisApprovals
from remediator.store.redis.audit import RedisAudit
from remediator.store.redis.brakes import RedisBrakes
from remediator.store.redis.credentials import RedisCredentials
from remediator.store.redis.firing import RedisFiring
from remediator.store.redis.gates import RedisGates
from remediator.store.redis.generation import RedisGeneration
from remediator.store.redis.intake import RedisIntake
from remediator.store.redis.jobs import RedisJobs
from remediator.store.redis.locks import RedisLocks
from remediator.store.redis.pauses import RedisPauses
from remediator.store.redis.queue import RedisQueue
from remediator.store.redis.sessions import RedisSessions
from remediator.store.redis.store import RedisStore
from remediator.store.redis.threads import RedisThreads

PARTS = {
    "queue": Queue,
    "locks": Locks,
    "pauses": Pauses,
    "firing": Firing,
    "gates": Gates,
    "audit": Audit,
    "jobs": Jobs,
    "approvals": Approvals,
    "threads": Threads,
    "intake": Intake,
    "credentials": CredentialFailures,
    "sessions": Sessions,
    "generation": Generation,
    "brakes": Brakes,
}


def methods(protocol: type) -> set[str]:
    return {name for name, _ in inspect.getmembers(protocol, inspect.iscoroutinefunction)}


def test_each_method_belongs_to_one_part() -> None:
    seen: list[str] = [name for part in PARTS.values() for name in methods(part)]
    assert len(seen) == len(set(seen))
    assert methods(Store) == {"admit", "conclude", "ping", "close"}
    parts = {name for name, value in inspect.getmembers(Store) if isinstance(value, property)}
    assert parts == set(PARTS)


REDIS_PARTS: dict[str, type] = {
    "queue": RedisQueue,
    "locks": RedisLocks,
    "pauses": RedisPauses,
    "firing": RedisFiring,
    "gates": RedisGates,
    "audit": RedisAudit,
    "jobs": RedisJobs,
    "approvals": RedisApprovals,
    "threads": RedisThreads,
    "intake": RedisIntake,
    "credentials": RedisCredentials,
    "sessions": RedisSessions,
    "generation": RedisGeneration,
    "brakes": RedisBrakes,
}


@pytest.mark.parametrize("kind", ["memory", "redis"])
def test_both_stores_hand_out_every_part(kind: str) -> None:
    memory = MemoryStore()
    for name, protocol in PARTS.items():
        part = type(getattr(memory, name)) if kind == "memory" else REDIS_PARTS[name]
        for method in methods(protocol):
            assert inspect.iscoroutinefunction(getattr(part, method)), (name, method)
            wanted = inspect.signature(getattr(protocol, method)).parameters
            assert list(inspect.signature(getattr(part, method)).parameters) == list(wanted), method


@pytest.mark.parametrize("store", [MemoryStore, RedisStore])
def test_both_stores_span_the_parts(store: type) -> None:
    for name in methods(Store):
        method = getattr(store, name)
        assert inspect.iscoroutinefunction(method), name
        wanted = inspect.signature(getattr(Store, name)).parameters
        assert list(inspect.signature(method).parameters) == list(wanted), name
