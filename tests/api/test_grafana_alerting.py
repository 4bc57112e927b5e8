"""Grafana Alerting's webhook contact point on the Alertmanager route: Grafana's documented
payload (``examples/grafana/webhook-firing.json``, copied from Grafana's webhook notifier
docs) is accepted, its source recorded (the event, the intake metrics), and its links
(silence, dashboard, panel, the alert rule, Grafana itself) reach the event, the Slack
message and the console as the Alertmanager ones do."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from remediator.api.service import SERVICE, Service
from remediator.app import create_app
from remediator.notify.notice import Notice
from remediator.notify.slack import messages
from tests.support.admin import ADMIN_TOKEN, Calls, make_registry, make_settings, webhook_headers
from tests.support.payloads import alert, payload
from tests.support.recording import RecordingNotifier
from tests.support.slack_server import render_message
from tests.support.waiting import wait_event

GRAFANA = Path(__file__).resolve().parents[2] / "examples" / "grafana" / "webhook-firing.json"
SILENCE = (
    "https://play.grafana.org/alerting/silence/new?alertmanager=grafana&matchers="
    "alertname%3DT2%2Cteam%3Dblue%2Czone%3Dus-1"
)
RULES = """\
rules:
  - name: memory
    matchers: ['alertname="High memory usage"']
    handler: test.fix
    target: 'zone/{{ labels.zone }}'
  - name: broken
    matchers: ['alertname="TestBroken"']
    handler: test.fix
    target: 'svc/{{ labels.service }}'
"""
Client = TestClient[Any, Any]
TOKEN = "alice-console-token-0123"


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[Client, Service, list[Notice]]]:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    tokens = tmp_path / "tokens.yaml"
    tokens.write_text(f'alice: "{TOKEN}"\n')
    settings = make_settings(rules, admin_token=None, admin_tokens_file=tokens, ui=True)
    recorder = RecordingNotifier()
    sent = recorder.notices
    app = create_app(settings, registry=make_registry(Calls()), notifier=recorder)
    async with TestClient(TestServer(app)) as client:
        yield client, app[SERVICE], sent


def documented() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(GRAFANA.read_text())
    return data


async def post(client: Client, body: dict[str, Any]) -> dict[str, Any]:
    response = await client.post("/webhooks/alertmanager", json=body, headers=webhook_headers())
    assert response.status == 202, await response.text()
    answer: dict[str, Any] = await response.json()
    return answer


async def test_grafanas_documented_payload_is_accepted_with_its_source_and_links(
    served: tuple[Client, Service, list[Notice]],
) -> None:
    client, svc, sent = served
    answer = await post(client, documented())
    assert answer["accepted"] == 1 and answer["unmatched_alerts"] == 1  # High CPU usage: no rule
    (event_id,) = answer["event_ids"]
    event = await wait_event(svc.store, event_id)
    assert event.outcome_label == "succeeded" and event.target == "zone/us-1"
    assert event.source == "grafana" and event.external_url == "https://play.grafana.org/"
    fired = event.alert
    assert fired is not None and fired.fingerprint == "c6eadffa33fcdf37"
    assert fired.silence_url == SILENCE and fired.dashboard_url == fired.panel_url == ""
    assert fired.grafana_values == {"B": 44.23943737541908, "C": 1}
    assert fired.starts_at.isoformat() == "2021-10-12T09:51:03.157076+02:00"
    assert fired.generator_url == "https://play.grafana.org/alerting/1afz29v7z/edit"

    metrics = (await (await client.get("/metrics")).text()).splitlines()
    assert 'remediator_alerts_received_total{source="grafana",status="firing"} 2.0' in metrics
    assert 'remediator_alerts_unmatched_total{source="grafana"} 1.0' in metrics

    api = await client.get(f"/api/v1/events/{event_id}", headers={"Authorization": f"Bearer {TOKEN}"})
    body = await api.json()
    assert api.status == 200 and body["source"] == "grafana"
    assert body["alert"]["silenceURL"] == SILENCE and body["alert"]["values"] == {
        "B": 44.23943737541908,
        "C": 1,
    }

    (started,) = [n for n in sent if n.kind == "started"]
    assert started.source == "grafana"
    shown = "\n".join(render_message(_as_message(messages.parent(started))))
    assert "Source (Grafana alert rule) [https://play.grafana.org/alerting/1afz29v7z/edit]" in shown
    assert "Runbook [https://myrunbook.com/runbook/1234]" in shown
    assert "Grafana [https://play.grafana.org/]" in shown
    assert f"Silence [{SILENCE}]" in shown
    assert "Alertmanager" not in shown and "Prometheus" not in shown


async def test_the_dashboard_and_panel_links_reach_slack_and_the_console(
    served: tuple[Client, Service, list[Notice]],
) -> None:
    client, svc, sent = served
    body = documented()
    body["alerts"][0]["dashboardURL"] = "https://play.grafana.org/d/abc/memory"
    body["alerts"][0]["panelURL"] = "https://play.grafana.org/d/abc/memory?viewPanel=2"
    body["alerts"][0]["values"] = None  # as Grafana sends when there is none
    (event_id,) = (await post(client, body))["event_ids"]
    await wait_event(svc.store, event_id)
    (started,) = [n for n in sent if n.kind == "started"]
    shown = "\n".join(render_message(_as_message(messages.parent(started))))
    assert "Dashboard [https://play.grafana.org/d/abc/memory]" in shown
    assert "Panel [https://play.grafana.org/d/abc/memory?viewPanel=2]" in shown
    form = await client.get("/ui/signin")
    csrf = _csrf(await form.text())
    signed = await client.post("/ui/signin", data={"token": TOKEN, "csrf": csrf}, allow_redirects=False)
    assert signed.status == 303
    page = await (await client.get(f"/ui/events/{event_id}")).text()
    for title, url in (
        ("Grafana alert rule", "https://play.grafana.org/alerting/1afz29v7z/edit"),
        ("Grafana", "https://play.grafana.org/"),
        ("Silence", SILENCE.replace("&", "&amp;")),
        ("Dashboard", "https://play.grafana.org/d/abc/memory"),
        ("Panel", "https://play.grafana.org/d/abc/memory?viewPanel=2"),
    ):
        assert f'<a href="{url}" rel="noopener noreferrer">{title}</a>' in page, title


async def test_alertmanager_stays_the_source_of_its_payloads(
    served: tuple[Client, Service, list[Notice]],
) -> None:
    client, svc, _ = served
    (event_id,) = (await post(client, payload(alert("TestBroken", service="api"))))["event_ids"]
    event = await wait_event(svc.store, event_id)
    assert event.source == "alertmanager"
    metrics = (await (await client.get("/metrics")).text()).splitlines()
    assert 'remediator_alerts_received_total{source="alertmanager",status="firing"} 1.0' in metrics


async def test_another_version_is_refused_naming_both(served: tuple[Client, Service, list[Notice]]) -> None:
    client, _, _ = served
    body = documented()
    body["version"] = "2"
    response = await client.post("/webhooks/alertmanager", json=body, headers=webhook_headers())
    assert response.status == 400
    data = await response.json()
    assert data["error"] == "not an Alertmanager (version 4) or Grafana Alerting (version 1) webhook payload"
    (problem,) = data["detail"]
    assert problem["msg"] == (
        "Value error, unsupported webhook version '2': expected '4' (Alertmanager) or '1' "
        "(Grafana Alerting's webhook contact point)"
    )
    assert ADMIN_TOKEN  # the admin API is not involved


def _as_message(message: Any) -> Any:
    from tests.support.slack_server import Message

    return Message(via="api", channel="C1", ts="1.1", text=message.text, blocks=message.blocks)


def _csrf(page: str) -> str:
    import re

    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found, "no CSRF field"
    return found.group(1)
