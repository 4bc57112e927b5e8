"""A ``command.run`` script cannot read the service's secrets: not from ``/proc`` of its
parent or any ancestor (environ, cmdline, mem, fd), not from a descriptor it inherited.

The real ``serve`` (uvloop, as shipped) runs as a user that is not root, as its image does
(root may read any process). The script (tests/support/prober.py) tries everything and
writes what it read to a report; no secret may be in it.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from tests.support.procs import ROOT, require_binary
from tests.support.serve_procs import ServeProcess, firing_alert, wait_ready

UID = GID = 64123  # no such user: nothing else on the machine runs as it
SECRETS = {
    "REMEDIATOR_WEBHOOK_TOKEN": "webhook-secret-Qx7wP2vK9mN4",
    "REMEDIATOR_ADMIN_TOKEN": "admin-secret-Zr8tY3bL6cH1",
    "REMEDIATOR_SLACK_SIGNING_SECRET": "slack-signing-secret-Ws5dF0gJ2k",
    "REMEDIATOR_UI_SESSION_KEY": "ui-session-key-Mn3vB8xC4zQ7",
}
PROBER = ROOT / "tests" / "support" / "prober.py"
RULES = """
rules:
  - name: steal
    matchers: ['alertname="TestDown"']
    handler: command.run
    target: 'pod/x'
    params:
      argv: ['{python}', '{prober}', '{report}']
      timeout: 1m
"""


def as_other_user() -> tuple[str, ...]:
    """The prefix that starts the service as a user that is not root (none if we are not root)."""
    if os.geteuid() != 0:
        return ()
    setpriv = require_binary("setpriv")
    return (setpriv, f"--reuid={UID}", f"--regid={GID}", "--clear-groups")


@pytest.fixture
def workdir() -> Iterator[Path]:
    """A folder the other user owns (pytest's tmp_path is root's, mode 700)."""
    path = Path(tempfile.mkdtemp(prefix="remediator-isolation-"))
    path.chmod(0o755)
    if os.geteuid() == 0:
        os.chown(path, UID, GID)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def check_the_user_can_run_python(prefix: tuple[str, ...]) -> None:
    if not prefix:
        return
    done = subprocess.run(
        [*prefix, sys.executable, "-c", "import remediator, uvloop, re2"],
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, f"uid {UID} cannot run {sys.executable} on this checkout: {done.stderr}"


def prober_python(prefix: tuple[str, ...]) -> str:
    """A Python the other user may execute from a child (the prober needs the standard library
    only): a venv under root's home may not be one."""
    candidates = [
        sys.executable,
        os.path.realpath(sys.executable),
        "/usr/bin/python3",
        shutil.which("python3"),
    ]
    for candidate in dict.fromkeys(c for c in candidates if c):
        done = subprocess.run(
            [*prefix, "/bin/sh", "-c", 'exec "$0" -c "import os"', candidate], capture_output=True, timeout=60
        )
        if done.returncode == 0:
            return candidate
    raise AssertionError(f"uid {UID} can execute none of {candidates}")


async def run_the_prober(workdir: Path, **more: str) -> tuple[bytes, int]:
    """Serve as the other user, fire the rule that runs the prober; its report and the service's pid."""
    prefix = as_other_user()
    check_the_user_can_run_python(prefix)
    report = workdir / "report.bin"
    rules = workdir / "rules.yaml"
    rules.write_text(RULES.format(python=prober_python(prefix), prober=PROBER, report=report))
    if prefix:
        os.chown(rules, UID, GID)
    env = {
        **SECRETS,
        "REMEDIATOR_RULES": str(rules),
        "REMEDIATOR_UI": "true",
        "REMEDIATOR_HANDLER_MODULES": '["handlers"]',
        "HOME": str(workdir),
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": str(ROOT),
        "PYTHONDONTWRITEBYTECODE": "1",
        **more,
    }
    replica = ServeProcess(workdir / "serve.log", **env)
    replica.prefix = prefix
    replica.start()
    try:
        async with aiohttp.ClientSession() as session:
            await wait_ready(session, replica)
            headers = {"Authorization": f"Bearer {SECRETS['REMEDIATOR_WEBHOOK_TOKEN']}"}
            async with session.post(
                f"{replica.url}/webhooks/alertmanager",
                json={"version": "4", "status": "firing", "alerts": [firing_alert()]},
                headers=headers,
            ) as response:
                assert response.status == 202, await response.text()
                (event_id,) = (await response.json())["event_ids"]
            event = await outcome(session, replica, event_id)
    finally:
        replica.stop()
    assert event["outcome"] == "succeeded", (event["message"], event.get("details"))
    return report.read_bytes(), replica.pid


async def test_a_script_reads_no_secret_of_the_service(workdir: Path) -> None:
    stolen, pid = await run_the_prober(workdir)
    summary = [line for line in stolen.split(b"\n") if line.startswith(b"== ") and len(line) < 300]
    for name, secret in SECRETS.items():
        assert secret.encode() not in stolen, f"{name} leaked: {summary}"
    assert b"== inherited []" in stolen, summary[:3]  # nothing beyond 0, 1 and 2
    parent = str(pid).encode()
    for part in (b"environ", b"mem", b"fd"):  # tried, and refused
        assert b"== " + parent + b"/" + part + b" refused" in stolen, summary


async def test_dumpable_true_leaves_the_process_readable_for_debugging(workdir: Path) -> None:
    """The documented switch works (the service's environment is readable again), and the
    descriptors stay closed: that part does not depend on it."""
    stolen, pid = await run_the_prober(workdir, REMEDIATOR_DUMPABLE="true")
    assert b"== " + str(pid).encode() + b"/environ\n" in stolen
    assert SECRETS["REMEDIATOR_ADMIN_TOKEN"].encode() in stolen
    assert b"== inherited []" in stolen


async def outcome(session: aiohttp.ClientSession, replica: ServeProcess, event_id: str) -> dict[str, object]:
    headers = {"Authorization": f"Bearer {SECRETS['REMEDIATOR_ADMIN_TOKEN']}"}
    deadline = time.monotonic() + 75
    while time.monotonic() < deadline:
        async with session.get(f"{replica.url}/api/v1/events/{event_id}", headers=headers) as response:
            if response.status == 200:
                found: dict[str, object] = await response.json()
                return found
        await asyncio.sleep(0.2)
    raise AssertionError(f"no outcome for {event_id}:\n{replica.log_tail()}")


def test_the_prober_finds_secrets_where_they_are_readable(workdir: Path) -> None:
    """The prober itself works: run by a shell that holds a secret in its environment and a
    descriptor, it finds both (so its empty report above means refused, not missed)."""
    report = workdir / "self.bin"
    secret = "visible-secret-Ab12Cd34"
    # The shell stays the prober's parent (python is not the last command, so no shell
    # execs it in place): its environ is an ancestor's, as the service's would be. With
    # ``exec`` the second copy was found only in pytest's own memory, within the first
    # 256 MiB the prober reads: not in a whole suite's larger pytest process.
    script = f'exec 7<"{workdir}/held"; "{sys.executable}" "{PROBER}" "{report}"; exit $?'
    (workdir / "held").write_text(secret)
    done = subprocess.run(
        ["/bin/sh", "-c", f"{script}"], env={"SECRET_HERE": secret}, capture_output=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    stolen = report.read_bytes()
    assert b"== inherited [(7, " in stolen and b"== fd 7 (" + str(workdir).encode() in stolen, stolen[:300]
    assert stolen.count(secret.encode()) >= 2, stolen[:300]  # the descriptor, and the shell's environ
