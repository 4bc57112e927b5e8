"""``GET /api/v1/gates``: the live cooldown, open circuit and lease of one (rule, target),
for a read-only token too (what ``remediator simulate --url`` asks)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from remediator.api.service import SERVICE
from remediator.api.times import parse_time
from remediator.app import create_app
from tests.support import admin
from tests.support.payloads import alert, payload
from tests.support.waiting import eventually, wait_event

VIEWER = "viewer-token-0123456789"


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[tuple[TestClient[Any, Any], admin.Calls]]:
    tokens = tmp_path / "admin-tokens.yaml"
    tokens.write_text(f'viewer:\n  token: "{VIEWER}"\n  access: read\n')
    calls = admin.Calls()
    settings = admin.make_settings(admin.write_rules(tmp_path / "rules.yaml"), admin_tokens_file=tokens)
    app = create_app(settings, registry=admin.make_registry(calls))
    async with TestClient(TestServer(app)) as test_client:
        yield test_client, calls


async def fire(http: TestClient[Any, Any], **labels: Any) -> str:
    response = await http.post(
        "/webhooks/alertmanager",
        json=payload(alert("TestBroken", **labels)),
        headers=admin.webhook_headers(),
    )
    assert response.status == 202, await response.text()
    [event_id] = (await response.json())["event_ids"]
    return str(event_id)


async def gates(http: TestClient[Any, Any], target: str, rule: str = "fix-it") -> dict[str, Any]:
    response = await http.get(
        "/api/v1/gates", params={"rule": rule, "target": target}, headers=admin.admin_headers(VIEWER)
    )
    assert response.status == 200, await response.text()
    return dict(await response.json())


async def test_nothing_holds_a_target_never_repaired(
    client: tuple[TestClient[Any, Any], admin.Calls],
) -> None:
    http, _ = client
    state = await gates(http, "svc/new")
    assert state["rule"] == "fix-it" and state["target"] == "svc/new" and state["rule_loaded"] is True
    assert (state["cooldown"], state["circuit"], state["lease"]) == (None, None, None)
    assert (await gates(http, "svc/new", rule="not-loaded"))["rule_loaded"] is False


async def test_a_success_leaves_a_cooldown_and_failures_open_the_circuit(
    client: tuple[TestClient[Any, Any], admin.Calls],
) -> None:
    http, _ = client
    store = http.app[SERVICE].store
    await wait_event(store, await fire(http, service="ok"))
    state = await gates(http, "svc/ok")
    now = parse_time(state["now"])
    assert state["circuit"] is None and state["cooldown"] is not None
    assert 14 * 60 < state["cooldown"]["remaining_seconds"] <= 15 * 60  # the rules' cooldown: 15m
    assert parse_time(state["cooldown"]["until"]) == pytest.approx(
        now + state["cooldown"]["remaining_seconds"], abs=0.01
    )

    for n in range(3):  # max_attempts: 3
        await wait_event(store, await fire(http, service="bad", outcome="failed", attempt=str(n)))
    state = await gates(http, "svc/bad")
    assert state["cooldown"] is None and state["circuit"] is not None
    assert state["circuit"]["remaining_seconds"] > 0


async def test_a_run_in_progress_holds_the_lease(client: tuple[TestClient[Any, Any], admin.Calls]) -> None:
    http, calls = client
    calls.hold, calls.started = asyncio.Event(), asyncio.Event()
    event_id = await fire(http, service="busy")
    await asyncio.wait_for(calls.started.wait(), 20)
    lease = (await gates(http, "svc/busy"))["lease"]
    assert lease is not None and lease["holder"] == event_id and lease["remaining_seconds"] > 0
    calls.hold.set()
    await wait_event(http.app[SERVICE].store, event_id)

    async def released() -> bool | None:
        return (await gates(http, "svc/busy"))["lease"] is None or None

    await eventually(released, within=10, what="the lease released")


@pytest.mark.parametrize(
    "query",
    [
        {"rule": "fix-it"},
        {"target": "svc/x"},
        {"rule": "Fix It", "target": "svc/x"},
        {"rule": "fix-it", "target": "../x y"},
    ],
)
async def test_a_bad_query_is_a_400(
    client: tuple[TestClient[Any, Any], admin.Calls], query: dict[str, str]
) -> None:
    http, _ = client
    response = await http.get("/api/v1/gates", params=query, headers=admin.admin_headers(VIEWER))
    assert response.status == 400
    assert (await response.json())["error"] == "invalid query parameters"


async def test_it_needs_a_token(client: tuple[TestClient[Any, Any], admin.Calls]) -> None:
    http, _ = client
    response = await http.get("/api/v1/gates", params={"rule": "fix-it", "target": "svc/x"})
    assert response.status == 401
