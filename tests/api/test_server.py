import base64
import json
from collections.abc import Sequence
from typing import Any

from remediator.errors import StoreUnavailable
from remediator.models import Alert, Job, NewJob
from remediator.store.memory import MemoryStore
from remediator.store.memory.intake import MemoryIntake
from tests.conftest import TOKEN, MakeHarness
from tests.support.handlers import PROBE_RULES as RULES
from tests.support.payloads import alert, example, payload


class DownIntake(MemoryIntake):
    """An intake whose writes fail, as Redis does when it is unreachable."""

    async def accept(
        self, jobs: Sequence[Job | NewJob], firing: Sequence[Alert], resolved: Sequence[Alert]
    ) -> None:
        raise StoreUnavailable("connection refused")


class DownStore(MemoryStore):
    """A store whose writes fail, as Redis does when it is unreachable."""

    def __init__(self) -> None:
        super().__init__()
        self.intake = DownIntake(firing=self.firing, jobs=self.jobs, queue=self.queue, ttl=3600.0, cap=100)

    async def ping(self) -> None:
        raise StoreUnavailable("connection refused")


async def test_accepts_and_returns_event_ids(harness: MakeHarness) -> None:
    h = await harness(RULES)
    body = payload(alert("Probe", service="a"), alert("Probe", service="b"), alert("Unrelated"))
    response = await h.post(body)
    assert response.status == 202
    data = await response.json()
    assert data["accepted"] == 2 and len(set(data["event_ids"])) == 2
    assert data["unmatched_alerts"] == 1
    for event_id in data["event_ids"]:
        assert (await h.event(event_id)).outcome.value == "succeeded"


async def test_wrong_or_missing_token_is_401_and_stores_nothing(harness: MakeHarness) -> None:
    h = await harness(RULES)
    for headers in (
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": "Basic Zm9vOmJhcg=="},
        {"Authorization": f"Token {TOKEN}"},
    ):
        response = await h.client.post(
            "/webhooks/alertmanager", json=payload(alert("Probe", service="a")), headers=headers
        )
        assert response.status == 401
        assert (await response.json())["error"] == "missing or wrong credentials"
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert await h.svc.store.queue.queue_depth() == 0
    events, _ = await h.svc.store.audit.list_events(10)
    assert events == []


async def test_basic_auth(harness: MakeHarness) -> None:
    h = await harness(RULES, webhook_token=None, webhook_username="am", webhook_password="s3cret")
    good = base64.b64encode(b"am:s3cret").decode()
    bad = base64.b64encode(b"am:nope").decode()
    body = payload(alert("Probe", service="a"))
    assert (
        await h.client.post("/webhooks/alertmanager", json=body, headers={"Authorization": f"Basic {good}"})
    ).status == 202
    assert (
        await h.client.post("/webhooks/alertmanager", json=body, headers={"Authorization": f"Basic {bad}"})
    ).status == 401
    assert (
        await h.client.post(
            "/webhooks/alertmanager", json=body, headers={"Authorization": "Basic !!notbase64"}
        )
    ).status == 401


async def test_invalid_json_is_400_with_reason(harness: MakeHarness) -> None:
    h = await harness(RULES)
    response = await h.client.post(
        "/webhooks/alertmanager",
        data=b"{not json",
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
    )
    assert response.status == 400
    assert (await response.json())["error"] == "body is not valid JSON"


async def test_invalid_payload_is_400_with_fields(harness: MakeHarness) -> None:
    h = await harness(RULES)
    bad = payload(alert("Probe"))
    bad["version"] = "3"
    del bad["alerts"][0]["labels"]
    response = await h.post(bad)
    assert response.status == 400
    data = await response.json()
    assert data["error"] == "not an Alertmanager (version 4) or Grafana Alerting (version 1) webhook payload"
    locs = {d["loc"] for d in data["detail"]}
    assert {"version", "alerts.0.labels"} <= locs


async def test_unknown_fields_are_ignored(harness: MakeHarness) -> None:
    h = await harness(RULES)
    body = payload(alert("Probe", service="a"))
    body["routeLabels"] = {"x": "y"}
    body["alerts"][0]["newField"] = 1
    assert (await h.post(body)).status == 202


async def test_oversized_body_is_413(harness: MakeHarness) -> None:
    h = await harness(RULES, max_body_bytes=2048)
    body = payload(*[alert("Probe", service=f"s{i}") for i in range(40)])
    response = await h.post(body)
    assert response.status == 413
    assert "exceeds the limit of 2048" in (await response.json())["error"]

    async def chunks() -> Any:  # no Content-Length: the limit holds while reading
        raw = json.dumps(body).encode()
        for i in range(0, len(raw), 512):
            yield raw[i : i + 512]

    response = await h.client.post(
        "/webhooks/alertmanager",
        data=chunks(),
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
    )
    assert response.status == 413
    assert await h.svc.store.queue.queue_depth() == 0


async def test_non_json_is_415(harness: MakeHarness) -> None:
    h = await harness(RULES)
    response = await h.client.post(
        "/webhooks/alertmanager",
        data="a=b",
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status == 415
    assert "application/json" in (await response.json())["error"]


async def test_store_down_is_503_so_alertmanager_retries(harness: MakeHarness) -> None:
    h = await harness(RULES, store=DownStore())
    response = await h.post(payload(alert("Probe", service="a")))
    assert response.status == 503
    assert response.headers["Retry-After"] == "5"
    assert "retry" in (await response.json())["error"]
    ready = await h.client.get("/readyz")
    assert ready.status == 503
    assert "store unavailable" in (await ready.json())["problems"][0]


async def test_health_ready_metrics(harness: MakeHarness) -> None:
    h = await harness(RULES)
    assert (await h.client.get("/healthz")).status == 200
    ready = await h.client.get("/readyz")
    assert ready.status == 200
    body = await ready.json()
    assert body["rules"]["count"] == 1 and body["store"] == {"kind": "memory", "ok": True}
    response = await h.post(payload(alert("Probe", service="a")))
    await h.event((await response.json())["event_ids"][0])
    text = await (await h.client.get("/metrics")).text()
    assert 'remediator_alerts_received_total{source="alertmanager",status="firing"} 1.0' in text
    assert 'remediator_jobs_total{outcome="succeeded",reason="",rule="probe"} 1.0' in text
    assert "remediator_handler_duration_seconds_count" in text
    assert "remediator_queue_depth" in text


async def test_readyz_503_without_rules(harness: MakeHarness) -> None:
    h = await harness("rules: [")
    ready = await h.client.get("/readyz")
    assert ready.status == 503
    assert (await ready.json())["problems"] == ["no rules loaded"]
    assert (await h.post(payload(alert("Probe")))).status == 503


async def test_example_payloads_are_accepted(harness: MakeHarness) -> None:
    h = await harness(RULES)
    for name in ("clickhouse-readonly-firing", "flink-failed-resolved", "torghut-ws-not-ready-firing"):
        response = await h.post(example(name))
        assert response.status == 202, await response.text()
