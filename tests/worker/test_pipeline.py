"""Each gate and each outcome of the worker pipeline, on a running app."""

import asyncio
import time

import pytest
import structlog

from remediator.intake import ManualOptions
from remediator.models import Job, WebhookPayload
from remediator.store.memory import MemoryStore
from remediator.store.memory.locks import MemoryLocks
from remediator.store.values import GLOBAL_PAUSE, Delivery, Pause
from tests.conftest import MakeHarness
from tests.support.handlers import RUNS
from tests.support.payloads import alert, payload
from tests.support.recording import RecordingNotifier

# The memory store and the gates on looptime's clock: their waits pass without real sleeps.
pytestmark = pytest.mark.looptime

RULES = """
defaults:
  cooldown: 10m
  max_attempts: 2
  attempt_window: 1h
concurrency_limits: {storage: 1}
rules:
  - name: probe
    matchers: ['alertname="Probe"']
    handler: test.probe
    target: 'svc/{{ labels.service }}'
    params: {bucket: '{{ labels.service }}', outcome: '{{ labels.outcome | default("succeeded") }}',
             sleep: '{{ labels.sleep | default(0) }}'}
    escalate: '<!subteam^S123>'
  - name: dry
    matchers: ['alertname="Dry"']
    handler: test.probe
    target: 'dry/{{ labels.service }}'
    params: {bucket: dry}
    dry_run: true
  - name: dry-far
    matchers: ['alertname="DryFar"']
    handler: test.probe
    target: 'far/x'
    params: {bucket: far, unreachable: true}
    dry_run: true
  - name: deferred
    matchers: ['alertname="Downstream"']
    handler: test.probe
    target: 'down/x'
    params: {bucket: downstream}
    inhibited_by: ['alertname="Storage"']
    inhibit_wait: 30s
  - name: impatient
    matchers: ['alertname="Impatient"']
    handler: test.probe
    target: 'imp/x'
    params: {bucket: impatient}
    inhibited_by: ['alertname="Storage"']
    inhibit_wait: 0s
  - name: grouped
    matchers: ['alertname="Grouped"']
    handler: test.probe
    target: 'grp/{{ labels.service }}'
    params: {bucket: grouped}
    concurrency_group: storage
  - name: grouped-slow
    matchers: ['alertname="GroupedSlow"']
    handler: test.probe
    target: 'grp/{{ labels.service }}'
    params: {bucket: grouped-slow, sleep: '{{ labels.sleep | default(0) }}'}
    concurrency_group: storage
    lease: 300ms
  - name: slow
    matchers: ['alertname="Slow"']
    handler: test.probe
    target: 'slow/x'
    params: {bucket: slow, sleep: 5}
    timeout: 300ms
  - name: on-resolved
    matchers: ['alertname="Flappy"']
    handler: test.probe
    target: 'flap/x'
    params: {bucket: flap}
    on_resolved: run
"""


async def started(buckets: list[str], within: float = 10.0) -> None:
    """Until the probe handler has run for each bucket."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if all(RUNS[b] for b in buckets):
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"the handler never started for {buckets}")


async def outcome(h, body) -> str:  # type: ignore[no-untyped-def]
    return str((await h.event(await h.post_one(body))).outcome_label)


async def test_success_sets_cooldown_and_marks_episode(harness: MakeHarness) -> None:
    h = await harness(RULES)
    first = await h.event(await h.post_one(payload(alert("Probe", service="a"))))
    assert first.outcome_label == "succeeded" and first.target == "svc/a"
    names = [s.name for s in first.timeline]
    assert names[0] == "received" and "lease.acquired" in names and names[-1] == "outcome"
    assert "handler.started" in names and "act" in names
    # The same firing episode again (an Alertmanager HA twin or a repeat): collapsed at intake.
    again = await h.post(payload(alert("Probe", service="a")))
    assert again.status == 202 and (await again.json())["deduplicated"] == 1
    # Another alert on the same target: cooldown.
    assert await outcome(h, payload(alert("Probe", service="a", pod="p2"))) == "skipped:cooldown"
    assert len(RUNS["a"]) == 1


async def test_noop_and_dry_run(harness: MakeHarness) -> None:
    h = await harness(RULES)
    assert await outcome(h, payload(alert("Probe", service="n", outcome="noop"))) == "noop"
    event = await h.event(await h.post_one(payload(alert("Dry", service="a"))))
    assert event.outcome_label == "dry_run" and event.plan == ["probe dry"] and event.dry_run
    assert RUNS["dry"][0]["dry_run"] is True


async def test_dry_run_shows_the_plan_when_the_precheck_cannot_run(harness: MakeHarness) -> None:
    h = await harness(RULES)
    event = await h.event(await h.post_one(payload(alert("DryFar"))))
    assert event.outcome_label == "dry_run" and event.plan == ["probe far -> succeeded"]
    assert event.details["precheck_error"] == "far: connection refused"
    assert "the precheck failed" in event.message
    assert await h.svc.store.gates.circuit_remaining("dry-far", "far/x") == 0


async def test_a_lease_loser_says_which_event_it_was_merged_into(harness: MakeHarness) -> None:
    h = await harness(RULES)
    first = await h.post_one(payload(alert("Probe", service="m", sleep="1")))
    await started(["m"])
    second = await h.post_one(payload(alert("Probe", service="m", replica="b")))
    loser = await h.event(second)
    assert loser.outcome_label == "skipped:locked"
    assert loser.message == (
        f"merged into event {first} running on target svc/m (see: remediator event {first})"
    )
    assert any(s.name == "lease.held" and s.data["holder"] == first for s in loser.timeline)
    assert (await h.event(first)).outcome_label == "succeeded"


async def test_a_dry_run_precheck_failure_is_not_logged_as_an_error(harness: MakeHarness) -> None:
    h = await harness(RULES)
    with structlog.testing.capture_logs() as logs:
        event = await h.event(await h.post_one(payload(alert("DryFar"))))
    assert event.outcome_label == "dry_run"
    # Issue 25 (item 12): expected in a dry run, so not logged by the executor; the
    # outcome's one line (info) says why the plan is from the params alone
    assert [e for e in logs if e["event"] == "remediation.handler_error"] == []
    [dry_run] = [e for e in logs if e["event"] == "remediation.dry_run"]
    assert dry_run["log_level"] == "info" and "the precheck failed" in dry_run["message"]
    assert [e["event"] for e in logs if e["log_level"] in ("warning", "error")] == []


async def test_global_dry_run_wins(harness: MakeHarness) -> None:
    h = await harness(RULES, dry_run=True)
    assert await outcome(h, payload(alert("Probe", service="g"))) == "dry_run"
    assert await h.svc.store.gates.cooldown_remaining("probe", "svc/g") == 0


async def test_failures_open_the_circuit_and_escalate(harness: MakeHarness) -> None:
    recorder = RecordingNotifier()
    sent = recorder.notices
    h = await harness(RULES, notifier=recorder)
    first = await h.event(await h.post_one(payload(alert("Probe", service="f", outcome="failed"))))
    assert first.outcome_label == "failed" and first.details["failures_in_window"] == 1
    second = await h.event(await h.post_one(payload(alert("Probe", service="f", outcome="failed", try_="2"))))
    assert second.outcome_label == "failed" and "circuit.opened" in [s.name for s in second.timeline]
    escalations = [n for n in sent if n.kind == "escalated"]
    assert len(escalations) == 1 and escalations[0].escalate == "<!subteam^S123>"
    assert escalations[0].failures == 2 and escalations[0].message == "it did not recover"
    third = await outcome(h, payload(alert("Probe", service="f", outcome="failed", try_="3")))
    assert third == "skipped:circuit_open"
    assert len(RUNS["f"]) == 2
    text = await (await h.client.get("/metrics")).text()
    assert 'remediator_circuit_open{rule="probe"} 1.0' in text
    assert [n.kind for n in sent].count("started") == 2


async def test_handler_exception_and_permanent_error(harness: MakeHarness) -> None:
    h = await harness(RULES)
    crashed = await h.event(await h.post_one(payload(alert("Probe", service="c", outcome="raise"))))
    assert crashed.outcome_label == "failed"
    assert crashed.message == "handler raised RuntimeError: boom"
    gone = await h.event(await h.post_one(payload(alert("Probe", service="p", outcome="permanent"))))
    assert gone.message == "target is gone" and gone.details["code"] == 404


async def test_handler_timeout(harness: MakeHarness) -> None:
    h = await harness(RULES)
    started = time.monotonic()
    event = await h.event(await h.post_one(payload(alert("Slow"))))
    assert event.outcome_label == "failed" and "timed out after 0.3s" in event.message
    assert time.monotonic() - started < 4


async def test_missing_label_fails_with_reason(harness: MakeHarness) -> None:
    h = await harness(RULES)
    event = await h.event(await h.post_one(payload(alert("Probe"))))
    assert event.outcome_label == "failed"
    assert "no label or annotation 'service'" in event.message
    assert RUNS == {}


async def test_paused(harness: MakeHarness) -> None:
    # Issue 16 changed this test: a webhook job that meets the pause is held, not
    # skipped (on_pause: hold, the default); it runs once the pause is lifted.
    h = await harness(RULES)
    await h.svc.store.pauses.add_pause(Pause(reason="maintenance", until=time.time() + 60))
    event_id = await h.post_one(payload(alert("Probe", service="a")))
    deadline = time.time() + 5
    while (state := await h.svc.store.jobs.job_state(event_id)) is None or state.state != "held":
        assert time.time() < deadline, state
        await asyncio.sleep(0.02)
    assert "maintenance" in state.why and RUNS == {}
    assert await h.svc.store.audit.get_event(event_id) is None
    await h.svc.store.pauses.remove_pause(GLOBAL_PAUSE)
    event = await h.event(event_id)
    assert event.outcome_label == "succeeded"


async def test_resolved_before_it_ran(harness: MakeHarness) -> None:
    h = await harness(RULES)
    firing = alert("Probe", service="r")
    resolved = dict(firing, status="resolved", endsAt="2026-11-28T10:01:00Z")
    response = await h.post(payload(firing, resolved))
    ids = (await response.json())["event_ids"]
    outcomes = sorted([(await h.event(i)).outcome_label for i in ids])
    assert outcomes == ["skipped:resolved", "skipped:resolved"]
    assert RUNS == {}


async def test_a_resolution_is_announced_once(harness: MakeHarness) -> None:
    """An Alertmanager HA pair sends `resolved` twice: one announcement; the copy is
    collapsed at intake (issue 17)."""
    recorder = RecordingNotifier()
    sent = recorder.notices
    h = await harness(RULES, notifier=recorder)
    resolved = payload(dict(alert("Probe", service="z"), status="resolved"))
    assert await outcome(h, resolved) == "skipped:resolved"
    again = await h.post(resolved)
    assert again.status == 202 and (await again.json())["deduplicated"] == 1
    assert [n.kind for n in sent] == ["resolved"]


async def test_on_resolved_run(harness: MakeHarness) -> None:
    h = await harness(RULES)
    body = payload(dict(alert("Flappy"), status="resolved"))
    assert await outcome(h, body) == "succeeded"
    assert len(RUNS["flap"]) == 1


async def test_inhibited_job_waits_then_runs(harness: MakeHarness) -> None:
    h = await harness(RULES)
    storage = alert("Storage", cluster="ch")
    await h.post(payload(storage))
    event_id = await h.post_one(payload(alert("Downstream")))
    await asyncio.sleep(0.3)
    assert await h.svc.store.audit.get_event(event_id) is None  # still waiting, not dropped
    assert RUNS["downstream"] == []
    await h.post(payload(dict(storage, status="resolved")))
    event = await h.event(event_id)
    assert event.outcome_label == "succeeded"
    assert "deferred" in [s.name for s in event.timeline]


async def test_inhibited_gives_up_after_inhibit_wait(harness: MakeHarness) -> None:
    h = await harness(RULES)
    await h.post(payload(alert("Storage", cluster="ch")))
    event = await h.event(await h.post_one(payload(alert("Impatient"))))
    assert event.outcome_label == "skipped:inhibited" and "Storage" in event.message


SCOPED = """\
  - name: scoped
    matchers: ['alertname="Scoped"']
    handler: test.probe
    target: 'scoped/{{ labels.namespace }}'
    params: {bucket: scoped}
    inhibited_by: ['alertname="Storage"']
    inhibit_equal: [namespace]
    inhibit_wait: 0s
"""


async def test_inhibit_equal_blocks_only_with_equal_labels(harness: MakeHarness) -> None:
    h = await harness(RULES + SCOPED)
    await h.post(payload(alert("Storage", namespace="a")))
    other = await h.event(await h.post_one(payload(alert("Scoped", namespace="b"))))
    assert other.outcome_label == "succeeded", other.message
    same = await h.event(await h.post_one(payload(alert("Scoped", namespace="a"))))
    assert same.outcome_label == "skipped:inhibited"
    assert "inhibited by firing alert Storage{namespace=a}" in same.message


async def test_locked(harness: MakeHarness) -> None:
    h = await harness(RULES)
    token = await h.svc.store.locks.acquire_lease("svc/l", 60)
    assert token
    assert await outcome(h, payload(alert("Probe", service="l"))) == "skipped:locked"
    text = await (await h.client.get("/metrics")).text()
    assert 'remediator_lease_contention_total{rule="probe"} 1.0' in text


async def test_concurrency_budget(harness: MakeHarness) -> None:
    h = await harness(RULES)
    assert await h.svc.store.locks.acquire_slot("storage", 1, "someone-else", 60)
    assert await outcome(h, payload(alert("Grouped", service="a"))) == "skipped:concurrency"
    await h.svc.store.locks.release_slot("storage", "someone-else")
    assert await outcome(h, payload(alert("Grouped", service="b"))) == "succeeded"


async def test_a_long_handler_keeps_its_concurrency_slot(harness: MakeHarness) -> None:
    """The slot is extended with the lease: a run longer than the lease still holds it."""
    h = await harness(RULES, heartbeat=0.05)
    first = await h.post_one(payload(alert("GroupedSlow", service="a", sleep="1.2")))
    await asyncio.sleep(0.8)  # well past the 300ms lease, the handler still runs
    assert await outcome(h, payload(alert("GroupedSlow", service="b"))) == "skipped:concurrency"
    assert (await h.event(first)).outcome_label == "succeeded"


async def test_lease_lost_stops_the_handler(harness: MakeHarness) -> None:
    class LosingLocks(MemoryLocks):
        async def extend_lease(self, target: str, token: str, ttl: float) -> bool:
            return False

    losing = MemoryStore()
    losing.locks = LosingLocks()

    rules = RULES.replace("  - name: slow\n", "  - name: slow\n    lease: 300ms\n").replace(
        "timeout: 300ms", "timeout: 10s"
    )
    h = await harness(rules, store=losing, heartbeat=0.05)
    event = await h.event(await h.post_one(payload(alert("Slow"))))
    assert event.outcome_label == "failed" and "lease lost" in event.message
    assert event.details["lease_lost"] is True
    assert await h.svc.store.gates.circuit_remaining("slow", "slow/x") == 0
    assert "failures_in_window" not in event.details  # not the target's fault: not counted


async def test_manual_replay_bypasses_duplicate_not_cooldown(harness: MakeHarness) -> None:
    h = await harness(RULES)
    body = payload(alert("Probe", service="m"))
    assert await outcome(h, body) == "succeeded"
    parsed = WebhookPayload.model_validate(body)
    manual = await h.svc.intake.accept(parsed, ManualOptions(note="again"))
    event = await h.event(manual.event_ids[0])
    assert event.outcome_label == "skipped:cooldown" and event.manual and event.note == "again"
    forced = await h.svc.intake.accept(parsed, ManualOptions(ignore_cooldown=True))
    assert (await h.event(forced.event_ids[0])).outcome_label == "succeeded"
    assert len(RUNS["m"]) == 2


async def test_dead_letter_after_too_many_deliveries(harness: MakeHarness) -> None:
    h = await harness(RULES, max_deliveries=3)
    job = Job(
        event_id="deadbeef0001",
        rule="probe",
        received_at=time.time(),
        alert=WebhookPayload.model_validate(payload(alert("Probe", service="d"))).alerts[0],
    )
    await h.pipeline().process(Delivery("1-1", job, 4), "w")
    event = await h.event("deadbeef0001")
    assert event.outcome_label == "failed" and "dead-lettered after 4 deliveries" in event.message
    assert (await h.svc.store.queue.dead_letters(10))[0]["event_id"] == "deadbeef0001"
    text = await (await h.client.get("/metrics")).text()
    assert "remediator_dead_letters_total 1.0" in text
    assert RUNS == {}


async def test_a_shutdown_interrupts_a_long_handler_and_the_job_runs_again(harness: MakeHarness) -> None:
    store = MemoryStore()
    first = await harness(RULES, store=store, shutdown_grace=0.2)
    event_id = await first.post_one(payload(alert("Probe", service="sd", sleep="1")))
    await started(["sd"])
    with structlog.testing.capture_logs() as logs:
        await first.client.close()  # stops the app: the handler outlives SHUTDOWN_GRACE
    [interrupted] = [e for e in logs if e["event"] == "remediation.interrupted"]
    assert interrupted["log_level"] == "warning" and interrupted["event_id"] == event_id
    assert interrupted["fingerprint"] and interrupted["stage"] == "act"
    assert await store.audit.get_event(event_id) is None  # no outcome: the job is not lost
    assert await store.queue.queue_depth() == 1

    second = await harness(RULES, store=store, reclaim_idle=0.1)
    event = await second.event(event_id, timeout=15)
    assert event.outcome_label == "succeeded" and len(RUNS["sd"]) == 2
    names = [step.name for step in event.timeline]
    assert names[: names.index("outcome")] == [
        "received",
        "lease.acquired",
        "handler.started",
        "act",
        "interrupted",
        "received",
        "lease.acquired",
        "handler.started",
        "act",
        "handler.finished",
    ]
    [step] = [s for s in event.timeline if s.name == "interrupted"]
    assert step.message.startswith("interrupted by the shutdown of replica ")
    assert "SHUTDOWN_GRACE 200ms ran out" in step.message and step.data["stage"] == "act"
    assert await store.audit.take_timeline(event_id) is None  # used up


async def test_the_memory_store_caps_are_settings_and_counted(harness: MakeHarness) -> None:
    h = await harness(RULES, memory_max_firing=100, memory_max_episodes=100, workers=0)
    alerts = [alert("Unmatched", service=f"cap-{i}") for i in range(130)]
    response = await h.post(payload(*alerts))
    assert response.status == 202
    store = h.svc.store
    assert isinstance(store, MemoryStore) and store.sizes()["firing"] == 100
    assert (
        h.svc.metrics.registry.get_sample_value("remediator_store_evictions_total", {"kind": "firing"}) == 30
    )


async def test_a_resolution_is_announced_once_per_target_after_the_outcome(harness: MakeHarness) -> None:
    """Issue 25 (item 14): two pods of one target resolve as one announcement, and one
    that resolves while the run on its target still verifies waits for the outcome."""
    recorder = RecordingNotifier()
    sent = recorder.notices
    h = await harness(RULES, notifier=recorder)
    pod_a = alert("Probe", service="db", pod="a", sleep="0.4")
    pod_b = alert("Probe", service="db", pod="b", sleep="0.4")
    [acting, merged] = (await (await h.post(payload(pod_a, pod_b))).json())["event_ids"]
    await started(["db"])
    resolved = [dict(pod_a, status="resolved"), dict(pod_b, status="resolved")]
    response = await h.post(payload(*resolved))  # while the run still holds the lease
    assert response.status == 202
    gone = [await h.event(event_id) for event_id in (await response.json())["event_ids"]]
    assert {e.outcome_label for e in gone} == {"skipped:resolved"}
    assert (await h.event(acting)).outcome_label == "succeeded"
    assert (await h.event(merged)).outcome_label == "skipped:locked"
    kinds = [n.kind for n in sent if n.target == "svc/db" and n.kind in ("outcome", "resolved")]
    assert kinds == ["outcome", "resolved"]  # once, and after the outcome
    # the next incident on the target is announced again when it resolves
    again = alert("Probe", starts_at="2026-11-29T10:00:00Z", service="db", pod="a")
    parsed = WebhookPayload.model_validate(payload(again))
    replay = await h.svc.intake.accept(parsed, ManualOptions(ignore_cooldown=True))
    assert (await h.event(replay.event_ids[0])).outcome_label == "succeeded"
    assert await outcome(h, payload(dict(again, status="resolved"))) == "skipped:resolved"
    assert [n.kind for n in sent if n.target == "svc/db"].count("resolved") == 2


def test_the_pipeline_is_one_list_of_stages() -> None:
    """Render, the gates, the admissions, approval, act and outcome, in this order."""
    from remediator.handling.context import Resources
    from remediator.metrics import Metrics
    from remediator.rules.ruleset import RuleSet
    from remediator.settings import Settings
    from remediator.worker.pipeline import Pipeline

    settings = Settings()
    pipeline = Pipeline(
        store=MemoryStore(),
        rules=lambda: RuleSet([], "rules.yaml", "hash"),
        notifier=RecordingNotifier(),
        metrics=Metrics(),
        resources=Resources(settings),
        settings=settings,
        replica="r",
    )
    names = [type(stage).__name__ for stage in pipeline.stages]
    assert names == [
        "Render",
        "StaleLease",
        "AnnounceResolution",
        "ResolvedIgnored",
        "ResolveOwner",
        "Paused",
        "Admit",
        "Inhibited",
        "GatherContext",
        "Precheck",
        "AwaitingApproval",
        "Admit",
        "Brake",
        "Act",
        "OutcomeStage",
    ]
    assert [stage.take for stage in pipeline.stages if hasattr(stage, "take")] == [False, True]
