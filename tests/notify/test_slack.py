"""Slack threads and delivery, against a local server speaking Slack's Web API format."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import aiohttp
import pytest
import structlog
from aiohttp.test_utils import TestClient, TestServer
from pydantic import ValidationError

from remediator import Checked, Context, Handler, HandlerParams, Result, handler
from remediator.api.service import SERVICE, Service
from remediator.app import create_app
from remediator.handling.registry import Registry
from remediator.metrics import Metrics
from remediator.models import Alert, AuditEvent
from remediator.notify.notice import LogNotifier, Notice, Notifier
from remediator.notify.slack import messages
from remediator.notify.slack.blocks import clip, link, mention
from remediator.notify.slack.client import SlackNotifier
from remediator.settings import Settings
from remediator.store.memory import MemoryStore
from tests.support import payloads
from tests.support.procs import free_port
from tests.support.slack_server import (
    TOKEN,
    WEBHOOK_PATH,
    Reply,
    SlackServer,
    render_message,
)
from tests.support.slack_server import Message as SlackMessage
from tests.support.waiting import wait_event

HOOK_TOKEN = "hook-token-for-tests"
AM_URL = "http://alertmanager.example:9093"
REGISTRY = Registry()


class FixParams(HandlerParams):
    mode: Literal["ok", "fail", "long-error"] = "ok"


@handler("test.fix", params=FixParams, registry=REGISTRY)
class Fix(Handler[FixParams, None, None]):
    """Restart the (imaginary) widget; the alert's ``mode`` label says how it goes."""

    async def precheck(self, params: FixParams, ctx: Context) -> Checked[None]:
        return Checked(f"{ctx.target} down (imaginary)", None)

    async def act(self, params: FixParams, ctx: Context, seen: None) -> Result | None:
        if ctx.dry_run:
            return Result.dry_run([f"restart {ctx.target}", f"wait until {ctx.target} is healthy"])
        ctx.step("act", f"restarted {ctx.target}")
        if params.mode == "fail":
            return Result.failed("widget refused to restart: connection reset by peer")
        if params.mode == "long-error":
            return Result.failed("stack trace line <&>\n" * 600)
        return None

    async def verify(self, params: FixParams, ctx: Context, acted: None) -> Result:
        ctx.step("verify", f"{ctx.target} healthy after 1 check")
        return Result.succeeded(f"restarted {ctx.target} and verified it")


RULES = """
defaults: {cooldown: 10m, max_attempts: 2, attempt_window: 1h, timeout: 60s}
rules:
  - name: widget-down
    matchers: ['alertname="WidgetDown"']
    handler: test.fix
    target: 'widget/{{ labels.instance }}'
    params: {mode: '{{ labels.mode }}'}
    escalate: '<!subteam^S0ONCALL|oncall>'
  - name: widget-quick
    matchers: ['alertname="WidgetQuick"']
    handler: test.fix
    target: 'widget/{{ labels.instance }}'
    params: {mode: '{{ labels.mode }}'}
    cooldown: 1s
  - name: widget-dry
    matchers: ['alertname="WidgetDry"']
    handler: test.fix
    target: 'widget/{{ labels.instance }}'
    dry_run: true
"""


# ---- fixtures and helpers ------------------------------------------------------------
def settings_for(rules: Path, **slack: Any) -> Settings:
    return Settings(rules=rules, webhook_token=HOOK_TOKEN, workers=2, shutdown_grace=5, **slack)


def bot(slack: SlackServer) -> dict[str, Any]:
    return {"slack_bot_token": TOKEN, "slack_channel": "#alerts", "slack_api_url": slack.api_url}


@contextlib.asynccontextmanager
async def running(
    settings: Settings, notifier: Notifier | None = None
) -> AsyncIterator[tuple[TestClient[Any, Any], Service]]:
    app = create_app(settings, registry=REGISTRY, notifier=notifier)
    async with TestClient(TestServer(app)) as client:
        yield client, app[SERVICE]


def alert(
    name: str = "WidgetDown",
    status: str = "firing",
    mode: str = "ok",
    instance: str = "w-1",
    starts: datetime | None = None,
    **extra: Any,
) -> dict[str, Any]:
    starts = starts or datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    return payloads.alert(
        name,
        status,
        starts,
        {
            "summary": f"Widget {instance} stopped answering",
            "runbook_url": "https://runbooks.example/widget-down",
            **extra.pop("annotations", {}),
        },
        ends_at=starts + timedelta(minutes=7) if status == "resolved" else None,
        generator_url="http://prometheus.example:9090/graph?g0.expr=up%3D%3D0&g0.tab=1",
        instance=instance,
        mode=mode,
        severity="critical",
        **extra.pop("labels", {}),
    )


async def post(client: TestClient[Any, Any], *alerts: dict[str, Any]) -> list[str]:
    payload = {
        "version": "4",
        "status": alerts[0]["status"],
        "receiver": "remediator",
        "groupKey": '{}:{alertname="WidgetDown"}',
        "externalURL": AM_URL,
        "groupLabels": {},
        "commonLabels": {},
        "commonAnnotations": {},
        "alerts": list(alerts),
    }
    response = await client.post(
        "/webhooks/alertmanager", json=payload, headers={"Authorization": f"Bearer {HOOK_TOKEN}"}
    )
    assert response.status == 202, await response.text()
    return list((await response.json())["event_ids"])


async def event(svc: Service, event_id: str, within: float = 20.0) -> AuditEvent:
    return await wait_event(svc.store, event_id, within)


def count(metrics: Metrics, result: str) -> float:
    value = metrics.registry.get_sample_value("remediator_notifications_total", {"result": result})
    return value or 0.0


def text_of(message: SlackMessage) -> str:
    return "\n".join(render_message(message)) + "\n" + message.text


def notice(kind: Any, event_id: str = "e1", target: str = "widget/w-1", **fields: Any) -> Notice:
    return Notice(
        kind=kind,
        rule="widget-down",
        target=target,
        event_id=event_id,
        handler="test.fix",
        alert=Alert.model_validate(alert()),
        external_url=AM_URL,
        cooldown=600,
        **fields,
    )


@contextlib.asynccontextmanager
async def direct(
    settings: Settings, **options: Any
) -> AsyncIterator[tuple[SlackNotifier, Metrics, MemoryStore]]:
    metrics, store = Metrics(), MemoryStore()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        notifier = SlackNotifier(settings=settings, session=session, store=store, metrics=metrics, **options)
        await notifier.start()
        try:
            yield notifier, metrics, store
        finally:
            await notifier.close()


# ---- threads, driven through the real app ------------------------------------------------
async def test_success_reads_as_one_thread_with_outcome_and_resolution(
    slack: SlackServer, rules_path: Path
) -> None:
    async with running(settings_for(rules_path, **bot(slack))) as (client, svc):
        [event_id] = await post(client, alert())
        assert (await event(svc, event_id)).outcome.value == "succeeded"
        await slack.wait_for_messages(2)
        await post(client, alert(status="resolved"))
        await slack.wait_for_messages(3)
    print(slack.render_threads())
    [parent] = slack.top_level()
    started, resolved = slack.replies(parent)
    text = text_of(parent.as_posted())
    for expected in (
        "Remediating WidgetDown on widget/w-1",
        "widget-down",
        "test.fix",
        "critical",
        "Widget w-1 stopped answering",
        "Source (Prometheus) [http://prometheus.example:9090/graph?g0.expr",
        "Runbook [https://runbooks.example/widget-down]",
        f"Alertmanager [{AM_URL}]",
        event_id,
    ):
        assert expected in text, expected
    assert "DRY RUN" not in text
    outcome = text_of(started)
    assert "Remediation succeeded" in outcome and " in " in outcome  # with its duration
    assert "verify: widget/w-1 healthy after 1 check" in outcome
    assert "Resolved" in text_of(resolved) and "WidgetDown" in text_of(resolved)
    # Issue 25 (item 11): the first message shows the incident's latest state
    latest = text_of(parent)
    assert "Resolved: WidgetDown on widget/w-1" in latest and "Remediating" not in latest
    assert "Runbook [https://runbooks.example/widget-down]" in latest
    assert [update["ts"] for update in slack.updates] == [parent.ts, parent.ts]  # outcome, resolved
    assert all(m.channel == slack.channel_id and m.options["unfurl_links"] is False for m in slack.messages)
    assert count(svc.metrics, "sent") == 3


async def test_failures_escalate_in_the_thread_and_the_channel(slack: SlackServer, rules_path: Path) -> None:
    async with running(settings_for(rules_path, **bot(slack))) as (client, svc):
        [first] = await post(client, alert(mode="fail"))
        await event(svc, first)
        await slack.wait_for_messages(2)
        [second] = await post(client, alert(mode="fail"))
        assert (await event(svc, second)).outcome.value == "failed"
        await slack.wait_for_messages(5)
    print(slack.render_threads())
    [parent] = slack.top_level()
    replies = slack.replies(parent)
    assert [r.reply_broadcast for r in replies] == [False, False, False, True]
    failed1, again, failed2, escalation = (text_of(r) for r in replies)
    assert "Remediation failed" in failed1 and "connection reset by peer" in failed1
    assert "Failure 1 of 2 allowed within 1h" in failed1
    assert "Another attempt started" in again and second in again
    assert "Failure 2 of 2" in failed2
    assert "@oncall" in escalation and "<!subteam^S0ONCALL|oncall>" in replies[3].text
    for expected in (
        "Escalation",
        "failed 2 times within 1h",
        "widget/w-1",
        "act: restarted widget/w-1",
        "connection reset by peer",
        f"remediator replay {second} --ignore-circuit --wait 300",
        f'POST /api/v1/replay/{second}` with `{{"ignore_circuit": true}}',
        "remediator pause --reason R --for 30m",
        "POST /api/v1/pause",
    ):
        assert expected in escalation, expected


async def test_dry_run_is_marked_on_the_parent_and_shows_the_plan(
    slack: SlackServer, rules_path: Path
) -> None:
    async with running(settings_for(rules_path, **bot(slack))) as (client, svc):
        [event_id] = await post(client, alert("WidgetDry"))
        assert (await event(svc, event_id)).outcome.value == "dry_run"
        await slack.wait_for_messages(2)
    [parent] = slack.top_level()
    assert "DRY RUN: would remediate WidgetDry" in text_of(parent.as_posted())
    assert "nothing is changed on the target" in text_of(parent.as_posted())
    latest = text_of(parent)  # issue 25 (item 11): the header shows the latest state
    assert "Dry run: plan rendered, nothing changed: WidgetDry" in latest
    assert "nothing is changed on the target" in latest
    [outcome] = slack.replies(parent)
    assert "Plan" in text_of(outcome) and "restart widget/w-1" in text_of(outcome)


async def test_a_new_firing_after_the_cooldown_starts_a_new_thread(
    slack: SlackServer, rules_path: Path
) -> None:
    settings = settings_for(rules_path, **bot(slack))
    metrics, store = Metrics(), MemoryStore()
    async with aiohttp.ClientSession() as session:
        notifier = SlackNotifier(
            settings=settings, session=session, store=store, metrics=metrics, min_thread_ttl=0.1
        )
        async with running(settings, notifier) as (client, svc):
            t0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
            [one] = await post(client, alert("WidgetQuick", starts=t0))
            await event(svc, one)
            await slack.wait_for_messages(2)
            [blocked] = await post(client, alert("WidgetQuick", starts=t0 + timedelta(seconds=1)))
            assert (await event(svc, blocked)).outcome_label == "skipped:cooldown"
            await asyncio.sleep(1.2)  # the rule's cooldown is 1s
            [two] = await post(client, alert("WidgetQuick", starts=t0 + timedelta(seconds=2)))
            await event(svc, two)
            await slack.wait_for_messages(4)
    first, second = slack.top_level()
    assert one in text_of(first) and two in text_of(second)
    assert len(slack.replies(first)) == len(slack.replies(second)) == 1


async def test_escaped_labels_and_truncated_errors_stay_inside_slack_limits(
    slack: SlackServer, rules_path: Path
) -> None:
    nasty: dict[str, Any] = {
        "labels": {"team": "<!channel> & <@U123>"},
        "annotations": {"summary": "*click* <http://evil.example|here> & relax"},
    }
    async with running(settings_for(rules_path, **bot(slack))) as (client, svc):
        [event_id] = await post(client, alert(mode="long-error", **nasty))
        assert (await event(svc, event_id)).outcome.value == "failed"
        await slack.wait_for_messages(2)  # the stand-in refuses blocks over Slack's limits
    parent, failed = slack.messages
    raw = str(parent.blocks) + parent.text + str(failed.blocks) + failed.text
    assert "<!channel>" not in raw and "<@U123>" not in raw and "<http://evil" not in raw
    assert "&lt;!channel&gt; &amp; &lt;@U123&gt;" in str(parent.blocks)
    assert "&lt;http://evil.example|here&gt; &amp; relax" in str(parent.blocks)
    sections = [b["text"]["text"] for b in failed.blocks if b["type"] == "section"]
    assert max(len(s) for s in sections) <= 3000
    assert any("Truncated: 12,600 characters in all" in s and event_id in s for s in sections)
    assert len(failed.text) <= 3000 and "stack trace line" in failed.text


async def test_webhook_mode_posts_flat_self_contained_messages(slack: SlackServer, rules_path: Path) -> None:
    settings = settings_for(rules_path, slack_webhook_url=slack.webhook_url)
    async with running(settings) as (client, svc):
        [event_id] = await post(client, alert())
        await event(svc, event_id)
        await slack.wait_for_messages(2)
        await post(client, alert(status="resolved"))
        await post(client, alert(status="resolved", instance="never-touched"))
        await slack.wait_for_messages(3)
        await asyncio.sleep(0.3)
        assert count(svc.metrics, "skipped") == 1  # a resolution we had nothing to do with
    assert len(slack.messages) == 3
    assert all(m.via == "webhook" and m.thread_ts is None for m in slack.messages)
    started, outcome, resolved = (text_of(m) for m in slack.messages)
    assert "Remediating WidgetDown" in started
    assert "Remediation succeeded" in outcome and "Resolved" in resolved
    assert all("widget/w-1" in t and "widget-down" in t for t in (started, outcome, resolved))


async def test_without_slack_settings_notices_only_go_to_the_log(rules_path: Path) -> None:
    async with running(settings_for(rules_path)) as (client, svc):
        assert isinstance(svc.notifier, LogNotifier)
        with structlog.testing.capture_logs() as logs:
            [event_id] = await post(client, alert())
            await event(svc, event_id)
    kinds = [e["event"] for e in logs if e["event"].startswith("notify.")]
    assert kinds == ["notify.started", "notify.outcome"]


def test_a_bot_token_needs_a_channel() -> None:
    with pytest.raises(ValidationError, match="REMEDIATOR_SLACK_CHANNEL"):
        Settings(slack_bot_token="xoxb-1")


# ---- delivery: rate limits, errors, outages ------------------------------------------------
async def test_a_429_is_retried_after_the_advertised_delay(slack: SlackServer, rules_path: Path) -> None:
    slack.fail_next(Reply(status=429, retry_after="2"))
    async with direct(settings_for(rules_path, **bot(slack))) as (notifier, metrics, _):
        notifier.send(notice("started"))
        notifier.send(notice("outcome", outcome="succeeded", message="done", duration=1.5))
        await slack.wait_for_messages(2)
    limited, retried, reply = slack.requests
    assert (limited.status, retried.status, reply.status) == (429, 200, 200)
    assert retried.at - limited.at >= 2.0
    parent, outcome = slack.messages
    assert parent.thread_ts is None and outcome.thread_ts == parent.ts
    assert count(metrics, "sent") == 2 and count(metrics, "failed") == 0


async def test_a_long_retry_after_holds_the_queue_instead_of_hammering(
    slack: SlackServer, rules_path: Path
) -> None:
    slack.fail_next(Reply(status=429, retry_after="3"))
    settings = settings_for(rules_path, **bot(slack))
    async with direct(settings, max_retry_after=1) as (notifier, metrics, _):
        notifier.send(notice("started"))
        notifier.send(notice("started", event_id="e2", target="widget/w-2"))
        await slack.wait_for_messages(1)
    limited, sent = slack.requests
    assert limited.status == 429 and sent.at - limited.at >= 3.0
    assert count(metrics, "failed") == 1 and count(metrics, "sent") == 1


async def test_server_errors_are_retried_with_backoff_then_given_up(
    slack: SlackServer, rules_path: Path
) -> None:
    slack.fail_next(Reply(status=502), times=2)
    async with direct(settings_for(rules_path, **bot(slack)), retries=2) as (notifier, metrics, _):
        notifier.send(notice("started"))
        await slack.wait_for_messages(1)
        assert [r.status for r in slack.requests] == [502, 502, 200]
        slack.fail_next(Reply(status=500), times=3)
        with structlog.testing.capture_logs() as logs:
            notifier.send(notice("outcome", outcome="succeeded"))
            await slack.wait_for_requests(6)
            await asyncio.sleep(0.2)
    assert count(metrics, "sent") == 1 and count(metrics, "failed") == 1
    [failure] = [e for e in logs if e["event"] == "slack.delivery_failed"]  # logged once
    assert failure["error"] == "Slack answered HTTP 500: no error code"


async def test_ok_false_is_permanent_unless_slack_calls_it_transient(
    slack: SlackServer, rules_path: Path
) -> None:
    slack.fail_next(Reply(error="channel_not_found"))
    slack.fail_next(Reply(error="internal_error"))
    async with direct(settings_for(rules_path, **bot(slack))) as (notifier, metrics, _):
        with structlog.testing.capture_logs() as logs:
            notifier.send(notice("started"))
            notifier.send(notice("started", event_id="e2", target="widget/w-2"))
            await slack.wait_for_messages(1)
    assert [(r.status, r.error) for r in slack.requests] == [
        (200, "channel_not_found"),
        (200, "internal_error"),
        (200, ""),
    ]
    [failure] = [e for e in logs if e["event"] == "slack.delivery_failed"]
    assert failure["error"].endswith("channel_not_found") and failure["event_id"] == "e1"
    assert count(metrics, "failed") == 1 and count(metrics, "sent") == 1


async def test_outcomes_are_recorded_on_time_while_slack_answers_500(
    slack: SlackServer, rules_path: Path
) -> None:
    slack.default = Reply(status=500)
    async with running(settings_for(rules_path, **bot(slack))) as (client, svc):
        started = time.monotonic()
        [event_id] = await post(client, alert())
        recorded = await event(svc, event_id)
        took = time.monotonic() - started
        assert recorded.outcome.value == "succeeded"
        assert took < 3.0, f"the remediation waited for Slack ({took:.1f}s)"
        await slack.wait_for_requests(3)  # still retrying the parent after the outcome
    assert count(svc.metrics, "sent") == 0
    assert count(svc.metrics, "failed") + count(svc.metrics, "dropped") == 2


async def test_outcomes_are_recorded_while_slack_hangs_and_slow_messages_time_out(
    slack: SlackServer, rules_path: Path
) -> None:
    slack.default = Reply(delay=5.0)
    settings = settings_for(rules_path, **bot(slack))
    metrics = Metrics()
    async with aiohttp.ClientSession() as session:
        notifier = SlackNotifier(
            settings=settings,
            session=session,
            store=MemoryStore(),
            metrics=metrics,
            message_timeout=1.0,
            close_timeout=0.5,
        )
        async with running(settings, notifier) as (client, svc):
            [event_id] = await post(client, alert())
            assert (await event(svc, event_id, within=3.0)).outcome.value == "succeeded"
            with structlog.testing.capture_logs() as logs:
                await slack.wait_for_requests(2)
                await asyncio.sleep(1.2)
    assert count(metrics, "failed") >= 1
    assert "no answer within 1s" in [e.get("error") for e in logs]
    assert count(metrics, "failed") + count(metrics, "dropped") + count(metrics, "sent") == 2


async def test_outcomes_are_recorded_while_slack_is_unreachable(rules_path: Path) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}/api/"
    settings = settings_for(rules_path, slack_bot_token=TOKEN, slack_channel="#alerts", slack_api_url=nowhere)
    async with running(settings) as (client, svc):
        [event_id] = await post(client, alert(mode="fail"))
        assert (await event(svc, event_id, within=3.0)).outcome.value == "failed"
    assert count(svc.metrics, "failed") + count(svc.metrics, "dropped") == 2


async def test_the_queue_is_bounded_and_drops_the_oldest(slack: SlackServer, rules_path: Path) -> None:
    metrics = Metrics()
    async with aiohttp.ClientSession() as session:
        notifier = SlackNotifier(
            settings=settings_for(rules_path, **bot(slack)),
            session=session,
            store=MemoryStore(),
            metrics=metrics,
            queue_size=3,
        )
        for i in range(10):  # not started yet: nothing drains the queue
            notifier.send(notice("started", event_id=f"e{i}", target=f"widget/w-{i}"))
        assert count(metrics, "dropped") == 7
        await notifier.start()
        await slack.wait_for_messages(3)
        await notifier.close()
        notifier.send(notice("started", event_id="late"))  # after close: counted, no raise
    assert [m.text.count(f"widget/w-{i}") > 0 for m, i in zip(slack.messages, (7, 8, 9), strict=True)] == [
        True
    ] * 3
    assert count(metrics, "dropped") == 8 and count(metrics, "sent") == 3


async def test_close_gives_up_after_its_bound(slack: SlackServer, rules_path: Path) -> None:
    slack.default = Reply(delay=10.0)
    async with direct(settings_for(rules_path, **bot(slack)), close_timeout=0.3) as (notifier, metrics, _):
        notifier.send(notice("started"))
        notifier.send(notice("outcome", outcome="succeeded"))
        await slack.wait_for_requests(0)
        started = time.monotonic()
    assert time.monotonic() - started < 3.0
    assert count(metrics, "dropped") == 2


async def test_the_thread_is_shared_through_the_store(slack: SlackServer, rules_path: Path) -> None:
    """Two replicas (two notifiers, one store): the second replies in the first one's thread."""
    settings, store = settings_for(rules_path, **bot(slack)), MemoryStore()
    async with aiohttp.ClientSession() as session:
        one = SlackNotifier(settings=settings, session=session, store=store, metrics=Metrics())
        two = SlackNotifier(settings=settings, session=session, store=store, metrics=Metrics())
        await one.start()
        await two.start()
        one.send(notice("started", event_id="a"))
        await slack.wait_for_messages(1)
        # issue 25 (item 11): a "started" reply only follows a failure, so replica two
        # posts an outcome and the resolution
        two.send(notice("outcome", event_id="b", outcome="noop"))
        two.send(notice("resolved", event_id="c"))
        await slack.wait_for_messages(3)
        await one.close()
        await two.close()
    [parent] = slack.top_level()
    assert len(slack.replies(parent)) == 2
    assert await store.threads.get_thread("widget-down", "widget/w-1") == parent.ts


async def test_the_header_follows_the_incident_and_a_new_attempt_follows_only_a_failure(
    slack: SlackServer, rules_path: Path
) -> None:
    """Issue 25 (item 11): the thread's first message shows the latest state (not the
    first outcome forever), and "Another attempt started" is posted only after a failure
    (not after an approval or a wait)."""
    async with direct(settings_for(rules_path, **bot(slack))) as (notifier, _, _):
        notifier.send(notice("outcome", event_id="a", outcome="noop"))
        await slack.wait_for_messages(1)
        notifier.send(notice("started", event_id="b"))  # e.g. approved: not another attempt
        notifier.send(notice("outcome", event_id="b", outcome="failed", message="boom"))
        await slack.wait_for_messages(2)
        notifier.send(notice("started", event_id="c"))  # after the failure: another attempt
        notifier.send(notice("outcome", event_id="c", outcome="failed", message="boom"))
        notifier.send(notice("escalated", event_id="c", outcome="failed", failures=2, message="boom"))
        await slack.wait_for_messages(5)
        await slack.wait_for("updates", 3)
    [parent] = slack.top_level()
    assert "Nothing to do" in text_of(parent.as_posted())
    replies = [text_of(r) for r in slack.replies(parent)]
    assert "Remediation failed" in replies[0] and "Another attempt started" in replies[1]
    assert len(replies) == 4 and "Escalation" in replies[3]
    latest = text_of(parent)
    assert "Escalation: automatic remediation gave up on WidgetDown on widget/w-1" in latest
    assert "Nothing to do" not in latest
    headers = [update["text"] for update in slack.updates]
    assert ["failed" in headers[0], "failed" in headers[1], "Escalation" in headers[2]] == [True, True, True]


def test_a_failure_past_the_budget_says_so() -> None:
    """Issue 25 (item 11): a replay that ignored the open circuit fails a third time."""
    said = {}
    for failures in (2, 3):
        details = {"failures_in_window": failures}
        failed = notice("outcome", outcome="failed", message="boom", max_attempts=2, attempt_window=3600)
        said[failures] = str(messages.outcome_blocks(dataclasses.replace(failed, details=details)))
    assert "Failure 2 of 2 allowed within 1h" in said[2]
    assert "Failure 3 within 1h; the circuit opened at 2" in said[3] and "of 2 allowed" not in said[3]


# ---- secrets --------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["bot", "webhook"])
async def test_no_secret_in_logs_errors_or_the_audit(
    slack: SlackServer,
    rules_path: Path,
    mode: str,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    slack.fail_next(Reply(status=404, error="no_service"))
    slack.fail_next(Reply(status=500), times=4)
    options = bot(slack) if mode == "bot" else {"slack_webhook_url": slack.webhook_url}
    with structlog.testing.capture_logs() as logs:
        async with running(settings_for(rules_path, **options)) as (client, svc):
            [event_id] = await post(client, alert(mode="fail"))
            await event(svc, event_id)
            [again] = await post(client, alert(mode="fail"))
            await event(svc, again)
            await slack.wait_for_requests(6)
            events = [e.model_dump_json() for e in (await svc.store.audit.list_events(50))[0]]
            metrics = await (await client.get("/metrics")).text()
    assert count(svc.metrics, "failed") >= 2
    everything = "\n".join([str(logs), caplog.text, capsys.readouterr().err, *events, metrics])
    assert "slack.delivery_failed" in everything
    for secret in (TOKEN, WEBHOOK_PATH, WEBHOOK_PATH.rsplit("/", 1)[-1]):
        assert secret not in everything
    assert event_id in everything


# ---- message pieces --------------------------------------------------------------------------
def test_links_only_for_http_urls_and_never_forged() -> None:
    assert link("https://runbooks.example/a?b=1&c=2", "Runbook") == (
        "<https://runbooks.example/a?b=1&amp;c=2|Runbook>"
    )
    assert link("https://x.example/a|b>c", "Runbook") == "<https://x.example/a%7Cb&gt;c|Runbook>"
    assert link("javascript:alert(1)", "Runbook") == "Runbook"
    assert link("https://x.example/" + "a" * 2000, "Runbook") == "Runbook"


def test_mentions_and_clipping() -> None:
    assert mention("@here") == "<!here>" and mention("<!subteam^S1>") == "<!subteam^S1>"
    assert clip("a&b", 10) == ("a&amp;b", False)
    assert clip("ab&cd", 4) == ("ab", True)  # never half an entity


async def test_a_failed_rules_reload_is_posted_to_the_channel(slack: SlackServer, rules_path: Path) -> None:
    reload = Notice(
        kind="rules_reload",
        message="rules invalid; kept the last good rules",
        details={"errors": ["rules.yaml: rule 'x': unknown handler 'nope'"]},
    )
    async with direct(settings_for(rules_path, **bot(slack))) as (notifier, _metrics, _):
        notifier.send(reload)
        [message] = await slack.wait_for_messages(1)
    assert message.thread_ts is None
    assert "kept the last good rules" in text_of(message)
    assert "unknown handler 'nope'" in text_of(message)
