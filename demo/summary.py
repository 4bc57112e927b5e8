"""The end of the demo: what fired and when it resolved, each repair with its verification
(from the audit), the checks that make it a success, and the Slack channel."""

from __future__ import annotations

from typing import Any

from demo.overlay import CLICKHOUSE_RULE, FLINK_RULE, JANGAR_RULE, WS_RULE
from demo.report import ACTING, Report, handler_started

_SHOWN_STEPS = (
    "deferred",
    "hold",
    "sql",
    "verify",
    "verify.waiting",
    "observe",
    "resume",
    "kube.patch",
    "gitops",
    "probe",
)
OLD_CLICKHOUSE = """\
ClickHouse 18.16 vs a modern ClickHouse:
  These servers are Debian's clickhouse-server 18.16. While Keeper is gone no statement can
  help, so the handler holds (18.16 would detach a table asked to restart without Keeper);
  once Keeper answers it runs SYSTEM RESTART REPLICA on each replica still read-only (18.16
  also reconnects by itself within ~10s). If Keeper came back EMPTY (metadata lost, as on
  2026-01-01), a modern ClickHouse (21.7+) needs SYSTEM RESTORE REPLICA, which the handler
  runs next; 18.16 has no such statement and refuses it (the handler then reports the
  server's error verbatim and fails)."""


def render(report: Report) -> str:
    ttr = report.time_to_recovery
    lines = [
        "",
        "=== Summary ===",
        f"Recovered: {'yes' if report.recovered else 'NO'}"
        + (f", {ttr:.1f}s after Keeper was lost, with no human in the loop" if ttr else ""),
        "",
        "Alerts (seconds after the break):",
    ]
    for alert in report.alerts:
        if alert.resolved is None:
            lines.append(f"  {alert.fired:6.1f}s -> still firing  {alert.brief}")
        else:
            lines.append(
                f"  {alert.fired:6.1f}s -> {alert.resolved:6.1f}s  {alert.brief}  "
                f"(time to recovery {alert.resolved - alert.fired:.1f}s)"
            )
    lines += ["", "Repairs, in the order they started (from the audit, GET /api/v1/events/{id}):"]
    for event in repairs(report):
        lines += _repair(report, event)
    order = [f"{n}. {e['rule']} ({e['outcome']})" for n, e in enumerate(repairs(report), 1)]
    lines += ["", f"The {len(order)} repairs that ran, in order: " + "; ".join(order)]
    lines.append(f"Jangar's /api/torghut/ta/latest?symbol=NVDA at the end: {_short(report.jangar_answer)}")
    lines += ["", "Checks:"]
    lines += [f"  {'✔' if ok else '✘'} {text}" for ok, text in verdicts(report)]
    lines += ["", OLD_CLICKHOUSE, "", "Slack (#torghut-alerts), as people read it:", report.slack_text]
    return "\n".join(lines)


def repairs(report: Report) -> list[dict[str, Any]]:
    """The audit events in which a handler ran, in the order they (first) started."""
    return sorted(
        (e for e in report.events if e["outcome"] in ACTING), key=lambda e: _first_started(report, e)
    )


def _first_started(report: Report, event: dict[str, Any]) -> float:
    """When the job first started: on the killed replica, for the re-delivered one."""
    kill = report.kill
    if kill is not None and event["event_id"] == kill.event_id:
        return kill.killed_epoch - (kill.killed_at - kill.started_at)
    return handler_started(event)


def _repair(report: Report, event: dict[str, Any]) -> list[str]:
    started = handler_started(event)
    out = [
        f"  * +{report.rel_epoch(started):.1f}s {event['rule']} on {event['target']} by "
        f"{report.replica_of(event)}: {event['outcome'].upper()} in "
        f"{event['finished_at'] - started:.1f}s (event {event['event_id']})"
    ]
    kill = report.kill
    if kill is not None and event["event_id"] == kill.event_id:
        out.append(
            f"      re-delivered: {kill.replica} started it at "
            f"+{report.rel_epoch(_first_started(report, event)):.1f}s and was "
            f"SIGKILLed; {report.replica_of(event)} ran it once the lease had expired"
        )
    holds = 0
    for step in event.get("timeline") or []:
        name, message = step["name"], step.get("message", "")
        if name not in _SHOWN_STEPS or (name == "sql" and "SYSTEM" not in message):
            continue
        data = step.get("data") or {}
        if name == "probe" and data.get("phase") == "after" and not data.get("passed"):
            continue  # the tries while the rollout runs; the last one is shown
        if name == "probe":
            message = f"{data.get('phase')} acting: {message}"
        holds += name == "hold"
        if name == "hold" and holds > 1:
            continue
        if name == "hold":
            message += " (the same for each read-only table on each node)"
        out.append(f"      {name}: {_short(message)}")
    out.append(f"      => {_short(event['message'], 300)}")
    return out


def _short(text: str, limit: int = 200) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit] + "..."


def verdicts(report: Report) -> list[tuple[bool, str]]:
    """The demo's success criteria, each with what was seen."""
    return [
        _recovered(report),
        _clickhouse(report),
        _flink(report),
        _ws(report),
        _nothing_lost(report),
        _slack(report),
        (report.replication.startswith("ok"), f"storage after the incident: {report.replication}"),
        _jangar(report),
    ]


def _recovered(report: Report) -> tuple[bool, str]:
    open_alerts = [a.brief for a in report.alerts if a.resolved is None]
    ttr = f"{report.time_to_recovery:.1f}s" if report.time_to_recovery is not None else "-"
    return (
        report.recovered and not open_alerts,
        f"every alert resolved (last one {ttr} after the break)"
        + (f"; still firing: {open_alerts}" if open_alerts else ""),
    )


def _clickhouse(report: Report) -> tuple[bool, str]:
    acted = report.acting(CLICKHOUSE_RULE)
    sent = report.clickhouse_statements
    audited = {
        (s["node"], s["sql"])
        for e in acted
        for s in (e.get("details") or {}).get("statements") or []
        if s["sql"].startswith("SYSTEM")
    }
    ok = (
        [e["outcome"] for e in acted] in (["succeeded"], ["noop"])
        and len(sent) == len(set(sent))
        and set(sent) == audited
    )
    return ok, (
        f"ClickHouse repaired by one run ({', '.join(e['outcome'] for e in acted)}): "
        f"{len(sent)} SYSTEM statement(s) in query_log, one per replica, all in its "
        "audit event"
    )


def _flink(report: Report) -> tuple[bool, str]:
    acted = report.acting(FLINK_RULE)
    waited = [s for e in acted for s in e.get("timeline") or [] if s["name"] == "deferred"]
    ends = [end for _, end in report.readonly_windows]
    ok = (
        len(report.nonce_patches) == 1
        and not report.bumps_while_readonly
        and bool(waited)
        and all(end is not None and end < report.nonce_patches[0] for end in ends)
    )
    window = ", ".join(
        f"{s:.1f}s-{e:.1f}s" if e is not None else f"{s:.1f}s-..." for s, e in report.readonly_windows
    )
    bumps = ", ".join(f"+{t:.1f}s" for t in report.nonce_patches) or "never"
    why = f"; {waited[0]['message']} (inhibited_by the ClickHouse alert)" if waited else ""
    return ok, (
        f"Flink restartNonce bumped {len(report.nonce_patches)} time(s), at {bumps}; "
        f"ClickHouse read-only {window or 'never'}{why}"
    )


def _ws(report: Report) -> tuple[bool, str]:
    scaled = [replicas for _, replicas in report.scale_patches]
    shown = ", ".join(f"{n} at +{t:.1f}s" for t, n in report.scale_patches) or "never"
    return (
        scaled == [0, 1] and report.max_ws_pods <= 1 and len(report.acting(WS_RULE)) == 1,
        f"torghut-ws bounced once (scaled to {shown}); most pods at once: {report.max_ws_pods}",
    )


def _nothing_lost(report: Report) -> tuple[bool, str]:
    text = (
        f"nothing lost: {len(report.accepted)} job(s) accepted by the replicas, "
        f"{len(report.accepted) - len(report.missing)} with an audit event"
    )
    ok = bool(report.accepted) and not report.missing
    kill = report.kill
    if kill is not None:
        rerun = [e for e in report.events if e["event_id"] == kill.event_id]
        by = ", ".join(f"{report.replica_of(e)} ({e['outcome']})" for e in rerun) or "nobody"
        text += (
            f"; the job of the SIGKILLed {kill.replica} ({kill.rule}, event {kill.event_id}) re-ran on {by}"
        )
        ok = ok and len(rerun) == 1 and report.replica_of(rerun[0]) != kill.replica
    return ok, text + (f"; MISSING: {report.missing}" if report.missing else "")


def _slack(report: Report) -> tuple[bool, str]:
    threads = report.threads()
    bad = [t.title for t in threads if {"failed", "escalated"} & set(t.kinds())]
    unresolved = [t.title for t in threads if "resolved" not in t.kinds()]
    # once per target, after the outcome (two pods of one database resolve as one)
    untidy = [t.title for t in threads if t.kinds().count("resolved") > 1 or _resolved_early(t.kinds())]
    ok = len(threads) == 4 and not bad and not unresolved and not untidy and len(report.orphans()) <= 1
    text = (
        f"Slack: {len(threads)} thread(s), one per repair, each resolved once, after its outcome"
        + (f"; with failures: {bad}" if bad else "")
        + (f"; not resolved: {unresolved}" if unresolved else "")
        + (f"; resolved twice or before the outcome: {untidy}" if untidy else "")
    )
    if report.orphans() and report.kill is not None:
        text += (
            f"; plus the first message {report.kill.replica} posted just before it was "
            "killed: it died before recording the thread, so the re-run opened a new one"
        )
    return ok, text


def _resolved_early(kinds: list[str]) -> bool:
    """A "resolved" reply before the thread's last outcome."""
    outcomes = [i for i, kind in enumerate(kinds) if kind in ("succeeded", "noop", "failed", "dry_run")]
    return "resolved" in kinds and bool(outcomes) and kinds.index("resolved") < outcomes[-1]


def _jangar(report: Report) -> tuple[bool, str]:
    acted = report.acting(JANGAR_RULE)
    drift = "OutOfSync" in report.slack_text and "change to commit" in report.slack_text
    ok = (
        [e["outcome"] for e in acted] == ["succeeded"]
        and report.jangar_database == "torghut"
        and report.jangar_answer.startswith("HTTP 200")
        and "UNKNOWN_TABLE" not in report.jangar_answer
        and drift
    )
    return ok, (
        f"Jangar: CH_DATABASE={report.jangar_database or '?'} "
        f"({', '.join(e['outcome'] for e in acted) or 'no run'}); its TA endpoint returns data "
        f"({_short(report.jangar_answer, 80)}); the Slack thread "
        + ("names the Argo CD drift and the change to commit" if drift else "does NOT name the Argo CD drift")
    )
