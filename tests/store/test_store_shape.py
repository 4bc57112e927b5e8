"""The store's shape: six interfaces by concern, and both stores implement all of them."""

from __future__ import annotations

import inspect

import pytest

from remediator.store.base import Approvals, Audit, Gates, Locks, Queue, Store, Threads
from remediator.store.memory import MemoryStore
from remediator.store.redis.store import RedisStore

PARTS = (Queue, Locks, Gates, Audit, Threads, Approvals)


def methods(protocol: type) -> set[str]:
    return {name for name, _ in inspect.getmembers(protocol, inspect.iscoroutinefunction)}


def test_each_method_belongs_to_one_concern() -> None:
    seen: list[str] = [name for part in PARTS for name in methods(part)]
    assert len(seen) == len(set(seen))
    spanning = {"accept", "accept_collapsing", "settle_intake", "intake_copies", "admit", "conclude"}
    assert methods(Store) == set(seen) | spanning | {"ping", "close"}


@pytest.mark.parametrize("store", [MemoryStore, RedisStore])
def test_both_stores_implement_every_method(store: type) -> None:
    for name in methods(Store):
        method = getattr(store, name)
        assert inspect.iscoroutinefunction(method), name
        wanted = inspect.signature(getattr(Store, name)).parameters
        assert list(inspect.signature(method).parameters) == list(wanted), name
