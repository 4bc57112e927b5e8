"""Pauses that run out by themselves are announced once, whichever replicas watch them."""

from __future__ import annotations

import time

import pytest

from remediator.store.memory import MemoryStore
from remediator.store.values import Pause
from remediator.worker.pause_expiry import PauseExpiry
from remediator.worker.telling import Teller
from tests.support.recording import RecordingNotifier

# The memory store and the gates on looptime's clock: their waits pass without real sleeps.
pytestmark = pytest.mark.looptime


def pause(pause_id: str, until: float) -> Pause:
    return Pause(reason="db upgrade", until=until, by="alice", id=pause_id, matchers=('a="b"',), created=0.0)


async def test_a_pause_that_runs_out_is_announced_once_by_one_of_two_watchers() -> None:
    store, notices = MemoryStore(), RecordingNotifier()
    watchers = [PauseExpiry(store, Teller(notices), every=0.0) for _ in range(2)]
    now = time.time()
    await store.pauses.add_pause(pause("p1", now + 60))
    for watcher in watchers:
        await watcher.check(now)
    assert notices.notices == []
    await store.pauses.add_pause(pause("p1", now - 1))  # its end has come (store clocks are real time)
    for watcher in watchers:
        await watcher.check(now + 61)
        await watcher.check(now + 62)
    [ended] = notices.of_kind("pause_ended")
    assert ended.pause["id"] == "p1" and ended.message == "ran out; 0 held job(s) released"


async def test_lifted_or_extended_pauses_are_not_announced() -> None:
    store, notices = MemoryStore(), RecordingNotifier()
    watcher = PauseExpiry(store, Teller(notices), every=0.0)
    now = time.time()
    await store.pauses.add_pause(pause("lifted", now + 60))
    await store.pauses.add_pause(pause("extended", now + 60))
    await watcher.check(now)
    await store.pauses.remove_pause("lifted")  # by hand, before its end: the API announces that one
    await watcher.check(now + 1)
    await store.pauses.add_pause(pause("extended", now + 600))
    await watcher.check(now + 61)
    assert notices.notices == []
