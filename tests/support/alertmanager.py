"""Debian's prometheus-alertmanager on free ports, alone or as an HA pair, and the shipped
receiver configuration rewritten to point at a test's remediator."""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from prometheus_client.parser import text_string_to_metric_families

from remediator.rules.documents import load_yaml
from tests.support.procs import ROOT, free_port, require_binary, stop_process, wait_port

SHIPPED_CONFIG = ROOT / "deploy" / "alertmanager" / "alertmanager.yml"


def alertmanager_binary() -> str:
    return require_binary("prometheus-alertmanager", "alertmanager")


def amtool_binary() -> str:
    return require_binary("amtool")


def derive_config(
    *,
    webhook_url: str,
    credentials_file: Path,
    group_wait: str = "1s",
    group_interval: str = "1s",
    repeat_interval: str = "1h",
) -> dict[str, Any]:
    """The shipped alertmanager.yml with the test's URL, token file and short timings."""
    config: dict[str, Any] = load_yaml(SHIPPED_CONFIG.read_bytes(), str(SHIPPED_CONFIG))
    receivers = {r["name"]: r for r in config["receivers"]}
    (webhook,) = receivers["remediator"]["webhook_configs"]
    webhook["url"] = webhook_url
    webhook["http_config"]["authorization"]["credentials_file"] = str(credentials_file)
    config["route"]["group_wait"] = group_wait
    for route in config["route"]["routes"]:
        if route["receiver"] == "remediator":
            route.update(
                group_wait=group_wait, group_interval=group_interval, repeat_interval=repeat_interval
            )
    return config


@dataclass
class Alertmanager:
    """One running Alertmanager; ``url`` is its web address."""

    proc: subprocess.Popen[bytes]
    port: int
    cluster_port: int | None
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def get_json(self, path: str) -> Any:
        with urllib.request.urlopen(self.url + path, timeout=10) as response:
            return json.load(response)

    def post_alerts(self, alerts: list[dict[str, Any]]) -> None:
        """POST to /api/v2/alerts, as Prometheus does (to every Alertmanager of a pair)."""
        request = urllib.request.Request(
            self.url + "/api/v2/alerts",
            data=json.dumps(alerts).encode(),
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200, response.status

    def metric(self, name: str, **labels: str) -> float:
        """Sum of the samples of ``name`` whose labels include ``labels``."""
        with urllib.request.urlopen(self.url + "/metrics", timeout=10) as response:
            text = response.read().decode()
        return sum_samples(text, name, labels)

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")


def sum_samples(text: str, name: str, labels: dict[str, str]) -> float:
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


def firing_alert(
    labels: dict[str, str], *, starts_at: datetime, annotations: dict[str, str] | None = None
) -> dict[str, Any]:
    return {
        "labels": labels,
        "annotations": annotations or {},
        "startsAt": starts_at.isoformat(),
        "generatorURL": "http://prometheus.test/graph",
    }


def resolved_alert(
    labels: dict[str, str], *, starts_at: datetime, annotations: dict[str, str] | None = None
) -> dict[str, Any]:
    """The same alert with ``endsAt`` in the past: Alertmanager marks it resolved."""
    alert = firing_alert(labels, starts_at=starts_at, annotations=annotations)
    alert["endsAt"] = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    return alert


def _start_one(
    binary: str,
    workdir: Path,
    config: Path,
    *,
    cluster: list[str] | None,
    cluster_port: int | None,
    extra: list[str],
) -> Alertmanager:
    port = free_port()
    storage = workdir / "data"
    storage.mkdir(parents=True, exist_ok=True)
    args = [
        binary,
        f"--config.file={config}",
        f"--storage.path={storage}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--log.level=debug",
    ]
    if cluster_port is None:
        args.append("--cluster.listen-address=")
    else:
        args += [
            f"--cluster.listen-address=127.0.0.1:{cluster_port}",
            f"--cluster.advertise-address=127.0.0.1:{cluster_port}",
        ]
        args += [f"--cluster.peer={peer}" for peer in cluster or []]
    log_path = workdir / "alertmanager.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen([*args, *extra], stdout=log, stderr=subprocess.STDOUT, cwd=workdir)
    am = Alertmanager(proc=proc, port=port, cluster_port=cluster_port, log_path=log_path)
    try:
        wait_port(port, timeout=30)
        _wait_ready(am)
    except BaseException:
        stop_process(proc)
        raise
    return am


def _wait_ready(am: Alertmanager, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if am.proc.poll() is not None:
            raise RuntimeError(f"alertmanager exited {am.proc.returncode}:\n{am.log()}")
        with contextlib.suppress(OSError), urllib.request.urlopen(am.url + "/-/ready", timeout=2) as response:
            if response.status == 200:
                return
        time.sleep(0.1)
    raise TimeoutError(f"alertmanager on {am.port} not ready:\n{am.log()}")


@contextlib.contextmanager
def run_alertmanagers(
    tmp_path: Path,
    configs: list[dict[str, Any]],
    *,
    cluster_flags: list[str] | None = None,
) -> Iterator[list[Alertmanager]]:
    """One Alertmanager per config; with more than one, a gossip cluster (each is given the
    others as ``--cluster.peer``), as an HA pair is run. Stopped on exit."""
    binary = alertmanager_binary()
    peers = len(configs)
    cluster_ports = [free_port() for _ in range(peers)] if peers > 1 else [None]
    started: list[Alertmanager] = []
    try:
        for index, (config, cluster_port) in enumerate(zip(configs, cluster_ports, strict=True)):
            workdir = tmp_path / f"am{index}"
            workdir.mkdir(parents=True, exist_ok=True)
            config_path = workdir / "alertmanager.yml"
            config_path.write_text(yaml.safe_dump(config), encoding="utf-8")
            others = [f"127.0.0.1:{p}" for p in cluster_ports if p not in (None, cluster_port)]
            started.append(
                _start_one(
                    binary,
                    workdir,
                    config_path,
                    cluster=others,
                    cluster_port=cluster_port,
                    extra=cluster_flags or [],
                )
            )
        if peers > 1:
            wait_cluster(started)
        yield started
    finally:
        stop_all([am.proc for am in started])


def stop_all(procs: list[subprocess.Popen[bytes]], grace: float = 3.0) -> None:
    """SIGTERM all at once, SIGKILL what is left after ``grace`` (a clustered Alertmanager
    waits up to 10s for its leave message to gossip; the tests do not need it)."""
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    deadline = time.monotonic() + grace
    for proc in procs:
        try:
            proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def wait_cluster(members: list[Alertmanager], timeout: float = 30.0) -> None:
    """Until every member sees all the others as peers (gossip joined)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sizes = [len(am.get_json("/api/v2/status")["cluster"].get("peers") or []) for am in members]
        if all(size == len(members) for size in sizes):
            return
        time.sleep(0.2)
    raise TimeoutError(
        "the Alertmanagers did not form a cluster:\n" + "\n".join(am.log()[-2000:] for am in members)
    )
