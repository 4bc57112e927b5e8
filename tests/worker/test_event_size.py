"""Issue 24, item 12: what an audit event stores is capped (REMEDIATOR_AUDIT_EVENT_MAX_BYTES,
4 KB by default). Beyond it the plan and the details keep their first part, their full size
and a SHA-256; an approval request keeps the whole plan until it is decided (the approver
must see it). On a real redis-server, MEMORY USAGE shows what an event costs."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer

from remediator import Checked, Context, Handler, HandlerParams, Result, handler
from remediator.api.service import SERVICE, Service
from remediator.app import create_app
from remediator.handling.registry import Registry
from remediator.models import AuditEvent
from remediator.settings import Settings
from remediator.store.redis.store import RedisStore
from tests.support.payloads import alert, payload
from tests.support.redis_server import RedisServer

WEBHOOK, ADMIN = "webhook-token-for-sizes", "admin-token-for-sizes"
BIG_PLAN = [f"step {i}: " + "x" * 390 for i in range(20)]  # about 8 KB, a Job manifest's size
LOG = "".join(f"log line {i}\n" for i in range(800))  # about 10 KB
RULES = """
rules:
  - name: big
    matchers: ['alertname="Big"']
    handler: test.big
    target: 'svc/{{ labels.service }}'
    dry_run: true
  - name: small
    matchers: ['alertname="Small"']
    handler: test.big
    target: 'small/{{ labels.service }}'
    params: {big: false}
    dry_run: true
  - name: gated
    matchers: ['alertname="Gated"']
    handler: test.big
    target: 'gated/{{ labels.service }}'
    approval: {required: true, timeout: 30m, approvers: [U0ALICE]}
"""
Client = TestClient[Any, Any]


class BigParams(HandlerParams):
    big: bool = True


def registry() -> Registry:
    found = Registry()

    @handler("test.big", params=BigParams, registry=found, describe=lambda p: BIG_PLAN if p.big else ["tiny"])
    class Big(Handler[BigParams, None, None]):
        async def precheck(self, params: BigParams, ctx: Context) -> Checked[None]:
            return Checked("there", None)

        async def act(self, params: BigParams, ctx: Context, seen: None) -> Result | None:
            if ctx.dry_run:
                if not params.big:
                    return Result.dry_run(["tiny"], small=1)
                return Result.dry_run(BIG_PLAN, small=1, log=LOG, job="j-1")
            return None

        async def verify(self, params: BigParams, ctx: Context, acted: None) -> Result:
            return Result.succeeded("done", small=1, log=LOG)

    return found


def settings(tmp_path: Path, **more: Any) -> Settings:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    values: dict[str, Any] = {
        "rules": rules,
        "webhook_token": WEBHOOK,
        "admin_token": ADMIN,
        "workers": 2,
        "defer_interval": 0.05,
        "handler_modules": [],
        **more,
    }
    return Settings(**values)


@asynccontextmanager
async def running(config: Settings, **kw: Any) -> AsyncIterator[tuple[Client, Service]]:
    async with TestClient(TestServer(create_app(config, registry=registry(), **kw))) as client:
        yield client, client.app[SERVICE]


async def fire(client: Client, name: str, service: str = "a") -> str:
    response = await client.post(
        "/webhooks/alertmanager",
        json=payload(alert(name, service=service)),
        headers={"Authorization": f"Bearer {WEBHOOK}"},
    )
    assert response.status == 202, await response.text()
    ids: list[str] = (await response.json())["event_ids"]
    return ids[0]


async def outcome(svc: Service, event_id: str, within: float = 20.0) -> AuditEvent:
    deadline = time.monotonic() + within
    while (event := await svc.store.audit.get_event(event_id)) is None:
        assert time.monotonic() < deadline, f"no outcome for {event_id}"
        await asyncio.sleep(0.02)
    return event


def size(value: Any) -> int:
    return len(orjson.dumps(value))


def digest(value: Any) -> str:
    return hashlib.sha256(orjson.dumps(value)).hexdigest()


async def test_a_big_event_keeps_its_first_part_its_size_and_its_digest(tmp_path: Path) -> None:
    async with running(settings(tmp_path)) as (client, svc):
        event = await outcome(svc, await fire(client, "Big"))
        assert event.outcome_label == "dry_run"
        assert size(event.plan) + size(event.details) <= 4096, (size(event.plan), size(event.details))
        capped = event.details["capped"]
        took = event.details["duration_seconds"]  # the executor's, small: kept whole
        full_details = {"small": 1, "log": LOG, "job": "j-1", "duration_seconds": took}
        assert capped["plan"] == {"bytes": size(BIG_PLAN), "items": 20, "sha256": digest(BIG_PLAN)}
        assert capped["details"] == {"bytes": size(full_details), "keys": 4, "sha256": digest(full_details)}
        assert event.plan[0] == BIG_PLAN[0] and "capped" in event.plan[-1]
        assert event.details["small"] == 1 and event.details["job"] == "j-1"  # small values stay whole
        assert LOG.startswith(event.details["log"].removesuffix("…")) and len(event.details["log"]) < len(LOG)
        answer = await client.get(
            f"/api/v1/events/{event.event_id}", headers={"Authorization": f"Bearer {ADMIN}"}
        )
        shown = await answer.json()
        assert shown["plan"] == event.plan and shown["details"]["capped"] == capped


async def test_a_small_event_is_stored_whole_and_the_setting_moves_the_cap(tmp_path: Path) -> None:
    async with running(settings(tmp_path)) as (client, svc):
        small = await outcome(svc, await fire(client, "Small"))
        assert small.plan == ["tiny"] and small.details["small"] == 1 and "capped" not in small.details
    async with running(settings(tmp_path, audit_event_max_bytes=65536)) as (client, svc):
        whole = await outcome(svc, await fire(client, "Big", service="b"))
        assert whole.plan == BIG_PLAN and whole.details["log"] == LOG and "capped" not in whole.details


async def test_an_approval_request_keeps_the_whole_plan_until_decided(tmp_path: Path) -> None:
    async with running(settings(tmp_path)) as (client, svc):
        event_id = await fire(client, "Gated")
        headers = {"Authorization": f"Bearer {ADMIN}"}
        deadline = time.monotonic() + 10
        while (approval := await svc.store.approvals.get_approval(event_id)) is None:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
        assert list(approval.plan) == BIG_PLAN
        listed = await (await client.get("/api/v1/approvals", headers=headers)).json()
        [shown] = listed["approvals"]
        assert shown["plan"] == BIG_PLAN  # the approver sees all of it
        decided = await client.post(
            f"/api/v1/approvals/{event_id}", json={"decision": "approve"}, headers=headers
        )
        assert decided.status == 200, await decided.text()
        event = await outcome(svc, event_id)
        assert event.outcome_label == "succeeded" and size(event.details) <= 4096
        assert event.details["capped"]["details"]["bytes"] > 4096


# ---- what an event costs in Redis --------------------------------------------------------
@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with RedisServer.running(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.mark.server  # a redis-server
async def test_redis_holds_a_capped_event_in_bounded_bytes(tmp_path: Path, redis_server: RedisServer) -> None:
    """MEMORY USAGE of the event's hash and its share of the audit stream: the event JSON is
    kept in both, so a capped event costs about twice its capped JSON."""
    redis_server.flush()
    config = settings(tmp_path, redis_url=redis_server.url, redis_prefix="sizes")
    store = await RedisStore.create(config)
    try:
        async with running(config, store=store) as (client, svc):
            ids = [await fire(client, "Big", service=f"s{i}") for i in range(20)]
            events = [await outcome(svc, event_id) for event_id in ids]
        with redis_server.client() as redis:
            stream = int(redis.memory_usage(store.keys.audit, samples=0))
            per_hash = [int(redis.memory_usage(store.keys.event(e.event_id), samples=0)) for e in events]
        rest = max(len(e.model_copy(update={"plan": [], "details": {}}).model_dump_json()) for e in events)
        # The cap and what the cap leaves alone (the alert, the timeline), plus Redis' own:
        # jemalloc rounds an allocation up to its size class (up to a quarter more).
        bound = 1.25 * (4096 + rest) + 512
        assert max(per_hash) <= bound, (per_hash, rest)
        assert stream / len(events) <= bound, (stream, rest)
    finally:
        await store.close()
