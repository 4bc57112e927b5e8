"""Rules reload: file edits, ConfigMap symlink swaps, broken edits, SIGHUP."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import structlog.testing
from aiohttp.test_utils import TestClient, TestServer

from remediator.api.service import SERVICE
from remediator.app import create_app
from remediator.metrics import Metrics
from remediator.rules.holder import RulesHolder
from remediator.rules.watcher import RulesWatcher
from tests.support import admin
from tests.support.payloads import alert, payload
from tests.support.procs import PYTHON, free_port, python_env, stop_process, wait_port
from tests.support.recording import RecordingNotifier
from tests.support.waiting import eventually, wait_event

BROKEN_YAML = admin.RULES + "  - name: [unclosed\n"
UNKNOWN_HANDLER = admin.RULES.replace("handler: test.fix", "handler: nope.fix")


def reloads(metrics: Metrics, result: str) -> float:
    return metrics.registry.get_sample_value("remediator_rules_reload_total", {"result": result}) or 0.0


class Rig:
    """A holder, its watcher and what they reported, on a rules file."""

    def __init__(self, path: Path) -> None:
        self.metrics = Metrics()
        self.holder = RulesHolder(path, admin.make_registry(admin.Calls()), self.metrics)
        assert self.holder.load().ok
        self.notifier = RecordingNotifier()
        self.watcher = RulesWatcher(self.holder, self.notifier, interval=0.05)
        assert self.watcher.check() is None  # the first poll sees what was loaded

    @property
    def names(self) -> list[str]:
        return [rule.name for rule in self.holder.current().rules]


def edit(path: Path, text: str) -> None:
    """Rewrite like an editor does, making sure the stat changes even on coarse clocks."""
    before = path.stat().st_mtime_ns
    path.write_text(text, encoding="utf-8")
    if path.stat().st_mtime_ns == before:
        os.utime(path, ns=(before + 1_000_000, before + 1_000_000))


def test_an_added_rule_is_picked_up(tmp_path: Path) -> None:
    rig = Rig(admin.write_rules(tmp_path / "rules.yaml"))
    old = rig.holder.current()
    edit(rig.holder.path, admin.RULES + admin.EXTRA_RULE)
    result = rig.watcher.check()
    assert result is not None and result.ok
    assert rig.names == ["fix-it", "fix-other"]
    assert old.get("fix-other") is None  # the old set is untouched: jobs holding it keep it
    [notice] = rig.notifier.of_kind("rules_reload")
    assert notice.outcome == "ok" and notice.details["previous_hash"] == old.hash
    assert notice.details["hash"] == rig.holder.current().hash and notice.details["rules"] == 2
    assert rig.watcher.check() is None  # nothing changed since
    assert reloads(rig.metrics, "ok") == 2 and reloads(rig.metrics, "error") == 0


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        (BROKEN_YAML, "invalid YAML"),
        (UNKNOWN_HANDLER, "rule 'fix-it' (line 5): unknown handler 'nope.fix'"),
        ("rules:\n  - name: fix-it\n    handler: test.fix\n", "matchers: Field required"),
    ],
)
def test_a_broken_edit_keeps_the_last_good_rules(tmp_path: Path, text: str, complaint: str) -> None:
    rig = Rig(admin.write_rules(tmp_path / "rules.yaml"))
    good = rig.holder.current()
    edit(rig.holder.path, text)
    result = rig.watcher.check()
    assert result is not None and not result.ok
    assert any(complaint in problem for problem in result.errors), result.errors
    assert rig.holder.current() is good
    assert rig.holder.last is not None and rig.holder.last.hash == good.hash
    assert reloads(rig.metrics, "error") == 1
    [notice] = rig.notifier.of_kind("rules_reload")
    assert notice.outcome == "error" and "last good rules" in notice.message
    assert notice.details["errors"] == list(result.errors)
    assert rig.watcher.check() is None and reloads(rig.metrics, "error") == 1  # said once
    edit(rig.holder.path, admin.RULES)  # fixed back to the same rules: a recovery is news too
    fixed = rig.watcher.check()
    assert fixed is not None and fixed.ok and rig.holder.current().hash == good.hash
    assert [n.outcome for n in rig.notifier.of_kind("rules_reload")] == ["error", "ok"]


def test_unchanged_rules_are_never_announced_as_a_reload(tmp_path: Path) -> None:
    rig = Rig(admin.write_rules(tmp_path / "rules.yaml"))
    edit(rig.holder.path, admin.RULES)  # rewritten with the same content
    assert rig.watcher.check() is None
    assert rig.watcher.check(forced=True) is not None  # SIGHUP: reloaded, nothing to say
    assert rig.notifier.notices == []
    edit(rig.holder.path, BROKEN_YAML)
    edit(rig.holder.path, admin.RULES + "  - name: [unclosed\n")  # still broken
    rig.watcher.check()
    rig.watcher.check(forced=True)
    edit(rig.holder.path, admin.RULES)  # fixed back: the failure notice gets its all-clear
    rig.watcher.check()
    messages = [n.message for n in rig.notifier.of_kind("rules_reload")]
    assert len(messages) == 3 and "FAILED" in messages[0] and "FAILED" in messages[1]
    assert "unchanged" not in messages[2] and "reloaded" not in messages[2]
    assert messages[2].startswith("rules file valid again (change): the failed reload is over")


def test_a_missing_file_keeps_the_rules(tmp_path: Path) -> None:
    rig = Rig(admin.write_rules(tmp_path / "rules.yaml"))
    rig.holder.path.unlink()
    result = rig.watcher.check()
    assert result is not None and not result.ok and "cannot read" in result.errors[0]
    assert rig.names == ["fix-it"]
    assert rig.watcher.check() is None


def test_touch_without_change_does_not_reload(tmp_path: Path) -> None:
    rig = Rig(admin.write_rules(tmp_path / "rules.yaml"))
    stat = rig.holder.path.stat()
    os.utime(rig.holder.path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))
    assert rig.watcher.check() is None
    assert rig.notifier.notices == []


def test_sighup_style_forced_reload_of_unchanged_rules_is_quiet(tmp_path: Path) -> None:
    rig = Rig(admin.write_rules(tmp_path / "rules.yaml"))
    result = rig.watcher.check(forced=True)
    assert result is not None and result.ok and result.message == "unchanged"
    assert rig.notifier.notices == []


async def test_with_polling_off_only_a_reload_request_reloads(tmp_path: Path) -> None:
    rig = Rig(admin.write_rules(tmp_path / "rules.yaml"))
    rig.watcher.interval = 0  # REMEDIATOR_RULES_POLL_INTERVAL=0s: SIGHUP only
    stop = asyncio.Event()
    task = asyncio.create_task(rig.watcher.run(stop))
    edit(rig.holder.path, admin.RULES + admin.EXTRA_RULE)
    await asyncio.sleep(0.3)
    assert rig.names == ["fix-it"]
    rig.watcher.request_reload()
    await eventually(lambda: len(rig.names) == 2, within=15, what="the second rule")
    stop.set()
    await asyncio.wait_for(task, 5)
    assert [n.details["trigger"] for n in rig.notifier.notices] == ["sighup"]


def configmap(root: Path, stamp: str, text: str) -> None:
    """Lay out a rules file the way the kubelet does for a ConfigMap volume, or update it:
    write a new timestamped dir, point a temporary symlink at it, rename it over ``..data``."""
    data_dir = root / f"..{stamp}"
    data_dir.mkdir()
    (data_dir / "rules.yaml").write_text(text, encoding="utf-8")
    tmp_link = root / "..data_tmp"
    os.symlink(data_dir.name, tmp_link)
    old = os.path.realpath(root / "..data") if (root / "..data").exists() else None
    os.rename(tmp_link, root / "..data")  # atomic swap of the symlink
    if not (root / "rules.yaml").is_symlink():
        os.symlink("..data/rules.yaml", root / "rules.yaml")
    if old is not None:
        for item in Path(old).iterdir():
            item.unlink()
        Path(old).rmdir()


def test_a_configmap_symlink_swap_is_picked_up(tmp_path: Path) -> None:
    root = tmp_path / "config"
    root.mkdir()
    configmap(root, "2024_05_01_12_00_00.1", admin.RULES)
    rig = Rig(root / "rules.yaml")
    configmap(root, "2024_05_01_12_05_00.2", admin.RULES + admin.EXTRA_RULE)
    result = rig.watcher.check()
    assert result is not None and result.ok and rig.names == ["fix-it", "fix-other"]
    [notice] = rig.notifier.of_kind("rules_reload")
    assert notice.details["resolved_path"].endswith("..2024_05_01_12_05_00.2/rules.yaml")
    configmap(root, "2024_05_01_12_10_00.3", admin.RULES + admin.EXTRA_RULE)  # same content, new dir
    assert rig.watcher.check() is None
    configmap(root, "2024_05_01_12_15_00.4", UNKNOWN_HANDLER)
    broken = rig.watcher.check()
    assert broken is not None and not broken.ok and rig.names == ["fix-it", "fix-other"]


# ---- in the running app -------------------------------------------------------------------
async def test_the_app_reloads_and_reports_it(tmp_path: Path) -> None:
    rules = admin.write_rules(tmp_path / "rules.yaml")
    notifier = RecordingNotifier()
    app = create_app(
        admin.make_settings(rules), registry=admin.make_registry(admin.Calls()), notifier=notifier
    )
    async with TestClient(TestServer(app)) as client:
        svc = app[SERVICE]
        first = svc.rules.current().hash

        async def readyz() -> dict[str, Any]:
            response = await client.get("/readyz")
            assert response.status == 200
            return dict(await response.json())

        edit(rules, admin.RULES + admin.EXTRA_RULE)
        ready = await eventually(lambda: _when(readyz(), lambda r: r["rules"]["hash"] != first), within=15)
        assert ready["rules"]["count"] == 2 and ready["rules"]["last_reload"]["ok"] is True
        second = ready["rules"]["hash"]

        edit(rules, UNKNOWN_HANDLER)
        ready = await eventually(
            lambda: _when(readyz(), lambda r: r["rules"]["last_reload"]["ok"] is False), within=15
        )
        assert ready["status"] == "ready" and ready["rules"]["hash"] == second
        assert ready["rules"]["warning"] == "last reload failed; running on the last good rules"
        assert "unknown handler 'nope.fix'" in ready["rules"]["last_reload"]["errors"][0]

        info = await (await client.get("/api/v1/rules", headers=admin.admin_headers())).json()
        assert info["count"] == 2 and info["hash"] == second
        assert info["last_reload"]["ok"] is False
        metrics = await (await client.get("/metrics")).text()
        assert 'remediator_rules_reload_total{result="error"} 1.0' in metrics
        assert 'remediator_rules_reload_total{result="ok"} 2.0' in metrics
        assert [n.outcome for n in notifier.of_kind("rules_reload")] == ["ok", "error"]


async def _when(
    value: Awaitable[dict[str, Any]], ok: Callable[[dict[str, Any]], bool]
) -> dict[str, Any] | None:
    data = await value
    return data if ok(data) else None


async def test_jobs_in_flight_finish_on_the_rules_they_started_with(tmp_path: Path) -> None:
    rules = admin.write_rules(tmp_path / "rules.yaml")
    calls = admin.Calls(hold=asyncio.Event(), started=asyncio.Event())
    app = create_app(admin.make_settings(rules), registry=admin.make_registry(calls))
    async with TestClient(TestServer(app)) as client:
        svc = app[SERVICE]
        response = await client.post(
            "/webhooks/alertmanager",
            json=payload(alert("TestBroken", service="api")),
            headers=admin.webhook_headers(),
        )
        [event_id] = (await response.json())["event_ids"]
        assert calls.started is not None and calls.hold is not None
        await asyncio.wait_for(calls.started.wait(), 15)
        edit(rules, admin.RULES.replace("name: fix-it", "name: fix-renamed").replace("svc/", "renamed/"))
        await eventually(lambda: svc.rules.current().get("fix-it") is None, within=15, what="fix-it removed")
        calls.hold.set()
        event = await wait_event(svc.store, event_id)
        assert (event.rule, event.target, event.outcome.value) == ("fix-it", "svc/api", "succeeded")
        response = await client.post(
            "/webhooks/alertmanager",
            json=payload(alert("TestBroken", service="b")),
            headers=admin.webhook_headers(),
        )
        [later] = (await response.json())["event_ids"]
        event = await wait_event(svc.store, later)
        assert (event.rule, event.target) == ("fix-renamed", "renamed/b")


# ---- SIGHUP on a real process -------------------------------------------------------------
HTTP_RULES = """\
rules:
  - name: ping
    matchers: ['alertname="Ping"']
    handler: http.request
    target: 'ping/{{ labels.service }}'
    dry_run: true
    params: {url: 'http://127.0.0.1:9/ping'}
"""


def get_json(url: str) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(url, headers=admin.admin_headers())
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(json.loads(response.read()))
    except urllib.error.HTTPError as exc:
        return exc.code, dict(json.loads(exc.read()))


def wait_for(
    read: Callable[[], dict[str, Any]], ok: Callable[[dict[str, Any]], bool], within: float = 20.0
) -> dict[str, Any]:
    deadline = time.monotonic() + within
    while not ok(value := read()):
        if time.monotonic() > deadline:
            raise TimeoutError(f"condition not met in time; last: {value}")
        time.sleep(0.05)
    return value


@pytest.mark.server
def test_sighup_reloads_a_running_service(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(HTTP_RULES, encoding="utf-8")
    port = free_port()
    env = python_env(
        REMEDIATOR_RULES_POLL_INTERVAL="1h",
        REMEDIATOR_ADMIN_TOKEN=admin.ADMIN_TOKEN,
        REMEDIATOR_LOG_FORMAT="json",
        REMEDIATOR_WORKERS="1",
    )
    env.pop("REMEDIATOR_REDIS_URL", None)
    proc = subprocess.Popen(
        [
            PYTHON,
            "-m",
            "remediator",
            "serve",
            "--rules",
            str(rules),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--insecure-no-auth",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"

    def rules_info() -> dict[str, Any]:
        status, body = get_json(f"{url}/api/v1/rules")
        assert status == 200, body
        return body

    try:
        wait_port(port, 30.0)
        before = rules_info()
        assert before["count"] == 1
        second_rule = HTTP_RULES.split("rules:\n", 1)[1].replace("ping", "ping-two")
        rules.write_text(HTTP_RULES + second_rule.replace("Ping", "PingTwo"), encoding="utf-8")
        time.sleep(0.5)
        assert rules_info()["hash"] == before["hash"]  # no poll for an hour: only SIGHUP
        proc.send_signal(signal.SIGHUP)
        after = wait_for(rules_info, lambda info: info["count"] == 2)
        assert after["hash"] != before["hash"]

        rules.write_text("rules: {", encoding="utf-8")
        proc.send_signal(signal.SIGHUP)
        failed = wait_for(rules_info, lambda info: info["last_reload"]["ok"] is False)
        assert failed["count"] == 2 and failed["hash"] == after["hash"]
        status, ready = get_json(f"{url}/readyz")
        assert status == 200 and ready["rules"]["last_reload"]["ok"] is False
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        stop_process(proc)
        if proc.stderr is not None:
            proc.stderr.close()
    assert proc.returncode == 0, err.decode()[-2000:]
    log = err.decode()
    assert '"trigger": "sighup"' in log and '"event": "rules.reload_failed"' in log


def test_a_reload_logs_the_warnings(tmp_path: Path) -> None:
    path = admin.write_rules(tmp_path / "rules.yaml", admin.RULES)
    rig = Rig(path)
    with structlog.testing.capture_logs() as logs:
        edit(path, "concurrency_limits: {unused: 1}\n" + admin.RULES)
        assert rig.holder.load().ok
    (warned,) = [e for e in logs if e["event"] == "rules.warnings"]
    assert warned["log_level"] == "warning" and warned["path"] == str(path)
    assert warned["warnings"] == ["concurrency_limits.unused: no rule has concurrency_group: unused (line 1)"]
