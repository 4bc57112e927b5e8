"""Each gate on its own, against the memory store: no app, no HTTP.

For every gate a case that lets the job through and a case that stops it.
"""

from __future__ import annotations

import time

import pytest
import structlog

from remediator.metrics import Metrics
from remediator.models import Alert, Job, SkipReason
from remediator.rules.ruleset import Rule, parse_rules, render
from remediator.store.memory import MemoryStore
from remediator.store.values import GLOBAL_PAUSE, Delivery, Pause
from remediator.worker.admit import Admit
from remediator.worker.gates import Inhibited, PauseBook, Paused, ResolvedIgnored, StaleLease
from remediator.worker.lease import release
from remediator.worker.runs import Run
from remediator.worker.stages import Defer, Skip
from tests.support.handlers import make_registry
from tests.support.payloads import alert

# The memory store and the gates on looptime's clock: their waits pass without real sleeps.
pytestmark = pytest.mark.looptime

RULES = b"""
concurrency_limits: {storage: 1}
rules:
  - name: probe
    matchers: ['alertname="Probe"']
    handler: test.probe
    target: 'svc/{{ labels.service }}'
    params: {bucket: gates}
    max_attempts: 2
    inhibited_by: ['alertname="Storage"']
    inhibit_equal: [service]
    inhibit_wait: 1m
    concurrency_group: storage
  - name: flappy
    matchers: ['alertname="Flappy"']
    handler: test.probe
    target: 'flap/x'
    params: {bucket: flap}
    on_resolved: run
"""


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore()


def rule(name: str = "probe") -> Rule:
    found = parse_rules(RULES, "gates.yaml", make_registry()).get(name)
    assert found is not None
    return found


def make_run(
    labels: dict[str, str] | None = None,
    *,
    status: str = "firing",
    deliveries: int = 1,
    rule_name: str = "probe",
    **job: object,
) -> Run:
    raw = alert(status=status, **{"alertname": "Probe", "service": "a", **(labels or {})})  # type: ignore[arg-type]
    firing = Alert.model_validate(raw)
    the_rule = rule(rule_name)
    run = Run(
        delivery=Delivery(
            "1-1",
            Job(event_id="e1", rule=the_rule.name, alert=firing, received_at=time.time(), **job),
            deliveries,
        ),
        consumer="w",
        log=structlog.get_logger(),
    )
    run.rule = the_rule
    run.plan = render(the_rule, firing)
    return run


def paused(store: MemoryStore) -> Paused:
    return Paused(PauseBook(store.pauses))


def admit(store: MemoryStore, metrics: Metrics | None = None, *, take: bool = True) -> Admit:
    """The gates on the store's state in one call, as the pipeline builds them."""
    return Admit(store, metrics or Metrics(), paused(store), "replica-1", take=take)


async def firing_run(store: MemoryStore, labels: dict[str, str] | None = None, **job: object) -> Run:
    """A run whose alert is in the store's firing index (as intake leaves it)."""
    run = make_run(labels, **job)  # type: ignore[arg-type]
    await store.intake.accept([], [run.job.alert], [])
    return run


async def test_stale_lease_lets_a_first_delivery_and_a_free_target_through(store: MemoryStore) -> None:
    assert await StaleLease(store.locks, store.audit)(make_run()) is None
    assert await StaleLease(store.locks, store.audit)(make_run(deliveries=2)) is None


async def test_stale_lease_defers_a_redelivered_job_while_the_target_is_held(store: MemoryStore) -> None:
    assert await store.locks.acquire_lease("svc/a", 60)
    stop = await StaleLease(store.locks, store.audit)(make_run(deliveries=2))
    assert isinstance(stop, Defer) and stop.reason == "locked"
    assert stop.message == "waiting for the lease of an earlier delivery"
    assert stop.delay is not None and 60 < stop.delay <= 60.5


async def test_resolved_ignored() -> None:
    assert await ResolvedIgnored()(make_run()) is None
    on_run = make_run({"alertname": "Flappy"}, status="resolved", rule_name="flappy")
    assert await ResolvedIgnored()(on_run) is None
    stop = await ResolvedIgnored()(make_run(status="resolved"))
    assert stop == Skip(SkipReason.RESOLVED, "alert resolved; on_resolved: ignore")


async def test_paused(store: MemoryStore) -> None:
    # Issue 16: a job that meets a pause is held (on_pause: hold, the default); a manual
    # replay keeps the old behaviour, skipped:paused (the assertions below).
    assert await paused(store)(make_run(manual=True)) is None
    await store.pauses.add_pause(Pause(reason="maintenance", until=time.time() + 60))
    stop = await paused(store)(make_run(manual=True))
    assert isinstance(stop, Skip) and stop.reason is SkipReason.PAUSED
    assert stop.message.startswith("remediation paused until ")
    held = await paused(store)(make_run())
    assert isinstance(held, Defer) and held.hold and held.reason == "paused"
    assert stop.message.endswith(": maintenance")


async def test_the_check_only_admission_asks_whether_the_alert_still_fires(store: MemoryStore) -> None:
    """Was the StillFiring gate: the check-only admission (``store.admit``) asks it now."""
    run = make_run()
    await store.intake.accept([], [run.job.alert], [])
    await paused(store)(run)
    assert await admit(store, take=False)(run) is None
    manual = make_run(manual=True, service="b")
    await paused(store)(manual)
    assert await admit(store, take=False)(manual) is None
    await store.intake.accept([], [], [run.job.alert])
    stop = await admit(store, take=False)(run)
    assert stop == Skip(SkipReason.RESOLVED, "the alert resolved before the job ran")


async def test_inhibited_passes_without_a_blocker_with_equal_labels(store: MemoryStore) -> None:
    other = Alert.model_validate(alert("Storage", service="b"))
    await store.intake.accept([], [other], [])
    assert await Inhibited(store.firing)(make_run()) is None


async def test_inhibited_defers_then_gives_up_after_inhibit_wait(store: MemoryStore) -> None:
    await store.intake.accept([], [Alert.model_validate(alert("Storage", service="a"))], [])
    stop = await Inhibited(store.firing)(make_run())
    assert isinstance(stop, Defer) and stop.reason == "inhibited" and stop.delay is None
    assert stop.message == "waiting: inhibited by Storage{service=a}"
    waited = make_run(deferrals=3, first_deferred_at=time.time() - 61)
    stop = await Inhibited(store.firing)(waited)
    assert stop == Skip(SkipReason.INHIBITED, "inhibited by firing alert Storage{service=a}")


async def test_the_check_only_admission_asks_whether_the_episode_is_done(store: MemoryStore) -> None:
    """Was the EpisodeDone gate: the check-only admission (``store.admit``) asks it now."""
    run = await firing_run(store)
    await paused(store)(run)
    assert await admit(store, take=False)(run) is None
    await store.gates.mark_episode("probe", run.job.alert.episode, 60)
    stop = await admit(store, take=False)(run)
    assert stop == Skip(SkipReason.DUPLICATE, "already remediated for this firing episode")
    manual = make_run(manual=True)
    await paused(store)(manual)
    assert await admit(store, take=False)(manual) is None


async def test_paused_reads_the_pauses_again_only_when_they_changed(store: MemoryStore) -> None:
    gate, run = paused(store), await firing_run(store)
    assert await gate(run) is None and run.pauses_seen == 0
    # a pause added after the check: the admission sees another version, the pauses are
    # read again, and the job is held, with nothing taken
    await store.pauses.add_pause(Pause(reason="maintenance", until=time.time() + 60))
    stop = await Admit(store, Metrics(), gate, "replica-1", take=True)(run)
    assert isinstance(stop, Defer) and stop.hold and stop.message.endswith(": maintenance")
    assert run.token is None and await store.locks.lease_remaining("svc/a") == 0
    # a pause the book still lists but that was lifted: read again before holding anything
    await store.pauses.remove_pause(GLOBAL_PAUSE)
    assert await gate(run) is None and run.pauses_seen == 2


async def test_admit_checks_firing_and_the_episode(store: MemoryStore) -> None:
    run = make_run()  # its alert is not in the firing index: it resolved
    await paused(store)(run)
    assert await admit(store)(run) == Skip(SkipReason.RESOLVED, "the alert resolved before the job ran")
    run = await firing_run(store)
    await store.gates.mark_episode("probe", run.job.alert.episode, 60)
    await paused(store)(run)
    assert await admit(store)(run) == Skip(SkipReason.DUPLICATE, "already remediated for this firing episode")
    manual = make_run(manual=True)  # a replay is neither: it runs
    await paused(store)(manual)
    assert await admit(store)(manual) is None and manual.token is not None


async def test_cooldown(store: MemoryStore) -> None:
    run = await firing_run(store)
    await paused(store)(run)
    assert await admit(store, take=False)(run) is None
    await store.gates.set_cooldown("probe", "svc/a", 600)
    stop = await admit(store)(run)
    assert isinstance(stop, Skip) and stop.reason is SkipReason.COOLDOWN
    assert stop.message.startswith("in cooldown for ")
    assert stop.message.endswith(" more (replay with --ignore-cooldown to override)")
    assert run.token is None and await store.locks.lease_remaining("svc/a") == 0
    replay = make_run(ignore_cooldown=True, manual=True)
    await paused(store)(replay)
    assert await admit(store)(replay) is None


async def test_circuit(store: MemoryStore) -> None:
    metrics = Metrics()
    run = await firing_run(store)
    await paused(store)(run)
    assert await admit(store, metrics, take=False)(run) is None
    for _ in range(2):
        await store.gates.record_failure("probe", "svc/a", 3600, 2)
    stop = await admit(store, metrics)(run)
    assert isinstance(stop, Skip) and stop.reason is SkipReason.CIRCUIT_OPEN
    assert stop.message.startswith("circuit open after 2 failures; closes in ")
    assert metrics.registry.get_sample_value("remediator_circuit_open", {"rule": "probe"}) == 1
    replay = make_run(ignore_circuit=True, manual=True)
    await paused(store)(replay)
    assert await admit(store, metrics)(replay) is None


async def test_lease_taken_and_released(store: MemoryStore) -> None:
    run = await firing_run(store)
    await paused(store)(run)
    assert await admit(store)(run) is None
    assert run.token is not None and await store.locks.lease_holder("svc/a") == "e1"
    assert [s.name for s in run.timeline] == ["lease.acquired"]
    await release(store.locks, run)
    assert run.token is None and await store.locks.lease_remaining("svc/a") == 0


async def test_checking_only_takes_nothing(store: MemoryStore) -> None:
    run = await firing_run(store)
    await paused(store)(run)
    assert await admit(store, take=False)(run) is None
    assert run.token is None and run.slot is None and await store.locks.lease_remaining("svc/a") == 0


async def test_lease_held_merges_the_job_into_the_holder(store: MemoryStore) -> None:
    assert await store.locks.acquire_lease("svc/a", 60, "holder1")
    metrics = Metrics()
    run = await firing_run(store)
    await paused(store)(run)
    stop = await admit(store, metrics)(run)
    assert stop == Skip(
        SkipReason.LOCKED, "merged into event holder1 running on target svc/a (see: remediator event holder1)"
    )
    assert run.token is None and [s.name for s in run.timeline] == ["lease.held"]
    assert metrics.registry.get_sample_value("remediator_lease_contention_total", {"rule": "probe"}) == 1


async def test_lease_held_defers_a_redelivered_job(store: MemoryStore) -> None:
    assert await store.locks.acquire_lease("svc/a", 60, "holder1")
    run = await firing_run(store, deliveries=2)
    await paused(store)(run)
    stop = await admit(store)(run)
    assert isinstance(stop, Defer) and stop.reason == "locked"
    assert stop.message == "waiting for a stale lease"


async def test_concurrency_slot(store: MemoryStore) -> None:
    run = await firing_run(store)
    await paused(store)(run)
    assert await admit(store)(run) is None and run.slot is not None
    other = await firing_run(store, {"service": "b"})
    await paused(store)(other)
    stop = await admit(store)(other)
    assert stop == Skip(SkipReason.CONCURRENCY, "concurrency group 'storage' is at its limit (1)")
    assert other.slot is None and other.token is None and await store.locks.lease_remaining("svc/b") == 0
    await release(store.locks, run)
    assert await admit(store)(other) is None
