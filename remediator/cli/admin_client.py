"""``remediator events | event | stats | replay | pause | resume | rules | approvals | approve | reject``:
the admin API from a shell.

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
import os
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp

from remediator.cli import reports
from remediator.models import Alert

DEFAULT_URL = "http://127.0.0.1:8080"
COMMANDS = (
    "events",
    "event",
    "stats",
    "replay",
    "pause",
    "pauses",
    "resume",
    "jobs",
    "rules",
    "approvals",
    "approve",
    "reject",
)
PAGE = 500


EXIT_FAILED, EXIT_SKIPPED, EXIT_STILL_RUNNING = 1, 4, 5


class CtlError(Exception):
    """A failure to report in one line, with the exit code to use."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.message, self.code = message, code


def admin_token() -> str | None:
    token = os.environ.get("REMEDIATOR_ADMIN_TOKEN")
    path = os.environ.get("REMEDIATOR_ADMIN_TOKEN_FILE")
    if (not token or not token.strip()) and path:  # blank counts as unset, as in the service
        try:
            token = Path(path).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise CtlError(f"cannot read REMEDIATOR_ADMIN_TOKEN_FILE {path}: {exc}", 2) from exc
    return token if token and token.strip() else None


def service_url(given: str | None) -> str:
    return (given or os.environ.get("REMEDIATOR_URL") or DEFAULT_URL).rstrip("/")


class AdminClient:
    """The admin API over aiohttp; every failure becomes a ``CtlError``."""

    def __init__(self, url: str, token: str | None, timeout: float = 30.0) -> None:
        self.url, self.token = url, token
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> AdminClient:
        self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._session is not None:
            await self._session.close()

    async def call(
        self, method: str, path: str, *, params: dict[str, str] | None = None, body: Any = None
    ) -> Any:
        assert self._session is not None, "use `async with AdminClient(...)`"
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        try:
            async with self._session.request(
                method, self.url + path, params=params, json=body, headers=headers
            ) as response:
                text, status = await response.text(errors="replace"), response.status
        except aiohttp.InvalidURL as exc:
            raise CtlError(f"invalid service URL {self.url!r}", 2) from exc
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise CtlError(f"cannot reach {self.url}: {exc or type(exc).__name__}", 3) from exc
        try:
            data = json.loads(text) if text else None
        except ValueError:
            data = None
        if status >= 400:
            raise CtlError(self._explain(status, data, text))
        return data

    def _explain(self, status: int, data: Any, text: str) -> str:
        if not isinstance(data, dict) or "error" not in data:
            return f"{self.url} answered HTTP {status}: {text[:200].strip()}"
        if status == 401:
            if not self.token:
                return "unauthorized (401): set REMEDIATOR_ADMIN_TOKEN to the service's admin token"
            return "unauthorized (401): the service rejected REMEDIATOR_ADMIN_TOKEN"
        if status == 404 and "disabled" in str(data.get("detail")):
            return (
                f"the admin API is disabled on {self.url} (404): "
                "start the service with REMEDIATOR_ADMIN_TOKEN set"
            )
        return f"HTTP {status}: {data['error']}" + reports.detail_text(data.get("detail"))

    async def events(
        self, limit: int, rule: str | None = None, outcome: str | None = None
    ) -> list[dict[str, Any]]:
        """Newest first, following the cursor until ``limit`` events are read."""
        out: list[dict[str, Any]] = []
        cursor: str | None = None
        while len(out) < limit:
            params = {"limit": str(min(PAGE, limit - len(out)))}
            params |= {k: v for k, v in (("rule", rule), ("outcome", outcome), ("cursor", cursor)) if v}
            page = await self.call("GET", "/api/v1/events", params=params)
            out += page["events"]
            cursor = page.get("next_cursor")
            if not cursor or not page["events"]:
                break
        return out[:limit]

    async def event(self, event_id: str) -> dict[str, Any]:
        return dict(await self.call("GET", f"/api/v1/events/{_segment(event_id)}"))

    async def replay(self, event_id: str, options: dict[str, Any]) -> dict[str, Any]:
        return dict(await self.call("POST", f"/api/v1/replay/{_segment(event_id)}", body=options))

    async def wait_events(self, event_ids: list[str], within: float) -> list[dict[str, Any]]:
        """Poll until every event is recorded (a job in flight answers 404) or time is up."""
        deadline, done = time.monotonic() + within, {}
        while True:
            for event_id in event_ids:
                if event_id not in done:
                    try:
                        done[event_id] = await self.event(event_id)
                    except CtlError as exc:
                        if "HTTP 404" not in exc.message:
                            raise
            if len(done) == len(event_ids) or time.monotonic() >= deadline:
                return [done[e] for e in event_ids if e in done]
            await asyncio.sleep(0.25)


def _segment(event_id: str) -> str:
    if not event_id or any(c in event_id for c in "/?#%") or len(event_id) > 64:
        raise CtlError(f"invalid event id {event_id!r}", 2)
    return event_id


def fetch_event_alerts(url: str | None, count: int, timeout: float = 30.0) -> list[Alert]:
    """The alerts of the last ``count`` stored events, for ``simulate --from-events``."""

    async def fetch() -> list[dict[str, Any]]:
        async with AdminClient(service_url(url), admin_token(), timeout) as client:
            return await client.events(count)

    return alerts_from_events(asyncio.run(fetch()))


def alerts_from_events(events: Any) -> list[Alert]:
    """Distinct alerts of exported events (``remediator events --json``), newest first."""
    if not isinstance(events, list):
        raise ValueError("expected a JSON list of events, as `remediator events --json` prints")
    seen, alerts = set(), []
    for event in events:
        raw = event.get("alert") if isinstance(event, dict) else None
        if raw is None:
            continue
        alert = Alert.model_validate(raw)
        key = (alert.fingerprint, alert.status, alert.starts_at)
        if key not in seen:
            seen.add(key)
            alerts.append(alert)
    return alerts


# ---- the commands ------------------------------------------------------------------------
def add_commands(sub: Any) -> None:
    """Add the admin subcommands to ``remediator``'s subparsers."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", help=f"service URL (REMEDIATOR_URL; default {DEFAULT_URL})")
    common.add_argument("--json", action="store_true", help="machine-readable output")
    common.add_argument("--timeout", type=float, default=30.0, help="seconds per request")
    events = sub.add_parser("events", parents=[common], help="list audit events, newest first")
    events.add_argument("--rule")
    events.add_argument("--outcome", help="e.g. failed, succeeded, skipped, skipped:cooldown")
    events.add_argument("--limit", type=int, default=20)
    event = sub.add_parser("event", parents=[common], help="one event and its timeline")
    event.add_argument("event_id")
    stats = sub.add_parser(
        "stats",
        parents=[common],
        help="per rule over a window: runs by outcome, success rate, time to repair, circuits opened",
    )
    stats.add_argument("--window", default="24h", help="e.g. 1h, 24h, 7d (default 24h)")
    replay = sub.add_parser(
        "replay", parents=[common], help="re-run a stored event's alert through the current rules"
    )
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
        help="wait up to SECONDS for the outcome and print it; the exit "
        "code then says how it went: 0 succeeded/noop/dry run, "
        "1 failed, 4 skipped, 5 still running",
    )
    pause = sub.add_parser(
        "pause",
        parents=[common],
        help="pause remediation: all of it, or (--match) the jobs the matchers match; "
        "no options: show the global pause",
    )
    pause.add_argument("--reason")
    pause.add_argument("--for", dest="duration", metavar="DURATION", help="e.g. 30m, 2h")
    pause.add_argument("--until", metavar="TIME", help="RFC 3339, e.g. 2026-05-01T06:00:00Z (scoped pause)")
    pause.add_argument(
        "--match",
        action="append",
        default=[],
        metavar="MATCHER",
        help="e.g. 'namespace=\"torghut\"' over the labels plus rule and target; repeatable",
    )
    sub.add_parser("pauses", parents=[common], help="active pauses and the maintenance windows")
    resume = sub.add_parser("resume", parents=[common], help="lift the global pause, or the pause ID")
    resume.add_argument("pause_id", nargs="?", metavar="ID")
    jobs = sub.add_parser("jobs", parents=[common], help="jobs without an outcome: what each waits for")
    jobs.add_argument("--state", choices=["queued", "deferred", "held", "awaiting_approval", "running"])
    jobs.add_argument("--limit", type=int, default=100)
    sub.add_parser("rules", parents=[common], help="loaded rules and the last reload")
    approvals = sub.add_parser("approvals", parents=[common], help="approval requests, newest first")
    approvals.add_argument("--state", choices=["pending", "approved", "rejected", "expired", "withdrawn"])
    approvals.add_argument("--limit", type=int, default=20)
    for name, what in (("approve", "let a job that awaits approval run"), ("reject", "refuse it")):
        decide = sub.add_parser(name, parents=[common], help=f"{what} (the token's name is recorded)")
        decide.add_argument("event_id", help="the approval's event id (see `remediator approvals`)")
        decide.add_argument("--note", default="", help="why (kept in the audit)")


def run(args: argparse.Namespace) -> int:
    """Run one admin subcommand; prints errors to stderr and returns the exit code."""
    try:
        return asyncio.run(_run(args))
    except CtlError as exc:
        print(f"remediator {args.command}: {exc.message}", file=sys.stderr)
        return exc.code


async def _run(args: argparse.Namespace) -> int:
    command: Callable[[AdminClient, argparse.Namespace], Awaitable[int]] = _COMMANDS[args.command]
    async with AdminClient(service_url(args.url), admin_token(), args.timeout) as client:
        return await command(client, args)


def _emit(args: argparse.Namespace, data: Any, text: str) -> None:
    print(json.dumps(data, indent=2) if args.json else text)


async def _events(client: AdminClient, args: argparse.Namespace) -> int:
    if args.limit < 1:
        raise CtlError("--limit must be at least 1", 2)
    events = await client.events(args.limit, args.rule, args.outcome)
    _emit(args, events, reports.events_table(events))
    return 0


async def _event(client: AdminClient, args: argparse.Namespace) -> int:
    event = await client.event(args.event_id)
    _emit(args, event, reports.event_text(event))
    return 0


async def _stats(client: AdminClient, args: argparse.Namespace) -> int:
    stats = await client.call("GET", "/api/v1/stats", params={"window": args.window})
    _emit(args, stats, reports.stats_text(stats))
    return 0


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
    if "failed" in outcomes:
        return EXIT_FAILED
    if len(finished) < len(event_ids):
        return EXIT_STILL_RUNNING
    return EXIT_SKIPPED if "skipped" in outcomes else 0


async def _pause(client: AdminClient, args: argparse.Namespace) -> int:
    if args.match or args.until:
        return await _scoped_pause(client, args)
    if args.reason is None and args.duration is None:
        state = await client.call("GET", "/api/v1/pause")
    elif args.reason is None or args.duration is None:
        raise CtlError("pausing needs both --reason and --for (e.g. --for 30m)", 2)
    else:
        body = {"reason": args.reason, "for": args.duration}
        state = await client.call("POST", "/api/v1/pause", body=body)
    _emit(args, state, reports.pause_text(state))
    return 0


async def _scoped_pause(client: AdminClient, args: argparse.Namespace) -> int:
    if args.reason is None or (args.duration is None) == (args.until is None):
        raise CtlError("a scoped pause needs --reason and one of --for or --until", 2)
    body: dict[str, Any] = {"reason": args.reason, "matchers": args.match}
    body |= {"for": args.duration} if args.duration is not None else {"until": args.until}
    pause = await client.call("POST", "/api/v1/pauses", body=body)
    _emit(args, pause, reports.pause_info_text(pause))
    return 0


async def _pauses(client: AdminClient, args: argparse.Namespace) -> int:
    found = await client.call("GET", "/api/v1/pauses")
    _emit(args, found, reports.pauses_text(found))
    return 0


async def _jobs(client: AdminClient, args: argparse.Namespace) -> int:
    if args.limit < 1:
        raise CtlError("--limit must be at least 1", 2)
    params = {"limit": str(args.limit)} | ({"state": args.state} if args.state else {})
    found = await client.call("GET", "/api/v1/jobs", params=params)
    _emit(args, found, reports.jobs_table(found["jobs"]))
    return 0


async def _resume(client: AdminClient, args: argparse.Namespace) -> int:
    if args.pause_id:
        pause = await client.call("DELETE", f"/api/v1/pauses/{_segment(args.pause_id)}")
        _emit(args, pause, f"lifted pause {pause['id']}: the jobs it held run again")
        return 0
    state = await client.call("DELETE", "/api/v1/pause")
    _emit(
        args,
        state,
        "resumed: remediation runs again" if state.get("was_paused") else "was not paused; nothing to do",
    )
    return 0


async def _rules(client: AdminClient, args: argparse.Namespace) -> int:
    info = await client.call("GET", "/api/v1/rules")
    _emit(args, info, reports.rules_text(info))
    return 0


async def _approvals(client: AdminClient, args: argparse.Namespace) -> int:
    if args.limit < 1:
        raise CtlError("--limit must be at least 1", 2)
    params = {"limit": str(args.limit)} | ({"state": args.state} if args.state else {})
    page = await client.call("GET", "/api/v1/approvals", params=params)
    _emit(args, page["approvals"], approvals_table(page["approvals"]))
    return 0


async def _decide(client: AdminClient, args: argparse.Namespace) -> int:
    body = {"decision": args.command, "note": args.note}
    approval = await client.call("POST", f"/api/v1/approvals/{_segment(args.event_id)}", body=body)
    verb = "approved" if args.command == "approve" else "rejected"
    _emit(args, approval, f"{verb} {approval['event_id']}: {approval['rule']} on {approval['target']}")
    return 0


def approvals_table(approvals: list[dict[str, Any]]) -> str:
    """One line per request: id, state, rule, target, who decided (or who may), until when."""
    if not approvals:
        return "no approval requests"
    lines = []
    for a in approvals:
        who = a["decided_by"] or "approvers: " + ", ".join(a["approvers"])
        until = a["expires_at_iso"]
        lines.append(f"{a['event_id']}  {a['state']:<9} {a['rule']}  {a['target']}  {who}  (until {until})")
        lines += [f"    plan: {step}" for step in a["plan"]]
    return "\n".join(lines)


_COMMANDS: dict[str, Callable[[AdminClient, argparse.Namespace], Awaitable[int]]] = {
    "events": _events,
    "event": _event,
    "stats": _stats,
    "replay": _replay,
    "pause": _pause,
    "pauses": _pauses,
    "resume": _resume,
    "jobs": _jobs,
    "rules": _rules,
    "approvals": _approvals,
    "approve": _decide,
    "reject": _decide,
}
