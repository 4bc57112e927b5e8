"""The rule set the service runs: loaded from ``rules.yaml``, matched against alerts.

What the rest of the service imports from ``rules``: ``RuleSet`` and ``load_rules``
here, ``Rule``, ``Plan`` and ``render`` from ``rules.rule`` (also importable from here),
the schema (``Policy``, ``RuleSpec``, ``RulesFile``) from ``rules.schema``.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from remediator.errors import RulesError
from remediator.handling.registry import Registry
from remediator.models import Alert
from remediator.rules.loading import build_rules, build_windows
from remediator.rules.parsing import read_rules_file
from remediator.rules.rule import Plan, Rule, render, template_context
from remediator.rules.schema import Policy, RulesFile, RuleSpec
from remediator.rules.windows import Window

__all__ = [
    "Plan",
    "Policy",
    "Rule",
    "RuleSet",
    "RuleSpec",
    "RulesFile",
    "load_rules",
    "parse_rules",
    "render",
    "template_context",
]


class RuleSet:
    """An immutable, validated set of rules; swapped whole on reload."""

    def __init__(
        self,
        rules: list[Rule],
        source: str,
        digest: str,
        warnings: tuple[str, ...] = (),
        defaults: Policy | None = None,
        windows: tuple[Window, ...] = (),
    ) -> None:
        self.rules = rules
        self.source = source
        self.hash = digest
        self.warnings = warnings  # questionable but possible settings, one line each
        self.defaults = defaults or Policy()  # the file's ``defaults:``
        self.windows = windows  # the file's ``maintenance_windows:``
        self._by_name = {rule.name: rule for rule in rules}
        # Most rules pin alertname="X": index them so an alert is tried only
        # against the rules that can match it (order of the file is kept).
        self._by_alertname: dict[str, list[Rule]] = {}
        self._any_alertname: list[Rule] = []
        for rule in rules:
            pinned = next((m.value for m in rule.matchers if m.name == "alertname" and m.op == "="), None)
            if pinned is None:
                self._any_alertname.append(rule)
            else:
                self._by_alertname.setdefault(pinned, []).append(rule)
        self._order = {rule.name: i for i, rule in enumerate(rules)}

    def get(self, name: str) -> Rule | None:
        return self._by_name.get(name)

    def match(self, alert: Alert) -> list[Rule]:
        labels = alert.labels
        candidates = self._by_alertname.get(labels.get("alertname", ""), [])
        if self._any_alertname:
            candidates = sorted([*candidates, *self._any_alertname], key=lambda r: self._order[r.name])
        return [rule for rule in candidates if rule.matches(labels)]

    def __len__(self) -> int:
        return len(self.rules)


def load_rules(path: Path, registry: Registry, *, slack_webhook: bool = False) -> RuleSet:
    """Read and validate ``path``; raises RulesError listing every problem."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise RulesError(str(path), [f"cannot read: {exc.strerror or exc}"]) from exc
    return parse_rules(data, str(path), registry, slack_webhook=slack_webhook)


def parse_rules(data: bytes, source: str, registry: Registry, *, slack_webhook: bool = False) -> RuleSet:
    """Validate ``data``; raises RulesError listing every error, each with its line.

    Questionable settings do not fail: they come back in ``RuleSet.warnings``.
    ``slack_webhook``: Slack is an incoming webhook, so ``slack_channel`` is refused.
    """
    read = read_rules_file(data, source)
    rules, warnings = build_rules(read, source, registry, slack_webhook=slack_webhook)
    digest = hashlib.sha256(data).hexdigest()[:16]
    return RuleSet(rules, source, digest, warnings, read.file.defaults.policy(), build_windows(read.file))
