"""Serving the app until SIGTERM/SIGINT, with limits against slow and greedy clients.

- Headers: a connection must send a request's complete headers within ``header_timeout``
  of opening, or of its previous answer; otherwise it is closed. This is aiohttp's
  keep-alive timer: armed when the connection opens and after each answer, it closes the
  connection only while no request is being handled, so it bounds both header reading
  and idle keep-alive.
- Body: reading it is bounded by ``body_timeout`` (``bodies.read_body``: 408).
- Connections: at most ``max_connections``. At the limit a new connection replaces the
  oldest one that is not handling a request (idle, or still sending its headers), so a
  health check still gets in; only when every connection is handling a request is the
  new one answered 503 and closed.
- Errors the HTTP parser finds (a bad request line) are JSON too, like every other error.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator
from http import HTTPStatus
from typing import Any

import structlog
import uvloop
from aiohttp import web, web_protocol, web_request, web_server

from remediator.api.errors import LOCKED_DOWN, error_bytes, json_error
from remediator.settings import Settings

log = structlog.get_logger("remediator.api.serving")


def run(app: web.Application, settings: Settings) -> None:
    """Serve ``app`` on ``settings.host:port`` until SIGTERM or SIGINT, then shut down
    gracefully (requests and workers get ``shutdown_grace`` to finish). The event loop is
    uvloop's: the same asyncio, with its networking in C (``make bench``: intake and the
    workers' Redis round trips cost less CPU)."""
    uvloop.run(_run(app, settings))


async def _run(app: web.Application, settings: Settings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        async with serving(app, settings):
            await stop.wait()
            log.info("service.stopping", grace=settings.shutdown_grace)
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)


@contextlib.asynccontextmanager
async def serving(app: web.Application, settings: Settings) -> AsyncIterator[web.AppRunner]:
    """Start ``app`` (its start-up included) and listen; stop and clean up on exit."""
    runner = _Runner(
        app,
        max_connections=settings.max_connections,
        keepalive_timeout=settings.header_timeout,
        shutdown_timeout=settings.shutdown_grace,
    )
    try:
        await runner.setup()
        await web.TCPSite(runner, settings.host, settings.port).start()
        log.info(
            "http.listening",
            host=settings.host,
            port=settings.port,
            header_timeout=settings.header_timeout,
            body_timeout=settings.body_timeout,
            max_connections=settings.max_connections,
        )
        yield runner
    finally:
        await runner.cleanup()


class _Connections:
    """The open connections, and the rule for one more at the limit."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.open: dict[_Protocol, float] = {}  # connection -> when it opened
        self.saturated = False

    def admit(self, conn: _Protocol, now: float) -> bool:
        if len(self.open) >= self.limit:
            self._saturated()
            idle = [c for c in self.open if not c.handling]
            if not idle:
                return False
            victim = min(idle, key=self.open.__getitem__)
            self.release(victim)
            victim.force_close()
        self.open[conn] = now
        return True

    def release(self, conn: _Protocol) -> None:
        self.open.pop(conn, None)
        if self.saturated and len(self.open) < self.limit // 2:
            self.saturated = False

    def _saturated(self) -> None:
        if not self.saturated:  # once per episode: an attack must not flood the log
            self.saturated = True
            log.warning(
                "http.connections_at_limit",
                limit=self.limit,
                message="closing idle or slow connections to admit new ones; "
                "refusing with 503 while every connection has a request",
            )


class _Protocol(web_protocol.RequestHandler):
    """aiohttp's HTTP/1 protocol, counted against the connection limit, with JSON errors."""

    def __init__(self, manager: _Server, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self.limiter = manager.limiter

    @property
    def handling(self) -> bool:
        """A request is being handled (headers complete, answer not yet sent)."""
        return bool(self._request_in_progress)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        if not self.limiter.admit(self, self._loop.time()):
            assert self.transport is not None
            self.transport.write(
                error_bytes(
                    503,
                    "too many connections",
                    f"all {self.limiter.limit} connections are handling requests; retry",
                )
            )
            self.force_close()

    def connection_lost(self, exc: BaseException | None) -> None:
        self.limiter.release(self)
        super().connection_lost(exc)

    def handle_error(
        self,
        request: web_request.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """What aiohttp answers itself (a request it cannot parse), as JSON."""
        if request.writer.output_size > 0:
            raise ConnectionError("the answer has started: no room for an error")
        detail: str | None = "the error is logged on the service"
        if status >= 500:
            log.error("http.internal_error", status=status, exc_info=exc)
        else:
            detail = (message or str(exc or "")).strip() or None
        response = json_error(status, HTTPStatus(status).phrase.lower(), detail, LOCKED_DOWN)
        response.force_close()
        return response


class _Server(web_server.Server):
    """aiohttp's server, making our protocol; built from the one the app runner made."""

    def __init__(self, plain: web_server.Server, limiter: _Connections) -> None:
        super().__init__(
            plain.request_handler,
            request_factory=plain.request_factory,
            handler_cancellation=plain.handler_cancellation,
            **plain._kwargs,
        )
        self.limiter = limiter

    def __call__(self) -> web_protocol.RequestHandler:
        return _Protocol(self, loop=self._loop, **self._kwargs)


class _Runner(web.AppRunner):
    def __init__(self, app: web.Application, *, max_connections: int, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self.limiter = _Connections(max_connections)

    async def _make_server(self) -> web_server.Server:
        return _Server(await super()._make_server(), self.limiter)
