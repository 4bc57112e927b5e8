"""The CLI on the shipped files: `check` passes, `simulate` plans every example payload."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from remediator.cli.main import main
from tests.support.cli import Ran, run_main
from tests.support.payloads import EXAMPLES, alert
from tests.support.procs import ROOT

EXPECTED = {
    "clickhouse-readonly": ("clickhouse-replica-readonly", "clickhouse/torghut"),
    "flink-failed": ("flink-ta-failed", "flink/torghut/torghut-ta"),
    "torghut-ws-not-ready": ("torghut-ws-not-ready", "deployment/torghut/torghut-ws"),
    "jangar-unknown-table": ("jangar-ch-database", "deployment/torghut/jangar"),
}


def run(*args: str) -> Ran:
    return run_main(*args)


def test_check_passes_on_the_shipped_rules() -> None:
    result = run("check", "rules.yaml")
    assert result.returncode == 0, result.stderr
    assert "OK, 4 rules (4 enabled)" in result.stdout


def test_check_fails_naming_file_rule_and_line(tmp_path: Path) -> None:
    broken = tmp_path / "rules.yaml"
    broken.write_text(
        (ROOT / "rules.yaml").read_text().replace("handler: flink.restart", "handler: flink.restrat")
    )
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
    assert result.returncode == 1  # was 0: a rule that cannot render now fails simulate
    assert "ERROR: params for flink.restart: name:" in result.stdout


HOOK_RULES = """\
concurrency_limits: {unused: 1}
rules:
  - name: hook
    matchers: ['alertname="Hook"']
    handler: http.request
    target: 'hook/{{ labels.service }}'
    params:
      url: 'http://svc/api/items/{{ labels.item }}/restart'
      headers: {X-Item: '{{ labels.item }}'}
"""


def _hook_files(tmp_path: Path, *items: str) -> tuple[Path, Path]:
    rules = tmp_path / "rules.yaml"
    rules.write_text(HOOK_RULES, encoding="utf-8")
    alerts = tmp_path / "alerts.json"
    alerts.write_text(json.dumps([alert("Hook", service="s", item=i) for i in items]))
    return rules, alerts


@pytest.mark.parametrize(
    ("item", "error"),
    [
        ("..", "has a '..' segment"),
        (".", "has a '.' segment"),
        ("a\x0bb", "the control character '\\x0b'"),
        ("a\x00b", "the control character '\\x00'"),
    ],
)
def test_simulate_fails_when_a_match_cannot_render(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], item: str, error: str
) -> None:
    rules, alerts = _hook_files(tmp_path, "fine", item)
    assert main(["simulate", str(alerts), "--rules", str(rules)]) == 1
    out, err = capsys.readouterr()
    assert "POST http://svc/api/items/fine/restart" in out  # the good alert is still shown
    assert "ERROR: params for http.request:" in out and error in out
    assert "remediator simulate: 1 match(es) cannot render or validate" in err
    events = tmp_path / "events.json"
    events.write_text(json.dumps([{"alert": a} for a in json.loads(alerts.read_text())]))
    assert main(["simulate", "--events-file", str(events), "--rules", str(rules), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert [("error" in e["matches"][0]) for e in report] == [False, True]


def test_simulate_passes_when_every_match_renders(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rules, alerts = _hook_files(tmp_path, "a", "b")
    assert main(["simulate", str(alerts), "--rules", str(rules)]) == 0
    assert "ERROR" not in capsys.readouterr().out


def test_check_prints_warnings_and_strict_fails_on_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rules, _ = _hook_files(tmp_path)
    assert main(["check", str(rules)]) == 0
    out, err = capsys.readouterr()
    assert f"{rules}: OK, 1 rules (1 enabled)" in out and "1 warning(s)" in out
    assert (
        f"{rules}: warning: concurrency_limits.unused: no rule has concurrency_group: unused (line 1)"
    ) in err
    assert main(["check", "--strict", str(rules)]) == 1
    out, err = capsys.readouterr()
    assert out == "" and f"{rules}: error: concurrency_limits.unused" in err
    assert "1 warning(s), failed because of --strict" in err


def test_check_names_file_rule_and_key_line_of_a_bare_duration(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(HOOK_RULES.replace("    params:", "    cooldown: 15\n    params:"))
    assert main(["check", str(rules)]) == 1
    assert capsys.readouterr().err == (
        f"{rules}: rule 'hook' (line 3): cooldown: 15 has no unit: write 15s or 15m (line 7)\n"
    )


def test_simulate_shows_inhibit_equal(capsys: pytest.CaptureFixture[str]) -> None:
    example = EXAMPLES / "flink-failed-firing.json"
    assert main(["simulate", str(example), "--rules", str(ROOT / "rules.yaml")]) == 0
    assert (
        'waits while firing: alertname="ClickHouseReplicaReadonly" with the same namespace'
        in capsys.readouterr().out
    )
    assert main(["simulate", str(example), "--rules", str(ROOT / "rules.yaml"), "--json"]) == 0
    (entry,) = json.loads(capsys.readouterr().out)
    assert entry["matches"][0]["inhibit_equal"] == ["namespace"]


def test_simulate_shows_the_probe(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rules, alerts = _hook_files(tmp_path, "a&b")
    rules.write_text(
        HOOK_RULES
        + "    verify_timeout: 2m\n    probe:\n"
        + "      url: 'http://svc/api/items?item={{ labels.item }}'\n      expect_body: ok\n"
    )
    assert main(["simulate", str(alerts), "--rules", str(rules)]) == 0
    out = capsys.readouterr().out
    assert (
        "    plan: probe GET http://svc/api/items?item=a%26b; expect 2xx and a body matching /ok/ "
        "first: if it passes, nothing to do (noop)\n"
        "    plan: after acting, probe every 10s until it passes, within 2m"
    ) in out
    assert main(["simulate", str(alerts), "--rules", str(rules), "--json"]) == 0
    (entry,) = json.loads(capsys.readouterr().out)
    assert entry["matches"][0]["probe"]["url"] == "http://svc/api/items?item=a%26b"
    assert entry["matches"][0]["probe"]["expect_body"] == "ok"


def test_simulate_the_jangar_example_shows_the_patch_and_the_probe(
    capsys: pytest.CaptureFixture[str],
) -> None:
    example = EXAMPLES / "jangar-unknown-table-firing.json"
    assert main(["simulate", str(example), "--rules", str(ROOT / "rules.yaml")]) == 0
    out = capsys.readouterr().out
    assert "rule jangar-ch-database -> kubernetes.set_env" in out
    assert "    target: deployment/torghut/jangar" in out
    assert "PATCH /apis/apps/v1/namespaces/torghut/deployments/jangar" in out
    url = "http://jangar.torghut.svc.cluster.local/api/torghut/ta/latest?symbol=NVDA"
    assert f"    plan: probe GET {url}; expect 2xx and a body without /UNKNOWN_TABLE/ " in out
    assert "    plan: after acting, probe every 10s until it passes, within 3m" in out
    assert main(["simulate", str(example), "--rules", str(ROOT / "rules.yaml"), "--json"]) == 0
    (entry,) = json.loads(capsys.readouterr().out)
    (match,) = entry["matches"]
    assert match["params"]["env"] == {"CH_DATABASE": "torghut"} and match["probe"]["url"] == url
