"""The Slack notifier over the recording transport: what is posted where, with no server.

The HTTP side (429 + Retry-After, 5xx, timeouts, secrets) is tested against a local
server speaking Slack's API in test_slack.py; here only the messages' shapes and order.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from remediator.metrics import Metrics
from remediator.models import Alert
from remediator.notify.notice import Notice
from remediator.notify.slack.client import SlackNotifier
from remediator.notify.slack.transports import RecordingTransport, SlackRefused
from remediator.settings import Settings
from remediator.store.memory import MemoryStore
from tests.support.payloads import alert
from tests.support.waiting import eventually


def notice(kind: Any, event_id: str = "e1", **fields: Any) -> Notice:
    return Notice(
        kind=kind,
        rule="widget-down",
        target="widget/w-1",
        event_id=event_id,
        handler="test.fix",
        alert=Alert.model_validate(alert("WidgetDown", instance="w-1")),
        cooldown=600,
        **fields,
    )


@contextlib.asynccontextmanager
async def notifier(transport: RecordingTransport) -> AsyncIterator[SlackNotifier]:
    slack = SlackNotifier(
        settings=Settings(), session=None, store=MemoryStore(), metrics=Metrics(), transport=transport
    )
    await slack.start()
    try:
        yield slack
    finally:
        await slack.close()


async def test_a_thread_starts_with_its_parent_and_its_header_follows_the_outcome() -> None:
    transport = RecordingTransport()
    async with notifier(transport) as slack:
        slack.send(notice("started"))
        slack.send(notice("outcome", outcome="succeeded", message="fixed", duration=3.0))
        slack.send(notice("resolved", event_id="e2"))
    [parent] = transport.top_level()
    assert "Remediating WidgetDown on widget/w-1" in parent.message.text
    outcome, resolved = transport.replies(parent)
    assert "Remediation succeeded" in outcome.message.text
    assert "Resolved" in resolved.message.text
    assert [ts for ts, _ in transport.updated] == [parent.ts, parent.ts]
    assert "Resolved: WidgetDown on widget/w-1" in transport.latest(parent).text


async def test_a_transport_without_threads_gets_flat_messages_and_no_updates() -> None:
    transport = RecordingTransport(threads=False)
    async with notifier(transport) as slack:
        slack.send(notice("started"))
        slack.send(notice("outcome", outcome="failed", message="boom"))
        slack.send(notice("resolved", event_id="e2"))
    assert [p.thread_ts for p in transport.posted] == [None, None, None]
    assert transport.updated == []
    texts = [p.message.text for p in transport.posted]
    assert all("widget/w-1" in t for t in texts), texts
    assert "Remediation failed" in texts[1] and "Resolved" in texts[2]


@pytest.mark.looptime
async def test_a_refusal_with_a_wait_holds_the_next_message(looptime: Any) -> None:
    transport = RecordingTransport(refuse=[SlackRefused(429, "ratelimited", retry_after=30.0)])
    async with notifier(transport) as slack:
        slack.send(notice("started"))  # refused: counted as failed, and Slack asked for 30 s
        slack.send(notice("started", event_id="e2"))
        await eventually(lambda: transport.posted, within=60, what="the second message")
    [posted] = transport.posted
    assert "Remediating" in posted.message.text
    assert looptime >= 30


async def test_a_brake_opening_is_one_channel_message_never_a_thread() -> None:
    """Issue 29: the brake tells the channel once, with what it holds; no incident thread."""
    transport = RecordingTransport()
    text = "systemic? `widget-down` wants to act on 21 targets within 10m; held: widget/w-1 and more"
    async with notifier(transport) as slack:
        slack.send(notice("brake_opened", message=text, dry_run=True))
    [posted] = transport.top_level()
    assert transport.replies(posted) == []
    assert posted.message.text.startswith("🛑 Brake open (dry run): rule widget-down holds further targets")
    assert "systemic? `widget-down` wants to act on 21 targets within 10m" in str(posted.message.blocks)
