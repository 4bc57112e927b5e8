"""The console against hostile input: redirects, signatures and CSRF fields that are not ASCII."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

from remediator.api.service import Service
from tests.console.test_console import ALICE, console, csrf_of, sign_in  # noqa: F401  (fixture)

Client = TestClient[Any, Any]
SECURITY_HEADERS = ("Content-Security-Policy", "X-Frame-Options", "X-Content-Type-Options")


def assert_secured(response: Any) -> None:
    for name in SECURITY_HEADERS:
        assert name in response.headers, (name, dict(response.headers))


async def test_ui_without_its_slash_redirects_to_the_console(console: tuple[Client, Service]) -> None:
    client, _ = console
    response = await client.get("/ui", allow_redirects=False)
    assert response.status in (301, 308), await response.text()
    assert response.headers["Location"] == "/ui/"
    followed = await client.get("/ui")
    assert followed.status == 200 and str(followed.url).endswith("/ui/signin")
