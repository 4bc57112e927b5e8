"""A chain that ends in a ``page:`` step (issue 28, item 2): ``escalated``, the mention in
the Slack thread (broadcast), a PagerDuty incident, the results so far in both; no
cooldown, the episode not marked repaired, one failure toward the circuit. Against the
local Slack and PagerDuty servers."""

from __future__ import annotations

from tests.conftest import MakeHarness
from tests.support.handlers import ACTS
from tests.support.pagerduty_server import ROUTING_KEY, PagerDutyServer
from tests.support.payloads import alert, payload
from tests.support.slack_server import TOKEN, SlackServer

RULES = """
rules:
  - name: ws-runbook
    matchers: ['alertname="WsDown"']
    target: 'svc/{{ labels.service }}'
    max_attempts: 5
    steps:
      - {handler: test.probe, params: {bucket: reconnect, outcome: failed}, on_failure: next}
      - {handler: test.probe, params: {bucket: restart, outcome: failed}, on_failure: next}
      - page: {slack: '<!subteam^S0ONCALL>', pagerduty: true}
"""


async def test_a_chain_ending_in_a_page_step_is_escalated(
    harness: MakeHarness, slack: SlackServer, pagerduty: PagerDutyServer
) -> None:
    h = await harness(
        RULES,
        slack_bot_token=TOKEN,
        slack_channel="#alerts",
        slack_api_url=slack.api_url,
        pagerduty_routing_key=ROUTING_KEY,
        pagerduty_api_url=pagerduty.url,
    )
    event_id = await h.post_one(payload(alert("WsDown", service="ws")))
    event = await h.event(event_id, timeout=15)
    assert event.outcome_label == "escalated", event.message
    assert await h.svc.store.audit.take_timeline(event_id) is None  # nothing left to resume
    assert event.message == (
        "handed to a person after 2 step(s): step 1 test.probe: failed: it did not recover; "
        "step 2 test.probe: failed: it did not recover"
    )
    assert (len(ACTS["reconnect"]), len(ACTS["restart"])) == (1, 1)
    assert event.details["page"] == {"slack": "<!subteam^S0ONCALL>", "pagerduty": True}
    assert event.details["failures_in_window"] == 1  # counted toward the circuit
    assert [s.name for s in event.timeline if s.name in ("step.finished", "page")] == [
        "step.finished",
        "step.finished",
        "page",
    ]
    # PagerDuty: one incident, its summary saying what happened.
    [sent] = await pagerduty.wait_for(1)
    assert sent.body["event_action"] == "trigger"
    assert sent.body["payload"]["summary"].startswith(
        "remediator handed rule ws-runbook to a person after 2 step(s) on svc/ws"
    )
    # Slack: the reply names the on-call group, is broadcast, and lists each step.
    messages = await slack.wait_for_messages(2)
    [reply] = [m for m in messages if "Over to you" in str(m.blocks)]
    assert reply.reply_broadcast and reply.thread_ts is not None
    text = str(reply.blocks)
    assert "<!subteam^S0ONCALL>" in text and "PagerDuty incident" in text
    assert "step 1/3 test.probe: failed: it did not recover; next: step 2/3" in text
    # No cooldown and the episode is not marked repaired: a new episode runs the chain again.
    later = payload(alert("WsDown", "firing", "2026-11-28T11:00:00.000Z", service="ws"))
    again = await h.event(await h.post_one(later), timeout=15)
    assert again.outcome_label == "escalated" and again.details["failures_in_window"] == 2
