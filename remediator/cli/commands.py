"""``remediator events | event | stats | replay | pause | pauses | resume | jobs | rules |
approvals | approve | reject | brakes``: the admin API from a shell.

Talks to a running service (``--url``, else ``REMEDIATOR_URL``, else
http://127.0.0.1:8080) with the token in ``REMEDIATOR_ADMIN_TOKEN`` (or
``REMEDIATOR_ADMIN_TOKEN_FILE``). Tables for people, ``--json`` for scripts.
Exit codes: 0 done, 1 the service refused or failed, 2 bad usage, 3 cannot connect;
``replay --wait`` also answers for the run: 0 succeeded, noop or dry run, 1 failed,
4 skipped (cooldown, circuit, pause, lease...), 5 no outcome within the wait.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from remediator.cli import control_reports, reports
from remediator.cli.client import DEFAULT_URL, AdminClient, CtlError, admin_token, segment, service_url
from remediator.rules.schema import RULE_NAME_PATTERN

EXIT_FAILED, EXIT_SKIPPED, EXIT_STILL_RUNNING = 1, 4, 5
Command = Callable[[AdminClient, argparse.Namespace], Awaitable[int]]


def add_commands(sub: Any) -> None:
    """Add the admin subcommands to ``remediator``'s subparsers."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", help=f"service URL (REMEDIATOR_URL; default {DEFAULT_URL})")
    common.add_argument("--json", action="store_true", help="machine-readable output")
    common.add_argument("--timeout", type=float, default=30.0, help="seconds per request")

    def command(name: str, text: str) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = sub.add_parser(name, parents=[common], help=text)
        return parser

    events = command("events", "list audit events, newest first (each with its whole message)")
    events.add_argument("--rule")
    events.add_argument("--outcome", help="e.g. failed, succeeded, skipped, skipped:cooldown")
    events.add_argument("--limit", type=int, default=20)
    command("event", "one event and its timeline").add_argument("event_id")
    stats = command(
        "stats", "per rule over a window: runs by outcome, success rate, time to repair, circuits opened"
    )
    stats.add_argument("--window", default="24h", help="e.g. 1h, 24h, 7d (default 24h)")
    replay = command("replay", "re-run a stored event's alert through the current rules")
    replay.add_argument("event_id")
    replay.add_argument("--dry-run", action="store_true", help="only render the plan")
    replay.add_argument("--ignore-cooldown", action="store_true")
    replay.add_argument("--ignore-circuit", action="store_true")
    replay.add_argument("--note", default="", help="why (kept in the audit)")
    replay.add_argument(
        "--wait",
        type=float,
        metavar="SECONDS",
        default=None,
        help="wait up to SECONDS for the outcome and print it; the exit code then says how it "
        "went: 0 succeeded/noop/dry run, 1 failed, 4 skipped, 5 still running",
    )
    pause = command(
        "pause",
        "pause remediation: all of it, or (--match) the jobs the matchers match; no options: show the pauses",
    )
    pause.add_argument("--reason")
    pause.add_argument("--for", dest="duration", metavar="DURATION", help="e.g. 30m, 2h")
    pause.add_argument("--until", metavar="TIME", help="RFC 3339, e.g. 2026-05-01T06:00:00Z")
    pause.add_argument(
        "--match",
        action="append",
        default=[],
        metavar="MATCHER",
        help="e.g. 'namespace=\"torghut\"' over the labels plus rule and target; repeatable",
    )
    command("pauses", "active pauses and the maintenance windows")
    resume = command("resume", "lift the pauses that hold every job, or the pause ID")
    resume.add_argument("pause_id", nargs="?", metavar="ID")
    jobs = command("jobs", "jobs without an outcome: what each waits for")
    jobs.add_argument("--state", choices=["queued", "deferred", "held", "awaiting_approval", "running"])
    jobs.add_argument("--limit", type=int, default=100)
    command("rules", "loaded rules and the last reload")
    approvals = command("approvals", "approval requests, newest first")
    approvals.add_argument("--state", choices=["pending", "approved", "rejected", "expired", "withdrawn"])
    approvals.add_argument("--limit", type=int, default=20)
    for name, what in (("approve", "let a job that awaits approval run"), ("reject", "refuse it")):
        decide = command(name, f"{what} (the token's name is recorded)")
        decide.add_argument("event_id", help="the approval's event id (see `remediator approvals`)")
        decide.add_argument("--note", default="", help="why (kept in the audit)")
    brakes = command(
        "brakes",
        "the blast-radius brakes (max_targets): what each rule counted and holds; "
        "`brakes release RULE [EVENT_ID...]` lets held jobs go (none named: all of them)",
    )
    brakes.add_argument("action", nargs="?", choices=["release"], help="release held jobs")
    brakes.add_argument("rule", nargs="?", help="the rule whose held jobs to release")
    brakes.add_argument("event_ids", nargs="*", metavar="EVENT_ID", help="only these held jobs")


def run(args: argparse.Namespace) -> int:
    """Run one admin subcommand; prints errors to stderr and returns the exit code."""
    try:
        return asyncio.run(_run(args))
    except CtlError as exc:
        print(f"remediator {args.command}: {exc.message}", file=sys.stderr)
        return exc.code


async def _run(args: argparse.Namespace) -> int:
    async with AdminClient(service_url(args.url), admin_token(), args.timeout) as client:
        return await COMMANDS[args.command](client, args)


def _emit(args: argparse.Namespace, data: Any, text: str) -> None:
    print(json.dumps(data, indent=2) if args.json else text)


def _limit(args: argparse.Namespace) -> dict[str, str]:
    if args.limit < 1:
        raise CtlError("--limit must be at least 1", 2)
    return {"limit": str(args.limit)} | ({"state": args.state} if getattr(args, "state", None) else {})


async def _events(client: AdminClient, args: argparse.Namespace) -> int:
    _limit(args)
    events = await client.events(args.limit, args.rule, args.outcome)
    _emit(args, events, reports.events_table(events))
    return 0


async def _event(client: AdminClient, args: argparse.Namespace) -> int:
    event = await client.event(args.event_id)
    _emit(args, event, reports.event_text(event))
    return 0


def _show(
    path: str, text: Callable[[Any], str], params: Callable[[argparse.Namespace], dict[str, str]]
) -> Command:
    """A command that reads ``path`` and prints it (``text`` for people, JSON for scripts)."""

    async def show(client: AdminClient, args: argparse.Namespace) -> int:
        found = await client.call("GET", path, params=params(args))
        _emit(args, found, text(found))
        return 0

    return show


def _none(_: argparse.Namespace) -> dict[str, str]:
    return {}


async def _replay(client: AdminClient, args: argparse.Namespace) -> int:
    options = {
        "dry_run": args.dry_run,
        "ignore_cooldown": args.ignore_cooldown,
        "ignore_circuit": args.ignore_circuit,
        "note": args.note,
    }
    accepted = await client.replay(args.event_id, options)
    finished: list[dict[str, Any]] = []
    if args.wait:
        finished = await client.wait_events(accepted["event_ids"], args.wait)
    _emit(
        args,
        accepted | ({"events": finished} if args.wait else {}),
        reports.replay_text(accepted, finished, waited=bool(args.wait)),
    )
    return replay_exit_code(accepted["event_ids"], finished) if args.wait else 0


def replay_exit_code(event_ids: list[str], finished: list[dict[str, Any]]) -> int:
    """The worst of the runs: failed, then still running, then skipped; else 0."""
    outcomes = {str(event.get("outcome", "")).split(":")[0] for event in finished}
    if outcomes & {"failed", "escalated"}:  # escalated: the runbook handed it to a person
        return EXIT_FAILED
    if len(finished) < len(event_ids):
        return EXIT_STILL_RUNNING
    return EXIT_SKIPPED if "skipped" in outcomes else 0


async def _pause(client: AdminClient, args: argparse.Namespace) -> int:
    """A pause through ``/api/v1/pauses``: without ``--match`` it holds every job."""
    if args.reason is None and args.duration is None and args.until is None and not args.match:
        return await _pauses(client, args)  # no options: show them
    if args.reason is None or (args.duration is None) == (args.until is None):
        if not args.match and args.until is None:
            raise CtlError("pausing needs both --reason and --for (e.g. --for 30m)", 2)
        raise CtlError("a pause needs --reason and one of --for or --until", 2)
    body: dict[str, Any] = {"reason": args.reason, "matchers": args.match}
    body |= {"for": args.duration} if args.duration is not None else {"until": args.until}
    pause = await client.call("POST", "/api/v1/pauses", body=body)
    _emit(args, pause, control_reports.pause_text(pause))
    return 0


async def _resume(client: AdminClient, args: argparse.Namespace) -> int:
    if args.pause_id:
        pause = await client.call("DELETE", f"/api/v1/pauses/{segment(args.pause_id)}")
        _emit(args, pause, f"lifted pause {pause['id']}: the jobs it held run again")
        return 0
    found = await client.call("GET", "/api/v1/pauses")
    lifted = []
    for pause in found["pauses"]:
        if not pause["matchers"]:  # holds every job
            lifted.append(await client.call("DELETE", f"/api/v1/pauses/{segment(pause['id'])}"))
    scoped = [p for p in found["pauses"] if p["matchers"]]
    _emit(args, {"lifted": lifted, "still_active": scoped}, control_reports.resumed_text(lifted, scoped))
    return 0


async def _approvals(client: AdminClient, args: argparse.Namespace) -> int:
    page = await client.call("GET", "/api/v1/approvals", params=_limit(args))
    _emit(args, page["approvals"], control_reports.approvals_table(page["approvals"]))
    return 0


async def _decide(client: AdminClient, args: argparse.Namespace) -> int:
    body = {"decision": args.command, "note": args.note}
    approval = await client.call("POST", f"/api/v1/approvals/{segment(args.event_id)}", body=body)
    verb = "approved" if args.command == "approve" else "rejected"
    _emit(args, approval, f"{verb} {approval['event_id']}: {approval['rule']} on {approval['target']}")
    return 0


async def _brakes(client: AdminClient, args: argparse.Namespace) -> int:
    if args.action is None:
        if args.rule is not None:
            raise CtlError("to release held jobs: remediator brakes release RULE [EVENT_ID...]", 2)
        found = await client.call("GET", "/api/v1/brakes")
        _emit(args, found["brakes"], control_reports.brakes_text(found["brakes"]))
        return 0
    if not args.rule:
        raise CtlError("brakes release needs the rule: remediator brakes release RULE [EVENT_ID...]", 2)
    body = {"event_ids": [segment(i) for i in args.event_ids]} if args.event_ids else {}
    released = await client.call("POST", f"/api/v1/brakes/{rule_segment(args.rule)}/release", body=body)
    _emit(args, released, control_reports.released_text(released))
    return 0


def rule_segment(rule: str) -> str:
    if not re.fullmatch(RULE_NAME_PATTERN, rule):
        raise CtlError(f"invalid rule name {rule!r}", 2)
    return rule


_pauses = _show("/api/v1/pauses", control_reports.pauses_text, _none)
COMMANDS: dict[str, Command] = {
    "events": _events,
    "event": _event,
    "stats": _show("/api/v1/stats", reports.stats_text, lambda args: {"window": args.window}),
    "replay": _replay,
    "pause": _pause,
    "pauses": _pauses,
    "resume": _resume,
    "jobs": _show("/api/v1/jobs", lambda found: control_reports.jobs_table(found["jobs"]), _limit),
    "rules": _show("/api/v1/rules", control_reports.rules_text, _none),
    "approvals": _approvals,
    "approve": _decide,
    "reject": _decide,
    "brakes": _brakes,
}
