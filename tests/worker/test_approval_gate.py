"""The approval gate on its own (memory store, no HTTP), then on a running app: wait,
approve, reject, time out, and an alert that resolves while it waits."""

from __future__ import annotations

import asyncio
import time

import pytest
import structlog

from remediator.models import Alert, Job, SkipReason
from remediator.rules.ruleset import Rule, parse_rules, render
from remediator.settings import Settings
from remediator.store.memory import MemoryStore
from remediator.store.values import Delivery
from remediator.worker.approval import AwaitingApproval, decide, scope_of
from remediator.worker.runs import Run
from remediator.worker.stages import Defer, Skip
from remediator.worker.telling import Teller
from tests.conftest import MakeHarness
from tests.support.handlers import ACTS, gated_rule, make_registry
from tests.support.payloads import alert, payload
from tests.support.recording import RecordingNotifier

# The memory store and the gates on looptime's clock: their waits pass without real sleeps.
pytestmark = pytest.mark.looptime

RULES = (
    "rules:\n"
    + gated_rule("2s")
    + """\
  - name: gated-dry
    matchers: ['alertname="GatedDry"']
    handler: test.probe
    target: 'dry/{{ labels.service }}'
    params: {bucket: dry}
    dry_run: true
    approval: {timeout: 1h, approvers: [U0ALICE]}
  - name: not-required
    matchers: ['alertname="Free"']
    handler: test.probe
    target: 'free/{{ labels.service }}'
    params: {bucket: free}
    approval: {required: false}
"""
)


def rule(name: str = "gated") -> Rule:
    found = parse_rules(RULES.encode(), "approval.yaml", make_registry()).get(name)
    assert found is not None
    return found


def make_run(event_id: str = "e1", *, name: str = "Gated", rule_name: str = "gated", **job: object) -> Run:
    firing = Alert.model_validate(alert(name, service="a"))
    the_rule = rule(rule_name)
    run = Run(
        delivery=Delivery(
            "1-1", Job(event_id=event_id, rule=the_rule.name, alert=firing, received_at=time.time(), **job), 1
        ),
        consumer="w",
        log=structlog.get_logger(),
    )
    run.rule = the_rule
    run.plan = render(the_rule, firing)
    return run


@pytest.fixture
def recorder() -> RecordingNotifier:
    return RecordingNotifier()


@pytest.fixture
def gate(recorder: RecordingNotifier) -> AwaitingApproval:
    store = MemoryStore()
    settings = Settings(defer_interval=0.05)
    return AwaitingApproval(store.approvals, settings, Teller(recorder))


async def test_a_rule_without_a_required_approval_or_a_dry_run_passes(gate: AwaitingApproval) -> None:
    assert await gate(make_run(name="Free", rule_name="not-required")) is None
    assert await gate(make_run(name="GatedDry", rule_name="gated-dry")) is None
    assert await gate(make_run(dry_run=True)) is None
    assert await gate.approvals.list_approvals(10) == []


async def test_asked_once_then_deferred_until_approved(
    gate: AwaitingApproval, recorder: RecordingNotifier
) -> None:
    run = make_run("e1")
    stop = await gate(run)
    assert isinstance(stop, Defer) and stop.reason == "approval"
    assert stop.job == run.job.model_copy(update={"approval": "e1"})
    assert stop.message.startswith("awaiting approval by U0ALICE, S0ONCALL (")
    assert [s.name for s in run.timeline] == ["approval.requested"]
    assert [n.kind for n in recorder.notices] == ["approval"]
    asked = recorder.notices[0].approval
    assert asked is not None and asked.plan == ("probe a -> succeeded",) and asked.target == "svc/a"
    # The HA twin (another job of the same alert) waits on the same request: no second message.
    twin = make_run("e2")
    stop = await gate(twin)
    assert isinstance(stop, Defer) and [s.name for s in twin.timeline] == ["approval.awaiting"]
    assert twin.timeline[0].message == "waits for the approval asked by event e1"
    later = make_run("e1", deferrals=3, approval="e1")  # as the first pass queued it
    stop = await gate(later)
    assert isinstance(stop, Defer) and stop.job is None and later.timeline == []
    assert len(recorder.notices) == 1
    assert (await decide(gate.approvals, "e1", "approved", "alice", "go ahead")).recorded
    approved = make_run("e1", deferrals=4)
    assert await gate(approved) is None
    assert [(s.name, s.message) for s in approved.timeline] == [
        ("approval.approved", "approved by alice: go ahead")
    ]
    assert approved.timeline[0].data["by"] == "alice"
    assert await gate(make_run("e2", deferrals=1)) is None  # the twin too (the lease dedupes)


async def test_rejected_is_skipped(gate: AwaitingApproval) -> None:
    await gate(make_run("e1"))
    await decide(gate.approvals, "e1", "rejected", "bob", "not during the freeze")
    stop = await gate(make_run("e1", deferrals=1))
    assert stop == Skip(SkipReason.REJECTED, "rejected by bob: not during the freeze")
    # A second decision changes nothing.
    result = await decide(gate.approvals, "e1", "approved", "alice")
    assert not result.changed and result.approval is not None and result.approval.decision == "rejected"


async def test_no_decision_before_the_timeout(gate: AwaitingApproval, recorder: RecordingNotifier) -> None:
    run = make_run("e1")
    await gate(run)
    await asyncio.sleep(2.1)
    # A click that comes too late only finds it expired.
    result = await decide(gate.approvals, "e1", "approved", "alice")
    assert result.expired and not result.recorded
    assert result.approval is not None and result.approval.decision == "expired"
    stop = await gate(make_run("e1", deferrals=5))
    assert stop == Skip(SkipReason.NOT_APPROVED, "not approved within 2s")


async def test_the_gate_expires_the_request_and_updates_the_message_once(
    gate: AwaitingApproval, recorder: RecordingNotifier
) -> None:
    await gate(make_run("e1"))
    await asyncio.sleep(2.1)
    for event_id in ("e1", "e2"):
        stop = await gate(make_run(event_id, deferrals=5))
        assert isinstance(stop, Skip) and stop.reason is SkipReason.NOT_APPROVED
    assert [n.kind for n in recorder.notices] == ["approval", "approval_decided"]


async def test_a_job_stopped_by_another_gate_withdraws_its_request(
    gate: AwaitingApproval, recorder: RecordingNotifier
) -> None:
    stop = await gate(make_run("e1"))
    assert isinstance(stop, Defer) and stop.job is not None
    waiting = make_run("e1", deferrals=1, approval="e1")
    await gate.withdraw(waiting, Skip(SkipReason.RESOLVED, "the alert resolved before the job ran"))
    found = await gate.approvals.get_approval("e1")
    assert found is not None and (found.decision, found.decided_by) == ("withdrawn", "remediator")
    assert [n.kind for n in recorder.notices] == ["approval", "approval_decided"]
    await gate.withdraw(waiting, Skip(SkipReason.RESOLVED, "again"))  # decided: nothing more
    assert len(recorder.notices) == 2


async def test_scope_is_the_firing_episode_or_the_manual_job() -> None:
    run = make_run("e1")
    assert scope_of(run) == f"gated|svc/a|{run.job.alert.episode}"
    assert scope_of(make_run("e2", manual=True)) == "gated|svc/a|event:e2"


# ---- on a running app ------------------------------------------------------------------
async def pending(h, event_id: str, within: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + within
    while await h.svc.store.approvals.get_approval(event_id) is None:
        assert time.monotonic() < deadline, "the approval was never asked"
        await asyncio.sleep(0.02)


async def test_approved_runs_once_with_the_decision_in_the_timeline(harness: MakeHarness) -> None:
    h = await harness(RULES)
    first = await h.post_one(payload(alert("Gated", service="a")))
    await pending(h, first)
    twin = await h.post(payload(alert("Gated", service="a")))  # the HA pair's other copy
    assert twin.status == 202 and (await twin.json())["deduplicated"] == 1  # collapsed at intake
    await asyncio.sleep(0.3)
    assert ACTS["a"] == [] and await h.svc.store.audit.get_event(first) is None
    await decide(h.svc.store.approvals, first, "approved", "alice", "")
    event = await h.event(first)
    assert event.outcome_label == "succeeded"
    names = [s.name for s in event.timeline]
    assert (
        names.index("approval.requested") < names.index("approval.approved") < names.index("handler.started")
    )
    assert event.details["deduplicated"] == 1 and "deduplicated" in names
    assert len(ACTS["a"]) == 1


async def test_timeout_ends_not_approved(harness: MakeHarness) -> None:
    h = await harness(RULES)
    event_id = await h.post_one(payload(alert("Gated", service="t")))
    event = await h.event(event_id, timeout=10)
    assert event.outcome_label == "skipped:not_approved"
    assert event.message == "not approved within 2s"
    assert ACTS["t"] == []


async def test_approved_after_the_alert_resolved_is_skipped_resolved(harness: MakeHarness) -> None:
    h = await harness(RULES, defer_interval=0.5)
    event_id = await h.post_one(payload(alert("Gated", service="r")))
    await pending(h, event_id)
    resolved = await h.post(payload(alert("Gated", status="resolved", service="r")))
    assert resolved.status == 202
    await decide(h.svc.store.approvals, event_id, "approved", "alice", "")
    event = await h.event(event_id)
    assert event.outcome_label == "skipped:resolved"
    assert ACTS["r"] == []
    found = await h.svc.store.approvals.get_approval(event_id)
    assert found is not None and found.decision in ("approved", "withdrawn")


async def test_the_jobs_view_shows_a_job_awaiting_approval(harness: MakeHarness) -> None:
    h = await harness(RULES)
    event_id = await h.post_one(payload(alert("Gated", service="a")))
    await pending(h, event_id)
    deadline = time.monotonic() + 5.0
    while (state := await h.svc.store.jobs.job_state(event_id)) is None or state.state != "awaiting_approval":
        assert time.monotonic() < deadline, f"never shown as awaiting approval: {state}"
        await asyncio.sleep(0.02)
    assert "approv" in state.why
    assert [j.event_id for j in await h.svc.store.jobs.job_states("awaiting_approval", 10)] == [event_id]
    await decide(h.svc.store.approvals, event_id, "rejected", "alice", "")
    assert (await h.event(event_id)).outcome_label == "skipped:rejected"


async def test_an_approved_run_is_received_once_and_logs_no_interruption(harness: MakeHarness) -> None:
    """Issue 25 (items 11, 12): the passes of a job that waits for approval are one run,
    received once; only a real interruption logs remediation.resumed_after_interruption."""
    h = await harness(RULES)
    with structlog.testing.capture_logs() as logs:
        event_id = await h.post_one(payload(alert("Gated", service="once")))
        await pending(h, event_id)
        await asyncio.sleep(0.3)  # several passes while it waits (DEFER_INTERVAL 50ms)
        await decide(h.svc.store.approvals, event_id, "approved", "alice", "")
        event = await h.event(event_id)
    names = [s.name for s in event.timeline]
    assert event.outcome_label == "succeeded" and names.count("received") == 1
    assert names[:3] == ["received", "precheck", "approval.requested"]
    assert [e for e in logs if e["event"] == "remediation.resumed_after_interruption"] == []
