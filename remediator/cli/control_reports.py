"""Plain-text renderings of the operators' controls for people: pauses and windows, the
jobs view, approval requests, the loaded rules. Times in UTC (24 hours), durations as a
person reads them (``59m left``), nothing cut."""

from __future__ import annotations

import time
from typing import Any

from remediator.cli.reports import clock, epoch, one_line, table, wrapped
from remediator.durations import format_duration, human_duration


def left(until: Any, now: float | None = None) -> str:
    """``59m left`` until an RFC 3339 time; ``ended`` once it has passed."""
    end = epoch(until)
    if end is None:
        return "no end"
    remaining = end - (time.time() if now is None else now)
    return f"{human_duration(remaining)} left" if remaining > 0 else "ended"


def pause_text(pause: dict[str, Any]) -> str:
    """``pause p-1a2b by alice until 2026-... (1h left) for namespace="x": why``."""
    scope = ", ".join(pause.get("matchers") or []) or "every job"
    remaining = pause.get("remaining_seconds")
    shown = f"{human_duration(remaining)} left" if remaining is not None else left(pause.get("until"))
    return (
        f"pause {pause['id']} by {pause.get('by') or '?'} until {clock(pause.get('until'))} "
        f"({shown}) for {scope}: {pause.get('reason')}"
    )


def pauses_text(found: dict[str, Any]) -> str:
    pauses = found.get("pauses", [])
    lines = [pause_text(p) for p in pauses] or ["not paused: remediation is running"]
    for window in found.get("windows", []):
        state = f"OPEN until {clock(window['open_until'])}" if window.get("open_until") else "closed"
        scope = ", ".join(window.get("matchers") or []) or "every job"
        lines.append(f"window {window['name']} ({window['schedule']}) for {scope}: {state}")
    return "\n".join(lines)


def resumed_text(lifted: list[dict[str, Any]], scoped: list[dict[str, Any]]) -> str:
    """What ``resume`` (no id) did: the pauses of every job lifted, the scoped ones left."""
    if lifted:
        ids = ", ".join(p["id"] for p in lifted)
        lines = [f"resumed: remediation runs again (lifted {ids})"]
    else:
        lines = ["was not paused; nothing to do"]
    if scoped:
        lines.append("still paused for some jobs (lift one with `remediator resume ID`):")
        lines += ["  " + pause_text(p) for p in scoped]
    return "\n".join(lines)


def jobs_table(jobs: list[dict[str, Any]]) -> str:
    """Each job without an outcome: state, since when, rule, target, alert; why, whole, under it."""
    if not jobs:
        return "no job is waiting or running"
    rows = [
        [
            job["event_id"],
            job["state"],
            clock(job["since"]),
            job["rule"],
            job["target"] or "-",
            f"{job['alertname']} ({job['fingerprint']})",
            "",
        ]
        for job in jobs
    ]
    head, *body = table(["EVENT", "STATE", "SINCE", "RULE", "TARGET", "ALERT", "WHY"], rows).splitlines()
    out = [head]
    for row, job in zip(body, jobs, strict=True):
        out += [row, *wrapped(job["why"] or "-")]
    return "\n".join(out)


def brakes_text(brakes: list[dict[str, Any]]) -> str:
    """Each rule with a brake: its limit, what it counted, and the jobs it holds."""
    if not brakes:
        return "no loaded rule has a brake (max_targets)"
    out = []
    for brake in brakes:
        limit = f"max {brake['count']} targets within {format_duration(brake['within_seconds'])}"
        state = "OPEN" + (" (dry run)" if brake["dry_run"] else "") if brake["open"] else "closed"
        out.append(f"{brake['rule']}: {state}; {limit}; {brake['counted']} counted in the window")
        for held in brake["held"]:
            dry = " (dry run)" if held["dry_run"] else ""
            out.append(f"  held {held['event_id']} {held['target']} since {clock(held['held_at'])}{dry}")
        if brake["held"]:
            out.append(f"  release: remediator brakes release {brake['rule']} [EVENT_ID...]")
    return "\n".join(out)


def released_text(released: dict[str, Any]) -> str:
    jobs = released["released"]
    lines = [f"released {len(jobs)} held job(s) of {released['rule']}; {released['still_held']} still held"]
    lines += [f"  {job['event_id']} {job['target']}" for job in jobs]
    return "\n".join(lines)


def approvals_table(approvals: list[dict[str, Any]]) -> str:
    """One line per request: id, state, rule, target, who decided (or who may), until when."""
    if not approvals:
        return "no approval requests"
    lines = []
    for a in approvals:
        who = a["decided_by"] or "approvers: " + ", ".join(a.get("approver_names") or a["approvers"])
        until = clock(a["expires_at"]) + (f", {left(a['expires_at'])}" if a["state"] == "pending" else "")
        lines.append(f"{a['event_id']}  {a['state']:<9} {a['rule']}  {a['target']}  {who}  (until {until})")
        lines += [f"    plan: {step}" for step in a["plan"]]
    return "\n".join(lines)


def dry_run_text(rule: dict[str, Any]) -> str:
    """``yes (service)``: dry-run is on, and why (the rule, the service's global flag)."""
    if not rule["dry_run"]:
        return "no"
    return "yes (" + "+".join(rule.get("dry_run_source") or ["rule"]) + ")"


def rules_text(info: dict[str, Any]) -> str:
    where = info["path"] + (f" -> {info['resolved_path']}" if info["resolved_path"] != info["path"] else "")
    head = [
        f"rules     {info['count']} loaded from {where}"
        if info["loaded"]
        else f"rules     NONE loaded ({where})",
        f"hash      {info.get('hash') or '-'}",
    ]
    if info.get("dry_run"):
        head.append("dry-run   ON for every rule (the service runs with --dry-run)")
    last = info.get("last_reload")
    if last:
        state = "ok" if last["ok"] else "FAILED (running on the last good rules)"
        head.append(f"reload    {state} at {clock(last['at'])}: {one_line(last['message'])}")
        head += [f"          {problem}" for problem in last.get("errors", [])]
    defaults: dict[str, Any] = info.get("defaults") or {}
    if defaults:
        head += _wrapped("defaults  ", [f"{k} {policy_value(v)}" for k, v in defaults.items()])
    rows = [
        [
            r["name"],
            r["handler"],
            "yes" if r["enabled"] else "no",
            dry_run_text(r),
            format_duration(r["cooldown"]),
            ", ".join(r["matchers"]),
            _overrides(r, defaults),
        ]
        for r in info.get("rules", [])
    ]
    if not rows:
        return "\n".join(head)
    body = table(["NAME", "HANDLER", "ENABLED", "DRY-RUN", "COOLDOWN", "MATCHERS", "OVERRIDES"], rows)
    return "\n".join(head) + "\n\n" + body


_OWN_COLUMN = ("cooldown", "dry_run")  # policy fields the rules table shows in a column


def _overrides(rule: dict[str, Any], defaults: dict[str, Any]) -> str:
    """The rule's policy values that differ from ``defaults`` (``lease 5m, timeout 2m``)."""
    changed = [
        f"{k} {policy_value(rule[k])}"
        for k, v in defaults.items()
        if k not in _OWN_COLUMN and k in rule and rule[k] != v
    ]
    return ", ".join(changed) or "-"


def policy_value(value: Any) -> str:
    """A policy value as rules.yaml writes it: durations with units, yes/no, lists."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):  # every float in the policy is a duration in seconds
        return format_duration(value) if value else "0s"
    if isinstance(value, list):
        return ",".join(str(v) for v in value) or "-"
    if isinstance(value, dict) and "approvers" in value:  # approval: 30m by U1,S2
        if not value.get("required"):
            return "off"
        return f"{policy_value(value['timeout'])} by {policy_value(value['approvers'])}"
    if isinstance(value, dict) and "within" in value:  # max_targets: 20/10m
        if not value.get("enabled") or value.get("count") is None:
            return "off"
        return f"{value['count']}/{policy_value(value['within'])}"
    return "-" if value is None or value == "" else str(value)


def _wrapped(label: str, items: list[str], width: int = 100) -> list[str]:
    """``label`` then ``items`` joined by commas, on lines of at most ``width``."""
    lines: list[str] = []
    current: list[str] = []
    for item in items:
        if current and len(label) + len(", ".join([*current, item])) > width:
            lines.append(", ".join(current) + ",")
            current = []
        current.append(item)
    lines.append(", ".join(current))
    return [(label if i == 0 else " " * len(label)) + text for i, text in enumerate(lines)]
