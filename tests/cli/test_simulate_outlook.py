"""``simulate`` says what will happen, not only the plan: at the simulated time (``--at``)
the maintenance window or pause that holds a match, the approval it awaits, and with
``--url`` the live cooldown, open circuit and pauses of a running service."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from remediator.cli import simulating
from remediator.cli.main import simulate
from remediator.handling.registry import default_registry, load_plugins
from remediator.rules.ruleset import load_rules
from tests.docs.test_pages import blocks
from tests.support import admin
from tests.support.cli import http, run
from tests.support.payloads import alert, alert_model, payload
from tests.support.procs import PYTHON, ROOT, python_env

RULES = """\
maintenance_windows:
  - name: shop-nightly
    matchers: ['namespace="shop"']
    weekdays: [mon, tue, wed, thu, fri]
    start: "02:30"
    duration: 90m
    time_zone: Europe/Paris
rules:
  - name: web-restart
    matchers: ['alertname="WebDown"']
    handler: http.request
    target: 'web/{{ labels.namespace }}'
    params: {url: 'http://runbooks.local/{{ labels.namespace }}'}
    approval: {approvers: [U123ABC, S0TEAM], timeout: 20m}
  - name: cache-flush
    matchers: ['alertname="CacheStale"']
    handler: http.request
    target: 'cache/{{ labels.namespace }}'
    params: {url: 'http://runbooks.local/flush'}
    on_pause: skip
  - name: dry-fix
    matchers: ['alertname="DryBroken"']
    handler: http.request
    target: 'dry/{{ labels.namespace }}'
    params: {url: 'http://runbooks.local/dry'}
    approval: {approvers: [U123ABC]}
    dry_run: true
"""
NIGHT = "2026-12-08T02:00:00Z"  # a Tuesday, 03:00 in Paris: shop-nightly is open until 04:00 (03:00Z)
DAY = "2026-12-08T12:00:00Z"


@pytest.fixture
def rules(tmp_path: Path) -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text(RULES, encoding="utf-8")
    return path


def alerts_file(tmp_path: Path, *alerts: dict[str, Any]) -> Path:
    path = tmp_path / "alerts.json"
    path.write_text(json.dumps(payload(*alerts)), encoding="utf-8")
    return path


def simulated(capsys: pytest.CaptureFixture[str], *argv: str) -> list[dict[str, Any]]:
    code, out, err = run(capsys, "simulate", *argv, "--json")
    assert code == 0, err
    return list(json.loads(out))


def test_a_window_open_at_the_simulated_time_holds_it_then_it_awaits_approval(
    rules: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    alerts = alerts_file(tmp_path, alert("WebDown", namespace="shop"))
    code, out, _ = run(capsys, "simulate", str(alerts), "--rules", str(rules), "--at", NIGHT)
    assert code == 0
    assert out.splitlines()[-4:] == [
        "    at 2026-12-08T02:00:00.000Z:",
        "      1. held: maintenance window shop-nightly open until 2026-12-08T03:00:00Z; "
        "it waits, then goes on",
        "      2. awaits approval by U123ABC, S0TEAM (up to 20m; then skipped:not_approved)",
        "      3. runs the handler",
    ]
    [entry] = simulated(capsys, str(alerts), "--rules", str(rules), "--at", NIGHT)
    [match] = entry["matches"]
    assert entry["at"] == "2026-12-08T02:00:00.000Z"
    assert match["holds"] == [
        {"by": "window", "name": "shop-nightly", "until": "2026-12-08T03:00:00.000Z", "effect": "hold"},
        {"by": "approval", "approvers": ["U123ABC", "S0TEAM"], "timeout_seconds": 1200.0},
    ]


def test_a_window_closed_at_the_simulated_time_or_not_matching_holds_nothing(
    rules: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    alerts = alerts_file(tmp_path, alert("WebDown", namespace="shop"), alert("WebDown", namespace="blog"))
    by_day = simulated(capsys, str(alerts), "--rules", str(rules), "--at", DAY)
    at_night = simulated(capsys, str(alerts), "--rules", str(rules), "--at", "2026-12-08T03:00:00+01:00")
    assert [[h["by"] for h in m["holds"]] for e in by_day for m in e["matches"]] == [
        ["approval"],
        ["approval"],
    ]
    # 03:00 in Paris: open for the shop namespace only (the window's matchers)
    assert [[h["by"] for h in m["holds"]] for e in at_night for m in e["matches"]] == [
        ["window", "approval"],
        ["approval"],
    ]


def test_on_pause_skip_and_dry_run_say_so(
    rules: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    alerts = alerts_file(
        tmp_path, alert("CacheStale", namespace="shop"), alert("DryBroken", namespace="shop")
    )
    cache, dry = simulated(capsys, str(alerts), "--rules", str(rules), "--at", NIGHT)
    [skipped] = cache["matches"]
    assert skipped["will"] == [
        "skipped:paused: maintenance window shop-nightly open until 2026-12-08T03:00:00Z (on_pause: skip)"
    ]
    [planned] = dry["matches"]  # a dry run changes nothing: no approval is asked
    assert [h["by"] for h in planned["holds"]] == ["window"]
    assert planned["will"][-1] == "dry run (the rule's dry_run): renders the plan, changes nothing"


def test_a_resolved_alert_the_rule_ignores_runs_nothing(
    rules: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    alerts = alerts_file(tmp_path, alert("WebDown", status="resolved", namespace="shop"))
    [entry] = simulated(capsys, str(alerts), "--rules", str(rules), "--at", NIGHT)
    [match] = entry["matches"]
    assert match["holds"] == [] and match["will"] == [
        "none: resolved alerts are only recorded (on_resolved: ignore)"
    ]


def test_at_is_rfc3339_or_relative_to_now() -> None:
    assert simulating.parse_at(None, 1000.0) == 1000.0
    assert simulating.parse_at("now", 1000.0) == 1000.0
    assert simulating.parse_at("+2h", 1000.0) == 1000.0 + 7200
    assert simulating.parse_at("-30m", 10000.0) == 10000.0 - 1800
    assert simulating.parse_at("2026-12-08T03:00:00+01:00", 0.0) == simulating.parse_at(NIGHT, 0.0)
    for bad in ("tomorrow", "+2", "2026-12-08T02:00:00", "+soon"):
        with pytest.raises(ValueError, match=r"expected|unit|duration"):
            simulating.parse_at(bad, 0.0)


def test_a_bad_at_is_a_usage_error(rules: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    alerts = alerts_file(tmp_path, alert("WebDown", namespace="shop"))
    code, _, err = run(capsys, "simulate", str(alerts), "--rules", str(rules), "--at", "tomorrow")
    assert code == 2
    assert err.startswith("remediator simulate: --at 'tomorrow': expected an RFC 3339 time")


def test_a_reader_that_stops_early_gets_no_traceback(rules: Path, tmp_path: Path) -> None:
    """`remediator simulate big.json | head -1`: far more than a pipe's 64 KiB buffer."""
    many = [alert("WebDown", namespace=f"ns-{n}") for n in range(1500)]
    alerts = alerts_file(tmp_path, *many)
    process = subprocess.Popen(
        [PYTHON, "-m", "remediator", "simulate", str(alerts), "--rules", str(rules)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=python_env(REMEDIATOR_HANDLER_MODULES='["handlers"]'),
    )
    assert process.stdout is not None and process.stderr is not None
    first = process.stdout.readline()
    process.stdout.close()  # as `head -1` exits
    err = process.stderr.read().decode()
    process.stderr.close()
    assert process.wait(timeout=60) == 141, err  # 128 + SIGPIPE, as `cat big | head` reports
    assert first.startswith(b"alert WebDown (firing")
    assert err == ""  # no BrokenPipeError traceback, no "Exception ignored"


# ---- --url: a running service's pauses, circuits, cooldowns ---------------------------
VIEWER = "viewer-token-0123456789"
LOCAL = """\
rules:
  - name: fix-it
    matchers: ['alertname="TestBroken"']
    handler: http.request
    target: 'svc/{{ labels.service }}'
    params: {url: 'http://runbooks.local/fix/{{ labels.service }}'}
"""


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[admin.ServedApp]:
    """The real app with fix-it (cooldown 15m, max_attempts 3), a read-only token besides
    the admin one, and live state: a pause, an open circuit and a cooldown."""
    folder = tmp_path_factory.mktemp("live")
    tokens = folder / "admin-tokens.yaml"
    tokens.write_text(f'viewer:\n  token: "{VIEWER}"\n  access: read\n')
    settings = admin.make_settings(admin.write_rules(folder / "rules.yaml"), admin_tokens_file=tokens)
    with admin.serve_in_thread(settings, admin.Calls()) as app:
        fire(app, service="cooling")
        for n in range(3):
            fire(app, service="broken", outcome="failed", attempt=str(n))
        body = {"reason": "db upgrade", "for": "2h", "matchers": ['service="paused"']}
        status, _ = http("POST", f"{app.url}/api/v1/pauses", body, admin.admin_headers())
        assert status == 201
        yield app


def fire(app: admin.ServedApp, **labels: Any) -> None:
    status, body = http(
        "POST",
        f"{app.url}/webhooks/alertmanager",
        payload(alert("TestBroken", **labels)),
        admin.webhook_headers(),
    )
    assert status == 202, body
    [event_id] = body["event_ids"]
    for _ in range(400):
        if http("GET", f"{app.url}/api/v1/events/{event_id}", headers=admin.admin_headers())[0] == 200:
            return
        time.sleep(0.05)
    raise TimeoutError(event_id)


def live_alerts(tmp_path: Path) -> tuple[Path, Path]:
    local = tmp_path / "local.yaml"
    local.write_text(LOCAL, encoding="utf-8")
    services = ("paused", "broken", "cooling", "free")
    return alerts_file(tmp_path, *(alert("TestBroken", service=s) for s in services)), local


def test_url_shows_the_live_pause_open_circuit_and_cooldown_with_a_read_only_token(
    served: admin.ServedApp,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("REMEDIATOR_ADMIN_TOKEN", VIEWER)  # reads only
    alerts, local = live_alerts(tmp_path)
    report = simulated(capsys, str(alerts), "--rules", str(local), "--url", served.url)
    paused, broken, cooling, free = (e["matches"][0] for e in report)
    assert [h["by"] for h in paused["holds"]] == ["pause"]
    assert paused["will"][0].startswith("held: paused by pause p-") and "(admin)" in paused["will"][0]
    assert paused["will"][0].endswith(": db upgrade; it waits, then goes on")
    assert paused["will"][-1] == "runs the handler"  # the cooldown it may meet is its own: none
    assert broken["will"][-1].startswith("skipped:circuit_open: the circuit is open until ")
    assert broken["live"]["circuit"]["remaining_seconds"] > 0
    assert cooling["will"] == [cooling["will"][0]] and cooling["will"][0].startswith(
        "skipped:cooldown: in cooldown until "
    )
    assert free["will"] == ["runs the handler"] and free["live"]["rule_loaded"] is True
    assert (free["live"]["cooldown"], free["live"]["circuit"], free["live"]["lease"]) == (None, None, None)

    code, out, _ = run(capsys, "simulate", str(alerts), "--rules", str(local), "--url", served.url)
    assert code == 0
    assert "      1. skipped:cooldown: in cooldown until " in out
    assert "      1. skipped:circuit_open: the circuit is open until " in out


def test_url_at_a_later_time_lets_the_cooldown_end(
    served: admin.ServedApp, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    alerts, local = live_alerts(tmp_path)
    report = simulated(capsys, str(alerts), "--rules", str(local), "--url", served.url, "--at", "+30m")
    _, broken, cooling, _ = (e["matches"][0] for e in report)
    assert cooling["will"] == ["runs the handler"]  # the 15m cooldown is over by then
    assert broken["will"][-1].startswith("skipped:circuit_open:")  # open for attempt_window: 1h


def test_url_errors_are_clear(
    served: admin.ServedApp,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    alerts, local = live_alerts(tmp_path)
    monkeypatch.setenv("REMEDIATOR_ADMIN_TOKEN", "wrong-token-0123456789")
    code, _, err = run(capsys, "simulate", str(alerts), "--rules", str(local), "--url", served.url)
    assert (
        code == 1
        and err.strip()
        == "remediator simulate: unauthorized (401): the service rejected REMEDIATOR_ADMIN_TOKEN"
    )


def test_a_lease_held_then_is_waited_for_and_one_that_ends_before_is_not(rules: Path) -> None:
    """The outlook over a service's answer (as ``--url`` reads it): a lease another run
    holds at the simulated time is waited for; at a later time it holds nothing."""
    load_plugins(["handlers"])  # as the command does: the built-in handlers register
    ruleset = load_rules(rules, default_registry)
    alerts = [alert_model("CacheStale", namespace="blog")]
    lease = {"until": "2026-12-08T12:10:00.000Z", "remaining_seconds": 600.0, "holder": "01abc"}
    state = {"rule_loaded": True, "cooldown": None, "circuit": None, "lease": lease}
    live = simulating.LiveState(url="http://service", gates={("cache-flush", "cache/blog"): state})
    for at, expected in (
        (
            DAY,
            "waits for the target's lease, held now by another run (event 01abc) until "
            "2026-12-08T12:10:00.000Z",
        ),
        ("2026-12-08T12:30:00Z", None),
    ):
        report = simulate(ruleset, alerts)
        simulating.outlook(ruleset, alerts, report, simulating.parse_at(at, 0.0), live)
        will = report[0]["matches"][0]["will"]
        assert will == ([expected] if expected else []) + ["runs the handler"]


def test_the_cli_pages_example_is_what_simulate_prints(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """docs/reference/cli.md shows simulate on the rules of docs/how-to/rule-tests.md."""
    (rules,) = [
        b for b in blocks(ROOT / "docs" / "how-to" / "rule-tests.md", "yaml") if "maintenance_windows:" in b
    ]
    (shown,) = [
        b for b in blocks(ROOT / "docs" / "reference" / "cli.md", "console") if "--at 2026-12-08" in b
    ]
    command, *lines = shown.splitlines()
    (tmp_path / "rules.yaml").write_text(rules, encoding="utf-8")
    down = alert("CheckoutDown", namespace="shop", generator_url="")
    (tmp_path / "checkout-down.json").write_text(json.dumps({k: v for k, v in down.items() if k != "endsAt"}))
    argv = command.removeprefix("$ remediator ").split()
    code, out, _ = run(capsys, *[str(tmp_path / a) if a.endswith((".json", ".yaml")) else a for a in argv])
    assert code == 0
    printed = out.splitlines()
    assert printed[:3] == lines[:3] and lines[3] == "    ..."
    assert printed[-4:] == lines[4:]


class _OldService(BaseHTTPRequestHandler):
    """A service from before /api/v1/gates: pauses and rules answer, the gates are a 404."""

    def do_GET(self) -> None:
        path = self.path.split("?")[0]
        answers = {"/api/v1/pauses": {"pauses": [], "windows": []}, "/api/v1/rules": {"dry_run": False}}
        body = answers.get(path, {"error": "not found", "detail": path})
        self.send_response(200 if path in answers else 404)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(json.dumps(body).encode())

    def log_message(self, *_: Any) -> None:
        pass


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, *_: Any) -> None:  # a client gone mid-answer is no news here (stderr is checked)
        pass


def test_url_of_a_service_without_the_gates_route_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server = _QuietServer(("127.0.0.1", 0), _OldService)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        alerts, local = live_alerts(tmp_path)
        url = f"http://127.0.0.1:{server.server_address[1]}"
        code, out, err = run(capsys, "simulate", str(alerts), "--rules", str(local), "--url", url)
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
    assert (code, out) == (1, "")
    assert err.strip() == (
        f"remediator simulate: {url} has no /api/v1/gates (a service older than this command): its live "
        "cooldowns and circuits cannot be read; without --url, simulate checks the rules file alone "
        "(--from-events reads REMEDIATOR_URL)"
    )


def test_a_full_brake_says_a_new_target_is_held(rules: Path) -> None:
    """The service's brake of the rule (``GET /api/v1/brakes``, as ``--url`` reads it): full,
    a target it has not acted on is held until an operator releases it; not full, nothing."""
    load_plugins(["handlers"])
    ruleset = load_rules(rules, default_registry)
    alerts = [alert_model("CacheStale", namespace="blog")]
    brake = {"rule": "cache-flush", "count": 5, "within_seconds": 3600.0, "counted": 5, "open": True}
    for counted, expected in ((5, True), (4, False)):
        live = simulating.LiveState(
            url="http://service", brakes={"cache-flush": {**brake, "counted": counted}}
        )
        report = simulate(ruleset, alerts)
        simulating.outlook(ruleset, alerts, report, simulating.parse_at(DAY, 0.0), live)
        will = report[0]["matches"][0]["will"]
        note = (
            "held:brake unless the target is one of the 5 the rule acted on within 1h (max_targets: 5; "
            "live): an operator releases it with remediator brakes release cache-flush"
        )
        assert will == ([note] if expected else []) + ["runs the handler"]
