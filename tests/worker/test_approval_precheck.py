"""The approval after the precheck (issue 28, item 4): the request carries the target's
state as the first step's precheck saw it and the whole chain; a precheck that finds
nothing to do ends ``noop`` without asking anyone; after the approval the precheck runs
again, under the lease, before acting."""

from __future__ import annotations

import asyncio
import time

import pytest

from remediator.notify.notice import Notice
from remediator.notify.slack.approvals import approval_blocks
from remediator.store.values import Approval
from remediator.worker.approval import decide
from tests.conftest import Harness, MakeHarness
from tests.support.handlers import ACTS, RUNS
from tests.support.payloads import alert, payload
from tests.support.recording import RecordingNotifier

pytestmark = pytest.mark.looptime


def rules(first: str) -> str:
    return f"""
rules:
  - name: gated-chain
    matchers: ['alertname="Gated"']
    target: 'svc/{{{{ labels.service }}}}'
    approval: {{timeout: 1h, approvers: [U0ALICE]}}
    steps:
      - {{handler: test.probe, params: {{{first}}}, on_failure: next}}
      - {{handler: test.probe, params: {{bucket: restart}}}}
"""


async def asked(h: Harness, event_id: str) -> Approval:
    """The request the job stored, once it asked."""
    deadline = time.monotonic() + 5
    while (found := await h.svc.store.approvals.get_approval(event_id)) is None:
        assert time.monotonic() < deadline, "the approval was never asked"
        await asyncio.sleep(0.02)
    return found


async def test_the_approval_shows_the_precheck_and_the_whole_chain(harness: MakeHarness) -> None:
    notifier = RecordingNotifier()
    h = await harness(rules("bucket: reconnect"), notifier=notifier)
    event_id = await h.post_one(payload(alert("Gated", service="a")))
    approval = await asked(h, event_id)
    assert approval.precheck == "probe reconnect reachable"
    assert approval.plan == (
        "step 1/2 test.probe (on success: next, on failure: next): probe reconnect -> succeeded",
        "step 2/2 test.probe: probe restart -> succeeded",
    )
    assert len(RUNS["reconnect"]) == 1 and ACTS == {}  # looked, did nothing
    [notice] = notifier.of_kind("approval")
    shown = str(approval_blocks(notice))
    assert "*The target now* (its precheck)\\nprobe reconnect reachable" in shown
    assert "step 2/2 test.probe" in shown and "test.probe → test.probe" in shown
    await decide(h.svc.store.approvals, event_id, "approved", "alice")
    event = await h.event(event_id)
    assert event.outcome_label == "succeeded", event.message
    assert len(RUNS["reconnect"]) == 2  # the precheck again, under the lease, before acting
    assert len(ACTS["reconnect"]) == 1 and len(ACTS["restart"]) == 1
    names = [s.name for s in event.timeline]
    assert names.index("precheck") < names.index("approval.requested") < names.index("approval.approved")
    assert names.index("approval.approved") < names.index("handler.started")


async def test_nothing_to_do_ends_noop_without_asking(harness: MakeHarness) -> None:
    notifier = RecordingNotifier()
    h = await harness(rules("bucket: reconnect, healthy: true"), notifier=notifier)
    event = await h.event(await h.post_one(payload(alert("Gated", service="a"))))
    assert (event.outcome_label, event.message) == ("noop", "reconnect is healthy")
    assert await h.svc.store.approvals.list_approvals(10) == []
    assert notifier.of_kind("approval") == [] and ACTS == {}
    assert [s.message for s in event.timeline if s.name == "precheck"] == ["probe reconnect healthy"]


async def test_a_refusal_ends_failed_without_asking_and_counts(harness: MakeHarness) -> None:
    notifier = RecordingNotifier()
    h = await harness(rules("bucket: reconnect, refuse: true"), notifier=notifier)
    event = await h.event(await h.post_one(payload(alert("Gated", service="a"))))
    assert (event.outcome_label, event.message) == ("failed", "reconnect is locked")
    assert event.details["failures_in_window"] == 1  # as the same refusal under the lease would
    assert await h.svc.store.approvals.list_approvals(10) == [] and ACTS == {}


async def test_a_precheck_that_cannot_look_says_so_and_still_asks(harness: MakeHarness) -> None:
    h = await harness(rules("bucket: reconnect, unreachable: true"))
    event_id = await h.post_one(payload(alert("Gated", service="a")))
    approval = await asked(h, event_id)
    assert approval.precheck == ("the precheck could not read the target: reconnect: connection refused")
    assert ACTS == {}


def test_an_approval_without_a_precheck_shows_no_state() -> None:
    """A request stored before this release (no precheck) renders as before."""
    old = Approval("e1", "r", "svc/a", "Down", 0.0, 60.0, ("U0ALICE",), ("restart",), "test.probe")
    assert "The target now" not in str(approval_blocks(Notice(kind="approval", approval=old)))


async def test_the_precheck_looks_once_while_the_request_waits(harness: MakeHarness) -> None:
    """Each pass of a waiting job runs the earlier gates again, not the precheck: also
    when the job first waited for a blocking alert (its first pass met no request)."""
    text = rules("bucket: reconnect").replace(
        "    approval:", "    inhibited_by: ['alertname=\"Blocker\"']\n    inhibit_wait: 1h\n    approval:"
    )
    h = await harness(text)
    assert (await h.post(payload(alert("Blocker", service="db")))).status == 202
    event_id = await h.post_one(payload(alert("Gated", service="a")))
    await asyncio.sleep(0.5)  # passes while inhibited: no look, no request
    assert RUNS["reconnect"] == [] and await h.svc.store.approvals.list_approvals(10) == []
    await h.post(payload(alert("Blocker", "resolved", service="db")))
    approval = await asked(h, event_id)
    await asyncio.sleep(1.0)  # many passes (DEFER_INTERVAL 50ms) while it waits for a decision
    assert len(RUNS["reconnect"]) == 1 and approval.precheck == "probe reconnect reachable"
    await decide(h.svc.store.approvals, event_id, "approved", "alice")
    event = await h.event(event_id)
    assert event.outcome_label == "succeeded", event.message
    assert [s.name for s in event.timeline].count("approval.requested") == 1
