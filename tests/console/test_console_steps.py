"""The console's event page shows each step of a rule's ``steps:`` with its own result
(issue 28), and its rules page names the chain's handlers."""

from __future__ import annotations

import html
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from remediator.api.service import SERVICE, Service
from remediator.app import create_app
from tests.console.test_console import ALICE, fire, sign_in
from tests.support.admin import Calls, make_registry, make_settings, webhook_headers, write_rules
from tests.support.payloads import alert, payload
from tests.support.waiting import eventually

Client = TestClient[Any, Any]
RULES = """\
rules:
  - name: fix-chain
    matchers: ['alertname="TestBroken"']
    target: 'svc/{{ labels.service }}'
    steps:
      - {handler: test.fix, params: {outcome: failed}, on_failure: next}
      - {handler: test.fix, params: {outcome: succeeded}}
  - name: fix-gated
    matchers: ['alertname="TestGated"']
    target: 'gated/{{ labels.service }}'
    approval: {timeout: 1h, approvers: [U0ALICE]}
    steps:
      - {handler: test.fix, params: {outcome: failed}, on_failure: next}
      - {handler: test.fix, params: {outcome: succeeded}}
"""


@pytest.fixture
async def console(tmp_path: Path) -> AsyncIterator[tuple[Client, Service]]:
    tokens = tmp_path / "tokens.yaml"
    tokens.write_text(f'alice: "{ALICE}"\n')
    settings = make_settings(
        write_rules(tmp_path / "rules.yaml", RULES), admin_token=None, admin_tokens_file=tokens, ui=True
    )
    app = create_app(settings, registry=make_registry(Calls()))
    async with TestClient(TestServer(app)) as client:
        yield client, app[SERVICE]


async def test_the_event_page_shows_each_step_and_its_result(console: tuple[Client, Service]) -> None:
    client, svc = console
    await sign_in(client, ALICE)
    event_id = await fire(client, svc)
    page = html.unescape(await (await client.get(f"/ui/events/{event_id}")).text())
    first = "step 1/2 test.fix: failed: could not fix svc/api; next: step 2/2"
    second = "step 2/2 test.fix: succeeded: fixed svc/api; the chain ends"
    assert first in page and second in page and page.index(first) < page.index(second)
    rules = html.unescape(await (await client.get("/ui/rules")).text())
    assert "test.fix → test.fix" in rules


async def test_the_waiting_page_shows_the_precheck_and_the_chain(console: tuple[Client, Service]) -> None:
    client, svc = console
    await sign_in(client, ALICE)
    response = await client.post(
        "/webhooks/alertmanager", json=payload(alert("TestGated", service="api")), headers=webhook_headers()
    )
    [event_id] = (await response.json())["event_ids"]
    await eventually(lambda: svc.store.approvals.get_approval(event_id), within=10, what="the request")

    async def shown() -> str | None:
        page = html.unescape(await (await client.get("/ui/waiting")).text())
        return page if "awaiting_approval" in page else None

    page = await eventually(shown, within=10, what="the job awaiting approval")
    assert page is not None
    assert "The target now (its precheck): gated/api (pretend)" in page
    assert "step 1/2 test.fix (on success: next, on failure: next): fix the target (failed)" in page
    assert "step 2/2 test.fix: fix the target (succeeded)" in page


async def test_the_rules_api_lists_each_step(console: tuple[Client, Service]) -> None:
    client, _ = console
    headers = {"Authorization": f"Bearer {ALICE}"}
    found = await (await client.get("/api/v1/rules", headers=headers)).json()
    chain = next(rule for rule in found["rules"] if rule["name"] == "fix-chain")
    assert chain["handler"] == "test.fix → test.fix"
    assert [(s["handler"], s["on_success"], s["on_failure"]) for s in chain["steps"]] == [
        ("test.fix", "next", "next"),
        ("test.fix", "next", "stop"),
    ]
