"""What an alert may put into a program's arguments and a Job's manifest, and what plans show.

- ``kubernetes.job``: values from the alert are escaped for Kubernetes' ``$(VAR)`` expansion,
  so a label ``$(API_TOKEN)`` reaches the script as those characters, never as the secret; a
  ``$(POD_NAME)`` written in the rule still expands (checked with the kubelet's expansion
  rules on what the emulator received).
- A templated argv item (``command.run``'s argv, a Job's command and args) that an alert
  value makes start with ``-`` is refused at render, unless ``allow_option_args: true``.
- A Job's plan (dry run, timeline, approvals, simulate) never holds a literal ``env`` value.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import structlog
from aiohttp.test_utils import TestClient, TestServer

import handlers  # noqa: F401 - registers the built-in handlers
from remediator import Alert, Context, Outcome, Resources, Result
from remediator.api.service import SERVICE
from remediator.app import create_app
from remediator.cli.main import main
from remediator.errors import RulesError, TemplateError
from remediator.handling.execution import execute
from remediator.handling.registry import default_registry
from remediator.rules.ruleset import RuleSet, parse_rules, render
from tests.support.admin import ADMIN_TOKEN, make_settings
from tests.support.kube import (
    JOBS,
    Cluster,
    JobController,
    background,
    container_view,
)
from tests.support.payloads import alert, payload
from tests.support.waiting import wait_event

NS = "torghut"
SECRET = "s3cret-api-token-0123456789"


def rules(params: str, handler: str = "kubernetes.job") -> RuleSet:
    text = (
        "rules:\n  - name: fix\n    matchers: ['alertname=\"DiskFull\"']\n"
        f"    handler: {handler}\n    target: host/x\n    params:\n{params}"
    )
    return parse_rules(text.encode(), "rules.yaml", default_registry)


def disk_alert(annotations: dict[str, str] | None = None, **labels: str) -> Alert:
    return Alert.model_validate(alert("DiskFull", annotations=annotations or {"summary": "full"}, **labels))


def context(the_alert: Alert, resources: Resources, *, dry_run: bool = False) -> Context:
    return Context(
        event_id="0190aa0bb0cc42",
        rule="fix",
        target="host/x",
        alert=the_alert,
        dry_run=dry_run,
        deadline=time.monotonic() + 30,
        verify_timeout=10.0,
        log=structlog.get_logger("test"),
        resources=resources,
    )


async def run(ruleset: RuleSet, the_alert: Alert, ctx: Context) -> Result:
    plan = render(ruleset.rules[0], the_alert)
    spec = default_registry.get(ruleset.rules[0].handler.name)
    assert spec is not None
    return await execute(spec, plan.params, ctx, timeout=30)


# ---- $(VAR) in a Job's command, args and env ---------------------------------------------------
JOB = """\
      namespace: torghut
      image: registry.example/fix:1
      command: [/bin/fix, '{{ labels.host }}', '--pod=$(POD_NAME)']
      args: ['{{ annotations.summary }}', 'at {{ labels.host }} on $(NODE)']
      env: {API_TOKEN: 's3cret-api-token-0123456789', POD_NAME: fix-pod, NODE: node-1,
            HOST: 'host {{ labels.host }}'}
      poll_interval: 50ms
"""


@pytest.mark.parametrize(
    ("host", "summary"),
    [
        ("$(API_TOKEN)", "$(API_TOKEN)"),
        ("a$$(API_TOKEN)b", "$$$(API_TOKEN)"),
        ("$(POD_NAME)", "cost $5, $(unclosed"),
    ],
)
async def test_alert_values_reach_the_job_as_written_never_expanded(
    cluster: Cluster, resources: Resources, host: str, summary: str
) -> None:
    the_alert = disk_alert({"summary": summary}, host=host)
    async with background(JobController(cluster, NS).run):
        result = await run(rules(JOB), the_alert, context(the_alert, resources))
    assert result.outcome is Outcome.SUCCEEDED, result.message
    [call] = [c for c in cluster.calls_to(JOBS, "create") if c.status == 201]
    [container] = call.body["spec"]["template"]["spec"]["containers"]
    argv, env = container_view(container)
    assert argv == ["/bin/fix", host, "--pod=fix-pod", summary, f"at {host} on node-1"]
    assert env["HOST"] == f"host {host}" and env["ALERT_LABEL_HOST"] == host
    assert env["ALERT_ANNOTATION_SUMMARY"] == summary
    assert SECRET not in json.dumps([argv, {k: v for k, v in env.items() if k != "API_TOKEN"}])


# ---- option-like arguments -------------------------------------------------------------------
COMMAND = """\
      argv: [/bin/echo, '{{ labels.pod }}', '--pod={{ labels.pod }}', --literal]
"""
JOB_ARGS = """\
      namespace: torghut
      image: registry.example/fix:1
      command: [/bin/fix, '{{ labels.pod }}']
      args: [--literal, '{{ labels.pod }}', '--pod={{ labels.pod }}']
"""


@pytest.mark.parametrize(
    ("handler", "params", "item"),
    [("command.run", COMMAND, "argv[1]"), ("kubernetes.job", JOB_ARGS, "command[1]")],
    ids=["command.run", "kubernetes.job"],
)
@pytest.mark.parametrize("value", ["--all", "-rf", "--help"])
def test_an_alert_value_that_makes_an_option_is_refused_at_render(
    handler: str, params: str, item: str, value: str
) -> None:
    ruleset = rules(params, handler)
    with pytest.raises(TemplateError) as caught:
        render(ruleset.rules[0], disk_alert(pod=value))
    message = str(caught.value)
    assert f"{item} {value!r} starts with '-'" in message and "allow_option_args: true" in message, message


@pytest.mark.parametrize(
    ("handler", "params"), [("command.run", COMMAND), ("kubernetes.job", JOB_ARGS)], ids=["command", "job"]
)
def test_options_written_in_the_rule_and_plain_values_pass(handler: str, params: str) -> None:
    plan = render(rules(params, handler).rules[0], disk_alert(pod="web-1"))
    shown = plan.params.model_dump(mode="json")
    items = shown.get("argv") or [*shown["command"], *shown["args"]]
    assert "--literal" in items and "--pod=web-1" in items and "web-1" in items


@pytest.mark.parametrize(
    ("handler", "params", "key"),
    [("command.run", COMMAND, "argv"), ("kubernetes.job", JOB_ARGS, "command")],
    ids=["command.run", "kubernetes.job"],
)
def test_allow_option_args_lets_the_alert_choose_options(handler: str, params: str, key: str) -> None:
    params += "      allow_option_args: true\n"
    plan = render(rules(params, handler).rules[0], disk_alert(pod="--all"))
    shown = plan.params.model_dump(mode="json")
    assert shown[key][1] == "--all" and "\ufdd0" not in json.dumps(shown)


def test_a_label_holding_the_marker_cannot_pass_an_option() -> None:
    plan = render(rules(COMMAND, "command.run").rules[0], disk_alert(pod="\ufdd0--all"))
    assert plan.params.model_dump()["argv"][1] == "\ufffd--all"  # not an option: it starts with U+FFFD


@pytest.mark.parametrize("handler", ["command.run", "kubernetes.job"])
def test_allow_option_args_must_be_written_in_the_rule(handler: str) -> None:
    params = COMMAND if handler == "command.run" else JOB_ARGS
    params = params + "      allow_option_args: '{{ labels.allow }}'\n"
    with pytest.raises(RulesError) as caught:
        rules(params, handler)
    assert (
        "'allow_option_args'" in caught.value.problems[0]
        and "written in the rule" in caught.value.problems[0]
    )


def test_simulate_shows_the_refusal(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(
        "rules:\n  - name: fix\n    matchers: ['alertname=\"DiskFull\"']\n    handler: command.run\n"
        "    target: host/x\n    params:\n" + COMMAND
    )
    alerts = tmp_path / "alerts.json"
    alerts.write_text(json.dumps(payload(alert("DiskFull", pod="--all"))))
    assert main(["simulate", str(alerts), "--rules", str(path)]) == 1
    out = capsys.readouterr().out
    assert "ERROR: params for command.run: argv[1] '--all' starts with '-'" in out, out


# ---- a Job's env values never in a plan -------------------------------------------------------
SECRET_JOB = """\
      namespace: torghut
      image: registry.example/fix:1
      command: [/bin/fix]
      env:
        API_TOKEN: s3cret-api-token-0123456789
        DB_PASS: hunter2-hunter2
        MODE: 'mode-{{ labels.host }}'
      poll_interval: 50ms
"""


def test_the_plan_and_simulate_show_env_names_never_values(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ruleset = rules(SECRET_JOB)
    plan = render(ruleset.rules[0], disk_alert(host="db-1"))
    described = "\n".join(ruleset.rules[0].handler.plan(plan.params))  # what approvals store
    shown = json.dumps(plan.params.model_dump(mode="json"))
    for text in (described, shown):
        assert SECRET not in text and "hunter2" not in text and "mode-db-1" not in text, text
        assert "API_TOKEN" in text and "[redacted]" in text
    path = tmp_path / "rules.yaml"
    path.write_text(
        "rules:\n  - name: fix\n    matchers: ['alertname=\"DiskFull\"']\n    handler: kubernetes.job\n"
        "    target: host/x\n    params:\n" + SECRET_JOB
    )
    alerts = tmp_path / "alerts.json"
    alerts.write_text(json.dumps(payload(alert("DiskFull", host="db-1"))))
    for extra in ([], ["--json"]):
        assert main(["simulate", str(alerts), "--rules", str(path), *extra]) == 0
        out = capsys.readouterr().out
        assert SECRET not in out and "hunter2" not in out and "mode-db-1" not in out, out


async def test_the_timeline_of_a_real_run_shows_no_env_value(cluster: Cluster, resources: Resources) -> None:
    the_alert = disk_alert(host="db-1")
    ctx = context(the_alert, resources)
    async with background(JobController(cluster, NS).run):
        result = await run(rules(SECRET_JOB), the_alert, ctx)
    assert result.outcome is Outcome.SUCCEEDED, result.message
    [call] = [c for c in cluster.calls_to(JOBS, "create") if c.status == 201]
    _, env = container_view(call.body["spec"]["template"]["spec"]["containers"][0])
    assert env["API_TOKEN"] == SECRET and env["MODE"] == "mode-db-1"  # Kubernetes gets them
    recorded = json.dumps([(s.name, s.message, s.data) for s in ctx.timeline]) + json.dumps(result.details)
    assert "kube.create" in recorded and "API_TOKEN" in recorded
    assert SECRET not in recorded and "hunter2" not in recorded and "mode-db-1" not in recorded


async def test_the_event_and_approvals_apis_show_no_env_value(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    head = "  - name: {name}\n    matchers: ['alertname=\"{alertname}\"']\n    handler: kubernetes.job\n"
    path.write_text(
        "rules:\n"
        + head.format(name="dry", alertname="DiskFull")
        + "    target: host/x\n    dry_run: true\n    params:\n"
        + SECRET_JOB
        + head.format(name="gated", alertname="DiskGated")
        + "    target: host/y\n    approval: {required: true, approvers: [U0ALICE]}\n    params:\n"
        + SECRET_JOB
    )
    settings = make_settings(path, handler_modules=["handlers"])
    app = create_app(settings, registry=default_registry)
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    async with TestClient(TestServer(app)) as client:
        body = payload(alert("DiskFull", host="db-1"), alert("DiskGated", host="db-2"))
        hook = {"Authorization": f"Bearer {settings.webhook_token.get_secret_value()}"}  # type: ignore[union-attr]
        response = await client.post("/webhooks/alertmanager", json=body, headers=hook)
        assert response.status == 202, await response.text()
        dry, gated = (await response.json())["event_ids"]
        await wait_event(app[SERVICE].store, dry)
        event = await (await client.get(f"/api/v1/events/{dry}", headers=headers)).text()
        assert "would create Job" in event and "API_TOKEN" in event
        deadline = time.monotonic() + 10
        while gated not in (listed := await (await client.get("/api/v1/approvals", headers=headers)).text()):
            assert time.monotonic() < deadline, listed
        for text in (event, listed):
            assert SECRET not in text and "hunter2" not in text and "mode-db" not in text, text
