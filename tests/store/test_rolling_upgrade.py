"""Issue 25 (item 7): the API now speaks RFC 3339, the store does not change.

Records written by the previous release (the shapes of 0.1.0's models, written with the
same keys and scripts) are read by this one and rendered with RFC 3339 times; and what
this release writes keeps the previous shape (epoch seconds, the same fields), so two
versions on one Redis during a rolling upgrade read each other's records.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from remediator.api.service import SERVICE
from remediator.app import create_app
from remediator.models import AuditEvent, Outcome, Step
from remediator.store.redis.keys import Keys
from remediator.store.values import Approval, Pause
from tests.support.admin import RULES, make_settings, write_rules
from tests.support.redis_server import RedisServer

PREFIX = "upgrade"
# Taken at import: the times below stay valid for a day, however long the suite runs
# before this module's tests (a pause of NOW + 600 had expired in a 37-minute CI run).
NOW = time.time()
# An audit event as the first release wrote it: no requested_by, external_url nor time_to_repair.
OLD_EVENT: dict[str, Any] = {
    "event_id": "0190aaaa0000old0000001",
    "rule": "fix-it",
    "target": "svc/api",
    "handler": "test.fix",
    "alertname": "TestBroken",
    "fingerprint": "f1",
    "alert_status": "firing",
    "manual": False,
    "note": "",
    "dry_run": False,
    "received_at": NOW - 60.25,
    "finished_at": NOW - 58.5,
    "outcome": "succeeded",
    "reason": "",
    "message": "fixed svc/api",
    "plan": [],
    "details": {},
    "timeline": [{"at": NOW - 60.0, "name": "handler.started", "message": "", "data": {}}],
    "alert": None,
    "replica": "old-replica",
}
OLD_APPROVAL: dict[str, Any] = {
    "event_id": "0190aaaa0000old0000002",
    "rule": "fix-it",
    "target": "svc/db",
    "alertname": "TestBroken",
    "requested_at": NOW - 30,
    "expires_at": NOW + 86370,
    "approvers": ["U0ALICE"],
    "plan": ["fix the target (succeeded)"],
    "handler": "test.fix",
    "alert": None,
    "decision": None,
    "decided_by": "",
    "decided_at": None,
    "note": "",
    "channel": "",
    "message_ts": "",
}
OLD_JOB: dict[str, Any] = {
    "event_id": "0190aaaa0000old0000003",
    "rule": "fix-it",
    "alertname": "TestBroken",
    "fingerprint": "f3",
    "state": "deferred",
    "since": NOW - 20,
    "received_at": NOW - 25,
    "why": "waiting: inhibited by Storage",
    "target": "svc/web",
    "manual": False,
}
OLD_PAUSE: dict[str, Any] = {
    "reason": "db upgrade",
    "until": NOW + 86400,
    "by": "admin",
    "id": "global",
    "matchers": [],
    "created": NOW,
}


def app_of(client: TestClient[Any, Any]) -> web.Application:
    app: web.Application | None = client.app
    assert app is not None
    return app


async def read(r: Any, *command: str) -> Any:
    """A raw record, parsed: exactly what another version of the service would read."""
    data = await r.execute_command(*command)
    assert data is not None, command
    return json.loads(data)


def epoch(text: str) -> float:
    assert text.endswith("Z"), text
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with RedisServer.running(tmp_path_factory.mktemp("redis")) as running:
        yield running


@pytest.fixture
async def client(server: RedisServer, tmp_path: Path) -> AsyncIterator[TestClient[Any, Any]]:
    server.flush()
    settings = make_settings(
        write_rules(tmp_path / "rules.yaml", RULES), redis_url=server.url, redis_prefix=PREFIX
    )
    async with TestClient(TestServer(create_app(settings))) as test_client:
        yield test_client


async def get(client: TestClient[Any, Any], path: str) -> Any:
    response = await client.get(path, headers={"Authorization": "Bearer admin-secret-token"})
    assert response.status == 200, await response.text()
    return await response.json()


async def test_records_of_the_previous_release_read_with_rfc3339_times(
    client: TestClient[Any, Any], server: RedisServer
) -> None:
    keys, svc = Keys(PREFIX), app_of(client)[SERVICE]
    store: Any = svc.store
    old = AuditEvent.model_validate(OLD_EVENT)  # the fields the RECORD_EVENT script takes besides the JSON
    await store.audit._b.run(
        "RECORD_EVENT",
        [keys.audit, keys.event(old.event_id), keys.job_states],
        [json.dumps(OLD_EVENT), *store.audit.record_fields(old)],
    )
    scope_keys = [keys.approval_scope("old-scope"), keys.approval(OLD_APPROVAL["event_id"]), keys.approvals]
    ttl = 86400_000
    args = [OLD_APPROVAL["event_id"], json.dumps(OLD_APPROVAL), ttl, int(OLD_APPROVAL["requested_at"] * 1000)]
    await store.approvals._b.run("REQUEST_APPROVAL", scope_keys, [*args, int(NOW * 1000) - ttl])
    r = redis.asyncio.Redis.from_url(server.url)
    try:
        await r.hset(keys.job_states, OLD_JOB["event_id"], json.dumps(OLD_JOB))
        await r.set(keys.pause, json.dumps(OLD_PAUSE), pxat=int(OLD_PAUSE["until"] * 1000))
    finally:
        await r.aclose()

    event = await get(client, f"/api/v1/events/{OLD_EVENT['event_id']}")
    assert epoch(event["received_at"]) == pytest.approx(OLD_EVENT["received_at"], abs=0.001)
    assert epoch(event["finished_at"]) == pytest.approx(OLD_EVENT["finished_at"], abs=0.001)
    assert epoch(event["timeline"][0]["at"]) == pytest.approx(NOW - 60.0, abs=0.001)
    assert event["time_to_repair_seconds"] is None and event["replica"] == "old-replica"
    [listed] = (await get(client, "/api/v1/events"))["events"]
    assert listed["event_id"] == OLD_EVENT["event_id"] and listed["finished_at"] == event["finished_at"]
    [approval] = (await get(client, "/api/v1/approvals"))["approvals"]
    assert approval["state"] == "pending" and "expires_at_iso" not in approval
    assert epoch(approval["expires_at"]) == pytest.approx(OLD_APPROVAL["expires_at"], abs=0.001)
    [job] = (await get(client, "/api/v1/jobs"))["jobs"]
    assert job["why"] == OLD_JOB["why"] and epoch(job["since"]) == pytest.approx(OLD_JOB["since"], abs=0.001)
    [pause] = (await get(client, "/api/v1/pauses"))["pauses"]
    assert pause["id"] == "global" and epoch(pause["until"]) == pytest.approx(OLD_PAUSE["until"], abs=0.001)
    old_route = await get(client, "/api/v1/pause")  # the deprecated alias: its old shape
    assert old_route["paused"] is True and old_route["until"] == pytest.approx(OLD_PAUSE["until"])


async def test_what_this_release_writes_keeps_the_previous_shape(
    client: TestClient[Any, Any], server: RedisServer
) -> None:
    keys, store = Keys(PREFIX), app_of(client)[SERVICE].store
    event = AuditEvent(
        event_id="0190bbbb0000new0000001",
        rule="fix-it",
        received_at=NOW - 5,
        finished_at=NOW,
        outcome=Outcome.SUCCEEDED,
        timeline=[Step(at=NOW - 4, name="handler.started")],
        time_to_repair=12.5,
    )
    await store.audit.record_event(event)
    approval = Approval.from_json(OLD_APPROVAL | {"event_id": "0190bbbb0000new0000002"})
    await store.approvals.request_approval("new-scope", approval, 1800)
    await store.pauses.add_pause(Pause.from_dict(OLD_PAUSE | {"reason": "new"}))
    r = redis.asyncio.Redis.from_url(server.url)
    try:
        written_event = await read(r, "HGET", keys.event(event.event_id), "e")
        written_approval = await read(r, "GET", keys.approval(approval.event_id))
        written_pause = await read(r, "GET", keys.pause)
    finally:
        await r.aclose()
    # The previous release's readers: every field it knew, times as epoch seconds.
    assert set(OLD_EVENT) <= set(written_event)
    assert isinstance(written_event["received_at"], float) and isinstance(written_event["finished_at"], float)
    assert isinstance(written_event["timeline"][0]["at"], float)
    # Fields added since (precheck, context) are ones the previous release drops when it reads.
    assert set(OLD_APPROVAL) <= set(written_approval)
    assert isinstance(written_approval["requested_at"], float) and isinstance(
        written_approval["expires_at"], float
    )
    assert set(written_pause) == set(OLD_PAUSE) and isinstance(written_pause["until"], float)
    assert AuditEvent.model_validate(written_event) == event
