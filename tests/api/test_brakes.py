"""Issue 29, item 2: the blast-radius brake (``max_targets``).

Each test runs on the memory store (one app) and on a real Redis shared by two replicas
(two apps, both with workers): the webhook goes to the first, the operator talks to the
second.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from remediator.api.service import SERVICE, Service
from remediator.app import create_app
from remediator.notify.pagerduty import event_for
from remediator.notify.slack import messages
from tests.support import admin
from tests.support.payloads import alert, payload
from tests.support.recording import RecordingNotifier
from tests.support.redis_server import RedisServer
from tests.support.waiting import eventually, wait_event

RULES = """\
defaults:
  cooldown: 0s
  max_targets: {count: 2, within: 10m}
rules:
  - name: wide
    matchers: ['alertname="TestBroken"']
    handler: test.fix
    target: 'svc/{{ labels.service }}'
  - name: wide-dry
    matchers: ['alertname="DryBroken"']
    handler: test.fix
    target: 'dry/{{ labels.service }}'
    dry_run: true
    max_targets: {count: 1, within: 10m}
  - name: short
    matchers: ['alertname="ShortBroken"']
    handler: test.fix
    target: 'short/{{ labels.service }}'
    max_targets: {count: 1, within: 2s}
  - name: unbraked
    matchers: ['alertname="Everywhere"']
    handler: test.fix
    target: 'all/{{ labels.service }}'
    max_targets: {enabled: false}
"""


@dataclass
class Replicas:
    """The app(s) under test: ``hook`` receives alerts, ``ops`` answers the operator."""

    hook: TestClient[web.Request, web.Application]
    ops: TestClient[web.Request, web.Application]
    all: list[TestClient[web.Request, web.Application]]
    calls: admin.Calls
    notices: RecordingNotifier

    @property
    def svc(self) -> Service:
        return self.ops.app[SERVICE]

    async def admin(self, method: str, path: str, body: Any = None, *, status: int) -> Any:
        response = await self.ops.request(method, path, json=body, headers=admin.admin_headers())
        data = await response.json()
        assert response.status == status, data
        return data

    async def fire(self, *alerts: dict[str, Any]) -> list[str]:
        response = await self.hook.post(
            "/webhooks/alertmanager", json=payload(*alerts), headers=admin.webhook_headers()
        )
        assert response.status == 202, await response.text()
        ids: list[str] = (await response.json())["event_ids"]
        return ids

    async def outcome(self, event_id: str, within: float = 10.0) -> str:
        return (await wait_event(self.svc.store, event_id, within)).outcome_label

    async def settled(self, ids: list[str], ran: int, held: int) -> tuple[list[str], list[str]]:
        """Once ``ran`` of ``ids`` have an outcome and ``held`` are held: (ran, held)."""

        async def split() -> tuple[list[str], list[str]] | None:
            done = [i for i in ids if await self.svc.store.audit.get_event(i) is not None]
            states = [await self.svc.store.jobs.job_state(i) for i in ids]
            waiting = [s.event_id for s in states if s is not None and s.state == "held"]
            return (done, waiting) if (len(done), len(waiting)) == (ran, held) else None

        found = await eventually(split, within=10.0, what=f"{ran} run and {held} held")
        assert found is not None
        return found

    async def brake(self, rule: str) -> dict[str, Any]:
        brakes = (await self.admin("GET", "/api/v1/brakes", status=200))["brakes"]
        return dict(next(b for b in brakes if b["rule"] == rule))

    async def metric(self, line: str) -> float:
        """The sum over the replicas of one sample (0 when none has it)."""
        total = 0.0
        for client in self.all:
            text = await (await client.get("/metrics")).text()
            found = re.search("^" + re.escape(line) + r" (\S+)$", text, re.M)
            total += float(found.group(1)) if found else 0.0
        return total


@pytest.fixture(scope="module")
def redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with RedisServer.running(tmp_path_factory.mktemp("redis")) as server:
        yield server


# The memory store on looptime's clock (its waits pass at once); Redis keeps real time.
@pytest.fixture(
    params=[
        pytest.param("memory", marks=pytest.mark.looptime),
        pytest.param("redis", marks=pytest.mark.server),
    ]
)
async def replicas(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Replicas]:
    calls, notices = admin.Calls(), RecordingNotifier()
    rules = admin.write_rules(tmp_path / "rules.yaml", RULES)
    options: dict[str, Any] = {"defer_interval": 0.5}
    if request.param == "redis":
        server: RedisServer = request.getfixturevalue("redis")
        server.flush()
        options |= {"redis_url": server.url, "redis_prefix": "brakes"}
    count = 2 if request.param == "redis" else 1
    clients = []
    for _ in range(count):
        app = create_app(
            admin.make_settings(rules, **options), registry=admin.make_registry(calls), notifier=notices
        )
        client: TestClient[web.Request, web.Application] = TestClient(TestServer(app))
        await client.start_server()
        clients.append(client)
    try:
        yield Replicas(hook=clients[0], ops=clients[-1], all=clients, calls=calls, notices=notices)
    finally:
        for client in clients:
            await client.close()


async def test_the_brake_holds_further_targets_tells_once_and_an_operator_releases_them(
    replicas: Replicas,
) -> None:
    r = replicas
    ids = await r.fire(*(alert("TestBroken", service=f"s{i}") for i in range(5)))
    ran, held = await r.settled(ids, ran=2, held=3)
    assert {await r.outcome(i) for i in ran} == {"succeeded"}
    job = await r.svc.store.jobs.job_state(held[0])
    assert job is not None and job.why.startswith("held:brake: rule wide already acted on 2 distinct targets")
    listed = (await r.admin("GET", "/api/v1/jobs?state=held", status=200))["jobs"]
    assert sorted(j["event_id"] for j in listed) == sorted(held)
    # a target already counted still passes; more of a held one wait
    [again] = await r.fire(alert("TestBroken", service="s9", other="x"))
    await r.settled([again], ran=0, held=1)  # a worker of either replica has taken it by now
    brake = await r.brake("wide")
    assert brake["count"] == 2 and brake["within_seconds"] == 600 and brake["open"] and not brake["dry_run"]
    assert brake["counted"] == 2 and sorted(h["event_id"] for h in brake["held"]) == sorted([*held, again])
    [told] = r.notices.of_kind("brake_opened")  # once, whichever replica held which job
    assert told.rule == "wide" and told.message.startswith(
        "systemic? `wide` wants to act on 3 targets within 10m"
    )
    assert f"held: {told.target} " in told.message
    assert messages.headline(told) == "🛑 Brake open: rule wide holds further targets"
    page = event_for(told)
    assert page is not None and page.action == "trigger" and page.dedup_key == "remediator/brake/wide"
    assert await r.metric('remediator_brakes_opened_total{rule="wide"}') == 1
    assert await r.metric('remediator_brake_held_jobs{rule="wide"}') == 4 * len(r.all)
    # release some: they run at once, the others stay held
    released = await r.admin("POST", "/api/v1/brakes/wide/release", {"event_ids": [held[0]]}, status=200)
    assert [j["event_id"] for j in released["released"]] == [held[0]] and released["still_held"] == 3
    assert await r.outcome(held[0], within=5.0) == "succeeded"
    event = await r.admin("GET", f"/api/v1/events/{held[0]}", status=200)
    assert "brake.released" in [step["name"] for step in event["timeline"]]
    await asyncio.sleep(1.0)  # two DEFER_INTERVALs: the others come back and stay held
    assert len((await r.brake("wide"))["held"]) == 3
    # release all (no body)
    response = await r.ops.post("/api/v1/brakes/wide/release", headers=admin.admin_headers())
    assert response.status == 200 and (await response.json())["still_held"] == 0
    assert {await r.outcome(i, within=5.0) for i in [*held, again]} == {"succeeded"}
    assert not (await r.brake("wide"))["open"]
    assert await r.metric('remediator_brake_held_jobs{rule="wide"}') == 0
    assert len(r.notices.of_kind("brake_opened")) == 1
    some, every = r.notices.of_kind("brake_released")
    assert some.message == "admin released 1 held job(s) of `wide`; 3 still held"
    assert event_for(some) is None  # still open: the incident stays
    assert every.message == "admin released 3 held job(s) of `wide`; nothing is held: the brake is closed"
    closed = event_for(every)
    assert closed is not None and (closed.action, closed.dedup_key) == ("resolve", "remediator/brake/wide")
    assert messages.headline(every) == "▶️ Brake released: rule wide"


async def test_a_held_job_whose_alert_resolves_ends_skipped_resolved(replicas: Replicas) -> None:
    r = replicas
    firing = [alert("TestBroken", service=f"r{i}") for i in range(3)]
    ids = await r.fire(*firing)
    _, held = await r.settled(ids, ran=2, held=1)
    gone = next(a for a, i in zip(firing, ids, strict=True) if i == held[0])
    await r.fire(dict(gone, status="resolved", endsAt="2026-11-28T10:05:00Z"))
    assert await r.outcome(held[0], within=5.0) == "skipped:resolved"  # no release needed
    brake = await r.brake("wide")
    assert brake["held"] == [] and not brake["open"]


async def test_dry_runs_count_and_are_held_marked_as_such(replicas: Replicas) -> None:
    r = replicas
    ids = await r.fire(alert("DryBroken", service="a"), alert("DryBroken", service="b"))
    ran, held = await r.settled(ids, ran=1, held=1)
    assert await r.outcome(ran[0]) == "dry_run"
    brake = await r.brake("wide-dry")
    assert brake["dry_run"] and brake["held"][0]["dry_run"] and brake["held"][0]["event_id"] == held[0]
    [told] = r.notices.of_kind("brake_opened")
    assert told.dry_run and "(dry run)" in messages.headline(told)


async def test_the_window_closes_the_brake_for_new_targets_but_never_releases(replicas: Replicas) -> None:
    r = replicas
    ids = await r.fire(alert("ShortBroken", service="a"), alert("ShortBroken", service="b"))
    _, held = await r.settled(ids, ran=1, held=1)
    await asyncio.sleep(2.5)  # the window (2s) ended
    [late] = await r.fire(alert("ShortBroken", service="c"))
    assert await r.outcome(late) == "succeeded"  # a new target passes again
    await asyncio.sleep(1.0)
    assert await r.svc.store.audit.get_event(held[0]) is None  # still held
    assert [h["event_id"] for h in (await r.brake("short"))["held"]] == held


async def test_manual_replays_and_unbraked_rules_do_not_count(replicas: Replicas) -> None:
    r = replicas
    ids = await r.fire(*(alert("Everywhere", service=f"e{i}") for i in range(4)))
    assert {await r.outcome(i) for i in ids} == {"succeeded"}  # max_targets: {enabled: false}
    ids = await r.fire(alert("TestBroken", service="m1"), alert("TestBroken", service="m2"))
    await r.settled(ids, ran=2, held=0)
    accepted = await r.admin("POST", "/api/v1/replay", alert("TestBroken", service="m3"), status=202)
    [manual] = accepted["event_ids"]
    assert await r.outcome(manual) == "succeeded"
    assert (await r.brake("wide"))["counted"] == 2
    assert [b["rule"] for b in (await r.admin("GET", "/api/v1/brakes", status=200))["brakes"]] == [
        "wide",
        "wide-dry",
        "short",
    ]


async def test_a_release_names_a_braked_rule_and_valid_ids(replicas: Replicas) -> None:
    r = replicas
    missing = await r.admin("POST", "/api/v1/brakes/nope/release", {}, status=404)
    assert missing["error"] == "no such brake"
    await r.admin("POST", "/api/v1/brakes/unbraked/release", {}, status=404)
    bad = await r.admin("POST", "/api/v1/brakes/wide/release", {"event_ids": ["../x"]}, status=400)
    assert bad["error"] == "invalid request body"
    nothing = await r.admin("POST", "/api/v1/brakes/wide/release", {"event_ids": ["e1"]}, status=200)
    assert nothing == {"rule": "wide", "released": [], "still_held": 0}
