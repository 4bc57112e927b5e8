"""What uv.lock says an install holds, and what an interpreter really has installed: the
runtime-only installs (`make run`'s venv, the image) must hold exactly the lock's runtime set."""

from __future__ import annotations

import json
import re
import subprocess
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass

from packaging.markers import Marker
from packaging.utils import canonicalize_name

from tests.support.procs import ROOT, require_binary

# Run by the interpreter under test (which need not have `packaging`): its distributions and
# the PEP 508 marker environment (packaging.markers.default_environment's fields), since a
# lock entry may apply to one Python only (async-timeout: python_full_version < '3.11.3').
_LIST = """
import importlib.metadata as m, json, os, platform, sys
version = sys.implementation.version
implementation = f"{version.major}.{version.minor}.{version.micro}"
if version.releaselevel != "final":
    implementation += version.releaselevel[0] + str(version.serial)
print(json.dumps({
    "distributions": {d.metadata["Name"]: d.version for d in m.distributions()},
    "environment": {
        "implementation_name": sys.implementation.name,
        "implementation_version": implementation,
        "os_name": os.name,
        "platform_machine": platform.machine(),
        "platform_release": platform.release(),
        "platform_system": platform.system(),
        "platform_version": platform.version(),
        "python_full_version": platform.python_version(),
        "platform_python_implementation": platform.python_implementation(),
        "python_version": ".".join(platform.python_version_tuple()[:2]),
        "sys_platform": sys.platform,
    },
}))
"""


@dataclass(frozen=True)
class Install:
    """What an interpreter has installed, and the marker environment it evaluates."""

    distributions: dict[str, str]
    environment: dict[str, str]


def uv_binary() -> str:
    return require_binary("uv", str(ROOT / ".tools" / "bin" / "uv"))


def project() -> dict[str, object]:
    table: dict[str, object] = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return table


def project_version() -> str:
    return str(project()["version"])


def runtime_set(install: Install, env: dict[str, str] | None = None) -> dict[str, str]:
    """`uv export` of the runtime dependencies only (no group, not the project itself):
    canonical name -> version, environment markers evaluated as ``install``'s Python does."""
    export = ["export", "--frozen", "--no-default-groups", "--no-hashes", "--no-emit-project"]
    exported = subprocess.run(
        [uv_binary(), *export, "--project", str(ROOT)],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    ).stdout
    wanted: dict[str, str] = {}
    for line in exported.splitlines():
        if not line or line.startswith(("#", " ")):
            continue
        requirement, _, marker = line.partition(" ; ")
        name, _, version = requirement.partition("==")
        if not marker or Marker(marker).evaluate(install.environment):
            wanted[canonicalize_name(name)] = version.strip()
    return wanted


def development_packages() -> set[str]:
    """The direct members of pyproject's dependency groups (test, lint)."""
    groups = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["dependency-groups"]
    names = [re.split(r"[\[<>=!~ ;]", dep, maxsplit=1)[0] for group in groups.values() for dep in group]
    return {canonicalize_name(name) for name in names}


def installed(python: Sequence[str], env: dict[str, str] | None = None) -> Install:
    """What the interpreter ``python`` (an argv: a venv's python, or `podman run ... python`)
    has installed (canonical name -> version), and its marker environment."""
    listed = subprocess.run([*python, "-c", _LIST], capture_output=True, text=True, timeout=120, env=env)
    assert listed.returncode == 0, f"{python}: {listed.stderr}"
    found = json.loads(listed.stdout)
    return Install(
        {canonicalize_name(name): version for name, version in found["distributions"].items()},
        found["environment"],
    )
