"""``python -m remediator serve`` as a subprocess on a free port, with its JSON log and
its /metrics readable by tests."""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.alertmanager import sum_samples
from tests.support.procs import PYTHON, free_port, python_env, server_allowed, stop_process


@dataclass
class RemediatorProcess:
    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def webhook_url(self) -> str:
        return self.url + "/webhooks/alertmanager"

    def get(self, path: str) -> tuple[int, Any]:
        try:
            with urllib.request.urlopen(self.url + path, timeout=10) as response:
                body = response.read().decode()
                status = response.status
        except urllib.error.HTTPError as exc:
            body, status = exc.read().decode(), exc.code
        return status, json.loads(body) if body.startswith(("{", "[")) else body

    def metric(self, name: str, **labels: str) -> float:
        status, text = self.get("/metrics")
        assert status == 200
        return sum_samples(str(text), name, labels)

    def events(self, event: str | None = None) -> list[dict[str, Any]]:
        """The structured log lines (JSON), optionally only those with this ``event``."""
        lines = []
        for line in self.log_path.read_text(encoding="utf-8", errors="replace").splitlines():
            with contextlib.suppress(ValueError):
                record = json.loads(line)
                if isinstance(record, dict) and (event is None or record.get("event") == event):
                    lines.append(record)
        return lines

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")


@contextlib.contextmanager
def run_remediator(
    workdir: Path, rules: Path, *, env: dict[str, str], timeout: float = 60.0
) -> Iterator[RemediatorProcess]:
    """Start the service with ``env`` (REMEDIATOR_* settings) and wait until /readyz is 200."""
    server_allowed("`remediator serve`")
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log_path = workdir / "remediator.log"
    settings = {"REMEDIATOR_LOG_FORMAT": "json", "REMEDIATOR_LOG_LEVEL": "INFO", **env}
    full_env = python_env(**settings)
    if "REMEDIATOR_REDIS_URL" not in env:
        full_env.pop("REMEDIATOR_REDIS_URL", None)
    args = [
        PYTHON,
        "-m",
        "remediator",
        "serve",
        "--rules",
        str(rules),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    with log_path.open("wb") as log:
        proc = subprocess.Popen(args, env=full_env, cwd=workdir, stdout=log, stderr=subprocess.STDOUT)
    service = RemediatorProcess(proc=proc, port=port, log_path=log_path)
    try:
        _wait_ready(service, timeout)
        yield service
    finally:
        stop_process(proc)


def _wait_ready(service: RemediatorProcess, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if service.proc.poll() is not None:
            raise RuntimeError(f"remediator exited {service.proc.returncode}:\n{service.log()}")
        with contextlib.suppress(OSError):
            if service.get("/readyz")[0] == 200:
                return
        time.sleep(0.1)
    raise TimeoutError(f"remediator not ready after {timeout}s:\n{service.log()}")
