"""The release workflow cannot run here (no registry, GitHub or Sigstore is reachable), so
its shape is checked: the stages in order, nothing pushed before the scan, the signature on
the digest, and the version taken from pyproject.toml."""

from __future__ import annotations

from typing import Any

import yaml

from tests.support.procs import ROOT

WORKFLOW = ROOT / ".github" / "workflows" / "release.yml"


def _workflow() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    return loaded


def _script(step: dict[str, Any]) -> str:
    return str(step.get("uses", "")) + "\n" + str(step.get("run", "")) + "\n" + str(step.get("with", ""))


def test_it_says_it_cannot_run_here() -> None:
    assert "CANNOT RUN" in WORKFLOW.read_text(encoding="utf-8").split("\nname:")[0]


def test_lock_check_then_tests_then_the_image() -> None:
    jobs = _workflow()["jobs"]
    assert jobs["test"]["needs"] == "lock" and jobs["image"]["needs"] == "test"
    lock = "\n".join(_script(step) for step in jobs["lock"]["steps"])
    assert "uv lock --check" in lock and "--require-hashes -r scripts/uv-requirements.txt" in lock
    assert "scripts/sync_deploy.py --check" in lock, "deploy/ states the tag's version"
    assert any(".ci/run" in _script(step) for step in jobs["test"]["steps"])


def test_the_image_is_scanned_before_it_is_pushed_and_signed_by_digest() -> None:
    steps = [_script(step) for step in _workflow()["jobs"]["image"]["steps"]]

    def first(marker: str) -> int:
        found = [i for i, text in enumerate(steps) if marker in text]
        assert found, f"no step does {marker!r}"
        return found[0]

    order = [
        first("docker/build-push-action"),
        first("anchore/sbom-action"),
        first("anchore/scan-action"),
        first("docker push"),
        first("cosign sign"),
    ]
    assert order == sorted(order)
    assert "fail-build': True" in steps[first("anchore/scan-action")]
    assert "RepoDigests" in steps[first("docker push")]
    assert 'cosign sign --yes "${{ steps.push.outputs.ref }}"' in steps[first("cosign sign")]
    build = steps[first("docker/build-push-action")]
    assert "VERSION=${{ steps.meta.outputs.version }}" in build
    assert '["project"]["version"]' in steps[first("tomllib")], "the version is the package's"
