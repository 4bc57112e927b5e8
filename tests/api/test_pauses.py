"""One pause model in HTTP: ``/api/v1/pauses`` is the collection (RFC 3339 times), the
global pause is a pause without matchers (id ``global``), and ``/api/v1/pause`` is a
deprecated alias with its old shape and the Deprecation, Sunset and Link headers."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from remediator.app import create_app
from tests.support.admin import Calls, admin_headers, make_registry, make_settings, write_rules

Client = TestClient[Any, Any]


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[Client]:
    app = create_app(make_settings(write_rules(tmp_path / "rules.yaml")), registry=make_registry(Calls()))
    async with TestClient(TestServer(app)) as client:
        yield client


async def call(client: Client, method: str, path: str, body: Any = None, status: int = 200) -> Any:
    response = await client.request(method, path, json=body, headers=admin_headers())
    data = await response.json()
    assert response.status == status, data
    return response, data


def epoch(text: str) -> float:
    assert text.endswith("Z"), text
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


async def test_the_collection_speaks_rfc3339_and_takes_epoch_seconds_too(client: Client) -> None:
    _, made = await call(client, "POST", "/api/v1/pauses", {"for": "1h", "reason": "db"}, 201)
    assert abs(epoch(made["until"]) - (time.time() + 3600)) < 2
    assert abs(epoch(made["created"]) - time.time()) < 2
    assert 3590 < made["remaining_seconds"] <= 3600 and "until_iso" not in made
    until = int(time.time()) + 7200
    _, by_number = await call(client, "POST", "/api/v1/pauses", {"until": until, "reason": "n"}, 201)
    assert epoch(by_number["until"]) == until
    for bad in ("tomorrow", "2030-01-01T00:00:00", True):
        _, refused = await call(client, "POST", "/api/v1/pauses", {"until": bad, "reason": "x"}, 400)
        assert refused["error"] == "invalid request body", bad
    _, listed = await call(client, "GET", "/api/v1/pauses")
    assert [p["id"] for p in listed["pauses"]] == [made["id"], by_number["id"]]


async def test_the_global_pause_is_a_pause_without_matchers(client: Client) -> None:
    await call(client, "POST", "/api/v1/pause", {"reason": "freeze", "for": "10m"})
    _, listed = await call(client, "GET", "/api/v1/pauses")
    [shown] = listed["pauses"]
    assert shown["id"] == "global" and shown["matchers"] == [] and shown["reason"] == "freeze"
    _, lifted = await call(client, "DELETE", "/api/v1/pauses/global")
    assert lifted["id"] == "global"
    _, state = await call(client, "GET", "/api/v1/pause")
    assert state["paused"] is False


async def test_the_old_route_is_a_deprecated_alias_with_its_old_shape(client: Client) -> None:
    response, state = await call(client, "POST", "/api/v1/pause", {"reason": "freeze", "for": "10m"})
    assert state["paused"] is True and isinstance(state["until"], float)
    assert state["until_iso"].endswith("Z") and 590 < state["remaining_seconds"] <= 600
    answers = [response]
    answers.append((await call(client, "GET", "/api/v1/pause"))[0])
    answers.append((await call(client, "DELETE", "/api/v1/pause"))[0])
    answers.append((await call(client, "POST", "/api/v1/pause", {"reason": "x"}, 400))[0])
    refused = await client.get("/api/v1/pause")  # no token
    assert refused.status == 401
    for answer in [*answers, refused]:
        assert answer.headers["Deprecation"] == "@1796601600"
        assert answer.headers["Sunset"] == "Wed, 30 Jun 2027 00:00:00 GMT"
        assert answer.headers["Link"] == '</api/v1/pauses>; rel="successor-version"'
    collection = await client.get("/api/v1/pauses", headers=admin_headers())
    assert "Deprecation" not in collection.headers


# ---- issue 24, item 10: the same fields and the same limits on both routes -----------------
BOTH = ("/api/v1/pauses", "/api/v1/pause")


async def test_max_pause_is_exact_on_both_routes(client: Client) -> None:
    """REMEDIATOR_MAX_PAUSE (7d here) is the longest pause: 7d is taken, 7d1s refused."""
    for path in BOTH:
        await call(client, "POST", path, {"reason": "week", "for": "7d"}, 201 if path.endswith("s") else 200)
        _, refused = await call(client, "POST", path, {"reason": "week", "for": "7d1s"}, 400)
        assert refused["error"] == "pause too long", (path, refused)
        assert "7d1s is more than REMEDIATOR_MAX_PAUSE (7d)" in refused["detail"], refused
        _, refused = await call(
            client, "POST", path, {"reason": "week", "until": time.time() + 7 * 86400 + 2}, 400
        )
        assert refused["error"] == "pause too long", (path, refused)


async def test_for_needs_a_unit_on_both_routes(client: Client) -> None:
    for path in BOTH:
        for bare in (60, "60", 1.5, "1.5"):
            _, refused = await call(client, "POST", path, {"reason": "x", "for": bare}, 400)
            assert refused["error"] == "invalid request body", (path, bare)
            assert "no unit" in str(refused["detail"]), (path, bare, refused)
    _, listed = await call(client, "GET", "/api/v1/pauses")
    assert listed["pauses"] == []


async def test_both_routes_take_the_same_fields(client: Client) -> None:
    """``by`` is taken and ignored by both (the token names the author); ``until`` sets the
    global pause too; the alias refuses matchers naming the collection."""
    _, scoped = await call(
        client, "POST", "/api/v1/pauses", {"reason": "a", "for": "1h", "by": "mallory"}, 201
    )
    assert scoped["by"] == "admin"
    until = int(time.time()) + 1800
    _, state = await call(client, "POST", "/api/v1/pause", {"reason": "b", "until": until, "by": "mallory"})
    assert state["by"] == "admin" and state["until"] == until
    _, refused = await call(
        client, "POST", "/api/v1/pause", {"reason": "c", "for": "1h", "until": until}, 400
    )
    assert "exactly one of" in refused["detail"]
    _, refused = await call(
        client, "POST", "/api/v1/pause", {"reason": "c", "for": "1h", "matchers": ['team="db"']}, 400
    )
    assert "/api/v1/pauses" in refused["detail"], refused
    _, listed = await call(client, "GET", "/api/v1/pauses")
    assert [(p["id"], p["by"]) for p in listed["pauses"]] == [("global", "admin"), (scoped["id"], "admin")]
