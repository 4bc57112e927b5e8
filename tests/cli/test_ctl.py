"""The admin CLI against a real running service (served from a thread, or a subprocess)."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from remediator.cli import commands as ctl
from remediator.cli import main as cli
from remediator.notify.slack import messages as slack_messages
from tests.support import admin
from tests.support.cli import http, run
from tests.support.payloads import alert, payload, with_service
from tests.support.procs import PYTHON, free_port, python_env
from tests.support.recording import RecordingNotifier

LOCAL_RULES = """\
rules:
  - name: local-fix
    matchers: ['alertname="TestBroken"', 'service=~"cli-.*"']
    handler: http.request
    target: 'local/{{ labels.service }}'
    params: {url: 'http://runbooks.local/fix/{{ labels.service }}'}
"""


def fire(served: admin.ServedApp, **labels: str) -> str:
    """Fire one alert and wait for its outcome."""
    event_id = post_alert(served, **labels)
    wait_recorded(served, event_id)
    return event_id


def post_alert(served: admin.ServedApp, **labels: str) -> str:
    """Fire one alert; do not wait for its outcome (a held job has none yet)."""
    status, body = http(
        "POST",
        f"{served.url}/webhooks/alertmanager",
        payload(alert("TestBroken", **with_service(labels))),
        admin.webhook_headers(),
    )
    assert status == 202, body
    [event_id] = body["event_ids"]
    return str(event_id)


def wait_state(
    served: admin.ServedApp,
    capsys: pytest.CaptureFixture[str],
    event_id: str,
    state: str,
    timeout: float = 20.0,
) -> dict[str, Any]:
    """The job as ``remediator jobs --state STATE --json`` lists it, once it is there."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        code, out, err = run(capsys, "jobs", "--url", served.url, "--state", state, "--json")
        assert code == 0, err
        found = [job for job in json.loads(out)["jobs"] if job["event_id"] == event_id]
        if found:
            return dict(found[0])
        time.sleep(0.05)
    raise TimeoutError(f"{event_id} never {state}")


def wait_recorded(served: admin.ServedApp, event_id: str, timeout: float = 20.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, body = http("GET", f"{served.url}/api/v1/events/{event_id}", headers=admin.admin_headers())
        if status == 200:
            return dict(body)
        time.sleep(0.05)
    raise TimeoutError(event_id)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[admin.ServedApp]:
    rules = admin.write_rules(tmp_path_factory.mktemp("ctl") / "rules.yaml")
    with admin.serve_in_thread(admin.make_settings(rules), admin.Calls()) as app:
        yield app


def test_what_happened_to_an_alert_and_run_it_again(
    served: admin.ServedApp, capsys: pytest.CaptureFixture[str]
) -> None:
    first = fire(served, service="cli-a")
    second = fire(served, service="cli-b", outcome="failed")
    code, out, _ = run(capsys, "events", "--url", served.url, "--limit", "5")
    assert code == 0
    header, *lines = out.splitlines()
    rows = [line for line in lines if not line.startswith(" ")]  # issue 25: messages go under their row
    assert header.split() == ["FINISHED", "EVENT", "RULE", "TARGET", "OUTCOME", "MESSAGE"]
    assert rows[0].split()[2:6] == [second, "fix-it", "svc/cli-b", "failed"]
    assert rows[1].split()[2:6] == [first, "fix-it", "svc/cli-a", "succeeded"]
    assert "    could not fix svc/cli-b" in lines and "…" not in out  # whole, never cut

    code, out, _ = run(capsys, "events", "--url", served.url, "--outcome", "failed", "--json")
    failed = json.loads(out)
    assert code == 0 and second in [e["event_id"] for e in failed]
    assert {e["outcome"] for e in failed} == {"failed"}

    code, out, _ = run(capsys, "event", first, "--url", served.url)
    assert code == 0
    assert f"event     {first}" in out and "outcome   succeeded: fixed svc/cli-a" in out
    assert "timeline:" in out and "handler.started" in out and "service=cli-a" in out

    code, out, _ = run(capsys, "replay", first, "--url", served.url, "--note", "again", "--wait", "20")
    assert code == 4 and f"replayed {first} as 1 new event(s)" in out  # 4: skipped
    assert "skipped:cooldown: in cooldown" in out
    code, out, _ = run(
        capsys, "replay", first, "--url", served.url, "--ignore-cooldown", "--wait", "20", "--json"
    )
    replayed = json.loads(out)
    assert code == 0 and replayed["replay_of"] == first
    [event] = replayed["events"]
    assert (event["outcome"], event["manual"], event["note"]) == ("succeeded", True, f"replay of {first}")
    code, out, _ = run(
        capsys, "replay", first, "--url", served.url, "--dry-run", "--ignore-cooldown", "--ignore-circuit"
    )
    assert code == 0 and "see: remediator event " in out


def test_pause_resume_and_rules(served: admin.ServedApp, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "pause", "--url", served.url, "--reason", "db upgrade", "--for", "30m")
    # issue 25: through /api/v1/pauses (a pause of every job), durations as a person reads them
    assert code == 0 and "until" in out and out.rstrip().endswith("left) for every job: db upgrade")
    assert "(30m left)" in out or "(29m left)" in out
    code, out, _ = run(capsys, "pause", "--url", served.url, "--json")
    [state] = json.loads(out)["pauses"]
    assert state["matchers"] == [] and state["by"] and state["reason"] == "db upgrade"
    # Issue 16 changed this test: the job is held while paused (not skipped), and runs
    # once the pause is lifted.
    event_id = post_alert(served, service="cli-paused")
    held = wait_state(served, capsys, event_id, "held")
    assert "remediation paused by pause p-" in held["why"] and "db upgrade" in held["why"]
    assert run(capsys, "resume", "--url", served.url)[1].startswith("resumed")
    assert wait_recorded(served, event_id)["outcome"] == "succeeded"
    assert run(capsys, "resume", "--url", served.url)[1].startswith("was not paused")
    assert run(capsys, "pause", "--url", served.url)[1].startswith("not paused")

    code, out, _ = run(capsys, "rules", "--url", served.url)
    assert code == 0
    assert f"1 loaded from {served.rules}" in out and "reload    ok at" in out
    assert out.splitlines()[-1].split()[:5] == ["fix-it", "test.fix", "yes", "no", "15m"]
    code, out, _ = run(capsys, "rules", "--url", served.url, "--json")
    assert json.loads(out)["rules"][0]["name"] == "fix-it"


def test_clear_errors_and_exit_codes(
    served: admin.ServedApp,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    code, _, err = run(capsys, "event", "0123abcd", "--url", served.url)
    assert (code, err.strip()) == (1, "remediator event: HTTP 404: no such event: 0123abcd")
    code, _, err = run(capsys, "replay", "nope", "--url", served.url)  # was a subprocess run
    assert code == 1 and "no such event" in err
    code, _, err = run(capsys, "pause", "--url", served.url, "--reason", "x")
    assert code == 2 and "needs both --reason and --for" in err
    code, _, err = run(capsys, "pause", "--url", served.url, "--reason", "x", "--for", "soon")
    assert code == 1 and "HTTP 400: invalid request body: for:" in err
    code, _, err = run(capsys, "events", "--url", served.url, "--outcome", "boom")
    assert code == 1 and "unknown outcome 'boom'" in err

    monkeypatch.setenv("REMEDIATOR_ADMIN_TOKEN", "wrong")
    code, _, err = run(capsys, "events", "--url", served.url)
    assert code == 1 and "the service rejected REMEDIATOR_ADMIN_TOKEN" in err
    monkeypatch.delenv("REMEDIATOR_ADMIN_TOKEN")
    code, _, err = run(capsys, "rules", "--url", served.url)
    assert code == 1 and "set REMEDIATOR_ADMIN_TOKEN" in err
    token_file = tmp_path / "token"
    token_file.write_text(admin.ADMIN_TOKEN + "\n")
    monkeypatch.setenv("REMEDIATOR_ADMIN_TOKEN_FILE", str(token_file))
    monkeypatch.setenv("REMEDIATOR_URL", served.url)
    assert run(capsys, "rules")[0] == 0

    closed = f"http://127.0.0.1:{free_port()}"
    code, _, err = run(capsys, "events", "--url", closed)
    assert code == 3 and f"cannot reach {closed}" in err


def test_admin_disabled_is_explained(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    settings = admin.make_settings(admin.write_rules(tmp_path / "rules.yaml"), admin_token=None)
    with admin.serve_in_thread(settings, admin.Calls()) as app:
        code, _, err = run(capsys, "events", "--url", app.url)
    assert code == 1 and "the admin API is disabled on" in err


def test_simulate_stored_events_against_local_rules(
    served: admin.ServedApp, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fire(served, service="cli-sim")
    local = tmp_path / "local.yaml"
    local.write_text(LOCAL_RULES, encoding="utf-8")
    code, out, _ = run(capsys, "simulate", "--from-events", "50", "--url", served.url, "--rules", str(local))
    assert code == 0
    assert "rule local-fix -> http.request" in out
    assert "target: local/cli-sim" in out and "POST http://runbooks.local/fix/cli-sim" in out

    code, out, _ = run(capsys, "events", "--url", served.url, "--json", "--limit", "50")
    exported = tmp_path / "events.json"
    exported.write_text(out, encoding="utf-8")
    code, out, _ = run(capsys, "simulate", "--events-file", str(exported), "--rules", str(local), "--json")
    report = json.loads(out)
    assert code == 0
    by_service = {e["fingerprint"]: e for e in report}
    assert len(by_service) == len(report)  # one entry per distinct alert
    targets = {m["target"] for e in report for m in e["matches"]}
    assert "local/cli-sim" in targets

    with pytest.raises(SystemExit) as exited:
        cli.main(["simulate", "--rules", str(local)])
    assert exited.value.code == 2 and "exactly one of" in capsys.readouterr().err
    exported.write_text('{"not": "a list"}', encoding="utf-8")
    code, _, err = run(capsys, "simulate", "--events-file", str(exported), "--rules", str(local))
    assert code == 1 and "expected a JSON list of events" in err


def test_the_installed_command_line(served: admin.ServedApp) -> None:
    """The one run of ``python -m remediator`` as a process (every other test calls
    ``main``; its exit codes 1 and 3 are in test_clear_errors_and_exit_codes)."""
    fire(served, service="cli-proc")
    done = subprocess.run(
        [PYTHON, "-m", "remediator", "events", "--url", served.url, "--json"],
        env=python_env(REMEDIATOR_ADMIN_TOKEN=admin.ADMIN_TOKEN),
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert any(e["target"] == "svc/cli-proc" for e in json.loads(done.stdout))


ESCALATING_RULES = (
    "defaults: {cooldown: 15m, max_attempts: 2, attempt_window: 1h}\nrules:\n"
    + admin.FIX_IT
    + "    escalate: '@here'\n"
)


def wait_reloaded(served: admin.ServedApp, old_hash: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, info = http("GET", f"{served.url}/api/v1/rules", headers=admin.admin_headers())
        if status == 200 and info["hash"] != old_hash:
            return
        time.sleep(0.05)
    raise TimeoutError("the rules were not reloaded")


def test_the_escalation_gives_a_replay_command_that_runs_the_handler(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rules = admin.write_rules(tmp_path / "rules.yaml", ESCALATING_RULES)
    notifier = RecordingNotifier()
    with admin.serve_in_thread(admin.make_settings(rules), admin.Calls(), notifier) as app:
        fire(app, service="cli-esc", outcome="failed")
        last = fire(app, service="cli-esc", outcome="failed")
        [escalation] = notifier.of_kind("escalated")
        text = json.dumps(slack_messages.reply(escalation).blocks)
        [command] = re.findall(r"`(remediator replay [^`]+)`", text)
        argv = [*shlex.split(command)[1:], "--url", app.url]
        assert argv[1] == last and "--ignore-circuit" in argv

        # As the old message said it: the open circuit skips it, and the exit code says so.
        code, out, _ = run(capsys, "replay", last, "--url", app.url, "--wait", "20")
        assert code == 4 and "skipped:circuit_open" in out
        assert "(replay with --ignore-circuit to override)" in out  # the skip says how
        # The cause is still there: the command runs the handler, which fails: exit 1.
        runs = len(app.calls.acted())
        code, out, _ = run(capsys, *argv)
        assert code == 1 and " failed: could not fix svc/cli-esc" in out
        assert len(app.calls.acted()) == runs + 1
        # The cause is gone (here: the rule no longer fails): the same command repairs it.
        old_hash = http("GET", f"{app.url}/api/v1/rules", headers=admin.admin_headers())[1]["hash"]
        admin.write_rules(
            rules, ESCALATING_RULES.replace("'{{ labels.outcome | default(\"succeeded\") }}'", "succeeded")
        )
        wait_reloaded(app, old_hash)
        code, out, _ = run(capsys, *argv)
        assert code == 0 and " succeeded: fixed svc/cli-esc" in out
        assert len(app.calls.acted()) == runs + 2


@pytest.mark.parametrize(
    ("outcomes", "finished_all", "code"),
    [
        (["succeeded"], True, 0),
        (["noop", "dry_run"], True, 0),
        (["skipped:cooldown"], True, 4),
        (["skipped:paused", "failed"], True, 1),
        (["succeeded"], False, 5),
        (["failed"], False, 1),
        (["succeeded", "escalated"], True, 1),  # a runbook that ended in its page step
    ],
)
def test_replay_wait_exit_codes(outcomes: list[str], finished_all: bool, code: int) -> None:
    finished = [{"event_id": f"e{i}", "outcome": o} for i, o in enumerate(outcomes)]
    ids = [e["event_id"] for e in finished] + ([] if finished_all else ["still-running"])
    assert ctl.replay_exit_code(ids, finished) == code


RULES_WITH_DRY_RULE = (
    admin.RULES
    + """\
  - name: fix-dry
    matchers: ['alertname="DryBroken"']
    handler: test.fix
    target: 'dry/{{ labels.service }}'
    dry_run: true
"""
)


def test_rules_show_the_dry_run_in_effect(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rules = admin.write_rules(tmp_path / "rules.yaml", RULES_WITH_DRY_RULE)
    with admin.serve_in_thread(admin.make_settings(rules, dry_run=True), admin.Calls()) as app:
        code, out, _ = run(capsys, "rules", "--url", app.url)
        assert code == 0 and "dry-run   ON for every rule" in out
        rows = {line.split()[0]: line.split()[:5] for line in out.splitlines()[-2:]}
        assert rows["fix-it"][3:5] == ["yes", "(service)"]
        assert rows["fix-dry"][3:5] == ["yes", "(rule+service)"]
        info = json.loads(run(capsys, "rules", "--url", app.url, "--json")[1])
    assert info["dry_run"] is True
    assert [(r["dry_run"], r["dry_run_source"]) for r in info["rules"]] == [
        (True, ["service"]),
        (True, ["rule", "service"]),
    ]


def test_scoped_pauses_and_the_jobs_view(served: admin.ServedApp, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys,
        "pause",
        "--url",
        served.url,
        "--match",
        'namespace="torghut"',
        "--for",
        "1h",
        "--reason",
        "ta upgrade",
    )
    assert code == 0 and out.startswith("pause p-") and 'for namespace="torghut": ta upgrade' in out
    pause_id = out.split()[1]
    event_id = post_alert(served, service="cli-scoped", namespace="torghut")
    held = wait_state(served, capsys, event_id, "held")
    assert f"paused by pause {pause_id}" in held["why"]
    code, out, _ = run(capsys, "jobs", "--url", served.url)
    assert code == 0 and out.splitlines()[0].split() == [
        "EVENT",
        "STATE",
        "SINCE",
        "RULE",
        "TARGET",
        "ALERT",
        "WHY",
    ]
    assert any(line.startswith(event_id) and " held " in line for line in out.splitlines())
    code, out, _ = run(capsys, "pauses", "--url", served.url)
    assert code == 0 and pause_id in out
    code, _, err = run(
        capsys, "pause", "--url", served.url, "--match", 'a="b"', "--for", "30d", "--reason", "x"
    )
    assert code == 1 and "HTTP 400: pause too long" in err and "REMEDIATOR_MAX_PAUSE (7d)" in err
    code, _, err = run(capsys, "pause", "--url", served.url, "--match", 'a="b"', "--reason", "x")
    assert code == 2 and "one of --for or --until" in err
    code, out, _ = run(capsys, "resume", pause_id, "--url", served.url)
    assert code == 0 and out.startswith(f"lifted pause {pause_id}")
    assert wait_recorded(served, event_id)["outcome"] == "succeeded"
    code, _, err = run(capsys, "resume", pause_id, "--url", served.url)
    assert code == 1 and "HTTP 404: no such pause" in err
