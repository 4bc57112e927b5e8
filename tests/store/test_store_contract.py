"""One contract for every store: MemoryStore, RedisStore on one server, on a 3-master cluster.

The memory store is the embedded default and the Redis store is production;
both must behave the same, method by method.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, get_type_hints

import pytest

from remediator.api import stats
from remediator.models import Alert, AuditEvent, Job, Outcome
from remediator.rules.ruleset import parse_rules
from remediator.settings import Settings
from remediator.store.admission import Admission, Conclusion
from remediator.store.base import Store, global_pause
from remediator.store.memory import MemoryStore
from remediator.store.redis.store import RedisStore
from remediator.store.values import GLOBAL_PAUSE, Approval, Pause, StoreMarker
from tests.support.handlers import make_registry
from tests.support.payloads import alert_model
from tests.support.redis_server import RedisClusterNodes, RedisServer

StoreFactory = Callable[..., Awaitable[Store]]
# The memory store on looptime's clock (its expiries pass without real sleeps); the Redis
# backends keep the server's own clock.
BACKENDS = [
    pytest.param("memory", marks=pytest.mark.looptime),
    pytest.param("redis", marks=pytest.mark.server),
    pytest.param("cluster", marks=pytest.mark.server),
]


@pytest.fixture(scope="module")
def redis_single(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with RedisServer.running(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture(scope="module")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterNodes]:
    with RedisClusterNodes.running(tmp_path_factory.mktemp("cluster")) as cluster:
        yield cluster


@pytest.fixture(params=BACKENDS)
async def make_store(request: pytest.FixtureRequest) -> AsyncIterator[StoreFactory]:
    """Builds stores of the parametrised kind on a freshly flushed server."""
    url = None
    if request.param != "memory":
        server = request.getfixturevalue("redis_single" if request.param == "redis" else "redis_cluster")
        server.flush()
        url = server.url
    made: list[Store] = []

    async def make(**options: Any) -> Store:
        options = {"audit_max_events": 10, **options}
        store: Store
        if url is None:
            options.pop("audit_retention", None)
            store = MemoryStore(**options)
        else:
            store = await RedisStore.create(Settings(redis_url=url, redis_prefix="contract", **options))
        made.append(store)
        return store

    yield make
    for store in made:
        await store.close()


@pytest.fixture
async def store(make_store: StoreFactory) -> Store:
    return await make_store()


def alert(name: str = "Down", starts: int = 0, **labels: str) -> Alert:
    started = datetime(2024, 5, 1, 12, 0, tzinfo=UTC) + timedelta(minutes=starts)
    return alert_model(name, "firing", started, {}, **labels)


def job(event_id: str, rule: str = "r1", **labels: str) -> Job:
    return Job(event_id=event_id, rule=rule, alert=alert("Down", 0, **labels), received_at=time.time())


def event(
    event_id: str, rule: str = "r1", outcome: Outcome = Outcome.SUCCEEDED, reason: str = ""
) -> AuditEvent:
    now = time.time()
    return AuditEvent(
        event_id=event_id,
        rule=rule,
        received_at=now,
        finished_at=now,
        outcome=outcome,
        reason=reason,
        message=f"event {event_id}",
    )


# ---- queue ---------------------------------------------------------------------------
async def test_queue_round_trip(store: Store) -> None:
    await store.intake.accept([job("e1"), job("e2")], [], [])
    assert await store.queue.queue_depth() == 2
    got = await store.queue.dequeue("c1", 10, 1.0)
    assert [d.job.event_id for d in got] == ["e1", "e2"]
    assert [d.deliveries for d in got] == [1, 1]
    assert got[0].job == job("e1").model_copy(update={"received_at": got[0].job.received_at})
    assert await store.queue.dequeue("c1", 10, 0.2) == []
    assert await store.queue.queue_depth() == 2  # taken but not finished
    for delivery in got:
        await store.queue.ack(delivery.id)
    assert await store.queue.queue_depth() == 0
    await store.queue.ack(got[0].id)  # acking twice is harmless


async def test_dequeue_honours_count_and_wakes_on_new_jobs(store: Store) -> None:
    await store.intake.accept([job("e1"), job("e2"), job("e3")], [], [])
    assert [d.job.event_id for d in await store.queue.dequeue("c1", 2, 1.0)] == ["e1", "e2"]
    assert [d.job.event_id for d in await store.queue.dequeue("c2", 2, 1.0)] == ["e3"]
    waiting = asyncio.create_task(store.queue.dequeue("c1", 1, 3.0))
    await asyncio.sleep(0.3)
    assert not waiting.done()
    await store.intake.accept([job("e4")], [], [])
    got = await asyncio.wait_for(waiting, 3.0)
    assert [d.job.event_id for d in got] == ["e4"]


async def test_rules_take_turns_so_a_flood_never_holds_another_rules_job(store: Store) -> None:
    """Issue 29: a rule's jobs come in order, the rules with jobs waiting take turns."""
    flood = [job(f"f{i}", rule="a-flood") for i in range(30)]
    await store.intake.accept(flood, [], [])
    await store.intake.accept([job("b1", rule="b-other"), job("b2", rule="b-other")], [], [])
    await store.intake.accept([job("c1", rule="c-urgent")], [], [])
    taken = [d.job.event_id for d in await store.queue.dequeue("c1", 5, 1.0)]
    assert taken == ["f0", "b1", "c1", "f1", "b2"]
    rest = []
    while got := await store.queue.dequeue("c2", 1, 0.1):
        rest += [d.job.event_id for d in got]
    assert rest == [f"f{i}" for i in range(2, 30)]  # the flood's own order is kept


async def test_a_handed_over_job_is_the_next_rules_turn(store: Store) -> None:
    """The job a conclusion hands over (one Redis server) takes turns too."""
    await store.intake.accept([job(f"f{i}", rule="a-flood") for i in range(5)], [], [])
    [first] = await store.queue.dequeue("c1", 1, 1.0)
    await store.intake.accept([job("u1", rule="b-urgent")], [], [])
    end = Conclusion(job=first.job, event=lambda n: event("f0", rule="a-flood"), ack=first.id, next_for="c1")
    handed = (await store.conclude(end)).next
    second = handed or (await store.queue.dequeue("c1", 1, 1.0))[0]
    assert second.job.event_id == "u1"
    await store.queue.ack(second.id)
    assert [d.job.event_id for d in await store.queue.dequeue("c1", 1, 1.0)] == ["f1"]


async def test_a_waiting_worker_wakes_for_a_rule_never_queued_before(store: Store) -> None:
    await store.intake.accept([job("a1", rule="known")], [], [])
    [known] = await store.queue.dequeue("c1", 1, 1.0)
    await store.queue.ack(known.id)
    waiting = asyncio.create_task(store.queue.dequeue("c1", 1, 3.0))
    await asyncio.sleep(0.3)
    assert not waiting.done()
    await store.intake.accept([job("n1", rule="brand-new")], [], [])
    got = await asyncio.wait_for(waiting, 2.0)
    assert [d.job.event_id for d in got] == ["n1"]


async def test_a_removed_rules_queue_is_drained_before_it_goes(store: Store) -> None:
    await store.intake.accept(
        [job("g1", rule="gone"), job("g2", rule="gone"), job("k1", rule="kept")], [], []
    )
    await store.queue.retire(["kept"])  # "gone" was removed from the rules: its jobs stay
    assert await store.queue.queue_depth() == 3
    got = await store.queue.dequeue("c1", 3, 1.0)
    assert sorted(d.job.event_id for d in got) == ["g1", "g2", "k1"]
    await store.queue.retire(["kept"])  # taken, not finished: still there
    [silent] = [d for d in got if d.job.event_id == "g2"]
    await store.queue.touch("c1", silent.id)
    for delivery in got:
        if delivery is not silent:
            await store.queue.ack(delivery.id)
    assert await store.queue.queue_depth() == 1
    await store.queue.ack(silent.id)
    await store.queue.retire(["kept"])  # drained: its queue goes
    assert await store.queue.queue_depth() == 0
    # The rule comes back (a rules reload): its queue is made again.
    await store.intake.accept([job("g3", rule="gone")], [], [])
    assert [d.job.event_id for d in await store.queue.dequeue("c1", 1, 1.0)] == ["g3"]


async def test_reclaim_after_idle_counts_deliveries(store: Store) -> None:
    await store.intake.accept([job("e1")], [], [])
    [first] = await store.queue.dequeue("dead-worker", 1, 1.0)
    assert await store.queue.reclaim("c2", 1.0, 10) == []  # not idle long enough
    await asyncio.sleep(1.2)
    [second] = await store.queue.reclaim("c2", 1.0, 10)
    assert (second.id, second.job.event_id, second.deliveries) == (first.id, "e1", 2)
    assert await store.queue.reclaim("c3", 1.0, 10) == []  # reclaiming resets the idle time
    await asyncio.sleep(1.2)
    [third] = await store.queue.reclaim("c3", 1.0, 10)
    assert third.deliveries == 3
    await store.queue.ack(third.id)
    await asyncio.sleep(0.3)
    assert await store.queue.reclaim("c4", 0.0, 10) == []
    assert await store.queue.queue_depth() == 0


async def test_touch_keeps_a_running_job_from_being_reclaimed(store: Store) -> None:
    await store.intake.accept([job("e1")], [], [])
    [delivery] = await store.queue.dequeue("c1", 1, 1.0)
    for _ in range(5):
        await asyncio.sleep(0.5)
        await store.queue.touch("c1", delivery.id)
    assert await store.queue.reclaim("c2", 2.0, 10) == []  # 2.5s since dequeue, 0.x since touch
    await asyncio.sleep(2.3)
    [again] = await store.queue.reclaim("c2", 2.0, 10)
    assert (again.id, again.deliveries) == (delivery.id, 2)  # touching hands out nothing
    await store.queue.touch("c1", "0-1")  # unknown ids are ignored


async def test_defer_and_promote(store: Store) -> None:
    await store.intake.accept([job("e1")], [], [])
    [delivery] = await store.queue.dequeue("c1", 1, 1.0)
    later = delivery.job.model_copy(update={"deferrals": 1, "first_deferred_at": 123.0})
    await store.queue.defer(delivery.id, later, 0.6)
    assert await store.queue.queue_depth() == 1
    assert await store.queue.reclaim("c2", 0.0, 10) == []  # deferring acked the original
    assert await store.queue.promote_due() == 0
    assert await store.queue.dequeue("c1", 1, 0.2) == []
    await asyncio.sleep(0.8)
    assert await store.queue.promote_due() == 1
    assert await store.queue.promote_due() == 0
    [back] = await store.queue.dequeue("c1", 1, 1.0)
    assert back.id != delivery.id
    assert (back.job.event_id, back.job.deferrals, back.deliveries) == ("e1", 1, 1)
    assert back.job.first_deferred_at == 123.0
    assert await store.queue.queue_depth() == 1
    await store.queue.ack(back.id)
    assert await store.queue.queue_depth() == 0


async def test_dead_letters(store: Store) -> None:
    await store.intake.accept([job("e1"), job("e2", rule="r2")], [], [])
    first, second = await store.queue.dequeue("c1", 2, 1.0)
    await store.queue.dead_letter(first, "delivered 6 times")
    await store.queue.dead_letter(second, "delivered 7 times")
    letters = await store.queue.dead_letters(10)
    assert [(x["event_id"], x["rule"], x["reason"]) for x in letters] == [
        ("e2", "r2", "delivered 7 times"),
        ("e1", "r1", "delivered 6 times"),
    ]
    assert letters[0]["deliveries"] == 1 and letters[0]["id"] == second.id
    assert len(await store.queue.dead_letters(1)) == 1
    assert await store.queue.queue_depth() == 0
    assert await store.queue.reclaim("c2", 0.0, 10) == []


# ---- leases and slots --------------------------------------------------------------
async def test_lease_is_exclusive_and_only_its_token_extends_or_releases(store: Store) -> None:
    token = await store.locks.acquire_lease("svc/a", 5.0)
    assert token
    assert await store.locks.acquire_lease("svc/a", 5.0) is None
    assert await store.locks.acquire_lease("svc/b", 5.0) is not None  # other targets are free
    assert 0 < await store.locks.lease_remaining("svc/a") <= 5.0
    assert not await store.locks.extend_lease("svc/a", "not-the-token", 30.0)
    assert not await store.locks.release_lease("svc/a", "not-the-token")
    assert await store.locks.extend_lease("svc/a", token, 30.0)
    assert 5.0 < await store.locks.lease_remaining("svc/a") <= 30.0
    assert await store.locks.release_lease("svc/a", token)
    assert not await store.locks.release_lease("svc/a", token)
    assert not await store.locks.extend_lease("svc/a", token, 30.0)
    assert await store.locks.lease_remaining("svc/a") == 0.0
    assert await store.locks.acquire_lease("svc/a", 5.0) is not None


async def test_the_lease_holder_is_readable(store: Store) -> None:
    assert await store.locks.lease_holder("svc/a") is None
    token = await store.locks.acquire_lease("svc/a", 5.0, "01a22229705fe85e94cba8")
    assert token is not None
    assert await store.locks.acquire_lease("svc/a", 5.0, "another-event") is None
    assert await store.locks.lease_holder("svc/a") == "01a22229705fe85e94cba8"
    assert await store.locks.extend_lease("svc/a", token, 10.0)
    assert await store.locks.lease_holder("svc/a") == "01a22229705fe85e94cba8"
    assert await store.locks.release_lease("svc/a", token)
    assert await store.locks.lease_holder("svc/a") is None
    assert await store.locks.acquire_lease("svc/a", 5.0) is not None
    assert await store.locks.lease_holder("svc/a") == ""  # held, by no one named


async def test_an_interrupted_timeline_is_taken_once(store: Store) -> None:
    assert await store.audit.take_timeline("ev-1") is None
    await store.audit.stash_timeline("ev-1", '[{"name": "interrupted"}]', 5.0)
    await store.audit.stash_timeline("ev-2", "[]", 0.2)
    assert await store.audit.take_timeline("ev-1") == '[{"name": "interrupted"}]'
    assert await store.audit.take_timeline("ev-1") is None
    await asyncio.sleep(0.4)
    assert await store.audit.take_timeline("ev-2") is None  # expired


async def test_lease_expires_by_itself(store: Store) -> None:
    token = await store.locks.acquire_lease("svc/a", 0.4)
    assert token is not None
    await asyncio.sleep(0.7)
    assert await store.locks.lease_remaining("svc/a") == 0.0
    assert not await store.locks.extend_lease("svc/a", token, 5.0)
    assert await store.locks.acquire_lease("svc/a", 5.0) is not None


async def test_concurrency_slots(store: Store) -> None:
    assert await store.locks.acquire_slot("g", 2, "a", 30.0)
    assert await store.locks.acquire_slot("g", 2, "b", 30.0)
    assert not await store.locks.acquire_slot("g", 2, "c", 30.0)
    assert await store.locks.acquire_slot("g", 2, "a", 30.0)  # a holder may renew
    assert await store.locks.acquire_slot("other", 2, "c", 30.0)
    await store.locks.release_slot("g", "a")
    assert await store.locks.acquire_slot("g", 2, "c", 30.0)
    await store.locks.release_slot("g", "b")
    await store.locks.release_slot("g", "unknown")
    assert await store.locks.acquire_slot("g", 2, "d", 1.0)
    assert not await store.locks.acquire_slot("g", 2, "e", 30.0)
    await asyncio.sleep(1.3)  # d expired
    assert await store.locks.acquire_slot("g", 2, "e", 30.0)


# ---- cooldowns, circuits, episodes ---------------------------------------------------
async def test_cooldown_expires(store: Store) -> None:
    assert await store.gates.cooldown_remaining("r1", "svc/a") == 0.0
    await store.gates.set_cooldown("r1", "svc/a", 0.0)
    assert await store.gates.cooldown_remaining("r1", "svc/a") == 0.0
    await store.gates.set_cooldown("r1", "svc/a", 1.0)
    assert 0 < await store.gates.cooldown_remaining("r1", "svc/a") <= 1.0
    assert await store.gates.cooldown_remaining("r2", "svc/a") == 0.0
    assert await store.gates.cooldown_remaining("r1", "svc/b") == 0.0
    await asyncio.sleep(1.3)
    assert await store.gates.cooldown_remaining("r1", "svc/a") == 0.0


async def test_failures_open_the_circuit_once_and_it_closes_after_the_window(
    store: Store,
) -> None:
    counts = [await store.gates.record_failure("r1", "svc/a", 2.0, 3) for _ in range(4)]
    assert [(c.failures, c.opened) for c in counts] == [(1, False), (2, False), (3, True), (4, False)]
    assert 0 < await store.gates.circuit_remaining("r1", "svc/a") <= 2.0
    assert await store.gates.circuit_remaining("r1", "svc/b") == 0.0
    await asyncio.sleep(2.4)
    assert await store.gates.circuit_remaining("r1", "svc/a") == 0.0
    counts = [await store.gates.record_failure("r1", "svc/a", 2.0, 3) for _ in range(3)]
    assert [(c.failures, c.opened) for c in counts] == [(1, False), (2, False), (3, True)]


async def test_reset_failures(store: Store) -> None:
    await store.gates.record_failure("r1", "svc/a", 60.0, 3)
    await store.gates.record_failure("r1", "svc/a", 60.0, 3)
    await store.gates.reset_failures("r1", "svc/a")
    count = await store.gates.record_failure("r1", "svc/a", 60.0, 3)
    assert (count.failures, count.opened) == (1, False)
    assert await store.gates.circuit_remaining("r1", "svc/a") == 0.0


async def test_episodes(store: Store) -> None:
    episode = alert().episode
    assert not await store.gates.episode_done("r1", episode)
    await store.gates.mark_episode("r1", episode, 1.0)
    assert await store.gates.episode_done("r1", episode)
    assert not await store.gates.episode_done("r2", episode)
    assert not await store.gates.episode_done("r1", alert(starts=5).episode)
    await asyncio.sleep(1.3)
    assert not await store.gates.episode_done("r1", episode)


async def test_a_resolution_is_claimed_once(store: Store) -> None:
    episode = alert().episode
    assert await store.gates.claim_resolution("r1", episode, 0.5)
    assert not await store.gates.claim_resolution("r1", episode, 0.5)
    assert await store.gates.claim_resolution("r2", episode, 0.5)  # per rule
    assert await store.gates.claim_resolution("r1", alert(starts=5).episode, 0.5)
    await asyncio.sleep(0.8)
    assert await store.gates.claim_resolution("r1", episode, 0.5)  # the marker expired


async def test_a_resolution_claimed_per_target_is_forgotten_when_a_run_acts(store: Store) -> None:
    assert await store.gates.claim_resolution("r1", "target:db", 60.0)
    assert not await store.gates.claim_resolution("r1", "target:db", 60.0)  # the second pod
    await store.gates.forget_resolution("r1", "target:db")  # a run acted on the target again
    await store.gates.forget_resolution("r1", "target:none")  # nothing claimed: no error
    assert await store.gates.claim_resolution("r1", "target:db", 60.0)


async def test_the_memory_store_caps_its_per_alert_state() -> None:
    """Only the memory store: Redis keeps these until their TTL (Redis owns its memory)."""
    store = MemoryStore(max_firing=100, max_episodes=100)
    evicted: list[str] = []
    store.on_evict = evicted.append
    alerts = [alert(service=f"s{i}") for i in range(150)]
    await store.intake.accept([], alerts, [])
    for a in alerts:
        await store.gates.mark_episode("r1", a.episode, 60.0)
        assert await store.gates.claim_resolution("r1", a.episode, 60.0)
    assert store.sizes() == {"firing": 100, "episode": 100, "resolution": 100}
    assert store.evictions == {"firing": 50, "episode": 50, "resolution": 50}
    assert sorted(evicted) == ["episode"] * 50 + ["firing"] * 50 + ["resolution"] * 50
    # the oldest went first
    assert not await store.firing.is_firing(alerts[49].fingerprint, alerts[49].starts_at.isoformat())
    assert await store.firing.is_firing(alerts[50].fingerprint, alerts[50].starts_at.isoformat())
    assert not await store.gates.episode_done("r1", alerts[49].episode)
    assert await store.gates.episode_done("r1", alerts[50].episode)
    # an alert sent again is the newest: the next one over the cap evicts another
    await store.intake.accept([], [alerts[50]], [])
    await store.intake.accept([], [alert(service="new")], [])
    assert await store.firing.is_firing(alerts[50].fingerprint, alerts[50].starts_at.isoformat())
    assert not await store.firing.is_firing(alerts[51].fingerprint, alerts[51].starts_at.isoformat())
    assert store.sizes()["firing"] == 100 and store.evictions["firing"] == 51


# ---- firing index, pause ---------------------------------------------------------------
def _sorted(labels: list[dict[str, str]]) -> list[list[tuple[str, str]]]:
    return sorted(sorted(item.items()) for item in labels)


async def test_firing_index(store: Store) -> None:
    a, b = alert("A", instance="1"), alert("B", instance="2")
    await store.intake.accept([], [a, b], [])
    assert _sorted(await store.firing.firing_labels()) == _sorted([a.labels, b.labels])
    assert await store.firing.is_firing(a.fingerprint, a.starts_at.isoformat())
    assert not await store.firing.is_firing(a.fingerprint, alert(starts=9).starts_at.isoformat())
    assert not await store.firing.is_firing("unknown", a.starts_at.isoformat())
    resolved = a.model_copy(update={"status": "resolved"})
    await store.intake.accept([], [], [resolved])
    assert not await store.firing.is_firing(a.fingerprint, a.starts_at.isoformat())
    assert _sorted(await store.firing.firing_labels()) == _sorted([b.labels])
    again = alert("A", starts=30, instance="1")  # a new episode of the same alert
    await store.intake.accept([job("e1")], [again], [])
    assert await store.firing.is_firing(again.fingerprint, again.starts_at.isoformat())
    assert not await store.firing.is_firing(a.fingerprint, a.starts_at.isoformat())
    assert await store.queue.queue_depth() == 1


INHIBITED = b"""
rules:
  - name: flink
    matchers: ['alertname="FlinkFailed"']
    handler: test.probe
    target: t
    inhibited_by: ['alertname="Readonly"']
    inhibit_equal: [namespace]
"""


async def test_firing_index_answers_inhibit_equal(store: Store) -> None:
    """The index keeps every label of a firing alert: inhibit_equal compares them."""
    (rule,) = parse_rules(INHIBITED, "rules.yaml", make_registry()).rules
    in_a, unscoped = alert("Readonly", namespace="a", database="x"), alert("Readonly", db="y")
    await store.intake.accept([], [in_a, unscoped, alert("Other", namespace="b")], [])

    async def blockers(**labels: Any) -> list[dict[str, str]]:
        target = alert("FlinkFailed", **labels).labels
        return [b for b in await store.firing.firing_labels() if rule.inhibits(b, target)]

    assert await blockers(namespace="a") == [in_a.labels]
    assert await blockers(namespace="b") == []
    assert await blockers() == [unscoped.labels]  # missing on both counts as equal
    await store.intake.accept([], [], [in_a.model_copy(update={"status": "resolved"})])
    assert await blockers(namespace="a") == []


async def test_firing_entries_expire(make_store: StoreFactory) -> None:
    store = await make_store(firing_ttl=1.0)
    a = alert("A")
    await store.intake.accept([], [a], [])
    assert await store.firing.is_firing(a.fingerprint, a.starts_at.isoformat())
    await asyncio.sleep(1.3)
    assert not await store.firing.is_firing(a.fingerprint, a.starts_at.isoformat())
    assert await store.firing.firing_labels() == []


async def test_pause(store: Store) -> None:
    assert await global_pause(store.pauses) is None
    assert not await store.pauses.remove_pause(GLOBAL_PAUSE)
    until = time.time() + 30
    await store.pauses.add_pause(Pause(reason="maintenance", until=until, by="alice"))
    pause = await global_pause(store.pauses)
    assert pause is not None
    assert (pause.reason, pause.by) == ("maintenance", "alice")
    assert abs(pause.until - until) < 0.01
    assert await store.pauses.remove_pause(GLOBAL_PAUSE)
    assert await global_pause(store.pauses) is None
    await store.pauses.add_pause(Pause(reason="short", until=time.time() + 1.0))
    assert await global_pause(store.pauses) is not None
    await asyncio.sleep(1.3)
    assert await global_pause(store.pauses) is None
    assert not await store.pauses.remove_pause(GLOBAL_PAUSE)  # an expired pause is no pause


# ---- audit -------------------------------------------------------------------------------
async def test_audit_get_list_filter_and_cursor(store: Store) -> None:
    await store.audit.record_event(event("e1", "r1", Outcome.SUCCEEDED))
    await store.audit.record_event(event("e2", "r2", Outcome.SKIPPED, "cooldown"))
    await store.audit.record_event(event("e3", "r1", Outcome.SKIPPED, "duplicate"))
    await store.audit.record_event(event("e4", "r1", Outcome.FAILED))
    got = await store.audit.get_event("e2")
    assert got is not None and (got.rule, got.outcome_label) == ("r2", "skipped:cooldown")
    assert await store.audit.get_event("nope") is None

    page, cursor = await store.audit.list_events(2)
    assert [e.event_id for e in page] == ["e4", "e3"]
    assert cursor is not None
    page, cursor = await store.audit.list_events(2, cursor)
    assert [e.event_id for e in page] == ["e2", "e1"]
    assert cursor is None
    page, cursor = await store.audit.list_events(10, "not-a-cursor")
    assert [e.event_id for e in page] == ["e4", "e3", "e2", "e1"] and cursor is None

    assert [e.event_id for e in (await store.audit.list_events(10, rule="r1"))[0]] == ["e4", "e3", "e1"]
    skipped, _ = await store.audit.list_events(10, outcome="skipped")
    assert [e.event_id for e in skipped] == ["e3", "e2"]
    exact, _ = await store.audit.list_events(10, outcome="skipped:cooldown")
    assert [e.event_id for e in exact] == ["e2"]
    page, cursor = await store.audit.list_events(1, rule="r1", outcome="skipped")
    assert [e.event_id for e in page] == ["e3"] and cursor is None
    page, cursor = await store.audit.list_events(1, rule="r1")
    assert [e.event_id for e in page] == ["e4"]
    page, cursor = await store.audit.list_events(1, cursor, rule="r1")
    assert [e.event_id for e in page] == ["e3"] and cursor is not None


async def test_audit_rerecording_replaces_and_the_stream_is_capped(store: Store) -> None:
    await store.audit.record_event(event("e1"))
    await store.audit.record_event(event("e2"))
    await store.audit.record_event(event("e1", outcome=Outcome.FAILED))  # the same event, later
    page, _ = await store.audit.list_events(10)
    assert [(e.event_id, e.outcome) for e in page] == [("e1", Outcome.FAILED), ("e2", Outcome.SUCCEEDED)]
    got = await store.audit.get_event("e1")
    assert got is not None and got.outcome is Outcome.FAILED
    for i in range(15):
        await store.audit.record_event(event(f"x{i:02d}"))
    page, cursor = await store.audit.list_events(100)
    assert [e.event_id for e in page] == [f"x{i:02d}" for i in range(14, 4, -1)]  # max 10
    assert cursor is None
    assert await store.audit.get_event("x04") is None  # trimmed off: gone for lookups too
    assert await store.audit.get_event("e1") is None
    assert await store.audit.get_event("x05") is not None


async def test_audit_keeps_the_whole_event(store: Store) -> None:
    full = event("e1").model_copy(
        update={
            "alert": alert(instance="db-1"),
            "target": "svc/a",
            "plan": ["restart"],
            "details": {"n": 1},
            "timeline": [],
            "manual": True,
            "note": "replay",
        }
    )
    await store.audit.record_event(full)
    assert await store.audit.get_event("e1") == full


async def test_stats_read_the_audit_alike(make_store: StoreFactory) -> None:
    """``GET /api/v1/stats`` reads only ``list_events``: the same numbers from every store."""
    store = await make_store(audit_max_events=100)
    for i, seconds in enumerate((30.0, 60.0, 600.0)):
        await store.audit.record_event(event(f"ok{i}").model_copy(update={"time_to_repair": seconds}))
    await store.audit.record_event(event("bad", outcome=Outcome.FAILED))
    await store.audit.record_event(event("other", rule="r2", outcome=Outcome.SKIPPED, reason="cooldown"))
    result = await stats.compute(store.audit, "1h", 3600.0)
    one, two = result.rules
    assert (one.rule, one.runs, one.success_rate, one.outcomes) == (
        "r1",
        4,
        0.75,
        {"failed": 1, "succeeded": 3},
    )
    assert (one.time_to_repair.median_seconds, one.time_to_repair.p90_seconds) == (60.0, 600.0)
    assert (two.rule, two.outcomes, two.success_rate) == ("r2", {"skipped:cooldown": 1}, None)
    kept = await store.audit.get_event("ok2")
    assert kept is not None and kept.time_to_repair == 600.0


# ---- Slack threads -----------------------------------------------------------------------
async def test_claim_thread_first_wins(store: Store) -> None:
    assert await store.threads.get_thread("r1", "svc/a") is None
    assert await store.threads.claim_thread("r1", "svc/a", "111.1", 60.0) == "111.1"
    assert await store.threads.claim_thread("r1", "svc/a", "222.2", 60.0) == "111.1"
    assert await store.threads.get_thread("r1", "svc/a") == "111.1"
    assert await store.threads.get_thread("r1", "svc/b") is None
    winners = await asyncio.gather(
        *(store.threads.claim_thread("r2", "svc/a", f"{i}.0", 60.0) for i in range(10))
    )
    assert len(set(winners)) == 1
    assert await store.threads.claim_thread("r3", "svc/a", "1.0", 0.3) == "1.0"
    await asyncio.sleep(0.6)
    assert await store.threads.claim_thread("r3", "svc/a", "2.0", 60.0) == "2.0"


# ---- approvals ---------------------------------------------------------------------------
def approval(event_id: str, at: float | None = None) -> Approval:
    now = time.time() if at is None else at
    return Approval(
        event_id=event_id,
        rule="r1",
        target="svc/a",
        alertname="Down",
        requested_at=now,
        expires_at=now + 60,
        approvers=("U0ALICE", "S0ONCALL"),
        plan=("restart svc/a",),
        handler="test.fix",
        alert=alert("Down", 0, service="a"),
        context=({"kind": "prometheus.query", "title": "Prometheus: up", "text": '1 {job="a"}', "cut": 0},),
        precheck="svc/a: 0 of 2 replicas ready",  # what the precheck saw before asking
    )


async def test_an_approval_is_asked_once_per_scope(store: Store) -> None:
    assert await store.approvals.get_approval("e1") is None
    asked, first = await store.approvals.request_approval("r1|svc/a|ep1", approval("e1"), 60.0)
    assert first and asked == approval("e1", asked.requested_at)
    # The HA twin of the same alert (another job) and the same job again: the stored one.
    twin, first = await store.approvals.request_approval("r1|svc/a|ep1", approval("e2"), 60.0)
    assert not first and twin.event_id == "e1" and twin.approvers == ("U0ALICE", "S0ONCALL")
    assert await store.approvals.get_approval("e2") is None
    # Ten replicas asking at once: exactly one request.
    results = await asyncio.gather(
        *(store.approvals.request_approval("r1|svc/a|ep2", approval(f"x{i}"), 60.0) for i in range(10))
    )
    assert sum(created for _, created in results) == 1
    assert len({a.event_id for a, _ in results}) == 1


async def test_an_approval_is_decided_once(store: Store) -> None:
    assert await store.approvals.decide_approval("nope", "approved", "alice", "") == (None, False)
    await store.approvals.request_approval("r1|svc/a|ep1", approval("e1"), 60.0)
    pending = await store.approvals.get_approval("e1")
    assert pending is not None and pending.decision is None and pending.state == "pending"
    assert pending.precheck == "svc/a: 0 of 2 replicas ready"  # kept for whoever decides
    decided, first = await store.approvals.decide_approval("e1", "approved", "slack:U0ALICE (alice)", "go")
    assert first and decided is not None
    assert (decided.decision, decided.decided_by, decided.note) == ("approved", "slack:U0ALICE (alice)", "go")
    assert decided.decided_at is not None and abs(decided.decided_at - time.time()) < 5
    again, first = await store.approvals.decide_approval("e1", "rejected", "bob", "no")
    assert (
        not first
        and again is not None
        and again.decision == "approved"
        and again.decided_by.endswith("(alice)")
    )
    # Racing decisions: one wins.
    await store.approvals.request_approval("r1|svc/a|ep2", approval("e2"), 60.0)
    raced = await asyncio.gather(
        *(store.approvals.decide_approval("e2", "rejected", f"u{i}", "") for i in range(8))
    )
    assert sum(first for _, first in raced) == 1
    assert len({a.decided_by for a, _ in raced if a is not None}) == 1


async def test_an_approval_keeps_its_message_and_expires(store: Store) -> None:
    await store.approvals.set_approval_message("e0", "C1", "1.0")  # no request: nothing kept
    assert await store.approvals.get_approval("e0") is None
    await store.approvals.request_approval("r1|svc/a|ep1", approval("e1"), 0.5)
    await store.approvals.set_approval_message("e1", "C0ALERTS", "1700000000.000100")
    await store.approvals.decide_approval("e1", "rejected", "bob", "")
    found = await store.approvals.get_approval("e1")
    assert found is not None and (found.channel, found.message_ts) == ("C0ALERTS", "1700000000.000100")
    assert found.decision == "rejected"
    await asyncio.sleep(0.8)
    assert await store.approvals.get_approval("e1") is None
    assert await store.approvals.list_approvals(10) == []
    # The scope expired with it: asking again stores a new request.
    assert (await store.approvals.request_approval("r1|svc/a|ep1", approval("e3"), 60.0))[1]


async def test_approvals_are_listed_newest_first(store: Store) -> None:
    now = time.time()
    for i in range(3):
        await store.approvals.request_approval(f"scope{i}", approval(f"e{i}", now + i), 60.0)
    await store.approvals.decide_approval("e1", "approved", "admin", "")
    listed = await store.approvals.list_approvals(10)
    assert [a.event_id for a in listed] == ["e2", "e1", "e0"]
    assert [a.state for a in listed] == ["pending", "approved", "pending"]
    assert [a.event_id for a in await store.approvals.list_approvals(2)] == ["e2", "e1"]


async def test_ping_and_kind(store: Store) -> None:
    await store.ping()
    assert store.kind in ("memory", "redis")


def test_the_contract_covers_every_store_method() -> None:
    """Adding a Store method (or a method of one of its parts) without a contract test
    should fail here."""
    source = Path(__file__).read_text(encoding="utf-8")
    parts = {name: value for name, value in inspect.getmembers(Store) if isinstance(value, property)}
    methods = [f"store.{name}(" for name in ("admit", "conclude", "ping", "close")]
    for part, prop in parts.items():
        protocol = get_type_hints(prop.fget)["return"]
        for name, _ in inspect.getmembers(protocol, inspect.iscoroutinefunction):
            methods.append(f"store.{part}.{name}(")
    missing = [call for call in methods if call not in source]
    assert missing == []


# ---- issue 16: scoped pauses, held jobs, the job-state index ---------------------------
async def test_scoped_pauses_several_at_once(store: Store) -> None:
    assert await store.pauses.list_pauses() == []
    now = time.time()
    first = Pause(reason="db", until=now + 30, by="alice", id="p-1", matchers=('namespace="a"',), created=now)
    second = Pause(
        reason="net", until=now + 1.0, by="bob", id="p-2", matchers=('rule="r1"',), created=now + 1
    )
    await store.pauses.add_pause(first)
    await store.pauses.add_pause(second)
    await store.pauses.add_pause(Pause(reason="all", until=now + 30, by="carol", created=now))
    listed = await store.pauses.list_pauses()
    assert [p.id for p in listed] == ["global", "p-1", "p-2"]  # the global one first
    assert listed[1] == first and listed[0].by == "carol" and listed[0].matchers == ()
    assert await store.pauses.remove_pause("nope") is None
    assert await store.pauses.remove_pause("p-1") == first
    assert await store.pauses.remove_pause("p-1") is None  # one remover wins
    await asyncio.sleep(1.3)  # p-2 ends by itself
    assert [p.id for p in await store.pauses.list_pauses()] == ["global"]
    removed = await store.pauses.remove_pause("global")
    assert removed is not None and removed.reason == "all"
    assert await global_pause(store.pauses) is None and await store.pauses.list_pauses() == []


async def test_held_jobs_are_released_at_once(store: Store) -> None:
    await store.intake.accept([job("held"), job("waits")], [], [])
    first, second = await store.queue.dequeue("c1", 2, 1.0)
    await store.queue.defer(first.id, first.job, 60.0, hold=True)
    await store.queue.defer(second.id, second.job, 60.0)  # deferred, not held: stays
    assert await store.queue.promote_due() == 0
    assert await store.queue.release_held() == 1
    assert await store.queue.release_held() == 0  # released once
    assert await store.queue.promote_due() == 1
    [back] = await store.queue.dequeue("c1", 1, 1.0)
    assert back.job.event_id == "held"
    assert await store.queue.queue_depth() == 2


async def test_the_job_state_index(store: Store) -> None:
    a, b = job("ja", rule="r1"), job("jb", rule="r2")
    await store.intake.accept([a, b], [], [])
    queued = await store.jobs.job_state("ja")
    assert queued is not None
    assert (queued.state, queued.rule, queued.alertname, queued.fingerprint) == (
        "queued",
        "r1",
        "Down",
        a.alert.fingerprint,
    )
    since = queued.since
    await asyncio.sleep(0.05)
    await store.jobs.set_job_state("ja", "held", "paused by pause p-1", "svc/a")
    held = await store.jobs.job_state("ja")
    assert held is not None and (held.state, held.why, held.target) == (
        "held",
        "paused by pause p-1",
        "svc/a",
    )
    assert held.since > since
    await store.jobs.set_job_state("ja", "held", "paused by pause p-1")  # the same: since kept
    again = await store.jobs.job_state("ja")
    assert again is not None and again.since == held.since and again.target == "svc/a"
    assert [j.event_id for j in await store.jobs.job_states(None, 10)] == ["ja", "jb"]
    assert [j.event_id for j in await store.jobs.job_states("held", 10)] == ["ja"]
    assert [j.event_id for j in await store.jobs.job_states("queued", 10)] == ["jb"]
    await store.jobs.set_job_state("jb", "awaiting_approval", "awaiting approval by <@U1>")
    assert [j.why for j in await store.jobs.job_states("awaiting_approval", 10)] == [
        "awaiting approval by <@U1>"
    ]
    await store.audit.record_event(event("ja"))  # the outcome removes it
    assert await store.jobs.job_state("ja") is None
    await store.jobs.set_job_state("ja", "running", "late")  # a late update does not bring it back
    assert await store.jobs.job_state("ja") is None
    assert await store.jobs.job_state("unknown") is None


# ---- issue 17: duplicates collapsed at intake -------------------------------------------
def resolved_job(event_id: str) -> Job:
    original = job(event_id)
    return original.model_copy(update={"alert": original.alert.model_copy(update={"status": "resolved"})})


async def test_accept_collapsing_queues_one_job_per_episode(store: Store) -> None:
    # The same (rule, status, episode) twice in one call and once more in the next: one job.
    assert await store.intake.accept_collapsing([job("a1"), job("a2")], [], []) == ["a2"]
    assert await store.intake.accept_collapsing([job("a3")], [], []) == ["a3"]
    # Another rule, another episode, a resolved copy, a manual replay: each is queued.
    other_episode = job("b1").model_copy(update={"alert": alert("Down", 5)})
    manual = job("m1").model_copy(update={"manual": True})
    assert (
        await store.intake.accept_collapsing(
            [job("r2", rule="r2"), other_episode, resolved_job("z1")], [], []
        )
        == []
    )
    assert await store.intake.accept_collapsing([manual, resolved_job("z2")], [], []) == ["z2"]
    got = await store.queue.dequeue("c1", 10, 1.0)
    assert [d.job.event_id for d in got] == ["a1", "r2", "b1", "z1", "m1"]
    assert await store.jobs.job_state("a2") is None and await store.jobs.job_state("a1") is not None
    # Plain accept() never collapses.
    await store.intake.accept([job("p1"), job("p2")], [], [])
    assert [d.job.event_id for d in await store.queue.dequeue("c1", 10, 1.0)] == ["p1", "p2"]


async def test_settle_intake_counts_the_copies_and_reopens_or_keeps_the_episode(store: Store) -> None:
    await store.intake.accept_collapsing([job("a1"), job("a2"), job("a3")], [], [])
    [first] = await store.queue.dequeue("c1", 10, 1.0)
    assert await store.intake.settle_intake(job("a2"), done=False) == 0  # not the marker's owner
    assert await store.intake.settle_intake(first.job, done=False) == 2
    # Not done (failed, skipped): the next delivery is queued again.
    assert await store.intake.accept_collapsing([job("a4")], [], []) == []
    assert await store.intake.settle_intake(job("a4"), done=True) == 0
    # Done: later copies are still collapsed, and counted afresh.
    assert await store.intake.accept_collapsing([job("a5")], [], []) == ["a5"]
    assert await store.intake.settle_intake(job("a4"), done=True) == 1
    manual = job("m1").model_copy(update={"manual": True})
    assert await store.intake.settle_intake(manual, done=True) == 0


async def test_a_job_state_change_keeps_when_it_was_received_exactly(store: Store) -> None:
    first = job("jx", rule="r1")
    await store.intake.accept([first], [], [])
    await store.jobs.set_job_state("jx", "held", "paused by pause p-1", "svc/a")
    held = await store.jobs.job_state("jx")
    assert held is not None and held.received_at == first.received_at  # the jobs view's order


# ---- a run's start and end in one call each (store.admission) ---------------------------
def ask(the_job: Job, target: str = "svc/a", **options: Any) -> Admission:
    values: dict[str, Any] = {
        "job": the_job,
        "target": target,
        "pauses": 0,
        "automatic": not the_job.manual,
        "check_cooldown": True,
        "check_circuit": True,
        "lease": 30.0,
        "running": "on replica-1",
        **options,
    }
    return Admission(**values)


async def test_pauses_have_a_version_that_every_change_bumps(store: Store) -> None:
    assert await store.pauses.pauses_version() == 0 and await store.pauses.versioned_pauses() == (0, [])
    until = time.time() + 60
    await store.pauses.add_pause(
        Pause(reason="a", until=until, by="me", id="p-1", matchers=('team="x"',), created=1.0)
    )
    await store.pauses.add_pause(Pause(reason="all", until=until))
    version, pauses = await store.pauses.versioned_pauses()
    assert version == 2 == await store.pauses.pauses_version()
    assert [p.id for p in pauses] == ["global", "p-1"]
    await store.pauses.remove_pause("p-1")
    await store.pauses.remove_pause(GLOBAL_PAUSE)
    assert await store.pauses.versioned_pauses() == (4, [])


async def test_admit_answers_the_first_gate_that_stops_in_order(store: Store) -> None:
    first = job("a1")
    await store.intake.accept_collapsing([first, job("a2")], [first.alert], [])
    # Another pause version than the current: nothing is checked or taken.
    assert (await store.admit(ask(first, pauses=7))).stop == "pauses_changed"
    assert await store.locks.lease_remaining("svc/a") == 0
    await store.gates.set_cooldown("r1", "svc/a", 60)
    await store.gates.record_failure("r1", "svc/a", 60, 1)
    await store.gates.mark_episode("r1", first.alert.episode, 60)
    assert (await store.admit(ask(first))).stop == "duplicate"
    assert (await store.admit(ask(first, automatic=False))).stop == "cooldown"
    answer = await store.admit(ask(first, automatic=False, check_cooldown=False))
    assert answer.stop == "circuit" and 55 < answer.left <= 60
    assert await store.locks.lease_remaining("svc/a") == 0  # a stopped job takes nothing
    # A resolved alert stops it before anything else.
    await store.intake.accept([], [], [first.alert])
    assert (await store.admit(ask(first))).stop == "resolved"


async def test_admit_takes_the_lease_and_the_slot_and_marks_the_job_running(store: Store) -> None:
    first = job("a1")
    await store.intake.accept_collapsing([first, job("a2")], [first.alert], [])
    admitted = await store.admit(ask(first, group="g", limit=1, slot="s1"))
    assert admitted.stop == "" and admitted.token is not None and admitted.copies == 1
    assert await store.locks.lease_holder("svc/a") == "a1"
    state = await store.jobs.job_state("a1")
    assert state is not None and (state.state, state.why, state.target) == (
        "running",
        "on replica-1",
        "svc/a",
    )
    # The target is held: the holder is named; a full group stops another target.
    other = job("b1", svc="b")
    await store.intake.accept([], [other.alert], [])
    locked = await store.admit(ask(other))
    assert locked.stop == "locked" and locked.holder == "a1" and 25 < locked.left <= 30
    full = await store.admit(ask(other, target="svc/b", group="g", limit=1, slot="s2"))
    assert full.stop == "concurrency"
    assert await store.locks.lease_remaining("svc/b") == 0  # its lease was given back at once
    # Checking only takes nothing and leaves the state alone.
    check = await store.admit(ask(other, target="svc/b", lease=0.0))
    assert check.stop == "" and check.token is None and await store.locks.lease_remaining("svc/b") == 0
    assert admitted.token is not None and await store.locks.release_lease("svc/a", admitted.token)


async def test_intake_copies_are_counted_for_the_owner_only(store: Store) -> None:
    first = job("a1")
    await store.intake.accept_collapsing([first, job("a2"), job("a3")], [], [])
    assert await store.intake.intake_copies(first) == 2
    assert await store.intake.intake_copies(job("a2")) == 0
    assert await store.intake.intake_copies(first.model_copy(update={"manual": True})) == 0


async def test_conclude_records_acks_releases_and_leaves_the_state(store: Store) -> None:
    first = job("a1")
    await store.intake.accept_collapsing([first, job("a2")], [first.alert], [])
    [delivery] = await store.queue.dequeue("c1", 10, 1.0)
    admitted = await store.admit(ask(first, group="g", limit=1, slot="s1"))
    await store.intake.accept_collapsing([job("a3")], [], [])  # a copy while it runs
    built: list[int] = []

    def build(copies: int) -> AuditEvent:
        built.append(copies)
        return event("a1").model_copy(update={"details": {"deduplicated": copies}})

    end = Conclusion(
        job=first,
        event=build,
        expected=admitted.copies,
        done=True,
        ack=delivery.id,
        target="svc/a",
        token=admitted.token,
        group="g",
        slot="s1",
        cooldown=60.0,
        reset_failures=True,
        episode_ttl=60.0,
        forget_resolution="target:svc/a",
    )
    await store.gates.record_failure("r1", "svc/a", 60, 5)
    assert await store.gates.claim_resolution("r1", "target:svc/a", 60)  # announced before this run
    assert await store.gates.claim_resolution("r1", "target:svc/b", 60)
    assert (await store.conclude(end)).copies == 2
    # the run acted: the target's next resolution is news again (another target's is not)
    assert await store.gates.claim_resolution("r1", "target:svc/a", 60)
    assert not await store.gates.claim_resolution("r1", "target:svc/b", 60)
    assert built[-1] == 2  # the event counts the copy that came while it ran
    recorded = await store.audit.get_event("a1")
    assert recorded is not None and recorded.details == {"deduplicated": 2}
    assert await store.jobs.job_state("a1") is None and await store.queue.queue_depth() == 0
    assert await store.locks.lease_remaining("svc/a") == 0 and await store.locks.acquire_slot("g", 1, "s9", 5)
    assert await store.gates.cooldown_remaining("r1", "svc/a") > 55
    assert await store.gates.episode_done("r1", first.alert.episode)
    assert (await store.gates.record_failure("r1", "svc/a", 60, 5)).failures == 1  # reset
    # done: later copies stay collapsed
    assert await store.intake.accept_collapsing([job("a4")], [], []) == ["a4"]


async def test_conclude_of_a_skip_changes_only_what_it_names(store: Store) -> None:
    manual = job("m1").model_copy(update={"manual": True})
    await store.intake.accept([manual], [], [])
    [delivery] = await store.queue.dequeue("c1", 10, 1.0)
    concluded = await store.conclude(
        Conclusion(job=manual, event=lambda n: event("m1", outcome=Outcome.SKIPPED), ack=delivery.id)
    )
    assert concluded.copies == 0 and concluded.next is None and await store.audit.get_event("m1") is not None
    assert await store.queue.queue_depth() == 0 and await store.gates.cooldown_remaining("r1", "") == 0
    assert not await store.gates.episode_done("r1", manual.alert.episode)


async def test_conclude_may_hand_the_consumer_its_next_job(store: Store) -> None:
    await store.intake.accept([job("n1"), job("n2")], [], [])
    [first] = await store.queue.dequeue("c1", 1, 1.0)
    end = Conclusion(job=first.job, event=lambda n: event("n1"), ack=first.id, next_for="c1")
    handed = (await store.conclude(end)).next
    # One Redis server hands it over in the same call; elsewhere the worker reads it as usual.
    if isinstance(store, RedisStore) and store.one_call_per_run:
        assert handed is not None
    second = handed or (await store.queue.dequeue("c1", 1, 1.0))[0]
    assert second.job.event_id == "n2" and second.deliveries == 1
    assert await store.queue.dequeue("c2", 1, 0.2) == []  # claimed once, by c1
    await store.queue.ack(second.id)
    assert await store.queue.queue_depth() == 0
    # Nothing left: nothing handed over.
    await store.intake.accept([job("n3")], [], [])
    [third] = await store.queue.dequeue("c1", 1, 1.0)
    end = Conclusion(job=third.job, event=lambda n: event("n3"), ack=third.id, next_for="c1")
    assert (await store.conclude(end)).next is None


# ---- credentials (issue 24, item 6): failed credentials counted across replicas -------------
async def test_failed_credentials_are_counted_in_a_sliding_window(store: Store) -> None:
    keys = ["address:192.0.2.1", "name:alertmanager"]
    for _ in range(3):
        tallies = await store.credentials.count_failure(keys, window=2.0, limit=4)
    assert [(t.failures, t.refused_for, t.first) for t in tallies] == [(3, 0.0, False)] * 2
    fourth = await store.credentials.count_failure(keys, window=2.0, limit=4)
    assert [t.failures for t in fourth] == [4, 4] and all(t.first for t in fourth)
    assert all(1.5 < t.refused_for <= 2.0 for t in fourth), fourth
    [fifth] = await store.credentials.count_failure(keys[:1], window=2.0, limit=4)
    assert fifth.failures >= 4 and fifth.refused_for > 0 and not fifth.first  # told once per burst
    [other] = await store.credentials.count_failure(["address:192.0.2.2"], window=2.0, limit=4)
    assert (other.failures, other.refused_for) == (1, 0.0)
    await asyncio.sleep(2.1)  # the window slides past every failure
    [again] = await store.credentials.count_failure(keys[:1], window=2.0, limit=4)
    assert (again.failures, again.refused_for) == (1, 0.0)


async def test_good_addresses_of_a_name_are_remembered_for_a_while(store: Store) -> None:
    assert not await store.credentials.known_good("alertmanager", "192.0.2.1")
    await store.credentials.remember_good("alertmanager", "192.0.2.1", 1.0)
    assert await store.credentials.known_good("alertmanager", "192.0.2.1")
    assert not await store.credentials.known_good("alertmanager", "192.0.2.2")
    assert not await store.credentials.known_good("bob", "192.0.2.1")
    await asyncio.sleep(1.1)
    assert not await store.credentials.known_good("alertmanager", "192.0.2.1")


# ---- sessions (issue 24, item 7): console sign-ins held on the server ---------------------
async def test_sessions_open_close_and_end_with_their_credential(store: Store) -> None:
    await store.sessions.open_session("s1", "alice", 60)
    await store.sessions.open_session("s2", "alice", 60)
    await store.sessions.open_session("s3", "bob", 60)
    await store.sessions.open_session("short", "bob", 0.5)
    assert [await store.sessions.session_name(s) for s in ("s1", "s3", "nope")] == ["alice", "bob", None]
    await store.sessions.close_session("s1")
    await store.sessions.close_session("s1")  # twice is harmless
    assert await store.sessions.session_name("s1") is None
    assert await store.sessions.session_name("s2") == "alice"
    assert await store.sessions.close_sessions_of("alice") == 1
    assert await store.sessions.session_name("s2") is None
    assert await store.sessions.close_sessions_of("alice") == 0
    await asyncio.sleep(0.6)
    assert await store.sessions.session_name("short") is None  # expired with its session
    assert await store.sessions.close_sessions_of("bob") == 1  # s3 only: short had expired


# ---- generation (issue 24, item 11): a marker tells a wiped store from a new one -----------
async def test_the_generation_marker_is_set_once_and_a_wipe_reported_once(store: Store) -> None:
    assert await store.generation.marker() is None
    first = StoreMarker(id="g1", created=100.0)
    assert await store.generation.create_marker(first) == first
    second = StoreMarker(id="g2", created=200.0, after="g1", last_seen=150.0)
    assert await store.generation.create_marker(second) == first  # the first one stays
    assert await store.generation.marker() == first
    assert await store.generation.claim_report("g0", 60)
    assert not await store.generation.claim_report("g0", 60)
    assert await store.generation.claim_report("g1", 60)


# ---- issue 29: the blast-radius brake ---------------------------------------------------
async def test_the_brake_counts_distinct_targets_and_holds_the_next(store: Store) -> None:

    async def enter(event_id: str, target: str, dry_run: bool = False) -> tuple[str, int, tuple[str, ...]]:
        answer = await store.brakes.enter("r1", event_id, target, count=2, within=60.0, dry_run=dry_run)
        return answer.verdict, answer.counted, answer.held

    assert await enter("e1", "svc/a") == ("pass", 1, ())
    assert await enter("e2", "svc/a") == ("pass", 1, ())  # the same target counts once
    assert await enter("e3", "svc/b") == ("pass", 2, ())
    assert await enter("e4", "svc/c", dry_run=True) == ("opened", 2, ("svc/c",))  # told once
    assert await enter("e5", "svc/d") == ("held", 2, ())
    assert await enter("e4", "svc/c") == ("held", 2, ())  # held stays held
    assert await enter("e6", "svc/b") == ("pass", 2, ())  # a counted target still passes
    other = await store.brakes.enter("r2", "e7", "svc/c", count=2, within=60.0, dry_run=False)
    assert other.verdict == "pass"  # one brake per rule
    state = await store.brakes.state("r1", 60.0)
    assert (state.rule, state.counted, state.open, state.dry_run) == ("r1", 2, True, True)
    assert [(h.event_id, h.target, h.dry_run) for h in state.held] == [
        ("e4", "svc/c", True),
        ("e5", "svc/d", False),
    ]
    assert abs(state.held[0].at - time.time()) < 5
    assert (await store.brakes.state("nothing", 60.0)).open is False


async def test_a_held_job_waits_for_its_release_whatever_the_window_does(store: Store) -> None:
    assert (
        await store.brakes.enter("r1", "e1", "svc/a", count=1, within=1.0, dry_run=False)
    ).verdict == "pass"
    assert (
        await store.brakes.enter("r1", "e2", "svc/b", count=1, within=1.0, dry_run=False)
    ).verdict == "opened"
    assert (
        await store.brakes.enter("r1", "e3", "svc/c", count=1, within=1.0, dry_run=False)
    ).verdict == "held"
    await asyncio.sleep(1.3)  # the window ended: new targets pass again, the held stay held
    assert (
        await store.brakes.enter("r1", "e2", "svc/b", count=1, within=1.0, dry_run=False)
    ).verdict == "held"
    assert (
        await store.brakes.enter("r1", "e4", "svc/d", count=1, within=1.0, dry_run=False)
    ).verdict == "pass"
    released = await store.brakes.release("r1", ["e2", "unknown"])
    assert [job.event_id for job in released] == ["e2"]
    assert await store.brakes.release("r1", ["e2"]) == []  # released once
    answer = await store.brakes.enter("r1", "e2", "svc/b", count=1, within=1.0, dry_run=False)
    assert (answer.verdict, answer.counted) == ("released", 2)  # it passes once, counted
    assert [h.event_id for h in (await store.brakes.state("r1", 1.0)).held] == ["e3"]
    assert [job.target for job in await store.brakes.release("r1", None)] == ["svc/c"]
    assert (await store.brakes.state("r1", 1.0)).open is False
    assert await store.brakes.release("r1", []) == []


async def test_a_brake_released_or_emptied_opens_again(store: Store) -> None:
    await store.brakes.enter("r1", "e1", "svc/a", count=1, within=60.0, dry_run=False)
    assert (
        await store.brakes.enter("r1", "e2", "svc/b", count=1, within=60.0, dry_run=False)
    ).verdict == "opened"
    assert (
        await store.brakes.enter("r1", "e3", "svc/c", count=1, within=60.0, dry_run=False)
    ).verdict == "held"
    await store.brakes.forget("r1", ["e2", "e3"])  # their alerts resolved
    await store.brakes.forget("r1", [])
    assert (await store.brakes.state("r1", 60.0)).open is False
    assert (
        await store.brakes.enter("r1", "e5", "svc/e", count=1, within=60.0, dry_run=False)
    ).verdict == "opened"
    await store.brakes.release("r1", None)
    await store.brakes.forget("r1", ["e5"])  # released, then ended otherwise: it never passes
    assert (
        await store.brakes.enter("r1", "e5", "svc/e", count=1, within=60.0, dry_run=False)
    ).verdict == "opened"


async def test_two_replicas_let_exactly_count_targets_through(make_store: StoreFactory) -> None:
    one, two = await make_store(), await make_store()
    stores = [one, two] if one.kind == "redis" else [one, one]

    async def enter(i: int) -> str:
        store = stores[i % 2]
        answer = await store.brakes.enter("r1", f"e{i}", f"svc/{i}", count=5, within=60.0, dry_run=False)
        return answer.verdict

    verdicts = await asyncio.gather(*(enter(i) for i in range(40)))
    assert verdicts.count("pass") == 5
    assert verdicts.count("opened") == 1
    assert verdicts.count("held") == 34
    assert len((await stores[1].brakes.state("r1", 60.0)).held) == 35
