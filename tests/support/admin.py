"""Fixtures for the admin API, CLI and reload tests: a private registry with a
controllable handler, rules files, payloads, and the app served from a thread."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import structlog
from aiohttp import web

from remediator import Checked, Context, Handler, HandlerParams, Result, handler, logs
from remediator.app import create_app
from remediator.handling.registry import Registry
from remediator.notify.notice import Notifier
from remediator.settings import Settings
from tests.support.procs import free_port

ADMIN_TOKEN = "admin-secret-token"
WEBHOOK_TOKEN = "webhook-secret-token"

# The rule most admin tests run: test.fix on svc/<service>, its outcome from the alert.
FIX_IT = """\
  - name: fix-it
    matchers: ['alertname="TestBroken"']
    handler: test.fix
    target: 'svc/{{ labels.service }}'
    params: {outcome: '{{ labels.outcome | default("succeeded") }}'}
"""
RULES = "defaults:\n  cooldown: 15m\n  max_attempts: 3\nrules:\n" + FIX_IT

EXTRA_RULE = """\
  - name: fix-other
    matchers: ['alertname="OtherBroken"']
    handler: test.fix
    target: 'other/{{ labels.service }}'
"""


class FixParams(HandlerParams):
    outcome: Literal["succeeded", "failed", "noop"] = "succeeded"


@dataclass
class Calls:
    """What the test handler was asked to do, in order."""

    runs: list[tuple[str, str, bool]] = field(default_factory=list)  # event, target, dry_run
    lock: threading.Lock = field(default_factory=threading.Lock)
    hold: asyncio.Event | None = None  # set by a test: the handler waits for it
    started: asyncio.Event | None = None  # set by the handler when it starts

    def acted(self) -> list[str]:
        with self.lock:
            return [event for event, _, dry in self.runs if not dry]


def make_registry(calls: Calls) -> Registry:
    registry = Registry()

    @handler(
        "test.fix", params=FixParams, registry=registry, describe=lambda p: [f"fix the target ({p.outcome})"]
    )
    class Fix(Handler[FixParams, None, None]):
        """Pretend to repair; the outcome comes from the rule (or the alert's labels)."""

        async def precheck(self, params: FixParams, ctx: Context) -> Checked[None]:
            return Checked(f"{ctx.target} (pretend)", None)

        async def act(self, params: FixParams, ctx: Context, seen: None) -> Result | None:
            with calls.lock:
                calls.runs.append((ctx.event_id, ctx.target, ctx.dry_run))
            if calls.started is not None:
                calls.started.set()
            if calls.hold is not None:
                await calls.hold.wait()
            if ctx.dry_run:
                return Result.dry_run([f"fix {ctx.target}"])
            ctx.step("act", f"fixing {ctx.target}")
            return None

        async def verify(self, params: FixParams, ctx: Context, acted: None) -> Result:
            if params.outcome == "failed":
                return Result.failed(f"could not fix {ctx.target}")
            if params.outcome == "noop":
                return Result.noop(f"{ctx.target} is healthy")
            return Result.succeeded(f"fixed {ctx.target}")

    return registry


def write_rules(path: Path, text: str = RULES) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def make_settings(rules: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "rules": rules,
        "admin_token": ADMIN_TOKEN,
        "webhook_token": WEBHOOK_TOKEN,
        "workers": 2,
        "rules_poll_interval": 0.1,
        "shutdown_grace": 5.0,
        "handler_modules": [],
        "log_level": "WARNING",
    }
    values.update(overrides)
    return Settings(**values)


def admin_headers(token: str = ADMIN_TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def webhook_headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {WEBHOOK_TOKEN}"}


@dataclass
class ServedApp:
    url: str
    calls: Calls
    rules: Path


@contextmanager
def serve_in_thread(
    settings: Settings,
    calls: Calls,
    notifier: Notifier | None = None,
) -> Iterator[ServedApp]:
    """Run the real app on a free port in a thread with its own loop (for sync callers
    such as the CLI, which runs ``asyncio.run`` itself, and schemathesis)."""
    port, ready, stop = free_port(), threading.Event(), threading.Event()
    failure: list[BaseException] = []

    def main() -> None:
        loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(_serve(settings, calls, port, ready, stop, notifier))
        except BaseException as exc:  # reported to the test below
            failure.append(exc)
            ready.set()
        finally:
            loop.close()

    saved = structlog.get_config()
    # The server logs to stderr here, so a test capturing the CLI's stdout sees only the CLI.
    logs.configure("console", settings.log_level)
    thread = threading.Thread(target=main, name="remediator-test-server", daemon=True)
    thread.start()
    try:
        ready.wait(30)
        if failure:
            raise failure[0]
        yield ServedApp(f"http://127.0.0.1:{port}", calls, settings.rules)
    finally:
        stop.set()
        thread.join(30)
        structlog.configure(**saved)


async def _serve(
    settings: Settings,
    calls: Calls,
    port: int,
    ready: threading.Event,
    stop: threading.Event,
    notifier: Notifier | None = None,
) -> None:
    app = create_app(settings, registry=make_registry(calls), notifier=notifier)
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", port).start()
        ready.set()
        await asyncio.to_thread(stop.wait)
    finally:
        await runner.cleanup()
