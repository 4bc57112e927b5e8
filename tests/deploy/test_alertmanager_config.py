"""deploy/alertmanager/alertmanager.yml: valid for amtool, routed as documented, and aimed at
the Service the kustomize overlay creates."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from remediator.rules.documents import load_yaml
from tests.support.alertmanager import SHIPPED_CONFIG, amtool_binary, derive_config
from tests.support.kustomize import render
from tests.support.procs import ROOT


def amtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([amtool_binary(), *args], capture_output=True, text=True, timeout=60, check=False)


def shipped() -> dict[str, Any]:
    return dict(load_yaml(SHIPPED_CONFIG.read_bytes(), str(SHIPPED_CONFIG)))


def webhook() -> dict[str, Any]:
    (receiver,) = [r for r in shipped()["receivers"] if r["name"] == "remediator"]
    (config,) = receiver["webhook_configs"]
    return dict(config)


def test_amtool_accepts_the_shipped_config() -> None:
    result = amtool("check-config", str(SHIPPED_CONFIG))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_amtool_rejects_a_broken_config(tmp_path: Path) -> None:
    """The check is real: a route to an undefined receiver fails it."""
    config = shipped()
    config["route"]["routes"][0]["receiver"] = "nobody"
    broken = tmp_path / "broken.yml"
    broken.write_text(yaml.safe_dump(config), encoding="utf-8")
    result = amtool("check-config", str(broken))
    assert result.returncode != 0
    assert "nobody" in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("labels", "receivers"),
    [
        (
            ["alertname=TorghutWsNotReady", "remediate=true", "severity=critical", "namespace=torghut"],
            "remediator,default",
        ),
        (["alertname=RemediatorCircuitOpen", "severity=warning", "namespace=torghut"], "default"),
    ],
)
def test_routes_send_remediated_alerts_to_the_remediator_and_people(
    labels: list[str], receivers: str
) -> None:
    result = amtool(
        "config",
        "routes",
        "test",
        f"--config.file={SHIPPED_CONFIG}",
        f"--verify.receivers={receivers}",
        *labels,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == receivers


def test_webhook_sends_the_token_from_a_file_and_resolutions() -> None:
    config = webhook()
    assert config["send_resolved"] is True
    assert config["max_alerts"] > 0
    auth = config["http_config"]["authorization"]
    assert auth.get("type", "Bearer") == "Bearer"
    assert auth["credentials_file"].startswith("/etc/alertmanager/secrets/")
    assert "credentials" not in auth, "the token never sits in the config itself"
    (route,) = [r for r in shipped()["route"]["routes"] if r["receiver"] == "remediator"]
    assert route["continue"] is True
    assert {"alertname", "namespace"} <= set(route["group_by"])
    for key in ("group_wait", "group_interval", "repeat_interval"):
        assert route[key]


def test_webhook_url_is_the_overlays_service() -> None:
    resources = render(ROOT / "deploy" / "overlays" / "torghut")
    (service,) = [r for r in resources if r["kind"] == "Service"]
    url = urlsplit(webhook()["url"])
    name, namespace = service["metadata"]["name"], service["metadata"]["namespace"]
    assert url.hostname == f"{name}.{namespace}.svc.cluster.local"
    assert url.port in [p["port"] for p in service["spec"]["ports"]]
    assert url.path == "/webhooks/alertmanager"


def test_the_e2e_config_derived_from_the_shipped_one_is_valid(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("t0ken\n", encoding="utf-8")
    config = derive_config(webhook_url="http://127.0.0.1:9/webhooks/alertmanager", credentials_file=token)
    path = tmp_path / "alertmanager.yml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    result = amtool("check-config", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
