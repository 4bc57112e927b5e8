"""The active rules: loaded, validated in full, swapped atomically, last good kept."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import structlog

from remediator.errors import RulesError
from remediator.handling.registry import Registry
from remediator.metrics import Metrics
from remediator.rules.ruleset import RuleSet, load_rules

log = structlog.get_logger("remediator.rules.ruleset")


@dataclass(frozen=True)
class ReloadResult:
    ok: bool
    at: float
    hash: str
    message: str
    errors: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            "at": self.at,
            "hash": self.hash,
            "message": self.message,
            "errors": list(self.errors),
        }


class RulesHolder:
    """Holds the current RuleSet. Jobs take a reference and keep it for their run."""

    def __init__(
        self, path: Path, registry: Registry, metrics: Metrics, *, slack_webhook: bool = False
    ) -> None:
        self.path = path
        self.registry = registry
        self.metrics = metrics
        self.slack_webhook = slack_webhook  # Slack is an incoming webhook: no slack_channel
        self._rules: RuleSet | None = None
        self.last: ReloadResult | None = None

    @property
    def loaded(self) -> bool:
        return self._rules is not None

    def current(self) -> RuleSet:
        if self._rules is None:
            raise RuntimeError("rules are not loaded")
        return self._rules

    def load(self) -> ReloadResult:
        """(Re)load from disk; on any error keep the last good rules."""
        try:
            rules = load_rules(self.path, self.registry, slack_webhook=self.slack_webhook)
        except RulesError as exc:
            kept = self._rules.hash if self._rules else ""
            self.last = ReloadResult(
                False,
                time.time(),
                kept,
                "rules invalid; kept the last good rules" if kept else "rules invalid; none loaded",
                tuple(exc.problems),
            )
            self.metrics.rules_reload.labels("error").inc()
            log.error("rules.reload_failed", path=str(self.path), errors=exc.problems, kept_hash=kept)
            return self.last
        changed = self._rules is None or self._rules.hash != rules.hash
        self._rules = rules
        self.last = ReloadResult(
            True, time.time(), rules.hash, f"loaded {len(rules)} rules" if changed else "unchanged"
        )
        self.metrics.rules_reload.labels("ok").inc()
        self.metrics.rules_loaded.set(len(rules))
        if changed:
            log.info("rules.loaded", path=str(self.path), hash=rules.hash, rules=len(rules))
            if rules.warnings:  # questionable settings: `remediator check --strict` fails on them
                log.warning("rules.warnings", path=str(self.path), warnings=list(rules.warnings))
        return self.last
