"""The version is written once, in pyproject.toml. Everything that shows it reads it from there
(the installed package's metadata) or is regenerated from it by `make deploy-sync`; the
image's labels are checked in test_image.py."""

from __future__ import annotations

import platform
import shutil
import subprocess
from pathlib import Path

from prometheus_client import generate_latest

from remediator.about import version
from remediator.metrics import Metrics
from tests.support.lockfile import project_version
from tests.support.procs import PYTHON, ROOT, python_env


def deploy_versions(root: Path) -> dict[str, str]:
    """Each place under deploy/ that states remediator's version (the app.kubernetes.io/version
    labels, and each overlay's image tag), and what it says. The Redis component's labels name
    Redis's version, not ours."""
    found = {}
    for path in sorted((root / "deploy").rglob("*.yaml")):
        relative = str(path.relative_to(root))
        if relative.startswith("deploy/components/redis/"):
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            key, _, value = line.strip().partition(": ")
            if key == "app.kubernetes.io/version" or (key == "newTag" and "/overlays/" in relative):
                found[f"{relative}:{number}"] = value.strip('"')
    return found


def test_the_installed_package_has_pyprojects_version() -> None:
    assert version() == project_version()


def test_version_flag_and_build_info_say_it() -> None:
    printed = subprocess.run(
        [PYTHON, "-m", "remediator", "--version"],
        capture_output=True,
        text=True,
        env=python_env(),
        check=True,
    ).stdout
    assert printed.strip() == f"remediator {project_version()} (Python {platform.python_version()})"
    exposed = generate_latest(Metrics().registry).decode()
    wanted = (
        f'remediator_build_info{{python="{platform.python_version()}",version="{project_version()}"}} 1.0'
    )
    assert wanted in exposed.splitlines()


def test_deploy_states_pyprojects_version_everywhere() -> None:
    stated = deploy_versions(ROOT)
    assert any(place.startswith("deploy/base/") for place in stated)
    assert sum(place.startswith("deploy/overlays/") and "kustomization" in place for place in stated) >= 2
    assert stated == dict.fromkeys(stated, project_version()), "run `make deploy-sync`"


def test_a_bump_is_one_edit_and_make_deploy_sync(tmp_path: Path) -> None:
    """On a copy: change pyproject's version, run the sync, and every place follows; nothing
    else under deploy/ changes."""
    for name in ("pyproject.toml", "rules.yaml", "scripts/sync_deploy.py"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, tmp_path / name)
    shutil.copytree(ROOT / "deploy", tmp_path / "deploy")
    pyproject = tmp_path / "pyproject.toml"
    text = pyproject.read_text(encoding="utf-8")
    bumped = text.replace(f'\nversion = "{project_version()}"\n', '\nversion = "9.8.7"\n', 1)
    assert bumped != text
    pyproject.write_text(bumped, encoding="utf-8")
    subprocess.run(
        [PYTHON, "scripts/sync_deploy.py", "--root", str(tmp_path)],
        cwd=tmp_path,
        check=True,
        capture_output=True,
    )
    assert deploy_versions(tmp_path) == dict.fromkeys(deploy_versions(ROOT), "9.8.7")
    changed = []
    for path in sorted((ROOT / "deploy").rglob("*")):
        if path.is_file():
            copy = tmp_path / path.relative_to(ROOT)
            if copy.read_bytes() != path.read_bytes():
                changed.append(str(path.relative_to(ROOT)))
    # only the files that state the version, and nothing but those lines in them
    assert changed == sorted({place.partition(":")[0] for place in deploy_versions(ROOT)})
    for name in changed:
        before = (ROOT / name).read_text(encoding="utf-8").splitlines()
        after = (tmp_path / name).read_text(encoding="utf-8").splitlines()
        assert len(before) == len(after)
        for old_line, new_line in zip(before, after, strict=True):
            assert old_line == new_line or ("9.8.7" in new_line and project_version() in old_line)
