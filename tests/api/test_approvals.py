"""Approvals end to end: the real app, the Slack stand-in sending SIGNED clicks, the API.

Approve, reject, a click by someone who is not an approver, a bad or stale signature,
a duplicate click, two replicas on one real redis-server (one message, one run).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from remediator.api.service import SERVICE, Service
from remediator.app import create_app
from remediator.settings import Settings
from remediator.store.base import Store
from tests.support.handlers import ACTS, gated_rule, make_registry
from tests.support.payloads import alert, payload
from tests.support.redis_server import RedisServer
from tests.support.slack_server import (
    SIGNING_SECRET,
    TOKEN,
    Message,
    SlackServer,
    buttons,
    interaction,
    render_message,
    signed,
)

# The memory store and the gates on looptime's clock: their waits pass without real sleeps.
pytestmark = pytest.mark.looptime

WEBHOOK = "webhook-token-for-approvals"
ADMIN = "admin-token-for-approvals"
RULES = "rules:\n" + gated_rule("30m")
APPROVE, REJECT = "remediator_approve", "remediator_reject"
Client = TestClient[Any, Any]


@pytest.fixture
async def slack() -> AsyncIterator[SlackServer]:
    server = await SlackServer().start()
    server.usergroups["S0ONCALL"] = ["U0CAROL", "U0DAVE"]
    yield server
    await server.close()


def settings(tmp_path: Path, slack: SlackServer, **more: Any) -> Settings:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    values: dict[str, Any] = {
        "rules": rules,
        "webhook_token": WEBHOOK,
        "admin_token": ADMIN,
        "workers": 2,
        "defer_interval": 0.05,
        "shutdown_grace": 5,
        "handler_modules": [],
        "slack_bot_token": TOKEN,
        "slack_channel": "#alerts",
        "slack_api_url": slack.api_url,
        "slack_signing_secret": SIGNING_SECRET,
        **more,
    }
    return Settings(**values)


@contextlib.asynccontextmanager
async def running(config: Settings, store: Store | None = None) -> AsyncIterator[tuple[Client, Service]]:
    app = create_app(config, registry=make_registry(), store=store)
    async with TestClient(TestServer(app)) as client:
        yield client, app[SERVICE]


async def fire(client: Client, service: str = "a") -> str:
    response = await client.post(
        "/webhooks/alertmanager",
        json=payload(alert("Gated", service=service)),
        headers={"Authorization": f"Bearer {WEBHOOK}"},
    )
    assert response.status == 202, await response.text()
    ids: list[str] = (await response.json())["event_ids"]
    return ids[0]


async def deliver(client: Client, service: str = "a") -> dict[str, Any]:
    """One webhook delivery; its 202 body."""
    response = await client.post(
        "/webhooks/alertmanager",
        json=payload(alert("Gated", service=service)),
        headers={"Authorization": f"Bearer {WEBHOOK}"},
    )
    assert response.status == 202, await response.text()
    body: dict[str, Any] = await response.json()
    return body


async def click(client: Client, message: Message, action: str, user: str, name: str, **sign: Any) -> int:
    body, headers = signed(interaction(message, action, buttons(message)[action], user, name), **sign)
    response = await client.post("/slack/interactions", data=body, headers=headers)
    return response.status


async def request_message(slack: SlackServer) -> Message:
    messages = await slack.wait_for_messages(1)
    assert len(messages) == 1 and set(buttons(messages[0])) == {APPROVE, REJECT}
    return messages[0]


async def outcome(svc: Service, event_id: str, within: float = 10.0) -> Any:
    deadline = time.monotonic() + within
    while (event := await svc.store.audit.get_event(event_id)) is None:
        assert time.monotonic() < deadline, f"no outcome for {event_id}"
        await asyncio.sleep(0.02)
    return event


def admin_headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {ADMIN}"}


# ---- Slack ---------------------------------------------------------------------------------
async def test_approve_in_slack_runs_once_and_updates_the_message(tmp_path: Path, slack: SlackServer) -> None:
    async with running(settings(tmp_path, slack)) as (client, svc):
        event_id = await fire(client)
        message = await request_message(slack)
        text = "\n".join(render_message(message))
        assert "Approval needed" in text and "probe a -> succeeded" in text  # the plan, as in a dry run
        assert buttons(message) == {APPROVE: event_id, REJECT: event_id}
        await asyncio.sleep(0.2)
        assert ACTS["a"] == []  # waiting
        assert await click(client, message, APPROVE, "U0ALICE", "alice") == 200
        event = await outcome(svc, event_id)
        assert event.outcome_label == "succeeded" and len(ACTS["a"]) == 1
        approved = [s for s in event.timeline if s.name == "approval.approved"]
        assert approved and approved[0].data["by"] == "slack:U0ALICE (alice)"
        await slack.wait_for("updates", 1)
        assert buttons(slack.messages[0]) == {}  # the buttons went away
        assert "Approved* by slack:U0ALICE (alice) at" in slack.messages[0].blocks[-1]["text"]["text"]
        assert len(slack.top_level()) == 1 and slack.ephemerals == []


async def test_a_group_member_rejects(tmp_path: Path, slack: SlackServer) -> None:
    async with running(settings(tmp_path, slack)) as (client, svc):
        event_id = await fire(client)
        message = await request_message(slack)
        assert await click(client, message, REJECT, "U0CAROL", "carol") == 200
        event = await outcome(svc, event_id)
        assert event.outcome_label == "skipped:rejected"
        assert event.message == "rejected by slack:U0CAROL (carol)"
        assert ACTS["a"] == [] and slack.group_lookups == 1
        await slack.wait_for("updates", 1)
        assert "Rejected* by slack:U0CAROL (carol)" in str(slack.messages[0].blocks)


async def test_someone_not_an_approver_is_refused_privately(tmp_path: Path, slack: SlackServer) -> None:
    async with running(settings(tmp_path, slack)) as (client, svc):
        event_id = await fire(client)
        message = await request_message(slack)
        assert await click(client, message, APPROVE, "U0MALLORY", "mallory") == 200
        [reply] = await slack.wait_for("ephemerals", 1)
        assert reply["user"] == "U0MALLORY" and reply["text"].startswith("You are not an approver")
        found = await svc.store.approvals.get_approval(event_id)
        assert found is not None and found.decision is None
        assert slack.updates == [] and ACTS["a"] == []
        # The group's members are cached: a second refusal asks Slack no more.
        assert await click(client, message, APPROVE, "U0MALLORY", "mallory") == 200
        assert slack.group_lookups == 1


@pytest.mark.parametrize(
    "how",
    ["wrong secret", "no signature", "tampered body", "stale timestamp", "future timestamp"],
)
async def test_an_unsigned_or_stale_click_is_401_and_changes_nothing(
    tmp_path: Path, slack: SlackServer, how: str
) -> None:
    async with running(settings(tmp_path, slack)) as (client, svc):
        event_id = await fire(client)
        message = await request_message(slack)
        signs: dict[str, dict[str, Any]] = {
            "wrong secret": {"secret": "not-the-secret"},
            "stale timestamp": {"at": time.time() - 301},
            "future timestamp": {"at": time.time() + 301},
        }
        sign = signs.get(how, {})
        body, headers = signed(interaction(message, APPROVE, event_id, "U0ALICE", "alice"), **sign)
        if how == "no signature":
            del headers["X-Slack-Signature"]
        if how == "tampered body":
            body = body.replace(b"U0ALICE", b"U0ALICF")
        response = await client.post("/slack/interactions", data=body, headers=headers)
        assert response.status == 401
        assert (await response.json())["error"] == "invalid Slack request signature"
        found = await svc.store.approvals.get_approval(event_id)
        assert found is not None and found.decision is None
        assert slack.ephemerals == [] and slack.updates == []


async def test_a_duplicate_click_changes_nothing(tmp_path: Path, slack: SlackServer) -> None:
    async with running(settings(tmp_path, slack)) as (client, svc):
        event_id = await fire(client)
        message = await request_message(slack)
        stale = Message(**{**message.__dict__})  # the message as the second clicker still sees it
        assert await click(client, message, APPROVE, "U0ALICE", "alice") == 200
        assert await click(client, stale, REJECT, "U0DAVE", "dave") == 200
        [reply] = await slack.wait_for("ephemerals", 1)
        assert reply["user"] == "U0DAVE"
        assert reply["text"] == "Nothing changed: already approved by slack:U0ALICE (alice)."
        assert (await outcome(svc, event_id)).outcome_label == "succeeded"
        await slack.wait_for("updates", 1)
        await asyncio.sleep(0.2)
        assert len(slack.updates) == 1


async def test_interactions_are_off_without_a_signing_secret(tmp_path: Path, slack: SlackServer) -> None:
    async with running(settings(tmp_path, slack, slack_signing_secret=None)) as (client, _):
        body, headers = signed({"type": "block_actions"})
        response = await client.post("/slack/interactions", data=body, headers=headers)
        assert response.status == 404


# ---- API and CLI ---------------------------------------------------------------------------
async def test_the_api_lists_and_decides_with_the_token_name(tmp_path: Path, slack: SlackServer) -> None:
    async with running(settings(tmp_path, slack)) as (client, svc):
        event_id = await fire(client)
        await request_message(slack)
        listed = await client.get("/api/v1/approvals?state=pending", headers=admin_headers())
        assert listed.status == 200
        [pending] = (await listed.json())["approvals"]
        assert pending["event_id"] == event_id and pending["plan"] == ["probe a -> succeeded"]
        assert pending["approvers"] == ["U0ALICE", "S0ONCALL"] and pending["slack_message"]
        path = f"/api/v1/approvals/{event_id}"
        assert (await client.post(path, json={"decision": "approve"})).status == 401
        bad = await client.post(path, json={"decision": "maybe"}, headers=admin_headers())
        assert bad.status == 400
        missing = await client.post(
            "/api/v1/approvals/nope", json={"decision": "approve"}, headers=admin_headers()
        )
        assert missing.status == 404
        decided = await client.post(path, json={"decision": "approve", "note": "ok"}, headers=admin_headers())
        assert decided.status == 200
        body = await decided.json()
        assert (body["state"], body["decided_by"], body["note"]) == ("approved", "admin", "ok")
        again = await client.post(path, json={"decision": "reject"}, headers=admin_headers())
        assert again.status == 409
        assert (await again.json())["error"] == "already decided: approved by admin: ok"
        event = await outcome(svc, event_id)
        assert event.outcome_label == "succeeded"
        assert [s.message for s in event.timeline if s.name == "approval.approved"] == [
            "approved by admin: ok"
        ]
        await slack.wait_for("updates", 1)
        assert "Approved* by admin" in str(slack.messages[0].blocks)


# ---- two replicas on one Redis ---------------------------------------------------------------
@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with RedisServer.running(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.mark.server
@pytest.mark.looptime(False)  # Redis keeps real time
async def test_two_replicas_one_message_one_run(
    tmp_path: Path, slack: SlackServer, redis_server: RedisServer
) -> None:
    redis_server.flush()
    config = settings(tmp_path, slack, redis_url=redis_server.url, redis_prefix="approvals")
    async with running(config) as (one, svc_one), running(config) as (two, svc_two):
        # The Alertmanager HA pair: the same alert to both replicas; one copy is collapsed.
        bodies = await asyncio.gather(deliver(one), deliver(two))
        assert sorted(body["deduplicated"] for body in bodies) == [0, 1]
        [first] = [event_id for body in bodies for event_id in body["event_ids"]]
        message = await request_message(slack)
        await asyncio.sleep(0.5)
        assert len(slack.messages) == 1  # one message for both deliveries
        waiting = [a for a in await svc_two.store.approvals.list_approvals(10) if a.decision is None]
        assert len(waiting) == 1 and waiting[0].event_id == first
        assert await click(two, message, APPROVE, "U0ALICE", "alice") == 200
        event = await outcome(svc_one, first)
        assert event.outcome_label == "succeeded" and event.details["deduplicated"] == 1
        assert len(ACTS["a"]) == 1
        await slack.wait_for("updates", 1)


@pytest.mark.server
@pytest.mark.looptime(False)  # Redis keeps real time
async def test_a_waiting_job_survives_a_replica_restart(
    tmp_path: Path, slack: SlackServer, redis_server: RedisServer
) -> None:
    redis_server.flush()
    config = settings(tmp_path, slack, redis_url=redis_server.url, redis_prefix="restart")
    async with running(config) as (client, _):
        event_id = await fire(client)
        message = await request_message(slack)
    async with running(config) as (client, svc):  # a new replica: the request is in Redis
        await asyncio.sleep(0.5)
        assert len(slack.messages) == 1  # not asked again
        assert await click(client, message, APPROVE, "U0ALICE", "alice") == 200
        event = await outcome(svc, event_id)
        assert event.outcome_label == "succeeded" and len(ACTS["a"]) == 1
        assert [s.name for s in event.timeline].count("approval.requested") == 1
