"""The shipped configuration, pointed at the demo's servers and made fast enough for a demo.

``rules_overlay`` loads the repository's ``rules.yaml`` and changes only what must
change (ClickHouse node addresses, the URL Jangar's probe asks) or what would not fit in two minutes (lease,
timeouts, poll intervals); every change is listed so the demo can say what it
altered. ``alertmanager_config`` does the same for ``deploy/alertmanager/alertmanager.yml``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from remediator.rules.documents import load_yaml
from tests.support.alertmanager import SHIPPED_CONFIG, derive_config
from tests.support.procs import ROOT

SHIPPED_RULES = ROOT / "rules.yaml"
CLICKHOUSE_RULE = "clickhouse-replica-readonly"
FLINK_RULE = "flink-ta-failed"
WS_RULE = "torghut-ws-not-ready"
JANGAR_RULE = "jangar-ch-database"

LEASE = "8s"  # a SIGKILLed replica's lease must run out within the demo
TIMEOUT = "2m"
VERIFY = {CLICKHOUSE_RULE: "90s", FLINK_RULE: "60s", WS_RULE: "60s", JANGAR_RULE: "60s"}
POLL_INTERVAL = "500ms"
GROUP_WAIT, GROUP_INTERVAL = "1s", "2s"


@dataclass
class Overlay:
    document: dict[str, Any]
    changes: list[str] = field(default_factory=list)

    def set(
        self,
        where: dict[str, Any],
        key: str,
        value: Any,
        label: str,
        inherited: Any = None,
        *,
        unit: str = "",
    ) -> None:
        old = where.get(key, inherited)
        where[key] = value
        shown = "(default)" if old is None else _show(old)
        self.changes.append(f"{label}: {key} {shown} -> {_show(value)}{unit}")

    def write(self, path: Path) -> Path:
        header = "# rules.yaml as shipped, with the demo's changes:\n" + "".join(
            f"#   {change}\n" for change in self.changes
        )
        path.write_text(header + yaml.safe_dump(self.document, sort_keys=False), encoding="utf-8")
        return path


def _show(value: Any) -> str:
    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()


def rules_overlay(clickhouse_nodes: list[str], jangar_url: str | None = None) -> Overlay:
    """The shipped rules with the demo's node and Jangar addresses and short timings."""
    overlay = Overlay(load_yaml(SHIPPED_RULES.read_bytes(), str(SHIPPED_RULES)))
    defaults = overlay.document.setdefault("defaults", {})
    overlay.set(defaults, "lease", LEASE, "defaults")
    overlay.set(defaults, "timeout", TIMEOUT, "defaults")
    for rule in overlay.document["rules"]:
        name = rule["name"]
        if name not in VERIFY:
            continue
        params = rule.setdefault("params", {})
        if name == CLICKHOUSE_RULE:
            overlay.set(params, "nodes", clickhouse_nodes, name)
        if name == JANGAR_RULE and jangar_url is not None:
            overlay.set(rule["probe"], "url", jangar_url, f"{name}: probe")
            overlay.set(rule["probe"], "interval", POLL_INTERVAL, f"{name}: probe", "10s")
        overlay.set(rule, "verify_timeout", VERIFY[name], name, defaults.get("verify_timeout"))
        overlay.set(params, "poll_interval", POLL_INTERVAL, name, "2s")
    missing = set(VERIFY) - {r["name"] for r in overlay.document["rules"]}
    if missing:
        raise KeyError(f"{SHIPPED_RULES} lacks the rule(s) {sorted(missing)} the demo replays")
    return overlay


def alertmanager_config(webhook_url: str, token_file: Path) -> tuple[dict[str, Any], list[str]]:
    """The shipped receiver, pointed at the demo's Service, with short group timings."""
    shipped = load_yaml(SHIPPED_CONFIG.read_bytes(), str(SHIPPED_CONFIG))
    route = next(r for r in shipped["route"]["routes"] if r["receiver"] == "remediator")
    config = derive_config(
        webhook_url=webhook_url,
        credentials_file=token_file,
        group_wait=GROUP_WAIT,
        group_interval=GROUP_INTERVAL,
        repeat_interval=route["repeat_interval"],
    )
    changes = [
        f"receiver remediator: url -> {webhook_url} (the demo's Service in front of both replicas)",
        f'route remediate="true": group_wait {route["group_wait"]} -> {GROUP_WAIT}, '
        f"group_interval {route['group_interval']} -> {GROUP_INTERVAL}",
    ]
    return config, changes
