"""``remediator approvals | approve | reject`` against a real running service."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support import admin
from tests.support.cli import http, run
from tests.support.payloads import alert, payload

RULES = """\
rules:
  - name: gated-fix
    matchers: ['alertname="TestBroken"']
    handler: test.fix
    target: 'svc/{{ labels.service }}'
    approval: {timeout: 10m, approvers: [U0ALICE]}
"""


def until(served: admin.ServedApp, path: str, within: float = 20.0) -> Any:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        status, body = http("GET", served.url + path, headers=admin.admin_headers())
        if status == 200 and body not in ([], {"approvals": []}):
            return body
        time.sleep(0.05)
    raise AssertionError(f"nothing at {path}")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[admin.ServedApp]:
    rules = admin.write_rules(tmp_path_factory.mktemp("approve") / "rules.yaml", RULES)
    with admin.serve_in_thread(admin.make_settings(rules, defer_interval=0.05), admin.Calls()) as app:
        yield app


def fire(served: admin.ServedApp, service: str) -> str:
    status, body = http(
        "POST",
        f"{served.url}/webhooks/alertmanager",
        payload(alert("TestBroken", service=service)),
        admin.webhook_headers(),
    )
    assert status == 202, body
    [event_id] = body["event_ids"]
    return str(event_id)


def test_approve_and_reject_from_the_shell(
    served: admin.ServedApp, capsys: pytest.CaptureFixture[str]
) -> None:
    first = fire(served, "one")
    until(served, "/api/v1/approvals?state=pending")
    code, out, _ = run(capsys, "approvals", "--url", served.url, "--state", "pending")
    assert code == 0 and first in out and "pending" in out and "approvers: U0ALICE" in out
    assert "plan: fix the target (succeeded)" in out
    code, out, _ = run(capsys, "approve", first, "--url", served.url, "--note", "change 42")
    assert (code, out.strip()) == (0, f"approved {first}: gated-fix on svc/one")
    event = until(served, f"/api/v1/events/{first}")
    assert event["outcome"] == "succeeded"
    assert [s["message"] for s in event["timeline"] if s["name"] == "approval.approved"] == [
        "approved by admin: change 42"
    ]
    code, _, err = run(capsys, "reject", first, "--url", served.url)
    assert code == 1 and "HTTP 409: already decided: approved by admin: change 42" in err
    second = fire(served, "two")
    until(served, "/api/v1/approvals?state=pending")
    code, out, _ = run(capsys, "reject", second, "--url", served.url, "--json")
    assert code == 0 and json.loads(out)["state"] == "rejected"
    assert until(served, f"/api/v1/events/{second}")["outcome"] == "skipped:rejected"
    code, _, err = run(capsys, "approve", "no-such-id", "--url", served.url)
    assert code == 1 and "HTTP 404" in err
