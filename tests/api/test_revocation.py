"""Issue 24, item 7: revocation. Signing out ends the session on the server (a cookie
copied before is refused afterwards, on every replica); a token removed from the tokens
file stops working without a restart, and the console sessions of that credential end."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import structlog
from aiohttp.test_utils import TestServer

from remediator.api.service import SERVICE, Service
from remediator.app import create_app
from remediator.settings import Settings
from tests.support.admin import RULES, Calls, admin_headers, make_registry, make_settings, write_rules
from tests.support.redis_server import RedisServer

ALICE = "alice-console-token-0123"
BOB = "bob-console-token-012345"
TOKENS = f'alice: "{ALICE}"\nbob: "{BOB}"\n'


@asynccontextmanager
async def served(settings: Settings) -> AsyncIterator[tuple[TestServer, Service]]:
    app = create_app(settings, registry=make_registry(Calls()))
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield server, app[SERVICE]
    finally:
        await server.close()


def console_settings(tmp_path: Path, **overrides: Any) -> Settings:
    tokens = tmp_path / "tokens.yaml"
    if not tokens.exists():
        tokens.write_text(TOKENS)
    return make_settings(
        write_rules(tmp_path / "rules.yaml", RULES),
        admin_token=None,
        admin_tokens_file=tokens,
        ui=True,
        **overrides,
    )


def browser() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))


def csrf_of(text: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', text)
    assert found, "no CSRF field in the page"
    return found.group(1)


async def sign_in(session: aiohttp.ClientSession, server: TestServer, token: str) -> tuple[str, str]:
    """Sign in: the session cookie's value and the session's CSRF token."""
    async with session.get(server.make_url("/ui/signin")) as form:
        csrf = csrf_of(await form.text())
    async with session.post(
        server.make_url("/ui/signin"), data={"token": token, "csrf": csrf}, allow_redirects=False
    ) as response:
        assert response.status == 303, await response.text()
        cookie = response.cookies["remediator_ui"].value
    async with session.get(server.make_url("/ui/")) as page:
        assert page.status == 200
        return cookie, csrf_of(await page.text())


async def page_with(server: TestServer, cookie: str, path: str = "/ui/") -> int:
    """Load a page as a browser that only has ``cookie`` (copied from another)."""
    async with browser() as thief:
        thief.cookie_jar.update_cookies({"remediator_ui": cookie}, server.make_url("/ui/"))
        async with thief.get(server.make_url(path), allow_redirects=False) as response:
            return response.status


async def test_signing_out_ends_the_session_and_a_copied_cookie_is_refused(tmp_path: Path) -> None:
    async with served(console_settings(tmp_path)) as (server, _):
        async with browser() as alice:
            cookie, csrf = await sign_in(alice, server, ALICE)
            assert await page_with(server, cookie) == 200  # the copy works while signed in
            async with alice.post(
                server.make_url("/ui/signout"), data={"csrf": csrf}, allow_redirects=False
            ) as out:
                assert out.status == 303
        for path in ("/ui/", "/ui/waiting", "/ui/pauses"):
            assert await page_with(server, cookie, path) == 303, path  # to the sign-in page


async def eventually(check: Callable[[], Awaitable[bool]], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within}s waiting for {what}")
        await asyncio.sleep(0.05)


async def admin_status(server: TestServer, token: str) -> int:
    async with (
        aiohttp.ClientSession() as client,
        client.get(server.make_url("/api/v1/events"), headers=admin_headers(token)) as response,
    ):
        return response.status


async def test_a_token_removed_from_the_file_stops_working_without_a_restart(tmp_path: Path) -> None:
    settings = console_settings(tmp_path)
    assert settings.admin_tokens_file is not None
    async with served(settings) as (server, svc):
        assert await admin_status(server, ALICE) == 200
        async with browser() as alice:
            cookie, _ = await sign_in(alice, server, ALICE)
        with structlog.testing.capture_logs() as logs:
            settings.admin_tokens_file.write_text(f'bob: "{BOB}"\n')

            async def refused() -> bool:
                return await admin_status(server, ALICE) == 401

            await eventually(refused, 10, "alice's token to be refused")
        assert await admin_status(server, BOB) == 200
        assert await page_with(server, cookie) == 303  # alice's console session ended too
        [reloaded] = [e for e in logs if e["event"] == "admin_tokens.reloaded"]
        assert reloaded["removed"] == ["alice"] and reloaded["sessions_ended"] == 1, reloaded
        # Alice comes back with the same token: her old session stays ended.
        settings.admin_tokens_file.write_text(TOKENS)

        async def back() -> bool:
            return await admin_status(server, ALICE) == 200

        await eventually(back, 10, "alice's token to work again")
        assert await page_with(server, cookie) == 303
        reloads = svc.metrics.registry.get_sample_value(
            "remediator_admin_tokens_reload_total", {"result": "ok"}
        )
        assert reloads == 2


async def test_a_broken_tokens_file_keeps_the_last_good_credentials(tmp_path: Path) -> None:
    settings = console_settings(tmp_path)
    assert settings.admin_tokens_file is not None
    async with served(settings) as (server, svc):
        with structlog.testing.capture_logs() as logs:
            settings.admin_tokens_file.write_text(f'bob: "{BOB}"\nbob: "{ALICE}"\n')  # a name twice

            async def failed() -> bool:
                return bool(
                    svc.metrics.registry.get_sample_value(
                        "remediator_admin_tokens_reload_total", {"result": "error"}
                    )
                )

            await eventually(failed, 10, "the failed reload")
        assert await admin_status(server, ALICE) == 200 and await admin_status(server, BOB) == 200
        [error] = [e for e in logs if e["event"] == "admin_tokens.reload_failed"]
        assert "written twice" in " ".join(error["errors"]) and ALICE not in str(error)


# ---- two replicas on one Redis ------------------------------------------------------------
@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with RedisServer.running(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.mark.server  # a redis-server
async def test_a_session_signed_out_on_one_replica_is_refused_on_the_other(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    redis_server.flush()
    settings = console_settings(
        tmp_path,
        redis_url=redis_server.url,
        redis_prefix="sessions",
        ui_session_key="shared-session-key-0123456789",
    )
    async with served(settings) as (first, _), served(settings) as (second, _):
        async with browser() as alice:
            cookie, csrf = await sign_in(alice, first, ALICE)
            assert await page_with(second, cookie) == 200  # replicas share sessions
            async with alice.post(
                first.make_url("/ui/signout"), data={"csrf": csrf}, allow_redirects=False
            ) as out:
                assert out.status == 303
        assert await page_with(second, cookie) == 303
        assert await page_with(first, cookie) == 303
