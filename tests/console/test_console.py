"""The web console's routes: sign-in, every page, the actions, and what keeps them safe."""

from __future__ import annotations

import asyncio
import html
import re
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from pydantic import ValidationError

from remediator.api.service import SERVICE, Service
from remediator.app import create_app
from remediator.console.attention import Waiting
from remediator.console.rendering import environment
from remediator.models import AuditEvent, Outcome, Step
from remediator.store.values import Approval, JobState
from tests.support.admin import (
    RULES,
    Calls,
    make_registry,
    make_settings,
    webhook_headers,
    write_rules,
)
from tests.support.payloads import alert, payload, with_service
from tests.support.waiting import wait_event

ALICE = "alice-console-token-0123"
VIEWER = "viewer-console-token-0123"
HOSTILE = "<script>alert(1)</script>"
PROMETHEUS = "http://prometheus.test:9090/graph?g0.expr=up"
Client = TestClient[Any, Any]


@pytest.fixture
async def console(tmp_path: Path) -> AsyncIterator[tuple[Client, Service]]:
    tokens = tmp_path / "tokens.yaml"
    tokens.write_text(f'alice: "{ALICE}"\nviewer:\n  token: "{VIEWER}"\n  access: read\n')
    settings = make_settings(
        write_rules(tmp_path / "rules.yaml", RULES), admin_token=None, admin_tokens_file=tokens, ui=True
    )
    app = create_app(settings, registry=make_registry(Calls()))
    async with TestClient(TestServer(app)) as client:
        yield client, app[SERVICE]


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "no CSRF field in the page"
    return found.group(1)


async def sign_in(client: Client, token: str) -> str:
    """Sign in; the CSRF token of the new session."""
    form = await client.get("/ui/signin")
    response = await client.post(
        "/ui/signin", data={"token": token, "csrf": csrf_of(await form.text())}, allow_redirects=False
    )
    assert response.status == 303, await response.text()
    page = await client.get("/ui/")
    assert page.status == 200
    return csrf_of(await page.text())


async def fire(client: Client, svc: Service, **labels: str) -> str:
    response = await client.post(
        "/webhooks/alertmanager",
        json=payload(alert("TestBroken", **with_service(labels))),
        headers=webhook_headers(),
    )
    assert response.status == 202, await response.text()
    event_id: str = (await response.json())["event_ids"][0]
    await wait_event(svc.store, event_id)
    return event_id


async def test_without_a_session_every_page_redirects_to_sign_in(console: tuple[Client, Service]) -> None:
    client, _ = console
    for path in ("/ui/", "/ui/waiting", "/ui/pauses", "/ui/rules", "/ui/events/abc"):
        response = await client.get(path, allow_redirects=False)
        assert (response.status, response.headers["Location"]) == (303, "/ui/signin"), path
    refused = await client.post("/ui/pauses", data={"reason": "x", "for": "1h"}, allow_redirects=False)
    assert refused.status == 303
    assert await client.app[SERVICE].store.pauses.list_pauses() == []


async def test_a_wrong_token_is_refused_and_the_cookie_is_signed(console: tuple[Client, Service]) -> None:
    client, _ = console
    form = await client.get("/ui/signin")
    wrong = await client.post("/ui/signin", data={"token": "nope", "csrf": csrf_of(await form.text())})
    assert wrong.status == 401 and "Unknown token" in await wrong.text()
    forged = "YWxpY2U|admin|9999999999|" + "0" * 64  # alice, admin, far future, bad signature
    client.session.cookie_jar.update_cookies({"remediator_ui": forged})
    response = await client.get("/ui/", allow_redirects=False)
    assert response.status == 303


async def test_sign_in_sets_a_strict_http_only_cookie_and_every_page_renders(
    console: tuple[Client, Service],
) -> None:
    client, svc = console
    form = await client.get("/ui/signin")
    response = await client.post(
        "/ui/signin", data={"token": ALICE, "csrf": csrf_of(await form.text())}, allow_redirects=False
    )
    cookie = next(v for k, v in response.headers.items() if k == "Set-Cookie" and "remediator_ui=" in v)
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Max-Age=28800" in cookie
    assert "Path=/ui/" in cookie and "Secure" not in cookie  # plain HTTP here: Secure only under TLS
    event_id = await fire(client, svc)
    for path, text in (
        ("/ui/", event_id),
        (f"/ui/events/{event_id}", "Timeline"),
        ("/ui/waiting", "Waiting"),
        ("/ui/pauses", "Add a pause"),
        ("/ui/rules", "fix-it"),
    ):
        page = await client.get(path)
        body = await page.text()
        assert page.status == 200 and text in body, path
        assert "alice" in body
        csp = page.headers["Content-Security-Policy"]
        assert "default-src 'self'" in csp and "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
        assert "form-action 'self'" in csp
        assert page.headers["X-Content-Type-Options"] == "nosniff"
        assert page.headers["Referrer-Policy"] == "same-origin"
    event = await client.get(f"/ui/events/{event_id}")
    assert f'href="{PROMETHEUS}"' in await event.text()  # the alert's generatorURL (one builder now)
    signin = await client.get("/ui/signin")
    assert "Content-Security-Policy" in signin.headers
    filtered = await client.get("/ui/?rule=fix-it&outcome=failed")
    assert event_id not in await filtered.text()
    searched = await client.get(f"/ui/?q={event_id}")
    assert event_id in await searched.text()


async def test_hostile_labels_are_shown_as_text(console: tuple[Client, Service]) -> None:
    client, svc = console
    await sign_in(client, ALICE)
    event_id = await fire(client, svc, service="api", note=HOSTILE)
    for path in (f"/ui/events/{event_id}", "/ui/"):
        body = await (await client.get(path)).text()
        assert HOSTILE not in body
    body = await (await client.get(f"/ui/events/{event_id}")).text()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body


async def test_a_javascript_link_in_an_alert_is_not_rendered(console: tuple[Client, Service]) -> None:
    client, svc = console
    await sign_in(client, ALICE)
    hostile = alert("TestBroken", service="api")
    hostile["generatorURL"] = "javascript:alert(1)"
    hostile["annotations"]["runbook_url"] = "https://runbooks.local/fix-it"
    response = await client.post("/webhooks/alertmanager", json=payload(hostile), headers=webhook_headers())
    event_id = (await response.json())["event_ids"][0]
    await wait_event(svc.store, event_id)
    body = await (await client.get(f"/ui/events/{event_id}")).text()
    assert "javascript:" not in body and 'href="https://runbooks.local/fix-it"' in body


async def test_actions_need_the_csrf_token(console: tuple[Client, Service]) -> None:
    client, svc = console
    csrf = await sign_in(client, ALICE)
    for data in ({"reason": "x", "for": "1h"}, {"reason": "x", "for": "1h", "csrf": "wrong"}):
        refused = await client.post("/ui/pauses", data=data, allow_redirects=False)
        assert refused.status == 403 and "CSRF" in await refused.text()
        assert "Content-Security-Policy" in refused.headers
    assert await svc.store.pauses.list_pauses() == []
    added = await client.post(
        "/ui/pauses",
        data={"reason": "deploy", "for": "1h", "matchers": 'service="api"', "csrf": csrf},
        allow_redirects=False,
    )
    assert added.status == 303
    [pause] = await svc.store.pauses.list_pauses()
    assert (pause.by, pause.reason, pause.matchers) == ("alice", "deploy", ('service="api"',))
    listed = await (await client.get("/ui/pauses")).text()
    assert pause.id in listed and "End now" in listed
    ended = await client.post(f"/ui/pauses/{pause.id}/end", data={"csrf": csrf}, allow_redirects=False)
    assert ended.status == 303 and await svc.store.pauses.list_pauses() == []
    bad = await client.post("/ui/pauses", data={"reason": "x", "for": "forever", "csrf": csrf})
    assert bad.status == 400 and "invalid pause" in await bad.text()


async def test_the_sign_in_form_needs_its_csrf_token(console: tuple[Client, Service]) -> None:
    client, _ = console
    await client.get("/ui/signin")
    refused = await client.post("/ui/signin", data={"token": ALICE}, allow_redirects=False)
    assert refused.status == 403


async def test_replay_is_recorded_with_the_signed_in_name(console: tuple[Client, Service]) -> None:
    client, svc = console
    csrf = await sign_in(client, ALICE)
    event_id = await fire(client, svc)
    response = await client.post(
        f"/ui/events/{event_id}/replay",
        data={"csrf": csrf, "ignore_cooldown": "on", "note": "after the fix"},
        allow_redirects=False,
    )
    assert response.status == 303, await response.text()
    replayed_id = response.headers["Location"].rsplit("/", 1)[1]
    replayed = await wait_event(svc.store, replayed_id)
    assert replayed.manual and replayed.requested_by == "alice"
    assert replayed.note == f"replay of {event_id}: after the fix"
    assert replayed.outcome_label == "succeeded"  # the cooldown of the first run was ignored


async def test_a_read_only_session_sees_but_cannot_act(console: tuple[Client, Service]) -> None:
    client, svc = console
    csrf = await sign_in(client, VIEWER)
    event_id = await fire(client, svc)
    event_page = await (await client.get(f"/ui/events/{event_id}")).text()
    assert "Replay" not in event_page and "(read-only)" in event_page
    assert "Add a pause" not in await (await client.get("/ui/pauses")).text()
    for path, data in (
        ("/ui/pauses", {"reason": "x", "for": "1h"}),
        (f"/ui/events/{event_id}/replay", {}),
        (f"/ui/approvals/{event_id}", {"decision": "approve"}),
    ):
        refused = await client.post(path, data={**data, "csrf": csrf}, allow_redirects=False)
        assert refused.status == 403 and "read-only" in await refused.text(), path
    assert await svc.store.pauses.list_pauses() == []
    signed_out = await client.post("/ui/signout", data={"csrf": csrf}, allow_redirects=False)
    assert signed_out.status == 303
    assert (await client.get("/ui/", allow_redirects=False)).status == 303


async def test_the_console_is_off_by_default(tmp_path: Path) -> None:
    settings = make_settings(write_rules(tmp_path / "rules.yaml"))
    async with TestClient(TestServer(create_app(settings, registry=make_registry(Calls())))) as client:
        assert (await client.get("/ui/signin")).status == 404


def listed(html: str) -> list[str]:
    return re.findall(r'<a href="/ui/events/([^"]+)">', html)


async def test_activity_filters_by_target_and_time_and_pages_keep_them(
    console: tuple[Client, Service],
) -> None:
    client, svc = console
    await sign_in(client, ALICE)
    base = (time.time() - 3 * 86400) // 60 * 60  # three days ago, on a minute
    for i in range(120):  # oldest first, as the worker records them; a minute apart
        await svc.store.audit.record_event(
            AuditEvent(
                event_id=f"old-{i}",
                rule="fix-it",
                target="svc/db" if i % 2 else "svc/api",
                received_at=base + i * 60,
                finished_at=base + i * 60,
                outcome=Outcome.SUCCEEDED,
            )
        )
    recent = await fire(client, svc)  # svc/api, now
    db = {f"old-{i}" for i in range(1, 120, 2)}
    first = await client.get("/ui/?target=svc/db&rule=fix-it")
    body = await first.text()
    assert first.status == 200 and set(listed(body)) <= db and len(listed(body)) >= 50
    more = re.search(r'<a href="(/ui/\?[^"]+)" rel="next">', body)
    assert more, "no link to older events"
    link = html.unescape(more.group(1))
    assert "target=svc%2Fdb" in link and "rule=fix-it" in link
    rest = listed(await (await client.get(link)).text())
    assert set(listed(body)) | set(rest) == db and not set(listed(body)) & set(rest)
    last_hour = listed(await (await client.get("/ui/?since=1h")).text())
    assert last_hour == [recent]
    start = datetime.fromtimestamp(base + 10 * 60, UTC).strftime("%Y-%m-%dT%H:%M")
    end = datetime.fromtimestamp(base + 20 * 60, UTC).strftime("%Y-%m-%dT%H:%M")
    window = await client.get("/ui/", params={"from": start, "to": end, "target": "db"})
    assert listed(await window.text()) == [f"old-{i}" for i in (19, 17, 15, 13, 11)]
    combined = await client.get("/ui/", params={"since": "7d", "target": "svc/api", "outcome": "failed"})
    assert listed(await combined.text()) == []
    for bad in ({"since": "1y"}, {"from": "yesterday"}):
        refused = await client.get("/ui/", params=bad)
        assert refused.status == 400, bad


async def test_the_event_page_links_to_alertmanager_from_the_recorded_external_url(
    console: tuple[Client, Service],
) -> None:
    client, svc = console
    await sign_in(client, ALICE)
    event_id = await fire(client, svc)
    event = await svc.store.audit.get_event(event_id)
    assert event is not None and event.external_url == "http://alertmanager.test:9093"  # the payload's
    body = await (await client.get(f"/ui/events/{event_id}")).text()
    assert '<a href="http://alertmanager.test:9093" rel="noopener noreferrer">Alertmanager</a>' in body
    hostile = payload(alert("TestBroken", service="other"))  # another alert: a copy of the first is collapsed
    hostile["externalURL"] = "javascript:alert(1)"
    response = await client.post("/webhooks/alertmanager", json=hostile, headers=webhook_headers())
    assert response.status == 202, await response.text()
    other = (await response.json())["event_ids"][0]
    await wait_event(svc.store, other)
    body = await (await client.get(f"/ui/events/{other}")).text()
    assert "javascript:" not in body and ">Alertmanager<" not in body


@pytest.mark.parametrize(
    ("channel", "workspace", "shown"),
    [
        (
            "C0123ABCD",
            "https://acme.slack.com",
            '<a href="https://acme.slack.com/archives/C0123ABCD/p1700000000123456"',
        ),
        (
            "#ops",
            "https://acme.slack.com",
            "channel <code>#ops</code>, message <code>1700000000.123456</code>",
        ),
        ("C0123ABCD", None, "channel <code>C0123ABCD</code>, message <code>1700000000.123456</code>"),
    ],
)
async def test_the_event_page_shows_the_slack_thread_of_its_rule_and_target(
    tmp_path: Path, channel: str, workspace: str | None, shown: str
) -> None:
    tokens = tmp_path / "tokens.yaml"
    tokens.write_text(f'alice: "{ALICE}"\n')
    settings = make_settings(
        write_rules(tmp_path / "rules.yaml", RULES),
        admin_token=None,
        admin_tokens_file=tokens,
        ui=True,
        slack_bot_token="xoxb-not-used-here",
        slack_channel=channel,
        slack_api_url="http://127.0.0.1:9/",  # nothing is posted: no alert is sent
        slack_workspace_url=workspace,
    )
    app = create_app(settings, registry=make_registry(Calls()))
    async with TestClient(TestServer(app)) as client:
        svc = app[SERVICE]
        await sign_in(client, ALICE)
        now = time.time()
        for event_id, target in (("with-thread", "svc/api"), ("without-thread", "svc/db")):
            await svc.store.audit.record_event(
                AuditEvent(
                    event_id=event_id,
                    rule="fix-it",
                    target=target,
                    received_at=now,
                    finished_at=now,
                    outcome=Outcome.SUCCEEDED,
                )
            )
        assert (
            await svc.store.threads.claim_thread("fix-it", "svc/api", "1700000000.123456", 60)
            == "1700000000.123456"
        )
        body = await (await client.get("/ui/events/with-thread")).text()
        assert "Slack thread of fix-it on svc/api" in body and shown in body
        assert "Slack thread" not in await (await client.get("/ui/events/without-thread")).text()


def test_the_slack_workspace_url_must_be_an_https_origin(tmp_path: Path) -> None:
    rules = write_rules(tmp_path / "rules.yaml", RULES)
    assert make_settings(rules, slack_workspace_url="https://acme.slack.com/").slack_workspace_url == (
        "https://acme.slack.com"
    )
    for bad in ("http://acme.slack.com", "javascript:alert(1)", "https://acme.slack.com/archives"):
        with pytest.raises(ValidationError):
            make_settings(rules, slack_workspace_url=bad)


async def test_the_rules_page_shows_circuits_open_now_for_recent_targets(
    console: tuple[Client, Service],
) -> None:
    client, svc = console
    await sign_in(client, ALICE)
    await fire(client, svc, service="db", outcome="failed")
    await fire(client, svc, service="api")
    before = await (await client.get("/ui/rules")).text()
    assert "svc/db" not in before
    for _ in range(3):
        await svc.store.gates.record_failure("fix-it", "svc/db", 600.0, 3)
    body = await (await client.get("/ui/rules")).text()
    # issue 25: durations as a person reads them (was "(600 s left)")
    assert re.search(r"<code>svc/db</code> \((10m|9m \d+s) left\)", body), body
    assert "<code>svc/api</code>" not in body
    activity = await (await client.get("/ui/")).text()  # issue 25: a banner on the Activity page
    assert "Circuit open: <strong>fix-it</strong> on <code>svc/db</code>" in activity
    assert "<th>Reason</th>" in activity and "could not fix svc/db" in activity


async def test_the_event_page_shows_the_context_gathered_before_acting(
    console: tuple[Client, Service],
) -> None:
    """Each entry of the timeline's context step: its title and text (as text, never markup),
    or why it could not be gathered."""
    client, svc = console
    await sign_in(client, ALICE)
    now = time.time()
    entries = [
        {
            "kind": "kubernetes.logs",
            "title": "last 3 log lines of pod torghut/ws-1",
            "text": f"{HOSTILE}\n",
            "cut": 120,
            "tail": True,
        },
        {
            "kind": "prometheus.query",
            "title": "Prometheus: up",
            "error": "no answer within 0.3s (its timeout)",
        },
    ]
    await svc.store.audit.record_event(
        AuditEvent(
            event_id="with-context",
            rule="fix-it",
            target="svc/api",
            received_at=now,
            finished_at=now,
            outcome=Outcome.SUCCEEDED,
            timeline=[Step(at=now, name="context", message="2 entries gathered", data={"entries": entries})],
        )
    )
    body = await (await client.get("/ui/events/with-context")).text()
    assert "<h2>Context</h2>" in body and "last 3 log lines of pod torghut/ws-1" in body
    assert f"<pre>{html.escape(HOSTILE)}\n</pre>" in body and HOSTILE not in body
    assert "(120 characters cut, the end kept)" in body
    assert "Prometheus: up</strong> — could not be gathered: no answer within 0.3s (its timeout)" in body


def test_the_waiting_page_shows_the_context_of_an_approval() -> None:
    """The approval request's context on the Waiting page (the template alone, rendered as the
    console renders it)."""
    now = time.time()
    approval = Approval(
        event_id="e1",
        rule="gated",
        target="svc/a",
        alertname="Gated",
        requested_at=now,
        expires_at=now + 600,
        approvers=("U0ALICE",),
        context=({"kind": "prometheus.query", "title": "Prometheus: up", "text": f"1 {HOSTILE}"},),
    )
    job = JobState(
        event_id="e1",
        rule="gated",
        alertname="Gated",
        fingerprint="f",
        state="awaiting_approval",
        since=now,
        received_at=now,
        why="awaiting approval",
    )
    body = (
        environment()
        .get_template("waiting.html")
        .render(
            session=SimpleNamespace(name="alice", can_act=True),
            csrf="x",
            path="/ui/waiting",
            jobs=[job],
            approvals={"e1": Waiting(approval, ["U0ALICE"])},
        )
    )
    assert "Context, gathered before asking:" in body and "Prometheus: up" in body
    assert f"<pre>1 {html.escape(HOSTILE)}</pre>" in body


async def test_the_rules_page_shows_an_open_brake_and_releases_its_jobs(tmp_path: Path) -> None:
    """Issue 29: an open brake on the Rules page, with a release form (CSRF, signed-in name)."""
    tokens = tmp_path / "tokens.yaml"
    tokens.write_text(f'alice: "{ALICE}"\nviewer:\n  token: "{VIEWER}"\n  access: read\n')
    braked = RULES.replace("defaults:\n", "defaults:\n  max_targets: {count: 1, within: 10m}\n")
    settings = make_settings(
        write_rules(tmp_path / "rules.yaml", braked),
        admin_token=None,
        admin_tokens_file=tokens,
        ui=True,
        defer_interval=0.2,
    )
    app = create_app(settings, registry=make_registry(Calls()))
    async with TestClient(TestServer(app)) as client:
        svc = app[SERVICE]
        await fire(client, svc, service="one")
        held = []
        for name in ("two", "three"):
            response = await client.post(
                "/webhooks/alertmanager",
                json=payload(alert("TestBroken", **with_service({"service": name}))),
                headers=webhook_headers(),
            )
            held += (await response.json())["event_ids"]
        deadline = time.monotonic() + 10
        while len((await svc.store.brakes.state("fix-it", 600.0)).held) < 2:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
        csrf = await sign_in(client, VIEWER)
        body = await (await client.get("/ui/rules")).text()
        assert "Brake open: fix-it" in body and "<code>svc/two</code>" in body
        assert "1/1 targets in 10m, <strong>open</strong>" in body
        assert "Release all 2" not in body  # a reader sees it, and cannot release
        await client.post("/ui/signout", data={"csrf": csrf})
        csrf = await sign_in(client, ALICE)
        body = await (await client.get("/ui/rules")).text()
        assert "Release all 2" in body and f'name="event_id" value="{held[0]}"' in body
        refused = await client.post(
            "/ui/brakes/fix-it/release", data={"event_id": held[0]}, allow_redirects=False
        )
        assert refused.status == 403 and (await svc.store.brakes.state("fix-it", 600.0)).open
        empty = await client.post("/ui/brakes/fix-it/release", data={"csrf": csrf})
        assert empty.status == 400 and "nothing to release" in await empty.text()
        one = await client.post(
            "/ui/brakes/fix-it/release", data={"csrf": csrf, "event_id": held[0]}, allow_redirects=False
        )
        assert one.status == 303 and one.headers["Location"] == "/ui/rules"
        assert (await wait_event(svc.store, held[0])).outcome_label == "succeeded"
        every = await client.post(
            "/ui/brakes/fix-it/release", data={"csrf": csrf, "all": "1"}, allow_redirects=False
        )
        assert every.status == 303
        assert (await wait_event(svc.store, held[1])).outcome_label == "succeeded"
        assert "Brake open" not in await (await client.get("/ui/rules")).text()
