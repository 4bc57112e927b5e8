"""uv.lock is the one source of installed versions: it must agree with pyproject.toml."""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib
from pathlib import Path

from tests.support.procs import ROOT, require_binary


def _uv() -> str:
    return require_binary("uv", str(ROOT / ".tools" / "bin" / "uv"))


def _check(project: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_uv(), "lock", "--check", "--offline", "--project", str(project)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_lock_agrees_with_pyproject() -> None:
    result = _check(ROOT)
    assert result.returncode == 0, result.stderr


def test_a_pyproject_change_without_make_lock_fails(tmp_path: Path) -> None:
    for name in ("pyproject.toml", "uv.lock", "README.md"):
        shutil.copy(ROOT / name, tmp_path / name)
    pyproject = tmp_path / "pyproject.toml"
    text = pyproject.read_text()
    # a tighter lower bound than the locked aiohttp: the lock no longer satisfies pyproject
    changed = re.sub(r'"aiohttp>=[^"]*"', '"aiohttp>=99"', text, count=1)
    assert changed != text
    pyproject.write_text(changed)
    result = _check(tmp_path)
    assert result.returncode != 0
    assert "aiohttp" in result.stderr or "lockfile" in result.stderr.lower()


def test_every_semver_runtime_dependency_has_an_upper_bound() -> None:
    """SemVer packages are bounded at their next major; the rest are guarded by the lock only."""
    calver_or_zero = {"structlog", "kubernetes-asyncio", "prometheus-client", "asynch", "uvloop"}
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    unbounded = []
    for dep in deps:
        name = re.split(r"[\[<>=!~ ]", dep, maxsplit=1)[0].lower()
        if name not in calver_or_zero and "<" not in dep:
            unbounded.append(name)
    assert unbounded == []
