"""The image, built by `make image` with podman and run as Kubernetes runs it: read-only root
filesystem, uid 10001, no capabilities. It takes the example alert, is ready, passes its own
HEALTHCHECK, says its version, and holds the lock's runtime set and nothing else.

Skips where podman or runc is missing; under CI=true that is a failure (require_binary).
A cold build (no base image, no layer cache) takes about two minutes, a warm one seconds."""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.support.lockfile import development_packages, installed, project, project_version, runtime_set
from tests.support.procs import ROOT, free_port, require_binary

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

CONF = ROOT / "deploy" / "podman" / "containers.conf"
MAX_IMAGE_MB = 250
TOKEN = "image-test-webhook-token"
ADMIN = "image-test-admin-token"


def podman_env() -> dict[str, str]:
    return {**os.environ, "CONTAINERS_CONF": str(CONF)}


def podman(*args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["podman", "--runtime", "runc", *args],
        env=podman_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=check,
    )


@pytest.fixture(scope="module")
def image() -> Iterator[str]:
    require_binary("podman")
    require_binary("runc")
    name = f"localhost/remediator-test:{uuid.uuid4().hex[:12]}"
    built = subprocess.run(
        ["make", "image", f"IMAGE={name}"],
        cwd=ROOT,
        env=podman_env(),
        capture_output=True,
        text=True,
        timeout=840,
        check=False,
    )
    assert built.returncode == 0, built.stdout[-4000:] + built.stderr[-4000:]
    try:
        yield name
    finally:
        podman("rmi", name, check=False)


@dataclass
class Container:
    name: str
    port: int

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


@pytest.fixture(scope="module")
def container(image: str) -> Iterator[Container]:
    """`remediator serve` as deploy/base/deployment.yaml runs it: read-only root filesystem
    (podman mounts a tmpfs on /tmp, as the Deployment mounts an emptyDir), every capability
    dropped, no privilege escalation, the image's own user; the shipped rules mounted
    read-only where REMEDIATOR_RULES points. Host network on loopback: the machines have no
    container network."""
    port = free_port()
    name = f"remediator-test-{uuid.uuid4().hex[:12]}"
    podman(
        "run",
        "--detach",
        "--name",
        name,
        "--read-only",
        "--cap-drop=ALL",
        "--security-opt=no-new-privileges",
        "--network=host",
        # the HEALTHCHECK runs when asked (podman healthcheck run), with no systemd timer
        "--health-interval=disable",
        "--volume",
        f"{ROOT / 'rules.yaml'}:/etc/remediator/rules.yaml:ro",
        "--env",
        "REMEDIATOR_HOST=127.0.0.1",
        "--env",
        f"REMEDIATOR_PORT={port}",
        "--env",
        f"REMEDIATOR_WEBHOOK_TOKEN={TOKEN}",
        "--env",
        f"REMEDIATOR_ADMIN_TOKEN={ADMIN}",
        "--env",
        "REMEDIATOR_DRY_RUN=true",
        image,
    )
    box = Container(name, port)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if _get(box.url("/healthz"))[0] == 200:
                    break
            except OSError:
                pass
            state = podman("inspect", "--format", "{{.State.Status}}", name).stdout.strip()
            assert state == "running", podman("logs", name, check=False).stderr[-4000:]
            assert time.monotonic() < deadline, "the container did not answer /healthz within 60 s"
            time.sleep(0.2)
        yield box
    finally:
        podman("rm", "--force", "--time", "10", name, check=False)


def _inspect(image: str) -> dict[str, Any]:
    result: list[dict[str, Any]] = json.loads(podman("image", "inspect", image).stdout)
    return result[0]


def test_it_runs_as_uid_10001_on_a_read_only_root(container: Container) -> None:
    ids = podman("exec", container.name, "id", "-u").stdout.strip()
    assert ids == "10001"
    status = podman("exec", container.name, "cat", "/proc/1/status").stdout
    assert "Uid:\t10001\t10001\t10001\t10001" in status, "the service itself runs as 10001"
    written = podman("exec", container.name, "touch", "/opt/venv/x", check=False)
    assert written.returncode != 0 and "Read-only file system" in written.stderr
    inspected = json.loads(podman("inspect", container.name).stdout)[0]
    assert inspected["HostConfig"]["ReadonlyRootfs"] is True


def test_the_example_alert_is_accepted(container: Container) -> None:
    body = (ROOT / "examples" / "alertmanager" / "clickhouse-readonly-firing.json").read_bytes()
    request = urllib.request.Request(
        container.url("/webhooks/alertmanager"),
        data=body,
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 202
        answer = json.loads(response.read())
    assert answer["accepted"] == 4 and len(answer["event_ids"]) == 4
    deadline = time.monotonic() + 30
    while True:
        status, events = _get(container.url("/api/v1/events"), {"Authorization": f"Bearer {ADMIN}"})
        assert status == 200
        finished = {event["event_id"]: event["outcome"] for event in json.loads(events)["events"]}
        if set(answer["event_ids"]) <= set(finished):
            break
        assert time.monotonic() < deadline, f"only {finished} finished within 30 s"
        time.sleep(0.2)
    assert "dry_run" in finished.values(), finished


def test_it_is_ready_and_its_healthcheck_passes(container: Container, image: str) -> None:
    assert _get(container.url("/readyz"))[0] == 200
    check = podman("healthcheck", "run", container.name, check=False)
    assert check.returncode == 0, check.stdout + check.stderr
    # the HEALTHCHECK is in the image (docker format; the OCI format would drop it)
    assert _inspect(image)["Healthcheck"]["Test"][:2] == ["CMD", "python"]


def test_version_prints_the_packages_version(image: str) -> None:
    printed = podman("run", "--rm", "--read-only", "--network=none", image, "--version").stdout.strip()
    assert printed.startswith(f"remediator {project_version()} (Python 3.11.")


def test_the_labels_carry_the_packages_version(image: str) -> None:
    labels = _inspect(image)["Config"]["Labels"]
    assert labels["org.opencontainers.image.version"] == project_version()
    assert labels["org.opencontainers.image.licenses"] == project()["license"]["text"]  # type: ignore[index]
    assert labels["org.opencontainers.image.title"] == project()["name"]
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True)
    assert labels["org.opencontainers.image.revision"].removesuffix("-dirty") == head.stdout.strip()


def test_a_build_labelled_with_another_version_is_refused(image: str) -> None:
    """The build stage checks VERSION (the labels' version) against the installed package's,
    so a label cannot say another version. Same arguments as `make image` but VERSION, so
    every layer before the check comes from the cache."""
    base = _inspect(image)["Config"]["Labels"]["org.opencontainers.image.base.name"]
    trust = []
    ca = os.environ.get("SSL_CERT_FILE")
    if ca and os.path.isfile(ca):  # as scripts/image.sh passes this machine's CA bundle
        trust = ["--volume", f"{os.path.realpath(ca)}:/run/build-ca.crt:ro"]
        trust += [
            "--build-arg",
            "SSL_CERT_FILE=/run/build-ca.crt",
            "--build-arg",
            "PIP_CERT=/run/build-ca.crt",
        ]
    built = podman(
        *("build", "--network=host", "--format", "docker", "--layers", "--target", "build", *trust),
        *("--build-arg", f"BASE={base}", "--build-arg", "VERSION=0.0.0-not-this", str(ROOT)),
        timeout=600,
        check=False,
    )
    assert built.returncode != 0
    assert f"build with --build-arg VERSION={project_version()} (got '0.0.0-not-this')" in built.stderr


def test_it_holds_exactly_the_locked_runtime_set(image: str) -> None:
    run = ["podman", "--runtime", "runc", "run", "--rm", "--network=none", "--entrypoint=python", image]
    found = installed(run, podman_env())
    packages = dict(found.distributions)
    assert packages.pop("remediator") == project_version()
    assert packages == runtime_set(found)
    assert set(packages) & development_packages() == set()
    assert not {"pytest", "mypy", "ruff", "chdb-core", "pip"} & set(packages)


def test_it_runs_as_a_non_root_user_by_default(image: str) -> None:
    assert _inspect(image)["Config"]["User"] == "10001:10001"


def test_it_is_at_most_250_mb(image: str) -> None:
    size = int(podman("image", "inspect", "--format", "{{.Size}}", image).stdout)
    assert size <= MAX_IMAGE_MB * 1_000_000, f"{size / 1e6:.0f} MB"
