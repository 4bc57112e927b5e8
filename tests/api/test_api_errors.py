"""Every HTTP error is ``{"error", "detail"}`` JSON with the right 4xx; credentials are
checked as bytes by one function; date-times are RFC 3339 strings only; /readyz and
/metrics say only what is asked, in readable units."""

from __future__ import annotations

import asyncio
import base64
import gzip
import json
import re
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr
from structlog.testing import capture_logs

from remediator.api.auth import authorized
from remediator.api.errors import errors
from remediator.app import create_app
from remediator.settings import Settings
from remediator.store.base import global_pause
from tests.conftest import TOKEN, Harness, MakeHarness
from tests.support.handlers import PROBE_RULES as RULES
from tests.support.handlers import make_registry
from tests.support.payloads import alert, payload

ADMIN = "admin-token-for-tests-0123"


def webhook_count(h: Harness, code: int) -> float:
    value = h.svc.metrics.registry.get_sample_value("remediator_webhook_requests_total", {"code": str(code)})
    return value or 0.0


async def raw_request(h: Harness, request: bytes) -> tuple[int, dict[str, Any]]:
    """Send bytes as they are (the client libraries refuse non-ASCII headers)."""
    server = h.client.server
    reader, writer = await asyncio.open_connection(server.host, server.port)
    try:
        writer.write(request)
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), 5)
    finally:
        writer.close()
        await writer.wait_closed()
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


def post_bytes(path: str, header: bytes, body: bytes = b"{}") -> bytes:
    return (
        b"POST " + path.encode() + b" HTTP/1.1\r\nHost: test\r\nConnection: close\r\n"
        b"Content-Type: application/json\r\nContent-Length: "
        + str(len(body)).encode()
        + b"\r\nAuthorization: "
        + header
        + b"\r\n\r\n"
        + body
    )


# ---- item 4: one bytes-safe credential check --------------------------------------------
@pytest.mark.parametrize(
    "header", [b"Bearer \xff\xfe-not-utf8", "Bearer tökén".encode(), b"Basic \xe9\xe9", "Bäsic x".encode()]
)
async def test_non_ascii_authorization_is_401_json_and_counted(harness: MakeHarness, header: bytes) -> None:
    h = await harness(RULES, admin_token=ADMIN)
    status, body = await raw_request(h, post_bytes("/webhooks/alertmanager", header))
    assert (status, body["error"]) == (401, "missing or wrong credentials")
    assert webhook_count(h, 401) == 1
    status, body = await raw_request(h, post_bytes("/api/v1/pause", header))
    assert (status, body["error"]) == (401, "missing or wrong admin token")
    assert await global_pause(h.svc.store.pauses) is None


def test_empty_secrets_and_empty_credentials_never_match() -> None:
    empty, blank = SecretStr(""), SecretStr("  \n")
    assert not authorized("Bearer", token=empty)
    assert not authorized("Bearer ", token=empty)
    assert not authorized("Bearer   ", token=blank)
    assert not authorized("Bearer", token=SecretStr("a-real-secret-value"))
    no_password = "Basic " + base64.b64encode(b"am:").decode()
    assert not authorized(no_password, username="am", password=empty)
    nothing = "Basic " + base64.b64encode(b":").decode()
    assert not authorized(nothing, username="", password=empty)
    assert not authorized("", token=empty, username="", password=empty)
    good = "Basic " + base64.b64encode("am:pässword".encode()).decode()
    assert authorized(good, username="am", password=SecretStr("pässword"))
    assert authorized("Bearer  a-real-secret-value ", token=SecretStr("a-real-secret-value"))


async def test_an_empty_configured_token_refuses_an_empty_bearer(tmp_path: Path) -> None:
    """Defense in depth: even if empty secrets reached the app, nothing would match them."""
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    settings = Settings(rules=rules, workers=0).model_copy(
        update={"webhook_token": SecretStr(""), "admin_token": SecretStr("")}
    )
    app = create_app(settings, registry=make_registry())
    async with TestClient(TestServer(app)) as client:
        for header in ("Bearer", "Bearer ", "Bearer  \t"):
            hook = await client.post(
                "/webhooks/alertmanager", json=payload(alert("Probe")), headers={"Authorization": header}
            )
            assert hook.status == 401, await hook.text()
            pause = await client.post(
                "/api/v1/pause", json={"for": "30d", "reason": "x"}, headers={"Authorization": header}
            )
            assert pause.status == 401, await pause.text()
        hook = await client.post("/webhooks/alertmanager", json=payload(alert("Probe")))
        assert hook.status == 401


# ---- item 6: every error is JSON -----------------------------------------------------------
async def test_a_body_that_is_not_gzip_is_400_json(harness: MakeHarness) -> None:
    h = await harness(RULES)
    response = await h.client.post(
        "/webhooks/alertmanager",
        data=b"this is not gzip",
        headers={
            "Authorization": f"Bearer {TOKEN}",
            "Content-Type": "application/json",
            "Content-Encoding": "gzip",
        },
    )
    assert response.status == 400
    assert await response.json() == {
        "error": "body cannot be read",
        "detail": "Can not decode content-encoding: gzip",
    }
    assert webhook_count(h, 400) == 1
    good = gzip.compress(json.dumps(payload(alert("Probe", service="a"))).encode())
    response = await h.client.post(
        "/webhooks/alertmanager",
        data=good,
        headers={
            "Authorization": f"Bearer {TOKEN}",
            "Content-Type": "application/json",
            "Content-Encoding": "gzip",
        },
    )
    assert response.status == 202


async def test_a_body_too_large_once_decompressed_is_413_json(harness: MakeHarness) -> None:
    h = await harness(RULES, max_body_bytes=4096)
    bomb = gzip.compress(b"[" + b" " * 200_000 + b"]")
    assert len(bomb) < 4096
    response = await h.client.post(
        "/webhooks/alertmanager",
        data=bomb,
        headers={
            "Authorization": f"Bearer {TOKEN}",
            "Content-Type": "application/json",
            "Content-Encoding": "gzip",
        },
    )
    assert response.status == 413
    assert (await response.json())["error"] == ("body exceeds the limit of 4096 bytes once decompressed")
    assert webhook_count(h, 413) == 1


async def test_unknown_route_and_wrong_method_are_json(harness: MakeHarness) -> None:
    h = await harness(RULES)
    response = await h.client.get("/no/such/path")
    assert response.status == 404
    assert response.content_type == "application/json"
    assert await response.json() == {"error": "not found", "detail": "no route GET /no/such/path"}
    response = await h.client.get("/webhooks/alertmanager")
    assert response.status == 405
    assert response.headers["Allow"] == "POST"
    assert await response.json() == {
        "error": "method not allowed",
        "detail": "/webhooks/alertmanager does not answer GET; allowed: POST",
    }


async def test_aiohttp_413_and_unexpected_errors_are_json() -> None:
    async def big(request: web.Request) -> web.Response:
        await request.read()  # aiohttp's own limit (client_max_size)
        return web.Response()

    async def broken(_: web.Request) -> web.Response:
        raise RuntimeError("a bug")

    app = web.Application(client_max_size=1024, middlewares=[errors])
    app.router.add_post("/big", big)
    app.router.add_get("/broken", broken)
    async with TestClient(TestServer(app)) as client:
        response = await client.post("/big", data=b"x" * 5000)
        assert response.status == 413
        body = await response.json()
        assert body["error"] == "request entity too large"
        assert "1024" in body["detail"]
        with capture_logs() as logs:
            response = await client.get("/broken")
        assert response.status == 500
        assert await response.json() == {
            "error": "internal error",
            "detail": "the error is logged on the service",
        }
    assert [e["event"] for e in logs] == ["http.internal_error"]
    assert logs[0]["log_level"] == "error" and logs[0]["path"] == "/broken"


# ---- item 8: date-times are RFC 3339 strings ------------------------------------------------
@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("endsAt", 0),
        ("startsAt", 1714564800),
        ("startsAt", "1714564800"),
        ("endsAt", 1.5),
        ("startsAt", "2024-05-01T12:00:00"),
        ("startsAt", True),
    ],
)
async def test_a_number_for_a_date_time_is_400(harness: MakeHarness, field: str, value: Any) -> None:
    h = await harness(RULES, admin_token=ADMIN)
    item = alert("Probe", service="a") | {field: value}
    response = await h.post(payload(item))
    assert response.status == 400
    detail = (await response.json())["detail"]
    assert detail[0]["loc"] == f"alerts.0.{field}"
    assert "RFC 3339" in detail[0]["msg"]
    admin = {"Authorization": f"Bearer {ADMIN}"}
    for body in (payload(item), item):  # a whole payload, or one alert
        response = await h.client.post("/api/v1/replay", json=body, headers=admin)
        assert response.status == 400, await response.text()
    assert await h.svc.store.queue.queue_depth() == 0


# ---- item 16: readable times, no unasked series ---------------------------------------------
async def test_readyz_times_are_iso_8601_utc(harness: MakeHarness) -> None:
    h = await harness(RULES)
    body = await (await h.client.get("/readyz")).json()
    at = body["rules"]["last_reload"]["at"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", at), at  # RFC 3339, ms (issue 25)


async def test_metrics_have_no_created_series(harness: MakeHarness) -> None:
    h = await harness(RULES)
    assert (await h.post(payload(alert("Probe", service="a")))).status == 202
    text = await (await h.client.get("/metrics")).text()
    assert "remediator_webhook_requests_total" in text
    assert "_created" not in text
