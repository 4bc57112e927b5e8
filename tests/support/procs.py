"""Free ports, waiting for a port, and binaries that must exist in CI."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_port(port: int, timeout: float = 20.0, host: str = "127.0.0.1") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout}s")


def require_binary(name: str, *candidates: str) -> str:
    """Path of a binary; skip locally when missing, but fail in CI (CI=true)."""
    for candidate in (name, *candidates):
        found = shutil.which(candidate) or (candidate if os.path.isfile(candidate) else None)
        if found:
            return found
    message = f"{name} is not installed (run `make system-deps`)"
    if os.environ.get("CI") == "true":
        pytest.fail(message + " and CI=true forbids skipping", pytrace=False)
    pytest.skip(message)


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)


def python_env(**extra: str) -> dict[str, str]:
    """Environment for `python -m remediator` subprocesses that import this checkout."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env


PYTHON = sys.executable


def server_allowed(what: str) -> None:
    """``make test-unit`` (``NO_TEST_SERVERS=1``) starts no server process: a test that
    does is marked ``server`` and left to ``make test``."""
    if os.environ.get("NO_TEST_SERVERS") == "1":
        raise RuntimeError(
            f"this test starts {what}: mark it @pytest.mark.server (make test-unit starts none)"
        )
