"""Configuration from the environment (prefix ``REMEDIATOR_``); CLI flags win.

``load_settings()`` is the strict entry point of the commands: it refuses unknown
``REMEDIATOR_*`` variables and short credentials, and its errors name variables, never values.
"""

from __future__ import annotations

import difflib
import ipaddress
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, get_args
from urllib.parse import urlsplit

import pydantic_settings
from pydantic import (
    BeforeValidator,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from remediator.durations import Duration

PREFIX = "REMEDIATOR_"
MIN_SECRET_LENGTH = 16
# The credentials remediator itself checks: they must be long enough not to be guessed.
# Slack, ClickHouse and Redis secrets are issued by those systems, which set their own rules.
VERIFIED_SECRETS = ("webhook_token", "webhook_password", "admin_token")
# Read by the admin CLI (remediator/cli/admin_client.py) and the test suite (tests/api/test_openapi.py),
# not by Settings: known, so that setting them next to the service's variables is no error.
OTHER_VARIABLES = ("REMEDIATOR_URL", "REMEDIATOR_FUZZ_EXAMPLES")
# Variables of earlier versions that nothing reads any more: still set, each is ignored with a
# warning (not refused as unknown), so an upgrade does not stop a Deployment that sets one.
REMOVED_VARIABLES = {
    "REMEDIATOR_STREAM_MAX_LEN": (
        "removed in 0.2.0: nothing read it (trimming the queue's stream would drop jobs not yet "
        "acknowledged); it is ignored: delete it from the environment"
    ),
}
# Variables the kubelet injects for a Service named "remediator" (Docker links do the same).
_SERVICE_LINK = re.compile(r"REMEDIATOR_(SERVICE_HOST|SERVICE_PORT\w*|PORT_\d+_\w+)")


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _networks(value: object) -> object:
    """``10.0.0.0/8, 192.168.1.7``: comma-separated CIDRs (an address alone is its /32 or /128)."""
    if not isinstance(value, str):
        return value
    found: list[Network] = []
    for part in (p.strip() for p in value.split(",")):
        if not part:
            continue
        try:
            found.append(ipaddress.ip_network(part, strict=False))
        except ValueError:
            raise ValueError(f"{part!r} is not an address or a CIDR network such as 10.0.0.0/8") from None
    return found


class SettingsError(Exception):
    """The environment is not a valid configuration; ``problems`` name variables, not values."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


class Settings(BaseSettings):
    """Every knob of the service. Secrets may also be read from ``*_FILE``."""

    # Empty variables count as unset (the default applies); see _blank_is_unset for blanks.
    model_config = SettingsConfigDict(
        env_prefix=PREFIX, extra="ignore", env_ignore_empty=True, use_attribute_docstrings=True
    )

    rules: Path = Path("rules.yaml")
    """rules file (watched; see [Rule reload](rules.md#rule-reload))"""
    host: str = "0.0.0.0"
    """listen address"""
    port: int = Field(default=8080, ge=0, le=65535)
    """listen address"""
    redis_url: SecretStr | None = None
    """Redis for shared state; unset: in-memory store (one replica, nothing survives a restart)"""
    redis_prefix: str = "remediator"
    """prefix of every Redis key"""
    webhook_token: SecretStr | None = None
    """bearer token Alertmanager must send (at least 16 characters)"""
    webhook_username: str | None = None
    """basic auth instead of (or besides) the token; both or neither, the password at least 16 characters"""
    webhook_password: SecretStr | None = None
    """basic auth instead of (or besides) the token; both or neither, the password at least 16 characters"""
    insecure_no_auth: bool = False
    """`serve` accepts webhooks without credentials (as `--insecure-no-auth`): local testing only"""
    admin_token: SecretStr | None = None
    """bearer token of the admin API (at least 16 characters), known as the credential `admin`; with
    neither this nor `ADMIN_TOKENS_FILE`, every admin route answers 404
    """
    admin_tokens_file: Path | None = None  # named admin credentials (api/credentials.py)
    """named admin credentials, one per person or tool (see [Admin API](../reference/api.md#admin-api));
    reloaded when it changes (every `RULES_POLL_INTERVAL`): a removed token stops working at once
    """
    ui: bool = False  # the web console under /ui/ (remediator/console)
    """serve the [web console](../how-to/console.md) under `/ui/`"""
    ui_session_key: SecretStr | None = None  # signs console sessions; unset: a per-process key
    """secret that signs console sessions, so that replicas share them; unset: a random key per process (a
    restart signs everyone out)
    """
    # Failed credentials (webhook, admin API, console sign-in; api/limits.py): this many in the
    # window from one client address, or for one presented name, and it is refused (429).
    auth_max_failures: int = Field(default=20, ge=1, le=1000)
    """this many wrong credentials within the window from one client address, or for one basic-auth user
    name, and that caller is answered `429` with `Retry-After` (webhook, admin API, console sign-in; see
    [Security](security.md))
    """
    auth_failure_window: Duration = Field(default=60.0, gt=0, le=86400.0)
    """this many wrong credentials within the window from one client address, or for one basic-auth user
    name, and that caller is answered `429` with `Retry-After` (webhook, admin API, console sign-in; see
    [Security](security.md))
    """
    # Proxies whose X-Forwarded-For is believed (an Ingress): comma-separated CIDRs. Unset:
    # only the peer address counts.
    trusted_proxies: Annotated[list[Network], NoDecode, BeforeValidator(_networks)] = []
    """comma-separated addresses or CIDRs (`10.0.0.0/8, 192.168.1.7`) of proxies (an Ingress) whose
    `X-Forwarded-For` is believed for the client's address; unset: only the peer address counts
    """
    dry_run: bool = False
    """plan only, everywhere (wins over rules and replays)"""
    # serve makes its process undumpable (cli/hardening.py); true leaves it as it is, to debug
    dumpable: bool = False
    """`serve` makes its process undumpable at start (`prctl(PR_SET_DUMPABLE, 0)`, Linux): other processes
    of its user, `command.run` scripts included, cannot read its `/proc` environment, memory or
    descriptors, and py-spy, gdb and core dumps cannot either. `true` leaves the process as it is, for a
    debugging session only (see [Security](../reference/security.md))
    """
    workers: int = Field(default=4, ge=0, le=256)  # 0: intake-only replica
    """worker tasks per replica; `0` makes an intake-only replica (accepts and stores, runs nothing)"""
    intake_concurrency: int = Field(default=4, ge=0, le=1024)
    """while this replica's workers are busy, at most this many webhook requests are read, validated
    and stored at once; the others wait their turn, so a flood of alerts leaves the workers their
    share of the event loop (`api/pacing.py`); `0`: no cap
    """
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    """webhook body limit (413 above it)"""
    handler_modules: list[str] = ["handlers"]
    """Python modules that register handlers (JSON list)"""

    slack_bot_token: SecretStr | None = None
    """Slack threads via `chat.postMessage`"""
    slack_channel: str | None = None
    """Slack threads via `chat.postMessage`"""
    slack_webhook_url: SecretStr | None = None
    """Slack incoming webhook (flat messages)"""
    slack_api_url: str = "https://slack.com/api/"
    """another Slack-compatible API base"""
    # verifies Slack's interactivity requests (approval buttons): api/slack_interactions.py
    slack_signing_secret: SecretStr | None = None
    """the Slack app's signing secret: verifies every request to `POST /slack/interactions` (the Approve
    and Reject buttons, see [Approvals](../how-to/approvals.md)); unset: that route answers 404. A
    secret, also as `_FILE`
    """
    # https://<workspace>.slack.com: lets the console link an event to its Slack thread
    slack_workspace_url: str | None = None
    """the workspace's `https://<name>.slack.com`: the [web console](../how-to/console.md) links an event
    to its Slack thread (with `SLACK_CHANNEL` given as a channel id)
    """

    # PagerDuty Events API v2: an incident when a circuit opens (notify/pagerduty.py).
    pagerduty_routing_key: SecretStr | None = None
    """PagerDuty Events API v2 integration key: an incident when a circuit opens (see
    [PagerDuty](../how-to/pagerduty.md)); a secret, also as `_FILE`
    """
    pagerduty_api_url: str = "https://events.pagerduty.com"
    """base URL of the Events API (events go to `<url>/v2/enqueue`)"""

    clickhouse_user: str = "default"
    """credentials of `clickhouse.restore_replica`"""
    clickhouse_password: SecretStr | None = None
    """credentials of `clickhouse.restore_replica`"""

    log_format: Literal["json", "console"] = "json"
    """`json` or `console`"""
    log_level: str = "INFO"
    """the lowest level logged: `DEBUG`, `INFO`, `WARNING` or `ERROR`"""

    # Queue and state tuning (seconds unless noted).
    reclaim_idle: Duration = 60.0
    """a job whose worker has been silent this long is re-delivered to another worker"""
    heartbeat: Duration = 5.0
    """how often a running job extends its lease and shows it is alive"""
    max_deliveries: int = Field(default=5, ge=1)
    """deliveries after which a job is dead-lettered, not retried"""
    defer_interval: Duration = 5.0
    """how often an inhibited or held job, or one awaiting approval, looks again"""
    firing_ttl: Duration = 6 * 3600.0
    """how long a firing alert counts as firing without a new notification"""
    episode_ttl: Duration = 7 * 86400.0
    """how long "done for this firing episode" is remembered"""
    audit_max_events: int = Field(default=10_000, ge=10)
    """audit cap and retention"""
    audit_retention: Duration = 7 * 86400.0
    """audit cap and retention"""
    # What one audit event keeps of a handler's plan and details (worker/capping.py), in bytes
    audit_event_max_bytes: int = Field(default=4096, ge=1024, le=1024 * 1024)
    """what one audit event keeps of a handler's plan and details (their JSON, in bytes); beyond it each
    keeps its first part, and `details.capped` its full size and SHA-256 (see [Sizing
    Redis](../how-to/redis.md#sizing-redis))
    """
    rules_poll_interval: Duration = 2.0
    """how often the rules file is checked for changes"""
    shutdown_grace: Duration = 30.0
    """how long running jobs may finish at shutdown"""
    # Operators' controls: the longest pause the API accepts (at most 30 days), and how
    # long a job waits (inhibited, held, awaiting approval) before its thread says why.
    max_pause: Duration = Field(default=7 * 86400.0, gt=0, le=30 * 86400.0)
    """the longest pause the API accepts (at most `30d`); a longer `for`/`until` is a 400 `pause too long`"""
    wait_note_after: Duration = Field(default=10.0, ge=0)
    """a job that has waited this long (inhibited, held by a pause or window, awaiting approval) posts one
    note in its Slack thread saying what it waits for
    """

    # HTTP limits against slow or greedy clients (serving.py).
    header_timeout: Duration = Field(default=10.0, gt=0)  # connection or first byte -> headers
    """a connection must send a request's complete headers this soon after it opens or after its previous
    answer, else it is closed (this also ends idle keep-alive connections)
    """
    body_timeout: Duration = Field(default=30.0, gt=0)  # headers -> whole body read
    """the whole request body must arrive this soon after the headers, else `408` and the connection is
    closed
    """
    max_connections: int = Field(default=1000, ge=1)
    """open connections at most; see [HTTP API](../reference/api.md) for what happens at the limit"""

    # Memory store only: per-alert entries kept at most (oldest evicted, counted in
    # remediator_store_evictions_total{kind}); Redis keeps them until their TTL.
    memory_max_firing: int = Field(default=100_000, ge=100)
    """memory store only: per-alert entries kept at most, oldest evicted first (see [Running several
    replicas on Redis](../how-to/redis.md))
    """
    memory_max_episodes: int = Field(default=100_000, ge=100)
    """memory store only: per-alert entries kept at most, oldest evicted first (see [Running several
    replicas on Redis](../how-to/redis.md))
    """

    @model_validator(mode="before")
    @classmethod
    def _read_secret_files(cls, data: object) -> object:
        """``REMEDIATOR_<NAME>_FILE=/path`` sets secret ``<name>`` from the file's content,
        unless the variable of the secret itself holds more than whitespace."""
        if not isinstance(data, dict):
            return data
        environ = {key.upper(): value for key, value in os.environ.items()}
        for name in secret_fields():
            variable = f"{PREFIX}{name.upper()}_FILE"
            path = environ.get(variable)
            if path and _blank(data.get(name)):
                try:
                    data[name] = Path(path).read_text(encoding="utf-8").strip()
                except OSError as exc:
                    raise ValueError(f"{variable}: cannot read {path}: {exc.strerror}") from None
        return data

    @field_validator("*", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object, info: ValidationInfo) -> object:
        """An empty or whitespace-only value of an optional variable counts as unset."""
        optional = info.field_name is not None and cls.model_fields[info.field_name].default is None
        return None if optional and _blank(value) else value

    @model_validator(mode="after")
    def _slack_channel_with_token(self) -> Settings:
        if self.slack_bot_token is not None and not self.slack_channel:
            raise ValueError(
                "REMEDIATOR_SLACK_BOT_TOKEN is set but REMEDIATOR_SLACK_CHANNEL is "
                "not: name the channel (or its id) to post incident threads in"
            )
        return self

    @field_validator("slack_workspace_url")
    @classmethod
    def _workspace_is_https(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme != "https" or not parts.hostname or parts.path.strip("/") or parts.query:
            raise ValueError("must be the workspace's https URL, e.g. https://acme.slack.com")
        return f"https://{parts.netloc}"

    @model_validator(mode="after")
    def _basic_auth_complete(self) -> Settings:
        if (self.webhook_username is None) != (self.webhook_password is None):
            names = ["REMEDIATOR_WEBHOOK_USERNAME", "REMEDIATOR_WEBHOOK_PASSWORD"]
            given, missing = names if self.webhook_password is None else names[::-1]
            raise ValueError(f"{given} is set but {missing} is not: basic auth needs both")
        return self

    def slack_webhook_mode(self) -> bool:
        """Slack posts through an incoming webhook (one fixed channel), not a bot token."""
        return self.slack_bot_token is None and self.slack_webhook_url is not None

    def webhook_auth_configured(self) -> bool:
        return self.webhook_token is not None or (
            self.webhook_username is not None and self.webhook_password is not None
        )


def _blank(value: object) -> bool:
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    return value is None or (isinstance(value, str) and not value.strip())


def secret_fields() -> list[str]:
    """The fields typed ``SecretStr``: never printed, and each may come from ``*_FILE``."""
    return [
        name
        for name, field in Settings.model_fields.items()
        if field.annotation is SecretStr or SecretStr in get_args(field.annotation)
    ]


def known_variables() -> set[str]:
    """Every ``REMEDIATOR_*`` variable something in remediator reads."""
    names = {f"{PREFIX}{name.upper()}" for name in Settings.model_fields}
    names |= {f"{PREFIX}{name.upper()}_FILE" for name in secret_fields()}
    return names | set(OTHER_VARIABLES)


def unknown_variables(environ: Mapping[str, str]) -> list[str]:
    """One problem per ``REMEDIATOR_*`` variable nothing reads, naming the closest known one."""
    known, problems = known_variables(), []
    for name in sorted(key.upper() for key in environ if key.upper().startswith(PREFIX)):
        if name in known or name in REMOVED_VARIABLES:
            continue
        if _SERVICE_LINK.fullmatch(name):
            hint = (
                "it looks like a Kubernetes service link of a Service named remediator: "
                "set enableServiceLinks: false in the pod spec"
            )
        else:
            suffixes = sorted(k.removeprefix(PREFIX) for k in known)  # the prefix matches all
            close = difflib.get_close_matches(name.removeprefix(PREFIX), suffixes, n=1, cutoff=0.6)
            hint = (
                f"did you mean {PREFIX}{close[0]}?"
                if close
                else "see docs/reference/configuration.md for the known variables"
            )
        problems.append(f"{name} is not a remediator variable: {hint}")
    return problems


def removed_variables(environ: Mapping[str, str]) -> list[str]:
    """One warning per variable of an earlier version still set (see ``REMOVED_VARIABLES``)."""
    names = sorted(key.upper() for key in environ)
    return [f"{name} is {REMOVED_VARIABLES[name]}" for name in names if name in REMOVED_VARIABLES]


def _validation_problems(exc: ValidationError) -> list[str]:
    """One line per error: the variable and pydantic's message; the value only of a field
    that is not a secret (the whole-model input, which holds every secret, never)."""
    secrets, problems = set(secret_fields()), []
    for error in exc.errors(include_url=False):
        message = error["msg"].removeprefix("Value error, ")
        if not error["loc"]:
            problems.append(message)
            continue
        field = str(error["loc"][0])
        line = f"{PREFIX}{field.upper()}: {message}"
        if field not in secrets and isinstance(error.get("input"), str | int | float):
            line += f" (got {str(error['input'])[:100]!r})"
        problems.append(line)
    return problems


def _short_secrets(settings: Settings, environ: Mapping[str, str]) -> list[str]:
    problems = []
    for name in VERIFIED_SECRETS:
        value: Any = getattr(settings, name)
        if value is None or len(value.get_secret_value().strip()) >= MIN_SECRET_LENGTH:
            continue
        variable = f"{PREFIX}{name.upper()}"
        if _blank(environ.get(variable)):
            variable += "_FILE"  # the value came from the file
        problems.append(
            f"{variable}: a credential must be at least {MIN_SECRET_LENGTH} "
            "characters long (e.g. `openssl rand -base64 32`)"
        )
    return problems


def load_settings() -> Settings:
    """Settings from the environment, checked strictly; ``SettingsError`` lists every problem."""
    environ = {key.upper(): value for key, value in os.environ.items()}
    problems = unknown_variables(environ)
    try:
        settings = Settings()
    except ValidationError as exc:
        raise SettingsError(problems + _validation_problems(exc)) from None
    except pydantic_settings.SettingsError as exc:  # a list (HANDLER_MODULES) that is not JSON
        field = re.search(r'field "(\w+)"', str(exc))
        name = f"{PREFIX}{field.group(1).upper()}" if field else "a variable"
        problem = f'{name}: not valid JSON (write a JSON list, e.g. ["handlers"])'
        raise SettingsError([*problems, problem]) from None
    problems += _short_secrets(settings, environ)
    if problems:
        raise SettingsError(problems)
    return settings
