"""PagerDuty escalation, against a local stand-in of the Events API v2."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import structlog
from aiohttp.test_utils import TestClient, TestServer

from remediator import Checked, Context, Handler, HandlerParams, Result, handler
from remediator.api.service import SERVICE, Service
from remediator.app import create_app
from remediator.handling.registry import Registry
from remediator.metrics import Metrics
from remediator.models import Alert, AuditEvent, Step
from remediator.notify.fanout import FanOut
from remediator.notify.notice import LogNotifier, Notice
from remediator.notify.pagerduty import PagerDutyNotifier, dedup_key
from remediator.settings import Settings
from tests.support import payloads
from tests.support.pagerduty_server import ROUTING_KEY, PagerDutyServer, Reply
from tests.support.waiting import wait_event

HOOK_TOKEN = "hook-token-for-tests"
ADMIN = "admin-token-for-the-tests"
AM_URL = "http://alertmanager.example:9093"
REGISTRY = Registry()
KEY = "remediator/widget-down/widget/w-1"


class FixParams(HandlerParams):
    mode: str = "ok"


@handler("test.fix", params=FixParams, registry=REGISTRY)
class Fix(Handler[FixParams, None, None]):
    """Restart the (imaginary) widget; the alert's ``mode`` label says how it goes."""

    async def precheck(self, params: FixParams, ctx: Context) -> Checked[None]:
        return Checked(f"{ctx.target} down (imaginary)", None)

    async def act(self, params: FixParams, ctx: Context, seen: None) -> Result | None:
        ctx.step("act", f"restarted {ctx.target}")
        if params.mode == "fail":
            return Result.failed("widget refused to restart: connection reset by peer")
        return None

    async def verify(self, params: FixParams, ctx: Context, acted: None) -> Result:
        return Result.succeeded(f"restarted {ctx.target} and verified it")


RULES = """
defaults: {cooldown: 10m, max_attempts: 2, attempt_window: 1h, timeout: 60s}
rules:
  - name: widget-down
    matchers: ['alertname="WidgetDown"']
    handler: test.fix
    target: 'widget/{{ labels.instance }}'
    params: {mode: '{{ labels.mode }}'}
"""


def settings_for(rules: Path, pagerduty: PagerDutyServer, **extra: Any) -> Settings:
    values: dict[str, Any] = {
        "rules": rules,
        "webhook_token": HOOK_TOKEN,
        "admin_token": ADMIN,
        "workers": 2,
        "shutdown_grace": 5,
        "pagerduty_routing_key": ROUTING_KEY,
        "pagerduty_api_url": pagerduty.url,
    }
    return Settings(**(values | extra))


@contextlib.asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[tuple[TestClient[Any, Any], Service]]:
    app = create_app(settings, registry=REGISTRY)
    async with TestClient(TestServer(app)) as client:
        yield client, app[SERVICE]


def alert(status: str = "firing", mode: str = "ok", instance: str = "w-1") -> dict[str, Any]:
    return payloads.alert(
        "WidgetDown",
        status,
        datetime(2024, 5, 1, 12, 0, tzinfo=UTC),
        {
            "summary": f"Widget {instance} stopped answering",
            "runbook_url": "https://runbooks.example/widget-down",
        },
        generator_url="http://prometheus.example:9090/graph?g0.expr=up",
        instance=instance,
        mode=mode,
        severity="warning",
    )


async def post(client: TestClient[Any, Any], *alerts: dict[str, Any]) -> list[str]:
    payload = {"version": "4", "status": alerts[0]["status"], "externalURL": AM_URL, "alerts": list(alerts)}
    response = await client.post(
        "/webhooks/alertmanager", json=payload, headers={"Authorization": f"Bearer {HOOK_TOKEN}"}
    )
    assert response.status == 202, await response.text()
    return list((await response.json())["event_ids"])


async def event(svc: Service, event_id: str, within: float = 20.0) -> AuditEvent:
    return await wait_event(svc.store, event_id, within)


def counted(metrics: Metrics, action: str, result: str) -> float:
    labels = {"action": action, "result": result}
    return metrics.registry.get_sample_value("remediator_pagerduty_events_total", labels) or 0.0


def notice(kind: Any, event_id: str = "e1", target: str = "widget/w-1", **fields: Any) -> Notice:
    return Notice(
        kind=kind,
        rule="widget-down",
        target=target,
        event_id=event_id,
        handler="test.fix",
        alert=Alert.model_validate(alert()),
        external_url=AM_URL,
        **fields,
    )


@contextlib.asynccontextmanager
async def direct(
    pagerduty: PagerDutyServer, rules: Path, **options: Any
) -> AsyncIterator[tuple[PagerDutyNotifier, Metrics]]:
    metrics = Metrics()
    options.setdefault("backoff", 0.05)
    async with aiohttp.ClientSession() as session:
        notifier = PagerDutyNotifier(
            settings=settings_for(rules, pagerduty), session=session, metrics=metrics, **options
        )
        await notifier.start()
        try:
            yield notifier, metrics
        finally:
            await notifier.close()


# ---- through the real app ------------------------------------------------------------------
async def test_an_open_circuit_triggers_an_incident_and_the_resolution_resolves_it(
    pagerduty: PagerDutyServer, rules_path: Path
) -> None:
    async with running(settings_for(rules_path, pagerduty)) as (client, svc):
        assert isinstance(svc.notifier, FanOut)
        assert [type(n) for n in svc.notifier.notifiers] == [LogNotifier, PagerDutyNotifier]
        [first] = await post(client, alert(mode="fail"))
        await event(svc, first)
        [second] = await post(client, alert(mode="fail"))
        assert (await event(svc, second)).outcome.value == "failed"
        await pagerduty.wait_for(1)
        await post(client, alert(status="resolved", mode="fail"))
        await pagerduty.wait_for(2)
    trigger, resolve = pagerduty.accepted()
    assert trigger["event_action"] == "trigger" and trigger["dedup_key"] == KEY
    payload = trigger["payload"]
    assert payload["summary"].startswith("remediator gave up: rule widget-down failed 2 times within 1h")
    assert "widget/w-1" in payload["summary"] and "Widget w-1 stopped answering" in payload["summary"]
    assert payload["severity"] == "warning"  # the alert's own severity
    assert payload["source"] == "widget/w-1"
    assert (payload["component"], payload["group"], payload["class"]) == (
        "test.fix",
        "widget-down",
        "WidgetDown",
    )
    details = payload["custom_details"]
    assert details["replay"] == f"remediator replay {second} --ignore-circuit --wait 300"
    assert details["event_id"] == second and details["failures"] == 2
    assert "connection reset by peer" in details["last_error"]
    assert "act: restarted widget/w-1" in details["what_was_tried"]
    assert details["labels"]["instance"] == "w-1"
    assert trigger["client_url"] == AM_URL
    assert {link["text"] for link in trigger["links"]} == {"Source (Prometheus)", "Runbook"}
    assert resolve == {"routing_key": ROUTING_KEY, "event_action": "resolve", "dedup_key": KEY}
    assert pagerduty.incidents == {KEY: "resolved"}
    assert counted(svc.metrics, "trigger", "sent") == 1 and counted(svc.metrics, "resolve", "sent") == 1


async def test_a_success_after_the_circuit_opened_resolves_the_incident(
    pagerduty: PagerDutyServer, rules_path: Path
) -> None:
    async with running(settings_for(rules_path, pagerduty)) as (client, svc):
        for _ in range(2):
            [failed] = await post(client, alert(mode="fail"))
            await event(svc, failed)
        await pagerduty.wait_for(1)
        assert pagerduty.incidents == {KEY: "triggered"}
        # The cause is fixed by hand; the operator re-runs it past the open circuit.
        response = await client.post(
            "/api/v1/replay?ignore_circuit=true",
            json=alert(mode="ok"),
            headers={"Authorization": f"Bearer {ADMIN}"},
        )
        assert response.status == 202, await response.text()
        [fixed] = (await response.json())["event_ids"]
        assert (await event(svc, fixed)).outcome.value == "succeeded"
        await pagerduty.wait_for(2)
    assert pagerduty.incidents == {KEY: "resolved"}


async def test_a_success_resolves_once_not_on_every_run(pagerduty: PagerDutyServer, rules_path: Path) -> None:
    async with direct(pagerduty, rules_path) as (notifier, metrics):
        notifier.send(notice("escalated", failures=2, message="boom"))
        for i in range(3):
            notifier.send(notice("outcome", event_id=f"ok{i}", outcome="succeeded"))
        notifier.send(notice("resolved", event_id="r"))
        notifier.send(notice("outcome", event_id="f", outcome="failed"))  # no event
        notifier.send(notice("started", event_id="s"))  # no event
        await pagerduty.wait_for(2)
        await asyncio.sleep(0.2)
    assert [b["event_action"] for b in pagerduty.accepted()] == ["trigger", "resolve"]
    assert counted(metrics, "resolve", "sent") == 1


async def test_a_429_is_retried_after_retry_after(pagerduty: PagerDutyServer, rules_path: Path) -> None:
    pagerduty.fail_next(Reply(status=429, retry_after="1"))
    async with direct(pagerduty, rules_path) as (notifier, metrics):
        notifier.send(notice("escalated", failures=2))
        await pagerduty.wait_for(1)
    limited, sent = pagerduty.received
    assert (limited.status, sent.status) == (429, 202)
    assert sent.at - limited.at >= 1.0
    assert counted(metrics, "trigger", "sent") == 1 and counted(metrics, "trigger", "failed") == 0


async def test_server_errors_are_retried_with_backoff_then_given_up(
    pagerduty: PagerDutyServer, rules_path: Path
) -> None:
    pagerduty.fail_next(Reply(status=502), times=2)
    async with direct(pagerduty, rules_path, retries=2) as (notifier, metrics):
        notifier.send(notice("escalated", failures=2))
        await pagerduty.wait_for(1)
        assert [r.status for r in pagerduty.received] == [502, 502, 202]
        pagerduty.fail_next(Reply(status=500), times=3)
        with structlog.testing.capture_logs() as logs:
            notifier.send(notice("resolved"))
            await pagerduty.wait_for(6, accepted=False)
            await asyncio.sleep(0.2)
    assert [r.status for r in pagerduty.received][3:] == [500, 500, 500]
    [failure] = [e for e in logs if e["event"] == "pagerduty.delivery_failed"]  # logged once
    assert failure["attempts"] == 3 and "HTTP 500" in failure["error"]
    assert counted(metrics, "resolve", "failed") == 1


async def test_a_bad_event_is_not_retried(pagerduty: PagerDutyServer, rules_path: Path) -> None:
    async with direct(pagerduty, rules_path) as (notifier, metrics):
        pagerduty.routing_key = "another-key"  # PagerDuty now refuses ours: 400
        notifier.send(notice("escalated", failures=2))
        await pagerduty.wait_for(1, accepted=False)
        await asyncio.sleep(0.3)
    assert [r.status for r in pagerduty.received] == [400]
    assert counted(metrics, "trigger", "failed") == 1


async def test_the_queue_is_bounded_and_drops_the_oldest(
    pagerduty: PagerDutyServer, rules_path: Path
) -> None:
    metrics = Metrics()
    async with aiohttp.ClientSession() as session:
        notifier = PagerDutyNotifier(
            settings=settings_for(rules_path, pagerduty), session=session, metrics=metrics, queue_size=3
        )
        for i in range(10):  # not started yet: nothing drains the queue
            notifier.send(notice("escalated", event_id=f"e{i}", target=f"widget/w-{i}", failures=2))
        assert counted(metrics, "trigger", "dropped") == 7
        await notifier.start()
        await pagerduty.wait_for(3)
        await notifier.close()
        notifier.send(notice("escalated", event_id="late", failures=2))  # after close: counted, no raise
    assert [b["dedup_key"] for b in pagerduty.accepted()] == [
        dedup_key("widget-down", f"widget/w-{i}") for i in (7, 8, 9)
    ]
    assert counted(metrics, "trigger", "dropped") == 8


async def test_a_slow_pagerduty_never_holds_a_remediation(
    pagerduty: PagerDutyServer, rules_path: Path
) -> None:
    pagerduty.fail_next(Reply(delay=3.0))
    async with running(settings_for(rules_path, pagerduty)) as (client, svc):
        started = time.monotonic()
        for _ in range(2):
            [failed] = await post(client, alert(mode="fail"))
            await event(svc, failed)
        [other] = await post(client, alert(instance="w-2"))
        assert (await event(svc, other)).outcome.value == "succeeded"
        assert time.monotonic() - started < 2.5
        assert not pagerduty.received  # the trigger is still on its way


def test_dedup_keys_fit_the_api() -> None:
    assert dedup_key("r", "widget/w-1") == "remediator/r/widget/w-1"
    long = dedup_key("r", "x" * 400)
    assert len(long) <= 255 and long.startswith("remediator/r/sha256:")
    assert long != dedup_key("r", "x" * 401)


async def test_the_routing_key_is_never_logged(
    pagerduty: PagerDutyServer,
    rules_path: Path,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    pagerduty.fail_next(Reply(status=500), times=4)
    with structlog.testing.capture_logs() as logs:
        async with running(settings_for(rules_path, pagerduty)) as (client, svc):
            for _ in range(2):
                [failed] = await post(client, alert(mode="fail"))
                await event(svc, failed)
            await pagerduty.wait_for(4, accepted=False)
            await asyncio.sleep(0.2)
            events = [e.model_dump_json() for e in (await svc.store.audit.list_events(50))[0]]
            metrics = await (await client.get("/metrics")).text()
            # an error message that echoes the key is redacted too
            notifier = svc.notifier
            assert isinstance(notifier, FanOut)
            pd = notifier.notifiers[1]
            assert isinstance(pd, PagerDutyNotifier)
            assert ROUTING_KEY not in pd._redact(f"bad key {ROUTING_KEY}")
    everything = "\n".join([str(logs), caplog.text, capsys.readouterr().err, *events, metrics])
    assert "pagerduty.delivery_failed" in everything
    assert ROUTING_KEY not in everything
    assert repr(Settings(pagerduty_routing_key=ROUTING_KEY)).count(ROUTING_KEY) == 0


def test_the_timeline_reaches_the_incident() -> None:
    from remediator.notify.pagerduty import trigger_body

    steps = [Step(at=0, name="act", message="scaled to 0"), Step(at=1, name="verify", message="")]
    body = trigger_body(notice("escalated", timeline=steps, failures=3), KEY)
    assert body["payload"]["custom_details"]["what_was_tried"] == ["act: scaled to 0"]
