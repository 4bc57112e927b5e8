"""The parts of a rule's context: that need no server: redaction, the bound on one entry,
the audit event's budget for the context, the Slack messages (a thread's parent then the
context as its first reply; flat with a webhook; escaped), and the context an earlier
delivery gathered, found again instead of gathered twice."""

from __future__ import annotations

import time
from typing import Any

import orjson
import pytest
import structlog

from remediator.cli.reports import event_text
from remediator.handling.gathering import GathererSpec, GatherParams
from remediator.metrics import Metrics
from remediator.models import Alert, AuditEvent, Gathered, Job, Outcome, Step
from remediator.notify.notice import Notice
from remediator.notify.slack.client import SlackNotifier
from remediator.notify.slack.transports import RecordingTransport
from remediator.settings import Settings
from remediator.store.memory import MemoryStore
from remediator.store.values import Delivery
from remediator.worker.capping import capped
from remediator.worker.gathering import MAX_RAW, MAX_TEXT, STEP, carried, kept_steps, shown
from remediator.worker.redaction import redact
from remediator.worker.runs import Run
from tests.support.payloads import alert


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("connecting with token=abc123 ok", "connecting with token=[redacted] ok"),
        ("DB_PASSWORD: hunter2", "DB_PASSWORD: [redacted]"),
        ('{"password": "hunter 2", "user": "bob"}', '{"password": "[redacted]", "user": "bob"}'),
        ("client_secret='s3'", "client_secret='[redacted]'"),
        ("secret=shh&page=2", "secret=[redacted]&page=2"),
        ("X-Api-Key: 1234567", "X-Api-Key: [redacted]"),
        ("Authorization: Bearer eyJhbGciOi.abc", "Authorization: Bearer [redacted]"),
        ('curl -H "Authorization: Basic dXNlcjpwYXNz"', 'curl -H "Authorization: Basic [redacted]"'),
        ("dsn postgres://app:s3cr3t@db:5432/x", "dsn postgres://app:[redacted]@db:5432/x"),
        ("key AKIAABCDEFGHIJKLMNOP used", "key [redacted] used"),
        ("slack xoxb-1234567890-abcdefghij", "slack [redacted]"),
        ("-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY-----\nnext", "[redacted]\nnext"),
    ],
)
def test_secrets_are_redacted(line: str, expected: str) -> None:
    text, count = redact(line)
    assert text == expected and count >= 1


@pytest.mark.parametrize(
    "line",
    [
        "pod restarted after 3 retries",
        "tokens left: 5 of 10",
        "GET /api/v1/query?query=up 200",
        "password reset page",
    ],
)
def test_ordinary_lines_are_left_alone(line: str) -> None:
    assert redact(line) == (line, 0)


def spec(keep: str = "head") -> GathererSpec:
    async def gather(params: Any, ctx: Any) -> str:
        return ""

    return GathererSpec(kind="test.kind", gather=gather, params=GatherParams, describe=str, keep=keep)


def test_an_entry_is_bounded_a_log_keeping_its_last_whole_lines() -> None:
    lines = "".join(f"line {n} token=t{n}\n" for n in range(2000))
    entry = shown(spec("tail"), "log", lines, 0.1)
    assert len(entry.text) <= MAX_TEXT and entry.text.endswith("line 1999 token=[redacted]\n")
    assert entry.text.startswith("line ") and entry.tail
    assert entry.cut >= len(lines) - MAX_RAW  # what was not redacted is cut too
    head = shown(spec(), "events", lines, 0.1)
    assert head.text.startswith("line 0 token=[redacted]") and not head.tail


def test_the_audit_event_keeps_the_context_within_its_own_budget() -> None:
    entries = [
        Gathered(kind="kubernetes.logs", title="log", text="x" * 3000 + "LAST", tail=True).model_dump(),
        Gathered(kind="prometheus.query", title="q", text="FIRST" + "y" * 3000).model_dump(),
        Gathered(kind="kubernetes.events", title="e", error="forbidden").model_dump(),
    ]
    event = AuditEvent(
        event_id="e1",
        rule="r",
        received_at=0,
        finished_at=0,
        outcome=Outcome.SUCCEEDED,
        timeline=[Step(at=0, name="received"), Step(at=0, name=STEP, data={"entries": entries})],
    )
    kept = capped(event, 2048)
    (step,) = [s for s in kept.timeline if s.name == STEP]
    assert len(orjson.dumps(step.data["entries"])) <= 2048
    log, query, failed = step.data["entries"]
    assert log["text"].endswith("LAST") and log["cut"] > 0
    assert query["text"].startswith("FIRST") and query["cut"] > 0
    assert failed == entries[2]
    assert capped(event, 1024 * 1024) is event  # it fits: left alone


def notice(kind: Any, **fields: Any) -> Notice:
    return Notice(
        kind=kind,
        rule="ws",
        target="svc/a",
        event_id="e1",
        handler="test.probe",
        alert=Alert.model_validate(alert("WsNotReady", service="a")),
        **fields,
    )


GATHERED = [
    Gathered(
        kind="kubernetes.logs", title="last 3 log lines of pod torghut/ws-1", text="ping <!channel> ```x```"
    ),
    Gathered(kind="prometheus.query", title="Prometheus: up", error="no answer within 0.3s (its timeout)"),
]


async def post(transport: RecordingTransport, *notices: Notice) -> None:
    slack = SlackNotifier(
        settings=Settings(), session=None, store=MemoryStore(), metrics=Metrics(), transport=transport
    )
    await slack.start()
    for one in notices:
        slack.send(one)
    await slack.close()


async def test_the_context_is_the_threads_first_reply_escaped() -> None:
    transport = RecordingTransport()
    await post(transport, notice("context", context=GATHERED), notice("started"))
    (parent,) = transport.top_level()
    assert "Remediating WsNotReady on svc/a" in parent.message.text
    assert "Context" not in str(parent.message.blocks)  # the header is updated later: not there
    (reply,) = transport.replies(parent)  # "started" is not posted again
    text = str(reply.message.blocks)
    assert "*last 3 log lines of pod torghut/ws-1*" in text
    assert "ping &lt;!channel&gt; '''x'''" in text and "<!channel>" not in text
    assert "⚠️ *Prometheus: up*: could not be gathered: no answer within 0.3s (its timeout)" in text


async def test_a_webhook_posts_the_context_with_the_incident() -> None:
    transport = RecordingTransport(threads=False)
    await post(transport, notice("context", context=GATHERED))
    (message,) = transport.posted
    assert "svc/a" in str(message.message.blocks) and "last 3 log lines" in str(message.message.blocks)


def run_with(timeline: list[Step], carried_steps: list[Step]) -> Run:
    job = Job(
        event_id="e1", rule="ws", alert=Alert.model_validate(alert("WsNotReady")), received_at=time.time()
    )
    run = Run(delivery=Delivery("1-1", job, 2), consumer="w", log=structlog.get_logger())
    run.carried = carried_steps
    run.timeline = [*carried_steps, *timeline]
    return run


def test_a_job_put_back_keeps_the_context_it_gathered_and_finds_it_again() -> None:
    received = Step(at=0, name="received")
    gathered = Step(at=1, name=STEP, data={"entries": [GATHERED[0].model_dump()]})
    later = Step(at=2, name="lease.busy")
    run = run_with([received, gathered, later], [])
    kept = kept_steps(run)  # what a Defer without a job of its own stashes
    assert kept == [received, gathered]
    assert carried(kept) == [GATHERED[0]]
    again = run_with([], kept)
    assert kept_steps(again) == kept and carried(again.timeline) == [GATHERED[0]]
    assert kept_steps(run_with([received], [])) == []  # no context: as before, the carried steps


def test_the_cli_shows_an_events_context() -> None:
    event = {
        "event_id": "e1",
        "rule": "ws",
        "outcome": "succeeded",
        "context": [GATHERED[0].model_dump(), GATHERED[1].model_dump()],
    }
    text = event_text(event)
    assert "context   last 3 log lines of pod torghut/ws-1\n  | ping <!channel> ```x```\n" in text
    assert "context   Prometheus: up: could not be gathered: no answer within 0.3s (its timeout)" in text
