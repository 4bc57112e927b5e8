"""A Slack channel per rule (``slack_channel``), against the local Slack server: threads,
escalations and approval requests go to the rule's channel; a channel the bot is not in
(``not_in_channel``) or that does not exist (``channel_not_found``) falls back to the
default channel, saying so there and in the log; in webhook mode ``check`` refuses the key."""

from __future__ import annotations

import os
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from remediator.errors import RulesError
from remediator.handling.registry import Registry, default_registry
from remediator.rules.ruleset import parse_rules
from tests.notify.test_slack import REGISTRY, alert, bot, count, event, post, running, settings_for
from tests.support.procs import PYTHON, ROOT
from tests.support.slack_server import CHANNEL_ID, SlackServer, render_message

TEAM_A, TEAM_B = "C0TEAMA001", "C0TEAMB002"
RULES = """
defaults: {cooldown: 10m, max_attempts: 1, attempt_window: 1h, timeout: 60s}
rules:
  - name: team-a
    matchers: ['alertname="WidgetDown"']
    handler: test.fix
    target: 'widget/{{ labels.instance }}'
    params: {mode: '{{ labels.mode }}'}
    slack_channel: '#team-a'
    escalate: '<!subteam^S0ONCALL|oncall>'
  - name: everyone
    matchers: ['alertname="WidgetQuick"']
    handler: test.fix
    target: 'quick/{{ labels.instance }}'
  - name: team-a-approved
    matchers: ['alertname="WidgetApprove"']
    handler: test.fix
    target: 'approve/{{ labels.instance }}'
    slack_channel: C0TEAMA001
    approval: {approvers: [U0ALICE01], timeout: 10m}
  - name: team-b
    matchers: ['alertname="WidgetB"']
    handler: test.fix
    target: 'b/{{ labels.instance }}'
    slack_channel: '#team-b'
  - name: gone
    matchers: ['alertname="WidgetGone"']
    handler: test.fix
    target: 'gone/{{ labels.instance }}'
    slack_channel: '#no-such-channel'
"""


@pytest.fixture
async def slack() -> AsyncIterator[SlackServer]:
    server = await SlackServer().start()
    server.add_channel("#team-a", TEAM_A)
    server.add_channel("#team-b", TEAM_B, joined=False)  # the bot was never invited
    yield server
    await server.close()


@pytest.fixture
def rules_path(tmp_path: Path) -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text(RULES)
    return path


async def test_threads_and_escalations_go_to_the_rules_channel(slack: SlackServer, rules_path: Path) -> None:
    async with running(settings_for(rules_path, **bot(slack))) as (client, svc):
        (failed,) = await post(client, alert("WidgetDown", mode="fail"))
        await event(svc, failed)
        (quick,) = await post(client, alert("WidgetQuick"))
        await event(svc, quick)
        await slack.wait_for_messages(5)
    team = [m for m in slack.messages if m.channel == TEAM_A]
    default = [m for m in slack.messages if m.channel == CHANNEL_ID]
    parents = [m for m in team if m.thread_ts is None]
    assert len(parents) == 1 and parents[0].text.count("widget/w-1"), slack.render_threads()
    replies = [m for m in team if m.thread_ts == parents[0].ts]
    assert any("oncall" in "\n".join(render_message(m)) for m in replies), "the escalation in team-a's thread"
    assert all("quick/w-1" not in m.text for m in team)
    assert [m.thread_ts for m in default if "quick/w-1" in m.text][:1] == [None]
    assert all(u["channel"] == TEAM_A for u in slack.updates if u["ts"] == parents[0].ts), "header updates"
    assert count(svc.metrics, "fallback") == 0


async def test_the_approval_request_goes_to_the_rules_channel(slack: SlackServer, rules_path: Path) -> None:
    async with running(settings_for(rules_path, **bot(slack))) as (client, _):
        await post(client, alert("WidgetApprove"))
        (request,) = await slack.wait_for_messages(1)
    assert request.channel == TEAM_A
    assert "Approval needed" in request.text


@pytest.mark.parametrize(
    ("name", "channel", "error"),
    [("WidgetB", "#team-b", "not_in_channel"), ("WidgetGone", "#no-such-channel", "channel_not_found")],
)
async def test_a_channel_the_bot_cannot_post_to_falls_back_to_the_default_saying_so(
    slack: SlackServer, rules_path: Path, name: str, channel: str, error: str
) -> None:
    async with running(settings_for(rules_path, **bot(slack))) as (client, svc):
        (first,) = await post(client, alert(name, instance="w-1"))
        await event(svc, first)
        (second,) = await post(client, alert(name, instance="w-2"))
        await event(svc, second)
        await slack.wait_for_messages(4)
        fallbacks = count(svc.metrics, "fallback")
    refused = [r for r in slack.requests if r.error == error]
    assert len(refused) == 1, "tried once; the next posts go to the default channel at once"
    assert {m.channel for m in slack.messages} == {CHANNEL_ID}
    first_parent = next(m for m in slack.messages if m.thread_ts is None).as_posted()  # before header updates
    note = f"⚠️ Posted here because Slack refused {channel} ({error}): invite the bot to {channel} or fix"
    assert note in "\n".join(render_message(first_parent)) and note in first_parent.text
    assert fallbacks == 1


def test_check_refuses_slack_channel_in_webhook_mode(rules_path: Path, tmp_path: Path) -> None:
    text = RULES.replace("    approval: {approvers: [U0ALICE01], timeout: 10m}\n", "")
    with pytest.raises(RulesError) as caught:
        parse_rules(text.encode(), "rules.yaml", _registry(), slack_webhook=True)
    problems = caught.value.problems
    assert len(problems) == 4, problems  # team-a, team-a-approved, team-b, gone: one per rule that sets it
    assert problems[0].startswith(
        "rule 'team-a' (line 4): slack_channel: Slack is set up with an incoming webhook"
    )
    assert "remove slack_channel or switch to a bot token (line 9)" in problems[0]
    assert parse_rules(text.encode(), "rules.yaml", _registry(), slack_webhook=False)
    shipped = tmp_path / "shipped.yaml"
    shipped.write_text(
        "defaults: {slack_channel: '#team-a'}\n"
        "rules:\n"
        "  - name: hook\n"
        "    matchers: ['alertname=\"A\"']\n"
        "    handler: http.request\n"
        "    target: 'svc/a'\n"
        "    params: {url: 'http://svc/a'}\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("REMEDIATOR_")}
    env["REMEDIATOR_SLACK_WEBHOOK_URL"] = "https://hooks.slack.com/services/T0/B0/secret-path-of-the-hook"
    checked = subprocess.run(
        [PYTHON, "-m", "remediator", "check", str(shipped)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert checked.returncode == 1, checked.stdout
    assert f"{shipped}: defaults.slack_channel: Slack is set up with an incoming webhook" in checked.stderr
    del env["REMEDIATOR_SLACK_WEBHOOK_URL"]
    fine = subprocess.run(
        [PYTHON, "-m", "remediator", "check", str(shipped)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert fine.returncode == 0, fine.stderr
    assert "secret-path" not in checked.stderr + checked.stdout


def test_a_channel_is_a_name_or_an_id() -> None:
    bad = RULES.replace("slack_channel: '#team-b'", "slack_channel: 'Team B'")
    with pytest.raises(RulesError) as caught:
        parse_rules(bad.encode(), "rules.yaml", _registry())
    (problem,) = caught.value.problems
    assert "slack_channel: 'Team B' is not a Slack channel: write its name (#team-alerts" in problem


def _registry() -> Registry:
    assert default_registry is not REGISTRY
    return REGISTRY
