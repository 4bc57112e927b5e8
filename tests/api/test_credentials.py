"""Named admin credentials: who the admin API says did what, read-only tokens, bad token files."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from remediator.api.auth import Credentials, load_credentials
from remediator.api.service import SERVICE
from remediator.app import create_app
from remediator.settings import Settings, SettingsError
from remediator.store.base import global_pause
from tests.support import admin
from tests.support.cli import run_main
from tests.support.payloads import alert, payload
from tests.support.waiting import wait_event

ALICE = "alice-token-0123456789"
VIEWER = "viewer-token-0123456789"
BOB = "bob-token-0123456789abc"  # stored in the file only as its SHA-256


def tokens_file(tmp_path: Path, text: str | None = None) -> Path:
    path = tmp_path / "admin-tokens.yaml"
    bob_hash = hashlib.sha256(BOB.encode()).hexdigest()
    path.write_text(
        text
        if text is not None
        else f'alice: "{ALICE}"\nbob: "sha256:{bob_hash}"\nviewer:\n  token: "{VIEWER}"\n  access: read\n'
    )
    return path


def credentials(tmp_path: Path, **overrides: Any) -> Credentials:
    if "admin_tokens_file" not in overrides:
        overrides["admin_tokens_file"] = tokens_file(tmp_path)
    settings = Settings(rules=tmp_path / "rules.yaml", **overrides)
    return load_credentials(settings)


# ---- the file -------------------------------------------------------------------------
def test_plain_hashed_and_read_only_tokens_are_identified(tmp_path: Path) -> None:
    creds = credentials(tmp_path, admin_token=admin.ADMIN_TOKEN)
    found = {token: creds.identify(f"Bearer {token}") for token in (ALICE, BOB, VIEWER, admin.ADMIN_TOKEN)}
    assert {t: (c.name, c.access) if c else None for t, c in found.items()} == {
        ALICE: ("alice", "admin"),
        BOB: ("bob", "admin"),
        VIEWER: ("viewer", "read"),
        admin.ADMIN_TOKEN: ("admin", "admin"),
    }
    hashed = "sha256:" + hashlib.sha256(BOB.encode()).hexdigest()
    for header in (
        "",
        "Bearer",
        "Bearer ",
        f"Basic {ALICE}",
        "Bearer wrong-token-0123456789",
        f"Bearer {hashed}",
    ):
        assert creds.identify(header) is None, header
    assert creds.identify("Bearer t\udcffk\u00e9n") is None  # undecodable bytes: a plain "no"


def test_without_any_credential_the_admin_api_is_off(tmp_path: Path) -> None:
    assert not load_credentials(Settings(rules=tmp_path / "rules.yaml"))
    assert load_credentials(Settings(rules=tmp_path / "rules.yaml", admin_token=admin.ADMIN_TOKEN))


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('carol: "short"\n', "entry 'carol': a token must be at least 16 characters long"),
        ('carol: "sha256:abc"\n', "entry 'carol': a hashed token is sha256: followed by 64 hex digits"),
        (f'carol:\n  token: "{ALICE}"\n  access: root\n', "entry 'carol': access must be 'admin' or 'read'"),
        (
            f'carol:\n  token: "{ALICE}"\n  role: read\n',
            "entry 'carol': unknown keys role (known: token, access)",
        ),
        (f'admin: "{ALICE}"\n', "entry 'admin': the name is REMEDIATOR_ADMIN_TOKEN's name"),
        (f'carol: "{ALICE}"\ndave: "{ALICE}"\n', "entry 'dave': the same token as another entry"),
        (f'"bad name!": "{ALICE}"\n', "entry 'bad name!': a name is letters, digits"),
        ("carol: 12\n", "entry 'carol': the token is missing or not a string"),
        ("- carol\n", "expected a mapping of name: token entries"),
        (f'carol: "{ALICE}\n', "not valid YAML"),
    ],
)
def test_a_bad_tokens_file_names_the_entry_never_the_token(tmp_path: Path, text: str, problem: str) -> None:
    with pytest.raises(SettingsError) as caught:
        credentials(tmp_path, admin_token=admin.ADMIN_TOKEN, admin_tokens_file=tokens_file(tmp_path, text))
    message = "\n".join(caught.value.problems)
    assert "REMEDIATOR_ADMIN_TOKENS_FILE" in message and problem in message, message
    assert ALICE not in message and admin.ADMIN_TOKEN not in message


def test_serve_refuses_a_bad_tokens_file_without_printing_it(tmp_path: Path) -> None:
    env = {
        "REMEDIATOR_WEBHOOK_TOKEN": "webhook-token-0123456789",
        "REMEDIATOR_ADMIN_TOKENS_FILE": str(
            tokens_file(tmp_path, f'carol: "{ALICE}"\ndave: "short-secret"\n')
        ),
        "REMEDIATOR_RULES": str(admin.write_rules(tmp_path / "rules.yaml")),
        "REMEDIATOR_HANDLER_MODULES": "[]",
    }
    done = run_main("serve", "--port", "0", env=env)
    assert done.returncode == 2, done.stderr
    assert "entry 'dave': a token must be at least 16 characters long" in done.stderr
    assert ALICE not in done.stdout + done.stderr and "short-secret" not in done.stdout + done.stderr


# ---- the API ----------------------------------------------------------------------------
@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[tuple[TestClient[Any, Any], admin.Calls]]:
    calls = admin.Calls()
    settings = admin.make_settings(
        admin.write_rules(tmp_path / "rules.yaml"), admin_tokens_file=tokens_file(tmp_path)
    )
    app = create_app(settings, registry=admin.make_registry(calls))
    async with TestClient(TestServer(app)) as test_client:
        yield test_client, calls


async def test_a_read_only_token_reads_but_cannot_act(
    client: tuple[TestClient[Any, Any], admin.Calls],
) -> None:
    http, calls = client
    viewer = admin.admin_headers(VIEWER)
    for path in ("/api/v1/events", "/api/v1/rules", "/api/v1/pause"):
        response = await http.get(path, headers=viewer)
        assert response.status == 200, (path, await response.text())
    acts = [
        ("POST", "/api/v1/pause", {"reason": "maintenance", "for": "30m"}),
        ("DELETE", "/api/v1/pause", None),
        ("POST", "/api/v1/replay/0123abcd", {}),
        ("POST", "/api/v1/replay", alert("TestBroken", service="api")),
    ]
    for method, path, body in acts:
        response = await http.request(method, path, json=body, headers=viewer)
        assert response.status == 403, (method, path)
        assert await response.json() == {
            "error": "this token is read-only",
            "detail": "'viewer' may only read",
        }
    assert await global_pause(http.app[SERVICE].store.pauses) is None and calls.runs == []


async def test_the_audit_and_the_pause_show_the_authenticated_name(
    client: tuple[TestClient[Any, Any], admin.Calls],
) -> None:
    http, _ = client
    store = http.app[SERVICE].store
    response = await http.post(
        "/webhooks/alertmanager",
        json=payload(alert("TestBroken", service="api")),
        headers=admin.webhook_headers(),
    )
    [original] = (await response.json())["event_ids"]
    await wait_event(store, original)
    replayed = await http.post(
        f"/api/v1/replay/{original}",
        json={"ignore_cooldown": True, "note": "go"},
        headers=admin.admin_headers(BOB),
    )
    assert replayed.status == 202, await replayed.text()
    [again] = (await replayed.json())["event_ids"]
    event = await wait_event(store, again)
    assert (event.requested_by, event.note) == ("bob", f"replay of {original}: go")
    shown = await (await http.get(f"/api/v1/events/{again}", headers=admin.admin_headers(VIEWER))).json()
    assert shown["requested_by"] == "bob"
    first = await (await http.get(f"/api/v1/events/{original}", headers=admin.admin_headers(ALICE))).json()
    assert first["requested_by"] == ""  # Alertmanager's own jobs have no requester

    paused = await http.post(
        "/api/v1/pause",
        json={"reason": "db upgrade", "for": "10m", "by": "mallory"},
        headers=admin.admin_headers(ALICE),
    )
    assert (await paused.json())["by"] == "alice"
    stored = await global_pause(store.pauses)
    assert stored is not None and stored.by == "alice"


async def test_the_single_admin_token_still_works_as_admin(tmp_path: Path) -> None:
    settings = admin.make_settings(admin.write_rules(tmp_path / "rules.yaml"))  # ADMIN_TOKEN only, no file
    async with TestClient(
        TestServer(create_app(settings, registry=admin.make_registry(admin.Calls())))
    ) as http:
        response = await http.post(
            "/api/v1/pause", json={"reason": "x", "for": "1m"}, headers=admin.admin_headers()
        )
        assert response.status == 200 and (await response.json())["by"] == "admin"
        response = await http.get("/api/v1/pause", headers=admin.admin_headers(ALICE))
        assert response.status == 401


@pytest.mark.parametrize(
    "text",
    [
        f'carol: "{VIEWER}"\n"{ALICE}":\n',  # the token pasted where the name goes, no value
        f'carol: "{VIEWER}"\n"{ALICE}": read\n',
        f'carol: "{VIEWER}"\n"{ALICE}=": "{BOB}"\n',  # not even a valid name
    ],
)
def test_an_entry_whose_name_may_be_a_token_is_shown_by_its_line(tmp_path: Path, text: str) -> None:
    with pytest.raises(SettingsError) as caught:
        credentials(tmp_path, admin_tokens_file=tokens_file(tmp_path, text))
    (problem,) = caught.value.problems
    assert "REMEDIATOR_ADMIN_TOKENS_FILE" in problem and "entry at line 2" in problem, problem
    assert ALICE not in problem and BOB not in problem, problem
