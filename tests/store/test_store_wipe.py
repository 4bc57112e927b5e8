"""Issue 24, item 11: a Redis without persistence. ``serve`` warns at start when the server
persists nothing; a generation marker, written at the first start, tells a wiped store
from a new one: a replica that saw the marker and then finds none (or another) reports
the wipe with T, the last time it saw it: an error logged, remediator_store_resets_total,
a warning in /readyz (still 200: the store works), one Slack notice for all replicas; the
jobs view answers 410, not 404, for an id accepted before the store's data began."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import structlog
from aiohttp.test_utils import TestClient, TestServer

from remediator.api.service import SERVICE, Service
from remediator.app import create_app
from remediator.settings import Settings
from remediator.store.redis.store import RedisStore
from tests.support.admin import (
    Calls,
    admin_headers,
    make_registry,
    make_settings,
    webhook_headers,
    write_rules,
)
from tests.support.payloads import alert, payload
from tests.support.recording import RecordingNotifier
from tests.support.redis_server import RedisServer

Client = TestClient[Any, Any]


async def test_the_start_warns_when_redis_persists_nothing(tmp_path: Path) -> None:
    with (
        RedisServer.running(tmp_path / "bare") as bare,
        RedisServer.running(tmp_path / "aof", persistent=True) as aof,
    ):
        for server, warned in ((bare, True), (aof, False)):
            with structlog.testing.capture_logs() as logs:
                store = await RedisStore.create(Settings(redis_url=server.url, redis_prefix="p"))
                await store.close()
            found = [e for e in logs if e["event"] == "store.redis_not_persistent"]
            assert len(found) == int(warned), logs
            if warned:
                assert (
                    "appendonly" in found[0]["message"] and "loses every accepted job" in found[0]["message"]
                )
        with bare.client() as client:  # RDB snapshots only: persisted, no warning either
            client.config_set("save", "3600 1")
        with structlog.testing.capture_logs() as logs:
            store = await RedisStore.create(Settings(redis_url=bare.url, redis_prefix="p"))
            await store.close()
        assert not [e for e in logs if e["event"] == "store.redis_not_persistent"]
        [seen] = [e for e in logs if e["event"] == "store.redis_persistence"]
        assert (seen["save"], seen["appendonly"]) == ("3600 1", "no")


@asynccontextmanager
async def replica(settings: Settings, notifier: RecordingNotifier) -> AsyncIterator[tuple[Client, Service]]:
    app = create_app(settings, registry=make_registry(Calls()), notifier=notifier)
    async with TestClient(TestServer(app)) as client:
        yield client, app[SERVICE]


async def eventually(check: Any, within: float, what: str) -> Any:
    deadline = time.monotonic() + within
    while not (found := await check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within}s waiting for {what}")
        await asyncio.sleep(0.1)
    return found


def resets(svc: Service) -> float:
    return svc.metrics.registry.get_sample_value("remediator_store_resets_total") or 0.0


async def test_a_wiped_store_is_reported_with_the_time_it_was_last_seen(tmp_path: Path) -> None:
    with RedisServer.running(tmp_path / "redis") as server:  # no persistence: a restart wipes it
        settings = make_settings(
            write_rules(tmp_path / "rules.yaml"), redis_url=server.url, redis_prefix="wipe"
        )
        first_notes, second_notes = RecordingNotifier(), RecordingNotifier()
        async with (
            replica(settings, first_notes) as (first, svc1),
            replica(settings, second_notes) as (second, svc2),
        ):
            # A job accepted and held by a pause (it waits in the store)...
            paused = await first.post(
                "/api/v1/pauses", json={"reason": "hold", "for": "1h"}, headers=admin_headers()
            )
            assert paused.status == 201
            accepted = await first.post(
                "/webhooks/alertmanager",
                json=payload(alert("TestBroken", service="held")),
                headers=webhook_headers(),
            )
            [held] = (await accepted.json())["event_ids"]
            assert (await second.get(f"/api/v1/jobs/{held}", headers=admin_headers())).status == 200
            await asyncio.sleep(1.5)  # both replicas have seen the marker by now
            before = time.time()
            server.kill()
            server.start()  # empty: it persisted nothing
            after = time.time()

            async def reported() -> bool:
                return resets(svc1) == 1 and resets(svc2) == 1

            await eventually(reported, 20, "both replicas to see the wipe")
            for client in (first, second):
                ready = await client.get("/readyz")
                body = await ready.json()
                assert ready.status == 200 and body["status"] == "ready", body  # the store works
                [warning] = body["warnings"]
                assert "wiped" in warning and "may be lost" in warning, warning
            notices = first_notes.of_kind("store_reset") + second_notes.of_kind("store_reset")
            assert len(notices) == 1, notices  # one Slack post for all replicas
            [notice] = notices
            last_seen = datetime.fromisoformat(notice.details["last_seen"].replace("Z", "+00:00")).timestamp()
            assert before - 3 <= last_seen <= after, (before, last_seen, after)
            assert "may be lost" in notice.message and notice.details["last_seen"] in notice.message
            # The held job is gone: the jobs view says so instead of "never accepted".
            gone = await second.get(f"/api/v1/jobs/{held}", headers=admin_headers())
            assert gone.status == 410, await gone.text()
            assert "before the state store's data began" in (await gone.json())["detail"]
            never = await second.get("/api/v1/jobs/0fffffffffff000000abcd", headers=admin_headers())
            assert never.status == 404  # an id from the future: never accepted


async def test_a_new_store_and_a_restarted_replica_are_not_wipes(tmp_path: Path) -> None:
    with RedisServer.running(tmp_path / "redis") as server:
        settings = make_settings(
            write_rules(tmp_path / "rules.yaml"), redis_url=server.url, redis_prefix="fresh"
        )
        notes = RecordingNotifier()
        with structlog.testing.capture_logs() as logs:
            async with replica(settings, notes) as (_, svc):
                await asyncio.sleep(1.5)
                assert resets(svc) == 0
            async with replica(settings, notes) as (client, svc):
                await asyncio.sleep(1.5)
                assert resets(svc) == 0
                assert (await (await client.get("/readyz")).json())["warnings"] == []
        assert notes.of_kind("store_reset") == []
        assert len([e for e in logs if e["event"] == "store.generation_created"]) == 1
        assert not [e for e in logs if e["event"] == "store.wiped"]


pytestmark = pytest.mark.timeout(120)


def test_the_slack_post_says_what_was_lost_and_since_when() -> None:
    from remediator.notify.notice import SERVICE_NOTICES
    from remediator.notify.slack import messages
    from remediator.worker.generation import GenerationWatch, Wipe

    notice = GenerationWatch.notice(Wipe(last_seen=1796601600.0, noticed=1796601605.0, lost="a1", found="b2"))
    assert notice.kind in SERVICE_NOTICES  # posted to the channel, not into an incident's thread
    message = messages.parent(notice)
    text = " ".join(str(block) for block in message.blocks)
    assert "State store wiped" in message.text and "2026-12-07T00:00:00Z" in text
    assert "may be lost" in text and "2026-12-07T00:00:05Z" in text
