"""``remediator stats`` against a real running service."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from remediator.cli import main as cli
from tests.cli.test_ctl import fire
from tests.support.admin import ADMIN_TOKEN, FIX_IT, Calls, make_settings, serve_in_thread, write_rules

RULES = "defaults: {cooldown: 0s, max_attempts: 3}\nrules:\n" + FIX_IT


def test_stats_prints_a_table_and_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REMEDIATOR_ADMIN_TOKEN", ADMIN_TOKEN)
    settings = make_settings(write_rules(tmp_path / "rules.yaml", RULES))
    with serve_in_thread(settings, Calls()) as served:
        fire(served, service="a")
        fire(served, service="b", outcome="failed")
        capsys.readouterr()
        assert cli.main(["stats", "--url", served.url, "--window", "1h"]) == 0
        table = capsys.readouterr().out
        assert cli.main(["stats", "--url", served.url, "--json"]) == 0
        report = json.loads(capsys.readouterr().out)
        assert cli.main(["stats", "--url", served.url, "--window", "soon"]) == 1
        error = capsys.readouterr().err
    lines = table.splitlines()
    assert lines[0].startswith("last 1h: 2 event(s)")
    assert lines[1].split() == ["RULE", "RUNS", "SUCCESS", "TTR", "P50", "TTR", "P90", "CIRCUITS", "OUTCOMES"]
    assert lines[2].split()[:3] == ["fix-it", "2", "50%"]
    assert "failed=1 succeeded=1" in lines[2]
    [rule] = report["rules"]
    assert report["window"] == "24h" and rule["outcomes"] == {"failed": 1, "succeeded": 1}
    assert rule["time_to_repair"]["count"] == 1  # the test alert started on 2024-05-01
    assert "remediator stats: HTTP 400: invalid query parameters" in error and "window" in error
