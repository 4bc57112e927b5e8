"""Configuration from the environment (prefix ``REMEDIATOR_``); CLI flags win."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from remediator.durations import Duration

_SECRETS = (
    "webhook_token",
    "webhook_password",
    "admin_token",
    "slack_bot_token",
    "slack_webhook_url",
    "clickhouse_password",
)


class Settings(BaseSettings):
    """Every knob of the service. Secrets may also be read from ``*_FILE``."""

    model_config = SettingsConfigDict(env_prefix="REMEDIATOR_", extra="ignore")

    rules: Path = Path("rules.yaml")
    host: str = "0.0.0.0"
    port: int = Field(default=8080, ge=0, le=65535)
    redis_url: SecretStr | None = None
    redis_prefix: str = "remediator"
    webhook_token: SecretStr | None = None
    webhook_username: str | None = None
    webhook_password: SecretStr | None = None
    insecure_no_auth: bool = False
    admin_token: SecretStr | None = None
    dry_run: bool = False
    workers: int = Field(default=4, ge=0, le=256)  # 0: intake-only replica
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    handler_modules: list[str] = ["handlers"]

    slack_bot_token: SecretStr | None = None
    slack_channel: str | None = None
    slack_webhook_url: SecretStr | None = None
    slack_api_url: str = "https://slack.com/api/"

    clickhouse_user: str = "default"
    clickhouse_password: SecretStr | None = None

    log_format: Literal["json", "console"] = "json"
    log_level: str = "INFO"

    # Queue and state tuning (seconds unless noted).
    reclaim_idle: Duration = 60.0
    heartbeat: Duration = 5.0
    max_deliveries: int = Field(default=5, ge=1)
    defer_interval: Duration = 5.0
    firing_ttl: Duration = 6 * 3600.0
    episode_ttl: Duration = 7 * 86400.0
    audit_max_events: int = Field(default=10_000, ge=10)
    audit_retention: Duration = 7 * 86400.0
    stream_max_len: int = Field(default=100_000, ge=100)
    rules_poll_interval: Duration = 2.0
    shutdown_grace: Duration = 30.0

    @model_validator(mode="before")
    @classmethod
    def _read_secret_files(cls, data: object) -> object:
        """``REMEDIATOR_X_FILE=/path`` sets secret ``x`` from the file's content."""
        import os

        if not isinstance(data, dict):
            return data
        for name in _SECRETS:
            path = os.environ.get(f"REMEDIATOR_{name.upper()}_FILE")
            if path and not data.get(name):
                data[name] = Path(path).read_text(encoding="utf-8").strip()
        return data

    @model_validator(mode="after")
    def _slack_channel_with_token(self) -> Settings:
        if self.slack_bot_token is not None and not self.slack_channel:
            raise ValueError("REMEDIATOR_SLACK_BOT_TOKEN is set but REMEDIATOR_SLACK_CHANNEL is "
                             "not: name the channel (or its id) to post incident threads in")
        return self

    def webhook_auth_configured(self) -> bool:
        return self.webhook_token is not None or (
            self.webhook_username is not None and self.webhook_password is not None
        )

    # Memory store only: per-alert entries kept at most (oldest evicted, counted in
    # remediator_store_evictions_total{kind}); Redis keeps them until their TTL.
    memory_max_firing: int = Field(default=100_000, ge=100)
    memory_max_episodes: int = Field(default=100_000, ge=100)
