"""Issue 17: an Alertmanager HA pair's two deliveries of one alert are collapsed at intake."""

from __future__ import annotations

import asyncio
from typing import Any

from remediator.intake import ManualOptions
from remediator.models import WebhookPayload
from tests.conftest import MakeHarness
from tests.support.handlers import PROBE_RULES, RUNS
from tests.support.payloads import alert, payload


async def deliver(h: Any, body: dict[str, Any]) -> dict[str, Any]:
    response = await h.post(body)
    assert response.status == 202, await response.text()
    answer: dict[str, Any] = await response.json()
    return answer


async def test_an_ha_pairs_twin_delivery_is_answered_deduplicated_and_runs_once(harness: MakeHarness) -> None:
    h = await harness(PROBE_RULES)
    body = payload(alert("Probe", service="a"))
    first, twin = await asyncio.gather(deliver(h, body), deliver(h, body))
    assert sorted(answer["deduplicated"] for answer in (first, twin)) == [0, 1]
    assert sorted(answer["accepted"] for answer in (first, twin)) == [0, 1]
    [event_id] = first["event_ids"] + twin["event_ids"]
    event = await h.event(event_id)
    assert event.outcome_label == "succeeded"
    assert event.details["deduplicated"] == 1
    assert [s.name for s in event.timeline].count("deduplicated") == 1
    # A later repeat of the repaired episode is collapsed too (not counted on the event).
    assert (await deliver(h, body))["deduplicated"] == 1
    await asyncio.sleep(0.2)
    assert len(RUNS["web"]) == 1
    events, _ = await h.svc.store.audit.list_events(100)
    assert [e.event_id for e in events] == [event_id]  # one audit event, not one per copy
    metrics = await (await h.client.get("/metrics")).text()
    assert 'remediator_alerts_deduplicated_total{rule="probe"} 2.0' in metrics


async def test_a_resolved_notification_is_never_collapsed_into_a_firing_one(harness: MakeHarness) -> None:
    h = await harness(PROBE_RULES)
    firing = alert("Probe", service="a")
    assert (await deliver(h, payload(firing)))["deduplicated"] == 0
    resolved = payload(alert("Probe", status="resolved", service="a"))
    answer = await deliver(h, resolved)
    assert (answer["accepted"], answer["deduplicated"]) == (1, 0)
    twin = await deliver(h, resolved)  # the HA pair's copy of the resolution: collapsed
    assert (twin["accepted"], twin["deduplicated"]) == (0, 1)


async def test_a_manual_replay_is_never_collapsed(harness: MakeHarness) -> None:
    h = await harness(PROBE_RULES)
    body = payload(alert("Probe", service="a"))
    await deliver(h, body)
    replayed = await h.svc.intake.accept(WebhookPayload.model_validate(body), ManualOptions(note="again"))
    assert replayed.deduplicated == 0 and len(replayed.event_ids) == 1
