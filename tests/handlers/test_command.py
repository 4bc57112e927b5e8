"""``command.run`` with real scripts: exit codes, process groups, hostile labels, secrets."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import structlog

import handlers  # noqa: F401 - registers the built-in handlers
from handlers.command import REDACTED, alert_env, sanitised
from remediator import Alert, Context, Outcome, Resources, Result
from remediator.cli.main import main
from remediator.errors import RulesError, TemplateError
from remediator.handling.execution import execute
from remediator.handling.registry import default_registry
from remediator.rules.ruleset import parse_rules, render
from remediator.settings import Settings
from tests.conftest import MakeHarness
from tests.support.payloads import alert, payload

ROOT = Path(__file__).resolve().parents[2]
HOSTILE = ["; rm -rf /", "$(touch pwned)", "`touch pwned`", "a\nb\n", "' \" * ? ~ $HOME | & > x", "-rf", ""]


def script(directory: Path, body: str, name: str = "run.sh") -> str:
    path = directory / name
    path.write_text("#!/bin/sh\n" + body, encoding="utf-8")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def make_alert(labels: dict[str, str] | None = None, annotations: dict[str, str] | None = None) -> Alert:
    return Alert.model_validate(
        alert("DiskFull", annotations=annotations or {"summary": "disk full"}, **(labels or {"host": "db-1"}))
    )


def context(*, dry_run: bool = False, the_alert: Alert | None = None, deadline: float = 60.0) -> Context:
    return Context(
        event_id="e1",
        rule="script",
        target="host/db-1",
        alert=the_alert or make_alert(),
        dry_run=dry_run,
        deadline=time.monotonic() + deadline,
        verify_timeout=30.0,
        log=structlog.get_logger("test"),
        resources=Resources(Settings()),
    )


async def run(
    params: dict[str, Any], *, lease_lost: asyncio.Event | None = None, limit: float = 60.0, **options: Any
) -> Result:
    spec = default_registry.get("command.run")
    assert spec is not None
    ctx = context(deadline=limit, **options)
    return await execute(spec, spec.params.model_validate(params), ctx, timeout=limit, lease_lost=lease_lost)


def gone(pid: int) -> bool:
    """No such process, or only its zombie waiting for an init that is not ours to reap."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    stat_line = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8")
    return stat_line.rsplit(")", 1)[1].split()[0] == "Z"


async def all_gone(pids: list[int], within: float = 5.0) -> bool:
    deadline = time.monotonic() + within
    while not all(gone(pid) for pid in pids):
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True


# ---- exit codes -------------------------------------------------------------------------------


async def test_success_passes_arguments_and_the_alert_as_environment(tmp_path: Path) -> None:
    program = script(
        tmp_path,
        'printf "%s|" "$@"; echo\n'
        'echo "$ALERT_NAME $ALERT_STATUS $ALERT_LABEL_HOST $ALERT_ANNOTATION_SUMMARY"\n'
        'echo "fp=$ALERT_FINGERPRINT dry=${REMEDIATOR_DRY_RUN-unset} extra=$EXTRA pwd=$(pwd)"\n',
    )
    result = await run({"argv": [program, "a b", "c"], "env": {"EXTRA": "x y"}, "cwd": str(tmp_path)})
    assert result.outcome is Outcome.SUCCEEDED, result.message
    fingerprint = make_alert().fingerprint
    assert result.details["stdout"] == (
        f"a b|c|\nDiskFull firing db-1 disk full\nfp={fingerprint} dry=unset extra=x y pwd={tmp_path}\n"
    )
    assert result.details["exit_code"] == 0 and result.details["stderr"] == ""
    assert result.message == f"{program} exited with 0"


async def test_a_failing_exit_code_fails_with_the_end_of_stderr(tmp_path: Path) -> None:
    program = script(tmp_path, "echo working; echo 'cannot reach db-1' >&2; exit 3\n")
    result = await run({"argv": [program]})
    assert result.outcome is Outcome.FAILED and not result.retryable
    assert result.message == f"{program} exited with 3: cannot reach db-1"
    assert result.details["exit_code"] == 3 and result.details["stdout"] == "working\n"


async def test_ok_and_noop_exit_codes(tmp_path: Path) -> None:
    healthy = script(tmp_path, "echo healthy; exit 10\n", "precheck.sh")
    result = await run({"argv": [healthy], "noop_exit_codes": [10]})
    assert result.outcome is Outcome.NOOP and result.message == f"{healthy} exited with 10: nothing to do"
    fixed = script(tmp_path, "exit 2\n", "fix.sh")
    result = await run({"argv": [fixed], "ok_exit_codes": [0, 2]})
    assert result.outcome is Outcome.SUCCEEDED


async def test_a_missing_program_is_a_clear_failure(tmp_path: Path) -> None:
    result = await run({"argv": [str(tmp_path / "nope.sh")]})
    assert result.outcome is Outcome.FAILED
    assert result.message == f"cannot run {tmp_path / 'nope.sh'}: No such file or directory"


# ---- the process group ------------------------------------------------------------------------


def tree(directory: Path, *, stubborn: bool = False) -> tuple[str, Path]:
    """A script that starts a child and sleeps; ``stubborn``: both ignore SIGTERM."""
    pids = directory / "pids"
    body = (
        ("trap '' TERM\n" if stubborn else "")
        + "sleep 300 &\n"
        + f'echo "$$ $!" > {pids}.tmp && mv {pids}.tmp {pids}\n'
        + "echo started; sleep 300\n"
    )
    return script(directory, body), pids


async def _pids(path: Path) -> list[int]:
    return [int(pid) for pid in (await wait_for_file(path)).split()]


def read_if_there(path: Path) -> str | None:
    return path.read_text(encoding="utf-8") if path.exists() else None


async def wait_for_file(path: Path, within: float = 10.0) -> str:
    deadline = time.monotonic() + within
    while (text := read_if_there(path)) is None:
        assert time.monotonic() < deadline, f"{path} was not written"
        await asyncio.sleep(0.02)
    return text


@pytest.mark.parametrize("stubborn", [False, True])
async def test_a_timeout_stops_the_whole_process_group(tmp_path: Path, stubborn: bool) -> None:
    program, pids_file = tree(tmp_path, stubborn=stubborn)
    started = time.monotonic()
    result = await run({"argv": [program], "timeout": "1s", "grace": "500ms"})
    took = time.monotonic() - started
    pids = await _pids(pids_file)
    assert result.outcome is Outcome.FAILED and result.retryable
    assert result.message.startswith(f"{program} did not finish within 1s; its process group was stopped")
    assert result.details["stdout"] == "started\n" and result.details["exit_code"] is None
    assert await all_gone(pids, within=1.0), pids
    assert took < 1 + 0.5 + 1.5  # SIGKILL after the grace when SIGTERM is ignored


async def test_cancellation_stops_the_whole_process_group(tmp_path: Path) -> None:
    program, pids_file = tree(tmp_path, stubborn=True)
    lost = asyncio.Event()
    task = asyncio.create_task(run({"argv": [program], "grace": "200ms"}, lease_lost=lost))
    pids = await _pids(pids_file)
    assert not any(gone(pid) for pid in pids)
    lost.set()  # the lease is lost: the executor cancels the handler
    result = await task
    assert result.outcome is Outcome.FAILED and "lease lost" in result.message
    assert await all_gone(pids, within=1.0), pids


async def test_a_shutdown_cancel_stops_the_process_group(tmp_path: Path) -> None:
    program, pids_file = tree(tmp_path)
    task = asyncio.create_task(run({"argv": [program], "grace": "200ms"}))
    pids = await _pids(pids_file)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await all_gone(pids, within=1.0), pids


async def test_a_background_child_left_after_a_normal_exit_is_stopped(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    program = script(tmp_path, f'sleep 300 > /dev/null 2>&1 &\necho "$!" > {pids}\necho done\n')
    result = await run({"argv": [program], "grace": "200ms"})
    assert result.outcome is Outcome.SUCCEEDED and result.details["stdout"] == "done\n"
    assert await all_gone([int(pids.read_text())], within=1.0)


# ---- labels are data --------------------------------------------------------------------------

HOSTILE_RULES = """
rules:
  - name: script
    matchers: ['alertname="DiskFull"']
    handler: command.run
    target: 'host/x'
    params:
      argv: ['{program}', '--host', '{{{{ labels.host }}}}', '{{{{ annotations.summary }}}}']
      env: {{HOST: '{{{{ labels.host }}}}'}}
      cwd: '{cwd}'
      allow_option_args: true   # "-rf" too arrives as one inert argument
"""


@pytest.mark.parametrize("value", HOSTILE)
async def test_hostile_labels_arrive_as_inert_single_arguments(tmp_path: Path, value: str) -> None:
    out = tmp_path / "out.json"
    program = script(
        tmp_path,
        'exec python3 -c \'import json, os, sys; json.dump({"argv": sys.argv[1:], '
        '"env": {k: v for k, v in os.environ.items() if k in ("HOST", "ALERT_LABEL_HOST", '
        f'"ALERT_ANNOTATION_SUMMARY", "ALERT_LABEL_WEIRD_NAME_")}}}}, open("{out}", "w"))\' "$@"\n',
    )
    rules = parse_rules(
        HOSTILE_RULES.format(program=program, cwd=tmp_path).encode(), "rules.yaml", default_registry
    )
    the_alert = make_alert({"host": value, "weird-name!": value}, {"summary": value})
    plan = render(rules.rules[0], the_alert)
    spec = default_registry.get("command.run")
    assert spec is not None
    result = await execute(spec, plan.params, context(the_alert=the_alert), timeout=30)
    assert result.outcome is Outcome.SUCCEEDED, result.message
    seen = json.loads(out.read_text(encoding="utf-8"))
    assert seen["argv"] == ["--host", value, value]
    assert seen["env"] == {
        "HOST": value,
        "ALERT_LABEL_HOST": value,
        "ALERT_ANNOTATION_SUMMARY": value,
        "ALERT_LABEL_WEIRD_NAME_": value,
    }
    assert files(tmp_path) == ["out.json", "run.sh"]  # no pwned


def files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def test_a_nul_in_a_templated_argument_is_refused_at_render(tmp_path: Path) -> None:
    rules = parse_rules(
        HOSTILE_RULES.format(program="/bin/true", cwd=tmp_path).encode(), "rules.yaml", default_registry
    )
    with pytest.raises(TemplateError, match="NUL character"):
        render(rules.rules[0], make_alert({"host": "a\0b"}))


def test_alert_variable_names_are_sanitised() -> None:
    assert sanitised("pod-name.io/x") == "POD_NAME_IO_X"
    env = alert_env(make_alert({"a-b": "first", "a_b": "second", "z": "nul\0here"}))
    assert env["ALERT_LABEL_A_B"] == "first"  # of two names alike, the first sorted wins
    assert env["ALERT_LABEL_Z"] == "nul\ufffdhere"
    assert env["ALERT_NAME"] == "DiskFull" and env["ALERT_STATUS"] == "firing"


# ---- what the child sees and what we show ----------------------------------------------------


async def test_the_services_environment_and_secrets_do_not_reach_the_child(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REMEDIATOR_WEBHOOK_TOKEN", "service-secret-token-1234")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "aws-secret-5678")
    monkeypatch.setenv("LANG", "C.UTF-8")
    program = script(tmp_path, "env\n")
    result = await run({"argv": [program]})
    assert result.outcome is Outcome.SUCCEEDED
    names = {line.split("=", 1)[0] for line in result.details["stdout"].splitlines() if "=" in line}
    assert "service-secret" not in result.details["stdout"] and "aws-secret" not in result.details["stdout"]
    assert {n for n in names if not n.startswith("ALERT_")} <= {
        "PATH",
        "HOME",
        "LANG",
        "LC_ALL",
        "TZ",
        "TMPDIR",
        "PWD",
    }
    assert "LANG" in names and "PATH" in names


async def test_secret_env_values_are_redacted_from_output_and_plan(tmp_path: Path) -> None:
    program = script(tmp_path, 'echo "token is $API_TOKEN"; echo "$DB_PASSWORD" >&2; exit 1\n')
    params = {
        "argv": [program],
        "env": {"API_TOKEN": "tok-abcdef", "DB_PASSWORD": "pw-123456", "MODE": "fast"},
    }
    result = await run(params)
    assert result.outcome is Outcome.FAILED
    assert (
        result.details["stdout"] == f"token is {REDACTED}\n" and result.details["stderr"] == f"{REDACTED}\n"
    )
    assert "tok-abcdef" not in result.message and "pw-123456" not in result.message
    assert result.details["env"] == {"API_TOKEN": REDACTED, "DB_PASSWORD": REDACTED, "MODE": "fast"}
    dry = await run(params, dry_run=True)
    assert "tok-abcdef" not in json.dumps(dry.plan) and "MODE=fast" in dry.plan[0]


async def test_output_is_cut_to_its_last_max_output_bytes(tmp_path: Path) -> None:
    program = script(
        tmp_path, 'i=0; while [ $i -lt 4000 ]; do echo "line $i of the output"; i=$((i+1)); done\n'
    )
    result = await run({"argv": [program], "max_output": 1024})
    assert result.outcome is Outcome.SUCCEEDED
    assert len(result.details["stdout"]) == 1024 and result.details["truncated"] is True
    assert result.details["stdout"].endswith("line 3999 of the output\n")
    assert result.details["stdout_bytes"] > 80_000


# ---- dry run ----------------------------------------------------------------------------------


async def test_a_dry_run_does_not_run_the_program_unless_the_rule_says_so(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    program = script(tmp_path, f'echo "would fix (dry=$REMEDIATOR_DRY_RUN)"; touch {marker}\n')
    result = await run({"argv": [program, "x"]}, dry_run=True)
    assert result.outcome is Outcome.DRY_RUN and not marker.exists()
    assert result.message == "dry run: the program was not run (run_in_dry_run is off)"
    assert result.plan[0].startswith(f"exec [{program!r}, 'x']")

    result = await run({"argv": [program], "run_in_dry_run": True}, dry_run=True)
    assert result.outcome is Outcome.DRY_RUN and marker.exists()
    assert result.details["stdout"] == "would fix (dry=1)\n"
    assert result.message == f"dry run: {program} ran with REMEDIATOR_DRY_RUN=1 and exited with 0"


# ---- remediator check -------------------------------------------------------------------------

CHECK_RULES = """
rules:
  - name: script
    matchers: ['alertname="DiskFull"']
    handler: command.run
    target: 'host/x'
    params: {params}
"""


@pytest.mark.parametrize(
    ("params", "problem"),
    [
        ("{argv: ['{{ labels.program }}', x]}", "argv[0] '{{ labels.program }}' is a template"),
        ("{argv: [run.sh]}", "argv[0] must be the program's absolute path"),
        ("{argv: []}", "argv: List should have at least 1 item"),
        (
            "{argv: [/bin/true], env: {ALERT_NAME: x}}",
            "ALERT_* and REMEDIATOR_* variables are set by the handler",
        ),
        ("{argv: [/bin/true], env: {'1X': x}}", "'1X' is not a variable name"),
        ("{argv: [/bin/true], ok_exit_codes: [0, 3], noop_exit_codes: [3]}", "exit code(s) [3] are in both"),
        ("{argv: [/bin/true], timeout: 30}", "30 has no unit"),
        ("{argv: [/bin/true], cwd: tmp}", "'tmp' is not an absolute path"),
        (
            "{argv: [/bin/true, '{{ labels.x }}'], timeout: '{{ labels.t }}'}",
            "'timeout' for command.run: must be written",
        ),
        ("{argv: [/bin/true], ok_exit_codes: [256]}", "less than or equal to 255"),
        ("{argv: [/bin/true], shell: true}", "unknown params for command.run: shell"),
    ],
)
def test_check_refuses_bad_params_clearly(params: str, problem: str) -> None:
    with pytest.raises(RulesError) as info:
        parse_rules(CHECK_RULES.format(params=params).encode(), "rules.yaml", default_registry)
    assert problem in info.value.problems[0], info.value.problems


# ---- the whole pipeline -----------------------------------------------------------------------

PIPELINE_RULES = """
rules:
  - name: clean-disk
    matchers: ['alertname="DiskFull"']
    handler: command.run
    target: 'host/{{{{ labels.host }}}}'
    params:
      argv: ['{program}', '{{{{ labels.host }}}}']
      noop_exit_codes: [3]
      timeout: 10s
"""


async def test_a_webhook_runs_the_script_and_the_audit_shows_its_output(
    harness: MakeHarness, tmp_path: Path
) -> None:
    program = script(tmp_path, 'echo "cleaned /var/log on $1 ($ALERT_NAME)"\n')
    h = await harness(PIPELINE_RULES.format(program=program), registry=default_registry)
    response = await h.post(payload(alert("DiskFull", host="db-1")))
    assert response.status == 202
    event = await h.event((await response.json())["event_ids"][0])
    assert event.outcome_label == "succeeded", event.message
    assert event.handler == "command.run" and event.target == "host/db-1"
    assert event.details["stdout"] == "cleaned /var/log on db-1 (DiskFull)\n"
    assert [step.name for step in event.timeline if step.name in ("act", "verify")] == ["act", "verify"]


# ---- as PID 1 in a container ------------------------------------------------------------------

AS_REAPER = """
import asyncio, ctypes, json, os, sys
from handlers.command import CommandParams, run_program

ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER: orphans are ours


def our_zombies() -> list[int]:
    found = []
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            fields = open(f"/proc/{entry}/stat").read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] == "Z" and int(fields[1]) == os.getpid():
            found.append(int(entry))
    return found


async def main() -> None:
    codes = []
    for argv, timeout in ((sys.argv[1], "500ms"), (sys.argv[2], "10s")):
        params = CommandParams.model_validate({"argv": [argv], "timeout": timeout, "grace": "200ms"})
        codes.append((await run_program(params, {"PATH": os.environ["PATH"]}, 5.0)).code)
    await asyncio.sleep(0.2)
    print(json.dumps({"codes": codes, "zombies": our_zombies()}))


asyncio.run(main())
"""


async def test_as_the_reaper_of_orphans_no_zombie_is_left(tmp_path: Path) -> None:
    """In a container remediator is PID 1: the program's orphaned children become its own."""
    hanging, _ = tree(tmp_path)
    leaving = script(tmp_path, "sleep 300 > /dev/null 2>&1 &\necho done\n", "leaves.sh")
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        AS_REAPER,
        hanging,
        leaving,
        stdout=asyncio.subprocess.PIPE,
        cwd=ROOT,
    )
    out, _ = await asyncio.wait_for(child.communicate(), 30)
    assert child.returncode == 0
    assert json.loads(out) == {"codes": [None, 0], "zombies": []}


def test_remediator_check_names_the_rule_and_line_of_a_templated_program(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(CHECK_RULES.format(params="\n      argv: ['{{ labels.program }}', x]"))
    assert main(["check", str(rules)]) == 1
    assert capsys.readouterr().err == (
        f"{rules}: rule 'script' (line 3): param 'argv' for command.run: argv[0] "
        "'{{ labels.program }}' is a template: the program must be written in the rule "
        "(alert values may only be later arguments) (line 8)\n"
    )
    rules.write_text(CHECK_RULES.format(params="\n      argv: [/usr/local/bin/fix.sh, '{{ labels.host }}']"))
    assert main(["check", str(rules)]) == 0
