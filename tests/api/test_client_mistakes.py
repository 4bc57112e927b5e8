"""A client's mistake is a 4xx, never a 500: the nine answers an outside review found were 500s.

Each request goes over a raw socket, so header bytes that the client libraries refuse
(non-ASCII, undecodable) reach the service as an attacker would send them.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from aiohttp.test_utils import TestClient, TestServer

from remediator.api.service import SERVICE, Service
from remediator.app import create_app
from remediator.notify.slack.signing import signature
from remediator.store.memory import MemoryStore
from remediator.store.memory.audit import MemoryAudit
from tests.support.admin import Calls, make_registry, make_settings, write_rules
from tests.support.raw_http import Answer, request_bytes, send

SIGNING_SECRET = "slack-signing-secret-for-mistakes"
ALICE = "alice-console-token-0123"
SECURITY_HEADERS = ("content-security-policy", "x-frame-options", "x-content-type-options")


@dataclass
class Served:
    client: TestClient[Any, Any]
    svc: Service

    async def raw(
        self, method: str, path: str, headers: list[tuple[bytes, bytes]], body: bytes = b""
    ) -> Answer:
        server = self.client.server
        assert server.host is not None and server.port is not None
        return await send(server.host, server.port, request_bytes(method, path.encode(), headers, body))


async def serve(tmp_path: Path, store: MemoryStore | None = None) -> AsyncIterator[Served]:
    tokens = tmp_path / "tokens.yaml"
    tokens.write_text(f'alice: "{ALICE}"\n')
    settings = make_settings(
        write_rules(tmp_path / "rules.yaml"),
        admin_token=None,
        admin_tokens_file=tokens,
        ui=True,
        slack_signing_secret=SIGNING_SECRET,
        log_level="CRITICAL",
    )
    app = create_app(settings, registry=make_registry(Calls()), store=store)
    async with TestClient(TestServer(app)) as client:
        yield Served(client, app[SERVICE])


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Served]:
    async for one in serve(tmp_path):
        yield one


def slack_headers(body: bytes, timestamp: str | None = None) -> list[tuple[bytes, bytes]]:
    stamp = timestamp or str(int(time.time()))
    return [
        (b"Content-Type", b"application/x-www-form-urlencoded"),
        (b"X-Slack-Request-Timestamp", stamp.encode()),
        (b"X-Slack-Signature", signature(SIGNING_SECRET, stamp, body).encode()),
    ]


def form(payload: Any) -> bytes:
    return urlencode({"payload": json.dumps(payload)}).encode()


def assert_json_4xx(answer: Answer, status: int) -> dict[str, Any]:
    assert answer.status == status, (answer.status, answer.body[:300])
    assert answer.content_type == "application/json"
    body: dict[str, Any] = json.loads(answer.body)
    assert body["error"]
    return body


def assert_secured(answer: Answer) -> None:
    for name in SECURITY_HEADERS:
        assert name in answer.headers, (name, answer.status, answer.headers)


# ---- Slack interactions --------------------------------------------------------------------
async def test_a_400_digit_slack_timestamp_is_a_401(served: Served) -> None:
    body = form({"type": "block_actions"})
    stamp = "9" * 400
    headers = [*slack_headers(body)[:1], (b"X-Slack-Request-Timestamp", stamp.encode())]
    headers.append((b"X-Slack-Signature", signature(SIGNING_SECRET, stamp, body).encode()))
    answer = await served.raw("POST", "/slack/interactions", headers, body)
    found = assert_json_4xx(answer, 401)
    assert "X-Slack-Request-Timestamp" in found["detail"]


async def test_a_slack_signature_that_is_not_utf8_is_a_401(served: Served) -> None:
    body = form({"type": "block_actions"})
    headers = [*slack_headers(body)[:2], (b"X-Slack-Signature", b"v0=\xff\xfe\xc3")]
    found = assert_json_4xx(await served.raw("POST", "/slack/interactions", headers, body), 401)
    assert found["detail"] == "X-Slack-Signature does not match"


ACTION = {"type": "button", "action_id": "remediator_approve", "value": "0" * 32}


@pytest.mark.parametrize(
    ("field", "payload"),
    [
        ("actions", {"type": "block_actions", "actions": "approve"}),
        ("actions", {"type": "block_actions", "actions": [["remediator_approve"]]}),
        ("user", {"type": "block_actions", "user": "U0ALICE", "actions": [ACTION]}),
        ("channel", {"type": "block_actions", "channel": ["C0"], "actions": [ACTION]}),
        ("container", {"type": "block_actions", "container": 7, "actions": [ACTION]}),
        ("message", {"type": "block_actions", "message": "hi", "actions": [ACTION]}),
    ],
)
async def test_a_signed_payload_of_the_wrong_shape_is_a_400(served: Served, field: str, payload: Any) -> None:
    body = form(payload)
    found = assert_json_4xx(await served.raw("POST", "/slack/interactions", slack_headers(body), body), 400)
    assert field in json.dumps(found), found


# ---- the console ----------------------------------------------------------------------------
async def test_a_non_ascii_cookie_signature_means_signed_out(served: Served) -> None:
    cookie = "remediator_ui=YWxpY2U|admin|9999999999|sig\u00e9n\u00e9e".encode()
    answer = await served.raw("GET", "/ui/", [(b"Cookie", cookie)])
    assert answer.status == 303 and answer.headers["location"] == "/ui/signin", answer
    assert_secured(answer)


async def test_a_non_ascii_sign_in_csrf_field_is_a_403_page(served: Served) -> None:
    page = await served.client.get("/ui/signin")
    nonce = page.cookies["remediator_ui_signin"].value
    body = urlencode({"token": ALICE, "csrf": "\u00e9t\u00e9"}).encode()
    headers = [
        (b"Content-Type", b"application/x-www-form-urlencoded"),
        (b"Cookie", f"remediator_ui_signin={nonce}".encode()),
    ]
    answer = await served.raw("POST", "/ui/signin", headers, body)
    assert answer.status == 403 and answer.content_type == "text/html", answer
    assert b"CSRF" in answer.body
    assert_secured(answer)


class BrokenAudit(MemoryAudit):
    async def list_events(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("a bug in the store")


class BrokenStore(MemoryStore):
    """The Activity page's read raises (a part since the store's parts: the override of
    ``MemoryStore.list_events`` no longer reached the page, and the test failed)."""

    def __init__(self) -> None:
        super().__init__()
        self.audit = BrokenAudit(10, self.jobs)


async def test_an_unexpected_console_error_is_a_500_page_with_the_security_headers(tmp_path: Path) -> None:
    async for served in serve(tmp_path, store=BrokenStore()):
        signin = await served.client.get("/ui/signin")
        csrf = re.search(r'name="csrf" value="([^"]+)"', await signin.text())
        assert csrf is not None
        done = await served.client.post(
            "/ui/signin", data={"token": ALICE, "csrf": csrf.group(1)}, allow_redirects=False
        )
        assert done.status == 303
        page = await served.client.get("/ui/")
        assert page.status == 500 and page.content_type == "text/html", await page.text()
        assert "a bug in the store" not in await page.text()  # logged, not shown
        for name in SECURITY_HEADERS:
            assert name in {k.lower() for k in page.headers}, name


async def test_ui_without_its_slash_redirects_to_the_console(served: Served) -> None:
    response = await served.client.get("/ui", allow_redirects=False)
    assert response.status in (301, 308), await response.text()
    assert response.headers["Location"] == "/ui/"
    followed = await served.client.get("/ui")
    assert followed.status == 200 and str(followed.url).endswith("/ui/signin")
