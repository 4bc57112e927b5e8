"""``remediator brakes`` (list, release) against a real running service, and what
``simulate`` shows of a brake."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import admin
from tests.support.cli import http, run
from tests.support.payloads import alert, payload

RULES = """\
rules:
  - name: wide
    matchers: ['alertname="TestBroken"']
    handler: test.fix
    target: 'svc/{{ labels.service }}'
    max_targets: {count: 1, within: 10m}
"""

SIMULATED = """\
rules:
  - name: wide
    matchers: ['alertname="TestBroken"']
    handler: http.request
    target: 'svc/{{ labels.service }}'
    params: {url: 'http://svc/restart/{{ labels.service }}'}
    max_targets: {count: 1, within: 10m}
"""


def until(served: admin.ServedApp, path: str, ready: Any, within: float = 20.0) -> Any:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        status, body = http("GET", served.url + path, headers=admin.admin_headers())
        if status == 200 and ready(body):
            return body
        time.sleep(0.05)
    raise AssertionError(f"never ready: {path}")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[admin.ServedApp]:
    rules = admin.write_rules(tmp_path_factory.mktemp("brakes") / "rules.yaml", RULES)
    with admin.serve_in_thread(admin.make_settings(rules, defer_interval=0.05), admin.Calls()) as app:
        yield app


def test_list_and_release_held_jobs_from_the_shell(
    served: admin.ServedApp, capsys: pytest.CaptureFixture[str]
) -> None:
    alerts = [alert("TestBroken", service=name) for name in ("a", "b", "c")]
    status, body = http(
        "POST", f"{served.url}/webhooks/alertmanager", payload(*alerts), admin.webhook_headers()
    )
    assert status == 202, body
    brakes = until(served, "/api/v1/brakes", lambda b: len(b["brakes"][0]["held"]) == 2)
    held = [h["event_id"] for h in brakes["brakes"][0]["held"]]
    code, out, _ = run(capsys, "brakes", "--url", served.url)
    assert code == 0 and out.startswith("wide: OPEN; max 1 targets within 10m; 1 counted in the window")
    assert all(event_id in out for event_id in held)
    assert "release: remediator brakes release wide [EVENT_ID...]" in out
    code, out, _ = run(capsys, "brakes", "release", "wide", held[0], "--url", served.url)
    assert code == 0 and out.startswith("released 1 held job(s) of wide; 1 still held")
    assert until(served, f"/api/v1/events/{held[0]}", lambda e: True)["outcome"] == "succeeded"
    code, out, _ = run(capsys, "brakes", "release", "wide", "--url", served.url, "--json")
    assert code == 0 and [j["event_id"] for j in json.loads(out)["released"]] == [held[1]]
    code, _, err = run(capsys, "brakes", "release", "--url", served.url)
    assert code == 2 and "needs the rule" in err
    code, _, err = run(capsys, "brakes", "release", "Bad/Rule", "--url", served.url)
    assert code == 2 and "invalid rule name" in err
    code, _, err = run(capsys, "brakes", "release", "nope", "--url", served.url)
    assert code == 1 and "HTTP 404" in err


def test_simulate_shows_which_targets_the_brake_would_hold(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rules = tmp_path / "rules.yaml"  # simulate plans with the built-in handlers
    rules.write_text(SIMULATED, encoding="utf-8")
    alerts = [alert("TestBroken", service=name) for name in ("a", "a", "b")]
    (tmp_path / "payload.json").write_text(json.dumps(payload(*alerts)))
    code, out, _ = run(capsys, "simulate", str(tmp_path / "payload.json"), "--rules", str(rules))
    lines = [line.strip() for line in out.splitlines() if "brake:" in line]
    assert code == 0 and lines == [
        "brake: target 1 of this payload counts toward max_targets 1 within 10m",
        "brake: target 1 of this payload counts toward max_targets 1 within 10m",
        "brake: held:brake: target 2 of this payload, over max_targets 1 within 10m "
        "(released by an operator)",
    ]
