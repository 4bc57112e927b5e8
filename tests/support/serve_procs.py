"""``python -m remediator serve`` as a real subprocess, and a client for its HTTP API."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from tests.support.procs import PYTHON, ROOT, free_port, python_env, server_allowed, stop_process, wait_port

TOKEN = "test-webhook-token"
TEST_HANDLERS = json.dumps(["handlers", "tests.support.test_handlers"])


class ServeProcess:
    """One replica. Its log (JSON lines) goes to ``log_path``.

    Set ``prefix`` to run it through another program (``setpriv``: as another user).
    """

    def __init__(self, log_path: Path, **env: str) -> None:
        self.prefix: tuple[str, ...] = ()
        self.port = free_port()
        self.log_path = log_path
        self.env = {
            "REMEDIATOR_WEBHOOK_TOKEN": TOKEN,
            "REMEDIATOR_HANDLER_MODULES": TEST_HANDLERS,
            "REMEDIATOR_LOG_FORMAT": "json",
            **env,
        }
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, timeout: float = 60.0) -> None:
        server_allowed("`remediator serve`")
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    *self.prefix,
                    *(PYTHON, "-m", "remediator", "serve", "--host", "127.0.0.1", "--port", str(self.port)),
                ],
                env=python_env(**self.env),
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            wait_port(self.port, timeout)
        except TimeoutError:
            self.stop()
            raise RuntimeError(f"serve did not start:\n{self.log_tail()}") from None

    def kill(self) -> None:
        """SIGKILL: no cleanup, no lease released, jobs left pending."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc, timeout=40)

    def log_tail(self, chars: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.exists() else ""


def webhook_payload(*alerts: dict[str, Any]) -> dict[str, Any]:
    """An Alertmanager v4 webhook body around ``alerts``."""
    return {
        "version": "4",
        "groupKey": '{}:{alertname="TestDown"}',
        "truncatedAlerts": 0,
        "status": "firing",
        "receiver": "remediator",
        "groupLabels": {},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager",
        "alerts": list(alerts),
    }


def firing_alert(starts_at: str = "2024-05-01T12:00:00Z", **labels: str) -> dict[str, Any]:
    return {
        "status": "firing",
        "labels": {"alertname": "TestDown", **labels},
        "annotations": {"summary": "test"},
        "startsAt": starts_at,
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus/graph",
    }


async def post_alerts(
    session: aiohttp.ClientSession, replica: ServeProcess, *alerts: dict[str, Any]
) -> tuple[int, dict[str, Any]]:
    """POST a webhook; the status and the JSON body."""
    async with session.post(
        f"{replica.url}/webhooks/alertmanager",
        json=webhook_payload(*alerts),
        headers={"Authorization": f"Bearer {TOKEN}"},
    ) as response:
        return response.status, await response.json()


async def wait_ready(session: aiohttp.ClientSession, replica: ServeProcess, within: float = 60.0) -> None:
    deadline = time.monotonic() + within
    while True:
        try:
            async with session.get(f"{replica.url}/readyz") as response:
                if response.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{replica.url} not ready:\n{replica.log_tail()}")
        await asyncio.sleep(0.2)


async def metric_samples(
    session: aiohttp.ClientSession, replica: ServeProcess, name: str
) -> list[tuple[dict[str, str], float]]:
    """The samples of one metric from ``/metrics``: (labels, value) pairs."""
    async with session.get(f"{replica.url}/metrics") as response:
        text = await response.text()
    return [
        (dict(sample.labels), sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    ]
