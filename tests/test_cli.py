"""The CLI on the shipped files: `check` passes, `simulate` plans every example payload."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.support.payloads import EXAMPLES
from tests.support.procs import PYTHON, ROOT, python_env

EXPECTED = {
    "clickhouse-readonly": ("clickhouse-replica-readonly", "clickhouse/torghut"),
    "flink-failed": ("flink-ta-failed", "flink/torghut/torghut-ta"),
    "torghut-ws-not-ready": ("torghut-ws-not-ready", "deployment/torghut/torghut-ws"),
}


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PYTHON, "-m", "remediator", *args], cwd=ROOT, env=python_env(),
                          capture_output=True, text=True, timeout=60)


def test_check_passes_on_the_shipped_rules() -> None:
    result = run("check", "rules.yaml")
    assert result.returncode == 0, result.stderr
    assert "OK, 3 rules (3 enabled)" in result.stdout


def test_check_fails_naming_file_rule_and_line(tmp_path: Path) -> None:
    broken = tmp_path / "rules.yaml"
    broken.write_text((ROOT / "rules.yaml").read_text().replace(
        "handler: flink.restart", "handler: flink.restrat"))
    result = run("check", str(broken))
    assert result.returncode == 1
    assert f"{broken}: rule 'flink-ta-failed' (line" in result.stderr
    assert "unknown handler 'flink.restrat'" in result.stderr


@pytest.mark.parametrize("example", sorted(p.stem for p in EXAMPLES.glob("*.json")))
def test_simulate_every_example(example: str) -> None:
    result = run("simulate", str(EXAMPLES / f"{example}.json"), "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    rule, target = next(v for k, v in EXPECTED.items() if example.startswith(k))
    assert report and all(len(entry["matches"]) == 1 for entry in report)
    for entry in report:
        match = entry["matches"][0]
        assert (match["rule"], match["target"]) == (rule, target)
        assert "error" not in match and match["plan"]
        if entry["status"] == "resolved":
            assert match["action"].startswith("none: resolved alerts are only recorded")


def test_simulate_shows_a_hostile_label_rejected(tmp_path: Path) -> None:
    data = json.loads((EXAMPLES / "flink-failed-firing.json").read_text())
    data["alerts"][0]["labels"]["name"] = "Torghut_TA"  # a valid target, not a Kubernetes name
    payload = tmp_path / "hostile.json"
    payload.write_text(json.dumps(data))
    result = run("simulate", str(payload))
    assert result.returncode == 0
    assert "ERROR: params for flink.restart: name:" in result.stdout
