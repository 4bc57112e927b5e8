"""Plain-text renderings of admin API answers for people (the CLI's non-JSON output)."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

from remediator.durations import format_duration


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned columns separated by two spaces; the last column is not padded."""
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]
    lines = []
    for row in [list(headers), *rows]:
        cells = [cell.ljust(widths[i]) for i, cell in enumerate(row[:-1])] + [row[-1]]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def clock(epoch: float | None) -> str:
    if not epoch:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(epoch)) + "Z"


def clip(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def detail_text(detail: Any) -> str:
    """An error body's ``detail`` on one line (validation errors as ``loc: msg``)."""
    if detail is None or detail == "":
        return ""
    if isinstance(detail, list) and all(isinstance(d, dict) and "msg" in d for d in detail):
        return ": " + "; ".join(f"{d.get('loc') or 'body'}: {d['msg']}" for d in detail)
    return f": {detail if isinstance(detail, str) else json.dumps(detail)}"


def events_table(events: list[dict[str, Any]]) -> str:
    if not events:
        return "no events"
    rows = [
        [
            clock(e.get("finished_at")),
            e["event_id"],
            e["rule"],
            e.get("target") or "-",
            e["outcome"],
            "manual" if e.get("manual") else "",
            clip(e.get("message", ""), 70),
        ]
        for e in events
    ]
    return table(["FINISHED", "EVENT", "RULE", "TARGET", "OUTCOME", "", "MESSAGE"], rows)


def stats_text(stats: dict[str, Any]) -> str:
    """Per rule: runs, outcomes, success rate, median and p90 time to repair, circuits opened."""
    span = f"{clock(stats['since'])} to {clock(stats['until'])}"
    head = f"last {stats['window']}: {stats['events']} event(s), {span}"
    if not stats["rules"]:
        return head + "\nno events in the window"
    rows = []
    for rule in stats["rules"]:
        rate = rule.get("success_rate")
        repair = rule["time_to_repair"]
        rows.append(
            [
                rule["rule"],
                str(rule["runs"]),
                "-" if rate is None else f"{rate:.0%}",
                _seconds(repair.get("median_seconds")),
                _seconds(repair.get("p90_seconds")),
                str(rule["circuits_opened"]),
                " ".join(f"{k}={v}" for k, v in rule["outcomes"].items()),
            ]
        )
    headers = ["RULE", "RUNS", "SUCCESS", "TTR P50", "TTR P90", "CIRCUITS", "OUTCOMES"]
    return head + "\n" + table(headers, rows)


def _seconds(value: float | None) -> str:
    return "-" if value is None else format_duration(value)


def event_text(event: dict[str, Any]) -> str:
    alert = event.get("alert") or {}
    labels = ", ".join(f"{k}={v}" for k, v in sorted((alert.get("labels") or {}).items()))
    took = (event.get("finished_at") or 0) - (event.get("received_at") or 0)
    lines = [
        f"event     {event['event_id']}",
        f"rule      {event['rule']}" + (f" (handler {event['handler']})" if event.get("handler") else ""),
        f"target    {event.get('target') or '-'}",
        f"alert     {event.get('alertname') or '-'} {event.get('alert_status', '')} "
        f"fingerprint {event.get('fingerprint') or '-'}",
        f"labels    {labels or '-'}",
        f"outcome   {event['outcome']}: {event.get('message', '')}",
        f"manual    {'yes' if event.get('manual') else 'no'}"
        + (f" ({event['note']})" if event.get("note") else ""),
        f"time      received {clock(event.get('received_at'))}, finished "
        f"{clock(event.get('finished_at'))} ({format_duration(max(0.0, took))})",
        f"replica   {event.get('replica') or '-'}",
    ]
    if event.get("plan"):
        lines += ["plan:"] + [f"  - {step}" for step in event["plan"]]
    if event.get("details"):
        lines.append(f"details   {json.dumps(event['details'], sort_keys=True)}")
    lines.append("timeline:")
    start = event.get("received_at") or 0
    rows = [
        [f"+{max(0.0, s['at'] - start):.3f}s", s["name"], clip(s.get("message", ""), 100)]
        for s in event.get("timeline", [])
    ]
    lines += ["  " + line for line in table(["AT", "STEP", "MESSAGE"], rows).splitlines()]
    return "\n".join(lines)


def replay_text(accepted: dict[str, Any], finished: list[dict[str, Any]], *, waited: bool) -> str:
    ids = accepted["event_ids"]
    lines = [f"replayed {accepted.get('replay_of')} as {len(ids)} new event(s): " + ", ".join(ids)]
    for event in finished:
        lines.append(
            f"  {event['event_id']}  {event['rule']}  {event['outcome']}: "
            f"{clip(event.get('message', ''), 100)}"
        )
    if waited and len(finished) < len(ids):
        lines.append("  still running: " + ", ".join(sorted(set(ids) - {e["event_id"] for e in finished})))
    elif not waited:
        lines.append(f"see: remediator event {ids[0]}" if ids else "")
    return "\n".join(line for line in lines if line)


def pause_text(state: dict[str, Any]) -> str:
    if not state.get("paused"):
        return "not paused: remediation is running"
    left = format_duration(state.get("remaining_seconds") or 0.0)
    by = f" by {state['by']}" if state.get("by") else ""
    return f"paused{by} until {state.get('until_iso')} ({left} left): {state.get('reason')}"


def pause_info_text(pause: dict[str, Any]) -> str:
    """``pause p-1a2b by alice until ... (1h left) for namespace="x": why``."""
    scope = ", ".join(pause.get("matchers") or []) or "everything"
    left = format_duration(pause.get("remaining_seconds") or 0.0)
    return (
        f"pause {pause['id']} by {pause.get('by') or '?'} until {pause.get('until')} "
        f"({left} left) for {scope}: {pause.get('reason')}"
    )


def pauses_text(found: dict[str, Any]) -> str:
    lines = [pause_info_text(p) for p in found.get("pauses", [])] or ["no pause"]
    for window in found.get("windows", []):
        state = f"OPEN until {window['open_until']}" if window.get("open_until") else "closed"
        scope = ", ".join(window.get("matchers") or []) or "everything"
        lines.append(f"window {window['name']} ({window['schedule']}) for {scope}: {state}")
    return "\n".join(lines)


def jobs_table(jobs: list[dict[str, Any]]) -> str:
    """Each job without an outcome: state, since when, rule, target, alert, why."""
    if not jobs:
        return "no job is waiting or running"
    rows = [
        [
            job["event_id"],
            job["state"],
            clock(job["since"]),
            job["rule"],
            clip(job["target"] or "-", 30),
            clip(f"{job['alertname']} ({job['fingerprint']})", 40),
            clip(job["why"] or "-", 80),
        ]
        for job in jobs
    ]
    return table(["EVENT", "STATE", "SINCE", "RULE", "TARGET", "ALERT", "WHY"], rows)


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
        head.append(f"reload    {state} at {clock(last['at'])}: {last['message']}")
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
