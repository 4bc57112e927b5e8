"""The version is written once, in pyproject.toml. Everything that shows it reads it from there
(the installed package's metadata) or is regenerated from it by `make deploy-sync`; the
image's labels are checked in test_image.py."""

from __future__ import annotations

import platform
import shutil
import subprocess
from pathlib import Path

import yaml
from prometheus_client import generate_latest

from remediator.about import version
from remediator.metrics import Metrics
from tests.support.lockfile import project_version
from tests.support.procs import PYTHON, ROOT, python_env

# The kustomizations whose objects carry remediator's version, and the overlay that picks the image.
LABELLED = ("deploy/base", "deploy/prometheus", "deploy/grafana")
OVERLAY = "deploy/overlays/torghut"


def deploy_versions(root: Path) -> dict[str, str]:
    """Each place under deploy/ that states remediator's version, and what it says."""
    found = {}
    for directory in LABELLED:
        spec = yaml.safe_load((root / directory / "kustomization.yaml").read_text(encoding="utf-8"))
        for entry in spec["labels"]:
            found[f"{directory} label"] = entry["pairs"]["app.kubernetes.io/version"]
    overlay = yaml.safe_load((root / OVERLAY / "kustomization.yaml").read_text(encoding="utf-8"))
    (image,) = [image for image in overlay["images"] if image["name"] == "remediator"]
    found[f"{OVERLAY} image tag"] = image["newTag"]
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
    assert len(stated) == 4
    assert stated == dict.fromkeys(stated, project_version()), "run `make deploy-sync`"


def test_a_bump_is_one_edit_and_make_deploy_sync(tmp_path: Path) -> None:
    """On a copy: change pyproject's version, run the sync, and every place follows; nothing
    else under deploy/ changes."""
    for name in ("pyproject.toml", "rules.yaml", "scripts/sync-deploy.sh"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, tmp_path / name)
    shutil.copytree(ROOT / "deploy", tmp_path / "deploy")
    pyproject = tmp_path / "pyproject.toml"
    text = pyproject.read_text(encoding="utf-8")
    bumped = text.replace(f'\nversion = "{project_version()}"\n', '\nversion = "9.8.7"\n', 1)
    assert bumped != text
    pyproject.write_text(bumped, encoding="utf-8")
    subprocess.run(["bash", "scripts/sync-deploy.sh"], cwd=tmp_path, check=True, capture_output=True)
    assert deploy_versions(tmp_path) == dict.fromkeys(deploy_versions(ROOT), "9.8.7")
    changed = []
    for path in sorted((ROOT / "deploy").rglob("*")):
        if path.is_file():
            copy = tmp_path / path.relative_to(ROOT)
            if copy.read_bytes() != path.read_bytes():
                changed.append(str(path.relative_to(ROOT)))
    assert changed == sorted(f"{d}/kustomization.yaml" for d in (*LABELLED, OVERLAY))
