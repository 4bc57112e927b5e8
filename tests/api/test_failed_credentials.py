"""Issue 24, item 6: failed credentials are limited on the webhook, the admin API and the
console's sign-in, per client address and per presented name, across replicas.

Each client connects from its own loopback address (127.0.0.x: Linux routes the whole
/8 to lo), so the service sees real, distinct peers; no header is faked unless a test
says which proxy is trusted.
"""

from __future__ import annotations

import base64
import re
from collections.abc import AsyncIterator, Iterator
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
from remediator.store.redis.store import RedisStore
from tests.support.admin import (
    RULES,
    Calls,
    admin_headers,
    make_registry,
    make_settings,
    write_rules,
)
from tests.support.payloads import alert, payload
from tests.support.redis_server import RedisServer

LIMIT = 20  # the promise: 429 after at most 20 failures within a minute
ALICE = "alice-console-token-0123"
AM_USER, AM_PASSWORD = "alertmanager", "webhook-basic-password-0123"


@asynccontextmanager
async def served(settings: Settings, **kwargs: Any) -> AsyncIterator[tuple[TestServer, Service]]:
    app = create_app(settings, registry=make_registry(Calls()), **kwargs)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield server, app[SERVICE]
    finally:
        await server.close()


@asynccontextmanager
async def client_at(address: str) -> AsyncIterator[aiohttp.ClientSession]:
    """An HTTP client whose connections come from ``address`` (a 127.0.0.x)."""
    connector = aiohttp.TCPConnector(local_addr=(address, 0), force_close=True)
    async with aiohttp.ClientSession(
        connector=connector, cookie_jar=aiohttp.CookieJar(unsafe=True)
    ) as session:
        yield session


def url(server: TestServer, path: str) -> str:
    return str(server.make_url(path))


def sample(svc: Service, name: str, **labels: str) -> float:
    return svc.metrics.registry.get_sample_value(name, labels) or 0.0


def basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


async def statuses(session: aiohttp.ClientSession, method: str, target: str, n: int, **kw: Any) -> list[int]:
    found = []
    for _ in range(n):
        async with session.request(method, target, **kw) as response:
            found.append(response.status)
            if response.status == 429:
                retry = int(response.headers["Retry-After"])
                assert 1 <= retry <= 60, retry
                assert (await response.json())["error"] == "too many failed credentials", (
                    await response.text()
                )
    return found


async def test_admin_api_refuses_after_20_failures_and_a_good_token_elsewhere_works(tmp_path: Path) -> None:
    settings = make_settings(write_rules(tmp_path / "rules.yaml"))
    async with served(settings) as (server, svc):
        events = url(server, "/api/v1/events")
        async with client_at("127.0.0.2") as attacker, client_at("127.0.0.3") as colleague:
            with structlog.testing.capture_logs() as logs:
                wrong = admin_headers("wrong-admin-token-0123456789")
                found = await statuses(attacker, "GET", events, LIMIT + 5, headers=wrong)
                assert found == [401] * (LIMIT - 1) + [429] * 6, found
                # Refused without being checked: the right token from that address waits too.
                assert await statuses(attacker, "GET", events, 1, headers=admin_headers()) == [429]
                assert await statuses(colleague, "GET", events, 1, headers=admin_headers()) == [200]
                assert await statuses(colleague, "GET", events, 1, headers=wrong) == [401]
        limited = [e for e in logs if e["event"] == "auth.failures_limited"]
        assert len(limited) == 1, logs  # one line for the burst, not one per failure
        assert limited[0]["address"] == "127.0.0.2" and limited[0]["surface"] == "admin"
        assert not any(e["event"] == "auth.failed" and e["log_level"] != "debug" for e in logs)
        assert sample(svc, "remediator_auth_failures_total", surface="admin") == LIMIT + 1
        assert sample(svc, "remediator_auth_refused_total", surface="admin") == 6 + 1


async def test_the_webhook_limits_addresses_and_basic_auth_names(tmp_path: Path) -> None:
    settings = make_settings(
        write_rules(tmp_path / "rules.yaml"),
        webhook_token=None,
        webhook_username=AM_USER,
        webhook_password=AM_PASSWORD,
    )
    async with served(settings) as (server, svc):
        hook = url(server, "/webhooks/alertmanager")
        body = payload(alert())
        async with client_at("127.0.0.9") as alertmanager:  # a known good address of the name
            assert await statuses(
                alertmanager, "POST", hook, 1, json=body, headers=basic(AM_USER, AM_PASSWORD)
            ) == [202]
        # 20 addresses guess the password of one name: the name is refused at the 20th.
        found = []
        for i in range(LIMIT):
            async with client_at(f"127.0.1.{i + 1}") as guesser:
                found += await statuses(
                    guesser, "POST", hook, 1, json=body, headers=basic(AM_USER, f"guess-{i}")
                )
        assert found == [401] * (LIMIT - 1) + [429], found
        async with client_at("127.0.2.1") as stranger:
            right = basic(AM_USER, AM_PASSWORD)
            assert await statuses(stranger, "POST", hook, 1, json=body, headers=right) == [429]
            assert await statuses(stranger, "POST", hook, 1, json=body, headers=basic("bob", "nope")) == [401]
        async with client_at("127.0.0.9") as alertmanager:  # still delivers
            assert await statuses(
                alertmanager, "POST", hook, 1, json=body, headers=basic(AM_USER, AM_PASSWORD)
            ) == [202]
        # Bearer guesses from one address: the address is refused.
        async with client_at("127.0.3.1") as guesser:
            bearer = {"Authorization": "Bearer wrong-webhook-token-0123"}
            found = await statuses(guesser, "POST", hook, LIMIT + 1, json=body, headers=bearer)
        assert found == [401] * (LIMIT - 1) + [429] * 2, found
        assert sample(svc, "remediator_auth_failures_total", surface="webhook") == 2 * LIMIT + 1
        assert sample(svc, "remediator_webhook_requests_total", code="429") == 4


def csrf_of(text: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', text)
    assert found, "no CSRF field in the page"
    return found.group(1)


async def sign_in(session: aiohttp.ClientSession, server: TestServer, token: str) -> aiohttp.ClientResponse:
    async with session.get(url(server, "/ui/signin")) as form:
        csrf = csrf_of(await form.text())
    async with session.post(
        url(server, "/ui/signin"), data={"token": token, "csrf": csrf}, allow_redirects=False
    ) as response:
        await response.read()
        return response


async def test_console_sign_in_is_limited_per_address(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens.yaml"
    tokens.write_text(f'alice: "{ALICE}"\n')
    settings = make_settings(
        write_rules(tmp_path / "rules.yaml", RULES), admin_token=None, admin_tokens_file=tokens, ui=True
    )
    async with served(settings) as (server, svc):
        async with client_at("127.0.0.2") as attacker, client_at("127.0.0.3") as alice:
            found = [(await sign_in(attacker, server, f"guess-{i}")).status for i in range(LIMIT + 1)]
            assert found == [401] * (LIMIT - 1) + [429] * 2, found
            refused = await sign_in(attacker, server, ALICE)
            assert refused.status == 429 and 1 <= int(refused.headers["Retry-After"]) <= 60
            assert "content-security-policy" in {k.lower() for k in refused.headers}
            assert (await sign_in(alice, server, ALICE)).status == 303
        assert sample(svc, "remediator_auth_failures_total", surface="console") == LIMIT


async def test_forwarded_for_is_believed_from_trusted_proxies_only(tmp_path: Path) -> None:
    settings = make_settings(write_rules(tmp_path / "rules.yaml"), trusted_proxies="127.0.0.2/32, 10.0.0.0/8")
    async with served(settings) as (server, _):
        events = url(server, "/api/v1/events")
        wrong = admin_headers("wrong-admin-token-0123456789")
        async with client_at("127.0.0.2") as ingress:
            # Behind the trusted Ingress (and a trusted hop of 10/8): the client is 198.51.100.1.
            attacker = {**wrong, "X-Forwarded-For": "203.0.113.9, 198.51.100.1, 10.1.2.3"}
            found = await statuses(ingress, "GET", events, LIMIT, headers=attacker)
            assert found == [401] * (LIMIT - 1) + [429]
            someone = {**admin_headers(), "X-Forwarded-For": "198.51.100.2"}
            assert await statuses(ingress, "GET", events, 1, headers=someone) == [200]
            # The address the client wrote first is not believed: the proxy's entry is.
            spoofed = {**admin_headers(), "X-Forwarded-For": "198.51.100.2, 198.51.100.1"}
            assert await statuses(ingress, "GET", events, 1, headers=spoofed) == [429]
        async with client_at("127.0.0.3") as untrusted:
            # Not a trusted proxy: its X-Forwarded-For is ignored, every guess is 127.0.0.3's.
            found = []
            for i in range(LIMIT):
                forged = {**wrong, "X-Forwarded-For": f"192.0.2.{i + 1}"}
                found += await statuses(untrusted, "GET", events, 1, headers=forged)
            assert found == [401] * (LIMIT - 1) + [429]


def test_trusted_proxies_setting_names_the_variable_when_wrong(tmp_path: Path) -> None:
    settings = Settings(rules=tmp_path / "r.yaml", trusted_proxies=" 10.0.0.0/8 ,192.168.1.7,fd00::/8")
    assert [str(n) for n in settings.trusted_proxies] == ["10.0.0.0/8", "192.168.1.7/32", "fd00::/8"]
    assert Settings(rules=tmp_path / "r.yaml").trusted_proxies == []
    with pytest.raises(ValueError, match="trusted_proxies") as raised:
        Settings(rules=tmp_path / "r.yaml", trusted_proxies="10.0.0.0/8,not-a-network")
    assert "not-a-network" in str(raised.value)


# ---- across replicas, and with the store down ---------------------------------------------
@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with RedisServer.running(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.mark.server  # a redis-server
async def test_failures_are_counted_across_replicas_through_the_store(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    redis_server.flush()
    settings = make_settings(
        write_rules(tmp_path / "rules.yaml"), redis_url=redis_server.url, redis_prefix="creds"
    )
    async with served(settings) as (first, _), served(settings) as (second, _):
        wrong = admin_headers("wrong-admin-token-0123456789")
        async with client_at("127.0.0.2") as attacker:
            half = LIMIT // 2
            assert (
                await statuses(attacker, "GET", url(first, "/api/v1/events"), half, headers=wrong)
                == [401] * half
            )
            found = await statuses(attacker, "GET", url(second, "/api/v1/events"), half, headers=wrong)
            assert found == [401] * (half - 1) + [429], found
            # The first replica counted only half of them, but the store has them all.
            assert await statuses(attacker, "GET", url(first, "/api/v1/events"), 1, headers=wrong) == [429]
            assert await statuses(
                attacker, "GET", url(first, "/api/v1/events"), 1, headers=admin_headers()
            ) == [429]
        async with client_at("127.0.0.3") as colleague:
            for server in (first, second):
                assert await statuses(
                    colleague, "GET", url(server, "/api/v1/events"), 1, headers=admin_headers()
                ) == [200]


async def test_with_the_store_down_each_replica_limits_in_memory(tmp_path: Path) -> None:
    redis = RedisServer(tmp_path / "redis")  # never started: the store is down throughout
    settings = make_settings(write_rules(tmp_path / "rules.yaml"), redis_url=redis.url, redis_prefix="creds")
    store = await RedisStore.create(settings)
    async with served(settings, store=store) as (server, svc):
        events = url(server, "/api/v1/events")
        async with client_at("127.0.0.2") as attacker, client_at("127.0.0.3") as colleague:
            with structlog.testing.capture_logs() as logs:
                wrong = admin_headers("wrong-admin-token-0123456789")
                found = await statuses(attacker, "GET", events, LIMIT + 1, headers=wrong)
            assert found == [401] * (LIMIT - 1) + [429] * 2, found
            # The colleague's token is good; the route itself needs the store: 503.
            assert await statuses(colleague, "GET", events, 1, headers=admin_headers()) == [503]
        fallbacks = [e for e in logs if e["event"] == "auth.store_unavailable"]
        assert len(fallbacks) == 1, logs  # said once, not per failure
        assert sample(svc, "remediator_auth_failures_total", surface="admin") == LIMIT
    await store.close()


async def test_no_credential_at_all_is_not_a_guess(tmp_path: Path) -> None:
    """A request without Authorization (a probe, a browser) is a 401 but no failed guess."""
    settings = make_settings(write_rules(tmp_path / "rules.yaml"))
    async with served(settings) as (server, svc):
        async with client_at("127.0.0.2") as probe:
            found = await statuses(probe, "GET", url(server, "/api/v1/events"), LIMIT + 5)
        assert found == [401] * (LIMIT + 5)
        assert sample(svc, "remediator_auth_failures_total", surface="admin") == 0
