"""The environment, checked strictly: blank secrets are unset, short credentials and unknown
variables stop the start, and no error ever prints a secret's value."""

from __future__ import annotations

import os
import re
from pathlib import Path

import aiohttp
import pytest

from remediator.settings import (
    MIN_SECRET_LENGTH,
    REMOVED_VARIABLES,
    VERIFIED_SECRETS,
    Settings,
    SettingsError,
    known_variables,
    load_settings,
    secret_fields,
)
from tests.support.cli import Ran, run_main
from tests.support.procs import ROOT
from tests.support.serve_procs import ServeProcess

LONG = "a-long-enough-credential-0123456789"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No REMEDIATOR_* variable of the environment the tests run in."""
    for name in [n for n in os.environ if n.upper().startswith("REMEDIATOR_")]:
        monkeypatch.delenv(name)


def remediator(*args: str, **env: str) -> Ran:
    """``remediator ARGS`` (in this process) with exactly these REMEDIATOR_* variables."""
    return run_main(*args, env=env)


# ---- item 1: a blank secret is unset, a short credential is an error ---------------------
@pytest.mark.parametrize("name", secret_fields())
def test_a_blank_secret_is_unset(name: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    variable = f"REMEDIATOR_{name.upper()}"
    for blank in ("", "  ", "\n"):
        monkeypatch.setenv(variable, blank)
        assert getattr(Settings(), name) is None
        assert getattr(Settings(**{name: blank}), name) is None  # type: ignore[arg-type]
    monkeypatch.delenv(variable)
    newline = tmp_path / "secret"
    newline.write_text("\n", encoding="utf-8")
    monkeypatch.setenv(f"{variable}_FILE", str(newline))
    assert getattr(Settings(), name) is None


def test_a_blank_variable_falls_back_to_its_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text(LONG + "\n", encoding="utf-8")
    monkeypatch.setenv("REMEDIATOR_WEBHOOK_TOKEN", " ")
    monkeypatch.setenv("REMEDIATOR_WEBHOOK_TOKEN_FILE", str(token))
    settings = load_settings()
    assert settings.webhook_token is not None and settings.webhook_token.get_secret_value() == LONG


@pytest.mark.parametrize("name", VERIFIED_SECRETS)
def test_a_short_credential_is_an_error_naming_the_variable(
    name: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    short = "s" * (MIN_SECRET_LENGTH - 1)
    if name == "webhook_password":
        monkeypatch.setenv("REMEDIATOR_WEBHOOK_USERNAME", "alertmanager")
    monkeypatch.setenv(f"REMEDIATOR_{name.upper()}", short)
    with pytest.raises(SettingsError) as raised:
        load_settings()
    assert raised.value.problems == [
        f"REMEDIATOR_{name.upper()}: a credential must be at least "
        "16 characters long (e.g. `openssl rand -base64 32`)"
    ]
    monkeypatch.delenv(f"REMEDIATOR_{name.upper()}")
    path = tmp_path / "secret"
    path.write_text(short + "\n", encoding="utf-8")
    monkeypatch.setenv(f"REMEDIATOR_{name.upper()}_FILE", str(path))
    with pytest.raises(SettingsError, match=f"REMEDIATOR_{name.upper()}_FILE: a credential"):
        load_settings()
    path.write_text("s" * MIN_SECRET_LENGTH, encoding="utf-8")
    assert getattr(load_settings(), name).get_secret_value() == "s" * MIN_SECRET_LENGTH


def test_secrets_of_other_systems_have_no_minimum(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REMEDIATOR_CLICKHOUSE_PASSWORD", "pw")
    monkeypatch.setenv("REMEDIATOR_REDIS_URL", "redis://r/0")
    assert load_settings().clickhouse_password is not None


def test_basic_auth_needs_username_and_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REMEDIATOR_WEBHOOK_USERNAME", "alertmanager")
    with pytest.raises(
        SettingsError, match="REMEDIATOR_WEBHOOK_USERNAME is set but REMEDIATOR_WEBHOOK_PASSWORD is not"
    ):
        load_settings()


def test_serve_refuses_blank_webhook_credentials(tmp_path: Path) -> None:
    newline = tmp_path / "token"
    newline.write_text("\n", encoding="utf-8")
    for env in (
        {"REMEDIATOR_WEBHOOK_TOKEN": "", "REMEDIATOR_ADMIN_TOKEN": ""},
        {"REMEDIATOR_WEBHOOK_TOKEN": "   "},
        {"REMEDIATOR_WEBHOOK_TOKEN_FILE": str(newline)},
    ):
        result = remediator("serve", "--port", "0", **env)
        assert result.returncode == 2, (env, result.stderr)
        assert "refusing to start without webhook credentials" in result.stderr
        assert "an empty value counts as unset" in result.stderr


def test_serve_refuses_a_short_token_without_printing_it() -> None:
    result = remediator("serve", "--port", "0", REMEDIATOR_WEBHOOK_TOKEN="Sh0rtT0ken")
    assert result.returncode == 2
    assert "REMEDIATOR_WEBHOOK_TOKEN: a credential must be at least 16 characters" in result.stderr
    assert "Sh0rtT0ken" not in result.stdout + result.stderr


@pytest.mark.server
async def test_a_blank_admin_token_file_disables_the_admin_api(tmp_path: Path) -> None:
    """A running `serve`: the empty bearer opens neither the admin API nor the webhook."""
    newline = tmp_path / "admin-token"
    newline.write_text("\n", encoding="utf-8")
    serve = ServeProcess(
        tmp_path / "serve.log", REMEDIATOR_ADMIN_TOKEN_FILE=str(newline), REMEDIATOR_WEBHOOK_TOKEN=LONG
    )
    serve.start()
    try:
        empty = {"Authorization": "Bearer "}
        async with aiohttp.ClientSession(serve.url) as http:
            async with http.post("/api/v1/pause", json={"for": "30d"}, headers=empty) as resp:
                assert resp.status == 404
            async with http.post("/webhooks/alertmanager", json={}, headers=empty) as resp:
                assert resp.status == 401
    finally:
        serve.stop()


# ---- item 3: no secret value in any settings error ---------------------------------------
def _markers() -> dict[str, str]:
    """A unique value per secret (``Qz<i>...<i>zQ``), long enough to pass the length check."""
    values = {name: f"Qz{i}-{name}-secret-{i}zQ" for i, name in enumerate(secret_fields())}
    values["redis_url"] = f"redis://:{values['redis_url']}@127.0.0.1:1/0"
    values["slack_webhook_url"] = f"https://hooks.slack.test/{values['slack_webhook_url']}"
    return values


def _fragments(value: str) -> list[str]:
    """The head and tail of the marker in ``value``: a cut repr would still show one of them."""
    marker = re.search(r"Qz\d.*\dzQ", value)
    assert marker is not None
    return [marker.group()[:5], marker.group()[-5:]]


FAILURES = {  # extra variables -> what stderr must say
    "slack channel missing": ({}, "REMEDIATOR_SLACK_CHANNEL is not"),
    "short credential": (
        {"REMEDIATOR_SLACK_CHANNEL": "#ops"},
        "a credential must be at least 16 characters long",
    ),
    "invalid port": (
        {"REMEDIATOR_SLACK_CHANNEL": "#ops", "REMEDIATOR_PORT": "eighty"},
        "REMEDIATOR_PORT: Input should be a valid integer",
    ),
    "invalid JSON": (
        {"REMEDIATOR_SLACK_CHANNEL": "#ops", "REMEDIATOR_HANDLER_MODULES": "handlers"},
        "REMEDIATOR_HANDLER_MODULES: not valid JSON",
    ),
    "unknown variable": (
        {"REMEDIATOR_SLACK_CHANNEL": "#ops", "REMEDIATOR_DRYRUN": "true"},
        "did you mean REMEDIATOR_DRY_RUN?",
    ),
}


@pytest.mark.parametrize("from_files", [False, True], ids=["env", "files"])
@pytest.mark.parametrize("failure", list(FAILURES))
def test_a_failed_start_prints_no_secret(failure: str, from_files: bool, tmp_path: Path) -> None:
    """Every secret set (from the variable, or from its _FILE) with a marker; serve fails."""
    markers = _markers()
    if failure == "short credential":
        markers["admin_token"] = "Qz9-short9zQ"
    env, expected = FAILURES[failure]
    env = dict(env, REMEDIATOR_WEBHOOK_USERNAME="alertmanager")
    for name, value in markers.items():
        if from_files:
            path = tmp_path / name
            path.write_text(value + "\n", encoding="utf-8")
            env[f"REMEDIATOR_{name.upper()}_FILE"] = str(path)
        else:
            env[f"REMEDIATOR_{name.upper()}"] = value
    result = remediator("serve", **env)
    assert result.returncode == 2, result.stderr
    assert expected in result.stderr
    output = result.stdout + result.stderr
    for name, value in markers.items():
        for fragment in _fragments(value):
            assert fragment not in output, (name, output)


# ---- item 10: unknown REMEDIATOR_* variables ---------------------------------------------
@pytest.mark.parametrize(
    "command",
    [["serve"], ["check", "rules.yaml"], ["simulate", "examples/alertmanager/flink-failed-firing.json"]],
)
def test_a_mistyped_variable_stops_every_command(command: list[str]) -> None:
    result = remediator(*command, REMEDIATOR_WEBHOOK_TOKEN=LONG, REMEDIATOR_DRYRUN="true")
    assert result.returncode == 2
    assert "REMEDIATOR_DRYRUN is not a remediator variable: did you mean REMEDIATOR_DRY_RUN?" in result.stderr


def test_unknown_variables_are_all_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REMEDIATOR_WEBHOOK_TOKNE", LONG)
    monkeypatch.setenv("REMEDIATOR_SERVICE_HOST", "10.0.0.1")
    monkeypatch.setenv("REMEDIATOR_ZZZ", "1")
    with pytest.raises(SettingsError) as raised:
        load_settings()
    assert raised.value.problems == [
        "REMEDIATOR_SERVICE_HOST is not a remediator variable: it looks like a Kubernetes "
        "service link of a Service named remediator: set enableServiceLinks: false in the pod spec",
        "REMEDIATOR_WEBHOOK_TOKNE is not a remediator variable: did you mean REMEDIATOR_WEBHOOK_TOKEN?",
        "REMEDIATOR_ZZZ is not a remediator variable: see docs/reference/configuration.md for "
        "the known variables",
    ]


def test_every_field_its_file_and_the_clients_variables_are_known() -> None:
    known = known_variables()
    for name in Settings.model_fields:
        assert f"REMEDIATOR_{name.upper()}" in known
    for name in secret_fields():
        assert f"REMEDIATOR_{name.upper()}_FILE" in known
    assert {"REMEDIATOR_URL", "REMEDIATOR_ADMIN_TOKEN", "REMEDIATOR_ADMIN_TOKEN_FILE"} <= known


def test_every_variable_the_repository_sets_is_known() -> None:
    """A shipped manifest, script or doc that sets an unknown variable would now stop the start."""
    places = [
        "remediator",
        "handlers",
        "tests",
        "demo",
        "deploy",
        "bench",
        "examples",
        "Dockerfile",
        "Makefile",
        "docs",
        "mkdocs.yml",
        "README.md",
        "rules.yaml",
    ]
    found: dict[str, Path] = {}
    for place in places:
        root = ROOT / place
        for path in [root] if root.is_file() else sorted(root.rglob("*")):
            if path.is_file() and path.name != Path(__file__).name and "__pycache__" not in path.parts:
                for name in re.findall(
                    r"(?<![A-Za-z0-9_])REMEDIATOR_[A-Z0-9_]*[A-Z0-9]",
                    path.read_text(encoding="utf-8", errors="replace"),
                ):
                    found.setdefault(name, path)
    assert "REMEDIATOR_WEBHOOK_TOKEN" in found
    for example in ("REMEDIATOR_DRYRUN", "REMEDIATOR_SERVICE_HOST"):  # the configuration page's
        assert found.pop(example).name == "configuration.md"  # examples of unknown variables
    known = known_variables() | set(REMOVED_VARIABLES)  # the upgrade notes name removed ones
    unknown = {name: str(path) for name, path in found.items() if name not in known}
    assert unknown == {}


# ---- issue 26: every setting is read; removed ones warn ------------------------------------
def test_every_setting_is_read_outside_the_settings_module() -> None:
    """A field nothing reads is a knob that turns nothing (REMEDIATOR_STREAM_MAX_LEN was one):
    each must be read as an attribute (``settings.workers``) somewhere in the service."""
    sources = [
        path.read_text(encoding="utf-8")
        for place in ("remediator", "handlers")
        for path in sorted((ROOT / place).rglob("*.py"))
        if path != ROOT / "remediator" / "settings.py"
    ]
    code = "\n".join(sources)
    unread = [name for name in Settings.model_fields if not re.search(rf"\.{name}\b", code)]
    assert unread == []


def test_a_removed_variable_is_ignored_with_a_warning() -> None:
    """An upgrade must not stop a Deployment that still sets a variable nothing reads now."""
    result = run_main("check", "rules.yaml", env={"REMEDIATOR_STREAM_MAX_LEN": "100000"})
    assert result.returncode == 0, result.stderr
    assert (
        "remediator: warning: REMEDIATOR_STREAM_MAX_LEN is removed in 0.2.0: nothing read it" in result.stderr
    )
    assert "delete it from the environment" in result.stderr
    assert "REMEDIATOR_STREAM_MAX_LEN" not in known_variables()
