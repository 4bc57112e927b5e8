"""Redis faults, store level and service level, against real redis-server processes.

Service-level tests run ``python -m remediator serve`` replicas that load the
``test.record`` handler (tests/support/test_handlers.py); it appends a line per
start and per end of a run to a file, which is how we count remediations.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from remediator.errors import StoreUnavailable
from remediator.models import Alert, AuditEvent, Job, Outcome
from remediator.settings import Settings
from remediator.store.admission import Admission, Conclusion
from remediator.store.base import (
    Approvals,
    Audit,
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
from remediator.store.redis.batching import IntakeWrite
from remediator.store.redis.intake import RedisIntake
from remediator.store.redis.store import RedisStore
from remediator.store.values import GLOBAL_PAUSE, Approval, Delivery, Pause, StoreMarker
from tests.support.redis_server import RedisServer
from tests.support.replicas import Cluster, wait_events
from tests.support.serve_procs import (
    firing_alert,
    metric_samples,
    post_alerts,
    wait_ready,
)
from tests.support.waiting import eventually

PREFIX = "faults"


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    with RedisServer.running(tmp_path / "redis", persistent=True) as server:
        yield server


async def open_store(url: str, **options: Any) -> RedisStore:
    return await RedisStore.create(Settings(redis_url=url, redis_prefix=PREFIX, **options))


@pytest.fixture
async def observer(redis_server: RedisServer) -> AsyncIterator[RedisStore]:
    """The test's own view of the shared state (audit, leases, queue)."""
    store = await open_store(redis_server.url)
    yield store
    await store.close()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as client:
        yield client


def job(event_id: str) -> Job:
    alert = Alert.model_validate(
        {"status": "firing", "labels": {"alertname": "X"}, "startsAt": "2024-05-01T12:00:00Z"}
    )
    return Job(event_id=event_id, rule="r", alert=alert, received_at=time.time())


# ---- store level ------------------------------------------------------------------------
async def test_created_while_redis_is_down_and_recovers(tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "redis")
    store = await open_store(server.url)  # nothing listens yet: must not raise
    try:
        with pytest.raises(StoreUnavailable):
            await store.ping()
        with pytest.raises(StoreUnavailable):
            await store.intake.accept([job("e1")], [], [])
        server.start()
        await store.ping()
        await store.intake.accept([job("e1")], [], [])
        [delivery] = await store.queue.dequeue("c1", 1, 1.0)
        assert delivery.job.event_id == "e1"
    finally:
        await store.close()
        server.stop()


async def test_every_operation_fails_closed_when_redis_is_gone(
    redis_server: RedisServer,
    observer: RedisStore,
) -> None:
    await observer.intake.accept([job("e1")], [], [])
    [delivery] = await observer.queue.dequeue("c1", 1, 1.0)
    redis_server.kill()
    event = AuditEvent(event_id="e1", rule="r", received_at=0, finished_at=0, outcome=Outcome.SUCCEEDED)
    approval = Approval(
        "e1", "r", "t", "X", requested_at=time.time(), expires_at=time.time() + 60, approvers=()
    )
    calls: dict[str, Callable[[], Awaitable[Any]]] = {
        "ping": observer.ping,
        "accept": lambda: observer.intake.accept([job("e2")], [], []),
        "dequeue": lambda: observer.queue.dequeue("c1", 1, 0.5),
        "ack": lambda: observer.queue.ack(delivery.id),
        "touch": lambda: observer.queue.touch("c1", delivery.id),
        "reclaim": lambda: observer.queue.reclaim("c1", 0, 1),
        "defer": lambda: observer.queue.defer(delivery.id, delivery.job, 1),
        "promote_due": observer.queue.promote_due,
        "dead_letter": lambda: observer.queue.dead_letter(Delivery(delivery.id, delivery.job, 9), "x"),
        "dead_letters": lambda: observer.queue.dead_letters(5),
        "queue_depth": observer.queue.queue_depth,
        "retire": lambda: observer.queue.retire(["r"]),
        "acquire_lease": lambda: observer.locks.acquire_lease("t", 5),
        "extend_lease": lambda: observer.locks.extend_lease("t", "token", 5),
        "release_lease": lambda: observer.locks.release_lease("t", "token"),
        "lease_remaining": lambda: observer.locks.lease_remaining("t"),
        "lease_holder": lambda: observer.locks.lease_holder("t"),
        "stash_timeline": lambda: observer.audit.stash_timeline("e1", "[]", 5),
        "take_timeline": lambda: observer.audit.take_timeline("e1"),
        "acquire_slot": lambda: observer.locks.acquire_slot("g", 1, "a", 5),
        "release_slot": lambda: observer.locks.release_slot("g", "a"),
        "set_cooldown": lambda: observer.gates.set_cooldown("r", "t", 5),
        "cooldown_remaining": lambda: observer.gates.cooldown_remaining("r", "t"),
        "record_failure": lambda: observer.gates.record_failure("r", "t", 5, 3),
        "reset_failures": lambda: observer.gates.reset_failures("r", "t"),
        "circuit_remaining": lambda: observer.gates.circuit_remaining("r", "t"),
        "episode_done": lambda: observer.gates.episode_done("r", "ep"),
        "mark_episode": lambda: observer.gates.mark_episode("r", "ep", 5),
        "claim_resolution": lambda: observer.gates.claim_resolution("r", "ep", 5),
        "firing_labels": observer.firing.firing_labels,
        "is_firing": lambda: observer.firing.is_firing("fp", "x"),
        "add_pause": lambda: observer.pauses.add_pause(Pause("x", time.time() + 60)),
        "remove_pause": lambda: observer.pauses.remove_pause(GLOBAL_PAUSE),
        "list_pauses": observer.pauses.list_pauses,
        "record_event": lambda: observer.audit.record_event(event),
        "get_event": lambda: observer.audit.get_event("e1"),
        "list_events": lambda: observer.audit.list_events(5),
        "claim_thread": lambda: observer.threads.claim_thread("r", "t", "1.0", 5),
        "get_thread": lambda: observer.threads.get_thread("r", "t"),
        # a run's start and end (issue 17): nothing is taken or written, the job stays pending
        "pauses_version": observer.pauses.pauses_version,
        "versioned_pauses": observer.pauses.versioned_pauses,
        "intake_copies": lambda: observer.intake.intake_copies(delivery.job),
        "admit": lambda: observer.admit(
            Admission(
                job=delivery.job,
                target="t",
                pauses=0,
                automatic=True,
                check_cooldown=True,
                check_circuit=True,
                lease=5.0,
                running="on r1",
            )
        ),
        "conclude": lambda: observer.conclude(
            Conclusion(
                job=delivery.job, event=lambda copies: event, ack=delivery.id, target="t", next_for="c1"
            )
        ),
        # The newer paths (issue 24, item 13): held jobs, intake collapsing, the jobs index,
        # approvals, and the parts of failed credentials, sessions and the store's generation.
        "accept_collapsing": lambda: observer.intake.accept_collapsing([job("e3")], [], []),
        "settle_intake": lambda: observer.intake.settle_intake(delivery.job, True),
        "release_held": observer.queue.release_held,
        "forget_resolution": lambda: observer.gates.forget_resolution("r", "ep"),
        "set_job_state": lambda: observer.jobs.set_job_state("e1", "held", "paused by p-1"),
        "job_state": lambda: observer.jobs.job_state("e1"),
        "job_states": lambda: observer.jobs.job_states(None, 10),
        "request_approval": lambda: observer.approvals.request_approval("scope", approval, 60),
        "get_approval": lambda: observer.approvals.get_approval("e1"),
        "decide_approval": lambda: observer.approvals.decide_approval("e1", "approved", "alice", ""),
        "set_approval_message": lambda: observer.approvals.set_approval_message("e1", "C1", "1.2"),
        "list_approvals": lambda: observer.approvals.list_approvals(10),
        "count_failure": lambda: observer.credentials.count_failure(["address:192.0.2.1"], 60, 20),
        "remember_good": lambda: observer.credentials.remember_good("am", "192.0.2.1", 60),
        "known_good": lambda: observer.credentials.known_good("am", "192.0.2.1"),
        "open_session": lambda: observer.sessions.open_session("s1", "alice", 60),
        "session_name": lambda: observer.sessions.session_name("s1"),
        "close_session": lambda: observer.sessions.close_session("s1"),
        "close_sessions_of": lambda: observer.sessions.close_sessions_of("alice"),
        "marker": observer.generation.marker,
        "create_marker": lambda: observer.generation.create_marker(StoreMarker("g1", 1.0)),
        "claim_report": lambda: observer.generation.claim_report("g0", 60),
    }
    every = {
        name
        for part in (
            *(Queue, Locks, Pauses, Firing, Gates, Audit, Jobs, Approvals, Threads, Intake),
            *(CredentialFailures, Sessions, Generation, Store),
        )
        for name, _ in inspect.getmembers(part, inspect.iscoroutinefunction)
    }
    assert every - set(calls) == {"close"}  # every store call is tried (close never raises)
    for name, call in calls.items():
        started = time.monotonic()
        with pytest.raises(StoreUnavailable):
            await call()
        assert time.monotonic() - started < 10, f"{name} took too long to fail"
    redis_server.start()  # persistent: the job taken before the crash is still pending
    [again] = await observer.queue.reclaim("c2", 0, 1)
    assert (again.id, again.deliveries) == (delivery.id, 2)


class CountingIntake(RedisIntake):
    """Counts pipelined intake round trips (our own method; Redis itself is real)."""

    writes: list[int]

    async def _write(self, batch: list[IntakeWrite]) -> None:
        self.writes.append(len(batch))
        await super()._write(batch)


async def test_concurrent_accepts_share_one_round_trip(redis_server: RedisServer) -> None:
    store = await RedisStore.create(Settings(redis_url=redis_server.url, redis_prefix=PREFIX))
    counting = store.intake = CountingIntake(store.backend, firing_ttl=3600.0)
    counting.writes = []
    try:
        await asyncio.gather(*(store.intake.accept([job(f"e{i}")], [], []) for i in range(50)))
        assert sum(counting.writes) == 50
        assert len(counting.writes) <= 2  # the first caller's write, then everyone else's
        assert await store.queue.queue_depth() == 50
        redis_server.kill()
        results = await asyncio.gather(
            *(store.intake.accept([job(f"x{i}")], [], []) for i in range(20)), return_exceptions=True
        )
        assert all(isinstance(r, StoreUnavailable) for r in results)
        assert len({id(r) for r in results}) == 20  # each caller gets its own error
    finally:
        await store.close()


# ---- service level ------------------------------------------------------------------------
@pytest.fixture
def cluster(tmp_path: Path, redis_server: RedisServer) -> Iterator[Cluster]:
    replicas = Cluster(tmp_path, redis_server)
    try:
        yield replicas
    finally:
        replicas.stop()


@pytest.mark.timeout(240)  # 1000 webhooks to replica processes: slow on a loaded machine
async def test_duplicate_alerts_on_two_replicas_remediate_once(
    cluster: Cluster,
    observer: RedisStore,
    session: aiohttp.ClientSession,
) -> None:
    cluster.write_rule(sleep=1.0, lease="30s")
    replicas = [cluster.start(), cluster.start()]
    for replica in replicas:
        await wait_ready(session, replica)
    alert = firing_alert(service="api")
    gate = asyncio.Semaphore(50)

    async def send(i: int) -> tuple[int, dict[str, Any]]:
        async with gate:
            return await post_alerts(session, replicas[i % 2], alert)

    answers = await asyncio.gather(*(send(i) for i in range(1000)))
    assert [status for status, _ in answers] == [202] * 1000
    # Issue 17: a copy of a job queued, running or done is collapsed at intake, not queued.
    event_ids = [event_id for _, body in answers for event_id in body["event_ids"]]
    deduplicated = sum(body["deduplicated"] for _, body in answers)
    assert len(event_ids) + deduplicated == 1000 and deduplicated > 0
    events = await wait_events(observer, event_ids, within=180)

    outcomes = Counter(e.outcome_label for e in events.values())
    assert outcomes["succeeded"] == 1, outcomes
    assert set(outcomes) <= {"succeeded", "skipped:duplicate", "skipped:locked", "skipped:cooldown"}, outcomes
    assert len(cluster.runs_of("start")) == len(cluster.runs_of("end")) == 1
    totals: Counter[str] = Counter()
    for replica in replicas:
        for labels, value in await metric_samples(session, replica, "remediator_jobs_total"):
            totals[labels["outcome"]] += int(value)
    assert totals["succeeded"] == 1 and sum(totals.values()) == len(event_ids), totals
    collapsed = 0
    for replica in replicas:
        for _, value in await metric_samples(session, replica, "remediator_alerts_deduplicated_total"):
            collapsed += int(value)
    assert collapsed == deduplicated
    assert await observer.queue.queue_depth() == 0


@pytest.mark.timeout(200)
async def test_worker_killed_mid_handler_job_finished_by_the_other_replica(
    cluster: Cluster,
    observer: RedisStore,
    session: aiohttp.ClientSession,
) -> None:
    cluster.write_rule(sleep=3.0, lease="4s")
    replicas = [cluster.start(workers=2), cluster.start(workers=2)]
    for replica in replicas:
        await wait_ready(session, replica)
    status, body = await post_alerts(session, replicas[0], firing_alert(service="db"))
    assert status == 202
    [event_id] = body["event_ids"]

    async def started() -> list[dict[str, Any]]:
        return cluster.runs_of("start")

    [first] = await eventually(started, within=30, every=0.2, what="the handler to start")
    victim = next(r for r in replicas if r.pid == first["pid"])
    survivor = next(r for r in replicas if r is not victim)
    victim.kill()

    events = await wait_events(observer, [event_id], within=120)
    event = events[event_id]
    assert event.outcome is Outcome.SUCCEEDED, event.message
    assert f"-{survivor.pid}-" in event.replica
    assert [r["pid"] for r in cluster.runs_of("start")] == [victim.pid, survivor.pid]
    assert [r["pid"] for r in cluster.runs_of("end")] == [survivor.pid]
    all_events, _ = await observer.audit.list_events(100)
    assert [e.event_id for e in all_events] == [event_id]  # its outcome is recorded once
    assert await observer.queue.queue_depth() == 0
    assert await observer.queue.dead_letters(10) == []


@pytest.mark.timeout(200)
async def test_a_chain_killed_between_two_steps_resumes_on_the_other_replica(
    cluster: Cluster,
    observer: RedisStore,
    session: aiohttp.ClientSession,
) -> None:
    """Issue 28: step 1 acted, then its replica was SIGKILLed in step 2's precheck; the
    other replica resumes after step 1, and no step runs twice."""
    marker = cluster.tmp_path / "crashed-once"

    def step(label: str, **more: Any) -> dict[str, Any]:
        return {"handler": "test.record", "params": {"path": str(cluster.runs), "label": label, **more}}

    chain = cluster.rule(lease="3s")
    del chain["handler"], chain["params"]
    chain["steps"] = [step("one"), step("two", crash_first=str(marker)), step("three")]
    cluster.write_rules(chain)
    replicas = [cluster.start(workers=1), cluster.start(workers=1)]
    for replica in replicas:
        await wait_ready(session, replica)
    status, body = await post_alerts(session, replicas[0], firing_alert(service="db"))
    assert status == 202
    [event_id] = body["event_ids"]
    events = await wait_events(observer, [event_id], within=120)
    event = events[event_id]
    assert event.outcome is Outcome.SUCCEEDED, event.message
    assert marker.exists()  # a replica did die in step 2
    started = [(r["label"], r["pid"]) for r in cluster.runs_of("start")]
    assert [label for label, _ in started] == ["one", "two", "three"], started  # none twice
    assert started[0][1] != started[1][1] == started[2][1]  # resumed by the other replica
    assert [s.data["step"] for s in event.timeline if s.name == "step.finished"] == [1, 2, 3]
    assert "chain.resumed" in [s.name for s in event.timeline]
    assert await observer.queue.queue_depth() == 0


@pytest.mark.timeout(200)
async def test_job_that_keeps_killing_its_worker_is_dead_lettered(
    cluster: Cluster,
    observer: RedisStore,
    session: aiohttp.ClientSession,
) -> None:
    cluster.write_rule(crash=True, lease="2s")
    first = cluster.start(workers=1, REMEDIATOR_MAX_DELIVERIES="1")
    await wait_ready(session, first)
    _, body = await post_alerts(session, first, firing_alert(service="api"))
    [event_id] = body["event_ids"]
    assert first.proc is not None
    first.proc.wait(30)  # the handler killed its replica
    second = cluster.start(workers=1, REMEDIATOR_MAX_DELIVERIES="1")
    events = await wait_events(observer, [event_id], within=60)
    assert events[event_id].outcome is Outcome.FAILED
    assert "dead-lettered after 2 deliveries" in events[event_id].message
    [letter] = await observer.queue.dead_letters(10)
    assert (letter["event_id"], letter["deliveries"]) == (event_id, 2)
    assert len(cluster.runs_of("start")) == 1  # not run again
    samples = await metric_samples(session, second, "remediator_dead_letters_total")
    assert [value for _, value in samples] == [1.0]
    assert await observer.queue.queue_depth() == 0


@pytest.mark.timeout(200)
async def test_redis_outage_webhook_503_nothing_acts_then_work_resumes(
    cluster: Cluster,
    observer: RedisStore,
    session: aiohttp.ClientSession,
) -> None:
    cluster.write_rule(sleep=1.5, lease="10s")
    replica = cluster.start(workers=3)
    await wait_ready(session, replica)
    status, body = await post_alerts(session, replica, *(firing_alert(service=f"s{i}") for i in range(5)))
    assert status == 202
    event_ids = body["event_ids"]
    assert len(event_ids) == 5

    async def started() -> list[dict[str, Any]]:
        return cluster.runs_of("start")

    await eventually(started, within=30, every=0.2, what="the first handlers to start")
    cluster.redis.kill()

    status, body = await post_alerts(session, replica, firing_alert(service="late"))
    assert status == 503, body
    async with session.get(f"{replica.url}/readyz") as response:
        assert response.status == 503
        assert "store unavailable" in " ".join((await response.json())["problems"])

    async def running_ended() -> bool:
        return len(cluster.runs_of("end")) == len(cluster.runs_of("start"))

    await eventually(running_ended, within=30, every=0.2, what="the handlers already running to end")
    acted = len(cluster.runs_of("start"))
    await asyncio.sleep(4.0)  # longer than reclaim_idle: idle workers still take nothing
    assert len(cluster.runs_of("start")) == acted < 5

    cluster.redis.start()  # the same data directory: the accepted jobs are still there
    await wait_ready(session, replica)
    events = await wait_events(observer, event_ids, within=120)
    assert {e.outcome for e in events.values()} == {Outcome.SUCCEEDED}, {
        e.event_id: (e.outcome_label, e.message) for e in events.values()
    }
    ended = Counter(r["event_id"] for r in cluster.runs_of("end"))
    assert ended == dict.fromkeys(event_ids, 1)

    async def drained() -> bool:
        return await observer.queue.queue_depth() == 0

    await eventually(drained, within=60, every=0.2, what="the queue to drain")
    samples = await metric_samples(session, replica, "remediator_jobs_total")
    assert {(labels["outcome"], value) for labels, value in samples} == {("succeeded", 5.0)}


@pytest.mark.timeout(120)
async def test_lease_is_extended_while_a_long_handler_runs(
    cluster: Cluster,
    observer: RedisStore,
    session: aiohttp.ClientSession,
) -> None:
    cluster.write_rule(sleep=4.0, lease="1s")
    replica = cluster.start()
    await wait_ready(session, replica)
    _, body = await post_alerts(session, replica, firing_alert(service="api", instance="a"))
    [long_id] = body["event_ids"]

    async def started() -> list[dict[str, Any]]:
        return cluster.runs_of("start")

    await eventually(started, within=30, every=0.2, what="the handler to start")
    await asyncio.sleep(2.0)  # twice the lease: only extension keeps it
    assert await observer.locks.lease_remaining("svc/api") > 0
    _, body = await post_alerts(session, replica, firing_alert(service="api", instance="b"))
    [other_id] = body["event_ids"]
    events = await wait_events(observer, [long_id, other_id], within=60)
    assert events[long_id].outcome is Outcome.SUCCEEDED, events[long_id].message
    assert events[long_id].details["duration_seconds"] >= 4.0
    assert events[other_id].outcome_label == "skipped:locked"
    assert len(cluster.runs_of("end")) == 1


@pytest.mark.timeout(120)
async def test_handler_that_loses_its_lease_stops_and_reports_it(
    cluster: Cluster,
    observer: RedisStore,
    session: aiohttp.ClientSession,
) -> None:
    cluster.write_rule(sleep=20.0, lease="3s")
    replica = cluster.start()
    await wait_ready(session, replica)
    _, body = await post_alerts(session, replica, firing_alert(service="api"))
    [event_id] = body["event_ids"]

    async def started() -> list[dict[str, Any]]:
        return cluster.runs_of("start")

    await eventually(started, within=30, every=0.2, what="the handler to start")
    with cluster.redis.client() as client:  # someone else now owns the target
        client.set(observer.keys.lease("svc/api"), "another-token", px=60_000)
    events = await wait_events(observer, [event_id], within=30)
    assert events[event_id].outcome is Outcome.FAILED
    assert events[event_id].details.get("lease_lost") is True
    assert cluster.runs_of("end") == []  # the handler was stopped
    assert await observer.gates.circuit_remaining("record", "svc/api") == 0.0  # not a failure


@pytest.mark.timeout(120)
async def test_circuit_opens_after_max_attempts_and_closes_after_the_window(
    cluster: Cluster,
    observer: RedisStore,
    session: aiohttp.ClientSession,
) -> None:
    cluster.write_rule(fail=True, max_attempts=2, attempt_window="4s")
    replica = cluster.start()
    await wait_ready(session, replica)

    async def run(instance: str) -> AuditEvent:
        status, body = await post_alerts(session, replica, firing_alert(service="api", instance=instance))
        assert status == 202
        [event_id] = body["event_ids"]
        return (await wait_events(observer, [event_id], within=30))[event_id]

    first, second, third = [await run(i) for i in ("a", "b", "c")]
    assert [e.outcome_label for e in (first, second, third)] == ["failed", "failed", "skipped:circuit_open"]
    assert [s.name for s in second.timeline if s.name == "circuit.opened"] == ["circuit.opened"]
    assert len(cluster.runs_of("start")) == 2  # the open circuit kept the third from acting

    async def closed() -> bool:
        return await observer.gates.circuit_remaining("record", "svc/api") == 0.0

    await eventually(closed, within=10, every=0.2, what="the circuit to close")
    fourth = await run("d")
    assert fourth.outcome_label == "failed"  # it ran again
    assert len(cluster.runs_of("start")) == 3


async def test_consumers_long_gone_are_dropped_from_the_group(
    redis_server: RedisServer,
    observer: RedisStore,
) -> None:
    def consumers() -> set[bytes]:
        with redis_server.client() as client:
            stream = observer.keys.rule_stream("r")
            return {c["name"] for c in client.xinfo_consumers(stream, observer.keys.group)}

    await observer.intake.accept([job("e1"), job("e2")], [], [])
    [delivery] = await observer.queue.dequeue("crashed-with-a-job", 1, 1.0)
    [finished] = await observer.queue.dequeue("stopped-cleanly", 1, 1.0)
    await observer.queue.ack(finished.id)
    assert consumers() == {b"crashed-with-a-job", b"stopped-cleanly"}
    observer.queue.consumer_gone_after = 0.5
    observer.queue.consumer_cleanup_every = 0.0
    await asyncio.sleep(1.0)
    [again] = await observer.queue.reclaim("alive", 0.5, 1)  # takes the crashed one's job
    assert again.id == delivery.id
    assert consumers() == {b"alive"}  # silent, nothing pending: both dropped
    await observer.queue.ack(again.id)


async def test_intake_survives_a_redis_that_forgot_its_scripts(observer: RedisStore) -> None:
    """A Redis restarted without persistence has no scripts: intake loads them again."""
    await observer.intake.accept([job("before-flush")], [], [])
    await observer._r.script_flush()  # what a restart does to the script cache
    await observer.intake.accept([job("after-flush")], [], [])
    got = await observer.queue.dequeue("c1", 10, 1.0)
    assert [d.job.event_id for d in got] == ["before-flush", "after-flush"]
