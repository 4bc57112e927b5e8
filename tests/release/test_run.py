"""`make run` as a new user meets it: on a copy of the repository's files (what a fresh clone
holds), it builds a runtime-only venv from uv.lock, serves on loopback, makes and keeps both
tokens, and every command of the README's quick start works as printed."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import stat
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.lockfile import development_packages, installed, project_version, runtime_set
from tests.support.procs import ROOT, free_port, require_binary

README_URL = "http://127.0.0.1:8080"
MAX_VENV_MB = 300
# A cold uv cache downloads every runtime wheel (about 40 MB) on a fresh CI machine.
START_TIMEOUT = 300.0


@dataclass
class Run:
    copy: Path
    port: int
    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")


def _clean_env(**extra: str) -> dict[str, str]:
    """The user's shell: no venv of ours active, no REMEDIATOR_* settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("REMEDIATOR_")}
    for key in ("VIRTUAL_ENV", "PYTHONPATH", "UV_PROJECT_ENVIRONMENT"):
        env.pop(key, None)
    env.update(extra)
    return env


def _copy_repository(dest: Path) -> None:
    """The files a fresh clone has (tracked, plus new ones not ignored), as they are now."""
    listed = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    # uv itself (scripts/uv-requirements.txt) as `make` built it here: no second download.
    if (ROOT / ".tools" / "bin" / "uv").exists():
        (dest / ".tools").symlink_to(ROOT / ".tools")


def _start(copy: Path, log: Path, *make_args: str, **env: str) -> Run:
    port = free_port()
    with log.open("wb") as out:
        proc = subprocess.Popen(
            ["make", "run", f"PORT={port}", *make_args],
            cwd=copy,
            env=_clean_env(**env),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    run = Run(copy, port, proc, log)
    deadline = time.monotonic() + START_TIMEOUT
    while "http.listening" not in run.output():
        if proc.poll() is not None:
            pytest.fail(f"make run stopped with {proc.returncode}:\n{run.output()}")
        if time.monotonic() > deadline:
            _stop(run)
            pytest.fail(f"make run not listening after {START_TIMEOUT}s:\n{run.output()}")
        time.sleep(0.1)
    return run


def _stop(run: Run) -> None:
    if run.proc.poll() is None:
        os.killpg(run.proc.pid, signal.SIGTERM)
        try:
            run.proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(run.proc.pid, signal.SIGKILL)
            run.proc.wait(10)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    require_binary("git")
    copy = tmp_path_factory.mktemp("clone")
    _copy_repository(copy)
    run = _start(copy, copy.parent / "make-run.log")
    try:
        yield run
    finally:
        _stop(run)


def _listening_addresses(port: int) -> set[str]:
    """Local addresses of the sockets listening on ``port`` (/proc/net/tcp{,6})."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            address, _, hex_port = fields[1].partition(":")
            if fields[3] == "0A" and int(hex_port, 16) == port:
                found.add(address)
    return found


def test_it_listens_on_loopback_only(served: Run) -> None:
    # 0100007F is 127.0.0.1 in the kernel's little-endian hex; 00000000 would be 0.0.0.0.
    assert _listening_addresses(served.port) == {"0100007F"}
    assert f"listening on 127.0.0.1:{served.port}" in served.output()


def test_only_makes_command_line_opens_it_to_the_network(served: Run) -> None:
    """tcsh exports HOST as the machine's name: that must not change the address."""
    env = _clean_env(HOST="0.0.0.0")
    exported = subprocess.run(["make", "-n", "run"], cwd=served.copy, env=env, capture_output=True, text=True)
    assert "HOST=127.0.0.1 " in exported.stdout, exported.stdout
    given = subprocess.run(
        ["make", "-n", "run", "HOST=0.0.0.0"], cwd=served.copy, env=env, capture_output=True, text=True
    )
    assert "HOST=0.0.0.0 " in given.stdout, given.stdout


def test_the_venv_holds_exactly_the_locked_runtime_set(served: Run) -> None:
    found = installed([str(served.copy / ".venv-run" / "bin" / "python")])
    packages = dict(found.distributions)
    assert packages.pop("remediator") == project_version()
    assert packages == runtime_set(found, _clean_env())


def test_the_venv_has_no_test_or_lint_package(served: Run) -> None:
    development = development_packages()
    assert {"pytest", "mypy", "ruff", "chdb-core"} <= development
    found = installed([str(served.copy / ".venv-run" / "bin" / "python")])
    assert set(found.distributions) & development == set()


def _size_mb(root: Path) -> float:
    total = 0
    for folder, _, files in os.walk(root):
        for name in files:
            total += os.lstat(os.path.join(folder, name)).st_size
    return total / 1e6


def test_the_venv_is_at_most_300_mb(served: Run) -> None:
    size = _size_mb(served.copy / ".venv-run")
    assert size <= MAX_VENV_MB, f".venv-run is {size:.0f} MB"


def _tokens(run: Run) -> dict[str, str]:
    match = re.search(r"^  webhook: (\S+)\n  admin:   (\S+)$", run.output(), re.MULTILINE)
    assert match, run.output()
    return {"webhook": match[1], "admin": match[2]}


def test_the_tokens_are_printed_kept_private_and_ignored_by_git(served: Run) -> None:
    file = served.copy / ".run" / "tokens.env"
    assert stat.S_IMODE(file.stat().st_mode) == 0o600
    kept = dict(line.split("=", 1) for line in file.read_text().splitlines())
    tokens = _tokens(served)
    assert kept == {"REMEDIATOR_WEBHOOK_TOKEN": tokens["webhook"], "REMEDIATOR_ADMIN_TOKEN": tokens["admin"]}
    assert len(set(tokens.values())) == 2 and all(len(t) >= 16 for t in tokens.values())
    ignored = subprocess.run(["git", "-C", str(ROOT), "check-ignore", "-q", ".run/tokens.env"], check=False)
    assert ignored.returncode == 0, ".run/ must be in .gitignore"


def readme_quick_start() -> list[str]:
    """The README's quick-start block, line by line."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"<!-- quick-start:[^\n]*-->\n```sh\n(.*?)\n```", text, re.DOTALL)
    assert block, "README.md lost its quick-start block"
    return block[1].split("\n")


def printed_quick_start(run: Run) -> list[str]:
    output = run.output()
    start = output.index("in another terminal, in ")
    lines = output[start:].split("\n")[1:]
    return [line[2:] for line in lines[: lines.index("")]]


def test_make_run_prints_the_readmes_quick_start(served: Run) -> None:
    printed = [line.replace(served.url, README_URL) for line in printed_quick_start(served)]
    assert printed == readme_quick_start()
    assert f"in another terminal, in {served.copy}:" in served.output()


def _bash(script: str, run: Run) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=run.copy,
        env=_clean_env(),
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )


def _events(run: Run, admin: str) -> list[str]:
    listed = _bash(
        f"REMEDIATOR_ADMIN_TOKEN={admin} .venv-run/bin/remediator events --json --url {run.url}", run
    )
    assert listed.returncode == 0, listed.stderr
    return [event["event_id"] for event in json.loads(listed.stdout)]


def test_every_quick_start_command_works_as_shown(served: Run) -> None:
    require_binary("curl")
    commands = [line.replace(README_URL, served.url) for line in readme_quick_start()]
    joined = "\n".join(commands)
    first, rest = joined.split("\n.venv-run/bin/remediator events\n", 1)
    export = commands[0]
    assert export.startswith("export $(cat .run/tokens.env) ")

    posted = _bash(first, served)
    assert posted.returncode == 0, posted.stderr
    answer = json.loads(posted.stdout.splitlines()[0])  # curl -w '\n' ends the answer's line
    assert answer["accepted"] == 4 and len(answer["event_ids"]) == 4, posted.stdout
    assert "# TYPE remediator_jobs_total counter" in posted.stdout

    admin = _tokens(served)["admin"]
    deadline = time.monotonic() + 30
    while not set(answer["event_ids"]) <= set(_events(served, admin)):
        assert time.monotonic() < deadline, "the four jobs did not finish within 30 s"
        time.sleep(0.2)
    event_id = answer["event_ids"][0]
    listed = _bash(f"{export}\n.venv-run/bin/remediator events", served)
    assert listed.returncode == 0, listed.stderr
    assert all(event in listed.stdout for event in answer["event_ids"])

    script = f"{export}\n" + rest.replace("EVENT_ID", event_id)
    done = _bash(script, served)
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
    assert f"event     {event_id}" in done.stdout
    assert re.search(rf"replayed {event_id} as 1 new event\(s\): \w+", done.stdout), done.stdout
    assert re.search(r"dry_run: dry run", done.stdout)
    # issue 25: `pause` makes a pause of every job through /api/v1/pauses, named by its id
    assert " by admin until " in done.stdout and "for every job: trying it out" in done.stdout
    assert "resumed: remediation runs again" in done.stdout


def test_a_restart_reuses_the_tokens(served: Run) -> None:
    again = _start(served.copy, served.copy.parent / "make-run-again.log")
    try:
        assert _tokens(again) == _tokens(served)
        assert _listening_addresses(again.port) == {"0100007F"}
    finally:
        _stop(again)
