"""Plain-text renderings of admin API answers for people (the CLI's non-JSON output):
the audit's events, one event, the stats, a replay. Times are shown in UTC (24 hours),
durations as a person reads them (``16h 47m``), and messages whole: an on-call reader
needs the error itself, so long ones are wrapped under their row, never cut."""

from __future__ import annotations

import json
import shutil
import textwrap
import time
from collections.abc import Sequence
from typing import Any

from remediator.api.times import parse_time
from remediator.durations import human_duration


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned columns separated by two spaces; the last column is not padded."""
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]
    lines = []
    for row in [list(headers), *rows]:
        cells = [cell.ljust(widths[i]) for i, cell in enumerate(row[:-1])] + [row[-1]]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def epoch(value: Any) -> float | None:
    """A time from the API: RFC 3339 (or epoch seconds, as services before 0.2 sent)."""
    if value is None or value == "":
        return None
    try:
        return parse_time(value)
    except ValueError:
        return None


def clock(value: Any) -> str:
    """``2026-12-07 20:12:17Z``: UTC, 24 hours; "-" for none."""
    seconds = epoch(value)
    if seconds is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(seconds)) + "Z"


def seconds_text(value: float | None) -> str:
    return "-" if value is None else human_duration(value)


def wrapped(text: str, indent: str = "    ") -> list[str]:
    """``text`` whole, its own lines kept, each wrapped to the terminal's width."""
    width = max(60, shutil.get_terminal_size((100, 24)).columns)
    lines = []
    for line in text.splitlines() or [""]:
        lines += textwrap.wrap(line, width, initial_indent=indent, subsequent_indent=indent) or [indent]
    return [line.rstrip() for line in lines]


def one_line(text: str) -> str:
    return " ".join(text.split())


def detail_text(detail: Any) -> str:
    """An error body's ``detail`` on one line (validation errors as ``loc: msg``)."""
    if detail is None or detail == "":
        return ""
    if isinstance(detail, list) and all(isinstance(d, dict) and "msg" in d for d in detail):
        return ": " + "; ".join(f"{d.get('loc') or 'body'}: {d['msg']}" for d in detail)
    return f": {detail if isinstance(detail, str) else json.dumps(detail)}"


def events_table(events: list[dict[str, Any]]) -> str:
    """A row per event; its message, whole, on the lines under it."""
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
        ]
        for e in events
    ]
    lines = table(["FINISHED", "EVENT", "RULE", "TARGET", "OUTCOME", "", "MESSAGE"], [[*r, ""] for r in rows])
    head, *body = lines.splitlines()
    out = [head]
    for row, event in zip(body, events, strict=True):
        out.append(row)
        if event.get("message"):
            out += wrapped(event["message"])
    return "\n".join(out)


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
                seconds_text(repair.get("median_seconds")),
                seconds_text(repair.get("p90_seconds")),
                str(rule["circuits_opened"]),
                " ".join(f"{k}={v}" for k, v in rule["outcomes"].items()),
            ]
        )
    headers = ["RULE", "RUNS", "SUCCESS", "TTR P50", "TTR P90", "CIRCUITS", "OUTCOMES"]
    return head + "\n" + table(headers, rows)


def event_text(event: dict[str, Any]) -> str:
    alert = event.get("alert") or {}
    labels = ", ".join(f"{k}={v}" for k, v in sorted((alert.get("labels") or {}).items()))
    start = epoch(event.get("received_at")) or 0.0
    took = (epoch(event.get("finished_at")) or start) - start
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
        f"{clock(event.get('finished_at'))} ({human_duration(max(0.0, took))})",
        f"replica   {event.get('replica') or '-'}",
    ]
    if event.get("plan"):
        lines += ["plan:"] + [f"  - {step}" for step in event["plan"]]
    if event.get("details"):
        lines.append(f"details   {json.dumps(event['details'], sort_keys=True)}")
    for entry in event.get("context") or []:  # gathered before acting (a rule's context:)
        if entry.get("error"):
            lines.append(f"context   {entry['title']}: could not be gathered: {entry['error']}")
            continue
        lines.append(f"context   {entry['title']}")
        lines += [f"  | {line}" for line in str(entry.get("text", "")).splitlines()]
    lines.append("timeline:")
    for step in event.get("timeline", []):
        offset = max(0.0, (epoch(step["at"]) or start) - start)
        lines.append(f"  +{offset:.3f}s  {step['name']}")
        if step.get("message"):
            lines += wrapped(step["message"], "      ")
    return "\n".join(lines)


def replay_text(accepted: dict[str, Any], finished: list[dict[str, Any]], *, waited: bool) -> str:
    ids = accepted["event_ids"]
    lines = [f"replayed {accepted.get('replay_of')} as {len(ids)} new event(s): " + ", ".join(ids)]
    for event in finished:
        lines.append(
            f"  {event['event_id']}  {event['rule']}  {event['outcome']}: {event.get('message', '')}"
        )
    if waited and len(finished) < len(ids):
        lines.append("  still running: " + ", ".join(sorted(set(ids) - {e["event_id"] for e in finished})))
    elif not waited:
        lines.append(f"see: remediator event {ids[0]}" if ids else "")
    return "\n".join(line for line in lines if line)
