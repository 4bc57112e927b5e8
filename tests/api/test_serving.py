"""The served app against slow and greedy clients, over real sockets: headers and bodies
must arrive in time, connections are bounded, and health checks still get in."""

from __future__ import annotations

import asyncio
import json
import signal
import time
import urllib.request
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from remediator.api import serving
from remediator.api.service import SERVICE
from remediator.app import create_app
from remediator.settings import Settings
from tests.conftest import TOKEN
from tests.support.handlers import PROBE_RULES as RULES
from tests.support.handlers import make_registry
from tests.support.procs import free_port
from tests.support.serve_procs import ServeProcess

LIMIT = 4
TIMEOUT = 0.5
Conn = tuple[asyncio.StreamReader, asyncio.StreamWriter]


@dataclass
class Served:
    app: web.Application
    port: int
    conns: list[asyncio.StreamWriter]

    async def connect(self) -> Conn:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        self.conns.append(writer)
        return reader, writer

    async def get(self, path: str) -> tuple[int, Any]:
        """A fresh connection, one request, the status and the JSON body."""
        reader, writer = await self.connect()
        writer.write(f"GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".encode())
        return parse(await asyncio.wait_for(reader.read(), 5))

    def webhook_count(self, code: int) -> float:
        value = self.app[SERVICE].metrics.registry.get_sample_value(
            "remediator_webhook_requests_total", {"code": str(code)}
        )
        return value or 0.0


def parse(answer: bytes) -> tuple[int, Any]:
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Served]:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    settings = Settings(
        rules=rules,
        host="127.0.0.1",
        port=free_port(),
        webhook_token=TOKEN,
        workers=1,
        shutdown_grace=2,
        header_timeout=TIMEOUT,
        body_timeout=TIMEOUT,
        max_connections=LIMIT,
    )
    app = create_app(settings, registry=make_registry())
    served = Served(app, settings.port, [])
    async with serving.serving(app, settings):
        yield served
        for writer in served.conns:
            writer.close()


async def closed_after(reader: asyncio.StreamReader, within: float = 3.0) -> tuple[float, bytes]:
    """Seconds until the server closes the connection, and what it sent before."""
    start = time.monotonic()
    data = await asyncio.wait_for(reader.read(), within)
    return time.monotonic() - start, data


async def trickle(writer: asyncio.StreamWriter, data: bytes, every: float = 0.05) -> None:
    """Send ``data`` a byte at a time, until done or the server hangs up."""
    for byte in data:
        writer.write(bytes([byte]))
        try:
            await writer.drain()
        except ConnectionError:
            return
        await asyncio.sleep(every)


def webhook_head(length: int) -> bytes:
    return (
        f"POST /webhooks/alertmanager HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {TOKEN}"
        f"\r\nContent-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
    ).encode()


async def test_connections_that_never_finish_headers_are_closed(served: Served) -> None:
    silent = await served.connect()
    partial = await served.connect()
    partial[1].write(b"GET /healthz HTTP/1.1\r\nHost: t\r\n")
    slow = await served.connect()
    sender = asyncio.create_task(trickle(slow[1], b"GET /healthz HTTP/1.1\r\nHost: t\r\n" * 9))
    try:
        for reader, _ in (silent, partial, slow):
            elapsed, data = await closed_after(reader)
            assert data == b""
            assert elapsed < TIMEOUT + 1.0
    finally:
        sender.cancel()
        await asyncio.gather(sender, return_exceptions=True)
    assert await served.get("/healthz") == (200, {"status": "ok"})


async def test_a_body_sent_a_byte_at_a_time_is_cut_off_with_408(served: Served) -> None:
    reader, writer = await served.connect()
    writer.write(webhook_head(2000))
    sender = asyncio.create_task(trickle(writer, b" " * 2000))
    try:
        elapsed, answer = await closed_after(reader)
    finally:
        sender.cancel()
        await asyncio.gather(sender, return_exceptions=True)
    assert elapsed < TIMEOUT + 1.0
    assert parse(answer) == (
        408,
        {
            "error": "request body not received in time",
            "detail": f"the whole body must arrive within {TIMEOUT:g}s",
        },
    )
    assert served.webhook_count(408) == 1


async def test_at_the_limit_health_still_answers(served: Served) -> None:
    slow = [await served.connect() for _ in range(LIMIT)]
    for _, writer in slow:
        writer.write(b"GET /healthz HTTP/1.1\r\n")  # headers never finished
        await writer.drain()
    await asyncio.sleep(0.05)
    # A new connection replaces the oldest one still sending headers.
    assert await served.get("/healthz") == (200, {"status": "ok"})
    _, data = await closed_after(slow[0][0], within=0.2)  # at once, not after the timeout
    assert data == b""


async def test_above_the_limit_with_every_connection_busy_is_503(served: Served) -> None:
    busy = [await served.connect() for _ in range(LIMIT)]
    for _, writer in busy:
        writer.write(webhook_head(100))  # the body never comes: each holds a request
        await writer.drain()
    await asyncio.sleep(0.1)
    start = time.monotonic()
    status, body = await served.get("/healthz")
    assert (status, body["error"]) == (503, "too many connections")
    assert time.monotonic() - start < TIMEOUT  # refused at once, not after a timeout
    for reader, _ in busy:  # the body timeout frees them...
        assert parse((await closed_after(reader))[1])[0] == 408
    assert await served.get("/healthz") == (200, {"status": "ok"})  # ...and health gets in


async def test_errors_of_the_http_parser_are_json(served: Served) -> None:
    for request in (
        b"NOT AN HTTP REQUEST\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nHost: t\r\nBad Header\r\n\r\n",
        webhook_head(2).replace(b"Host: t", b"Host: t\r\nContent-Encoding: br") + b"{}",
    ):
        reader, writer = await served.connect()
        writer.write(request)
        status, body = parse((await closed_after(reader))[1])
        assert status == 400
        assert body["error"] == "bad request" and body["detail"]


@pytest.mark.server
def test_serve_stops_gracefully_on_sigterm(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text("rules: []\n")
    replica = ServeProcess(
        tmp_path / "serve.log",
        REMEDIATOR_RULES=str(rules),
        REMEDIATOR_HEADER_TIMEOUT="2s",
        REMEDIATOR_MAX_CONNECTIONS="50",
    )
    replica.start()
    try:
        with urllib.request.urlopen(f"{replica.url}/healthz", timeout=10) as response:
            assert json.load(response) == {"status": "ok"}
        assert replica.proc is not None
        replica.proc.send_signal(signal.SIGTERM)
        assert replica.proc.wait(20) == 0
    finally:
        replica.stop()
    events = [
        json.loads(line)["event"] for line in replica.log_tail(100_000).splitlines() if line.startswith("{")
    ]
    assert events.index("http.listening") < events.index("service.stopping")
    assert events[-1] == "service.stopped"
