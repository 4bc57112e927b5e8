"""What ``remediator simulate`` says will happen to each match, beyond its plan: at the
simulated time (``--at``), the pause or maintenance window that holds it, the approval it
waits for, and, with ``--url``, the live cooldown, open circuit and lease of a running
service. The same order as the workers' stages: pause or window, then the store's checks
(circuit, cooldown), then approval, then the lease, then the handler.

Pure but for ``LiveState.fetch``: the holds come from ``worker.gates.holding``, the one
function the workers ask, and ``remediator test`` reads the same annotations.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal

from remediator.api.times import parse_time, rfc3339
from remediator.cli.client import fetch_live
from remediator.durations import human_duration, parse_rule_duration
from remediator.models import Alert
from remediator.rules.ruleset import Rule, RuleSet
from remediator.rules.windows import Window
from remediator.store.values import Pause
from remediator.worker.gates import holding

HoldKind = Literal["pause", "window", "approval"]  # what may hold a job before its handler runs
_RELATIVE = re.compile(r"^([+-])\s*(\S+)$")
AT_HELP = (
    "the time to simulate: RFC 3339 (2026-12-08T02:30:00Z, or with an offset), or relative to "
    "now (+2h, -30m); default now. Maintenance windows, pauses and live gates are checked then"
)


def parse_at(text: str | None, now: float) -> float:
    """``--at``: None or ``now`` is ``now``; ``+2h`` / ``-30m`` relative to it; else an RFC
    3339 date-time with an offset. ValueError saying what is expected."""
    if text is None or text.strip().lower() == "now":
        return now
    relative = _RELATIVE.match(text.strip())
    if relative:
        sign, amount = relative.groups()
        try:
            seconds = parse_rule_duration(amount)
        except ValueError as exc:
            raise ValueError(f"{text!r}: {exc}") from None
        return now + seconds if sign == "+" else now - seconds
    try:
        return parse_time(text.strip())
    except ValueError:
        raise ValueError(
            f"{text!r}: expected an RFC 3339 time with an offset (2026-12-08T02:30:00Z), "
            "or a duration relative to now (+2h, -30m), or 'now'"
        ) from None


@dataclass(frozen=True)
class LiveState:
    """A running service's state as ``simulate --url`` read it."""

    url: str
    pauses: tuple[Pause, ...] = ()
    dry_run: bool = False
    gates: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    brakes: dict[str, dict[str, Any]] = field(default_factory=dict)  # by rule: GET /api/v1/brakes

    @classmethod
    def fetch(cls, url: str | None, pairs: list[tuple[str, str]], timeout: float = 30.0) -> LiveState:
        """Ask the service (``CtlError`` when it cannot answer)."""
        found = fetch_live(url, sorted(set(pairs)), timeout)
        pauses = tuple(
            Pause(
                reason=p["reason"],
                until=parse_time(p["until"]),
                by=p.get("by", ""),
                id=p["id"],
                matchers=tuple(p.get("matchers", ())),
            )
            for p in found["pauses"]
        )
        return cls(
            url=found["url"],
            pauses=pauses,
            dry_run=found["dry_run"],
            gates=found["gates"],
            brakes=found["brakes"],
        )


def pairs(report: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """The (rule, target) of every rendered match: what ``--url`` asks the service about."""
    return [(m["rule"], m["target"]) for entry in report for m in entry["matches"] if "target" in m]


def outlook(
    rules: RuleSet,
    alerts: list[Alert],
    report: list[dict[str, Any]],
    at: float,
    live: LiveState | None = None,
    service_dry_run: bool = False,
) -> None:
    """Add to each rendered match of ``report`` (``simulate``'s, one entry per alert) what
    will happen at ``at``: ``holds`` (each with ``by``: ``pause``, ``window`` or
    ``approval``), ``live`` (the service's gates, with ``--url``) and ``will`` (the steps,
    in order, the last one how it ends)."""
    dry = live.dry_run if live is not None else service_dry_run
    for alert, entry in zip(alerts, report, strict=True):
        entry["at"] = rfc3339(at)
        for match in entry["matches"]:
            rule = rules.get(match["rule"])
            if rule is None or "target" not in match:
                continue
            if "action" in match:  # a resolved alert the rule ignores: nothing runs
                match["holds"], match["will"] = [], [match["action"]]
                continue
            _outlook(rule, rules.windows, alert, match, at, live, dry)


def _outlook(
    rule: Rule,
    windows: tuple[Window, ...],
    alert: Alert,
    match: dict[str, Any],
    at: float,
    live: LiveState | None,
    dry: bool,
) -> None:
    labels = {**alert.labels, "rule": rule.name, "target": match["target"]}
    holds: list[dict[str, Any]] = []
    will: list[str] = []
    match["holds"], match["will"] = holds, will
    when = at  # when the job gets past the holds so far
    hold = holding(live.pauses if live else (), windows, labels, at)
    if hold is not None:
        effect = "skip" if rule.policy.on_pause == "skip" else "hold"
        holds.append({"by": hold.kind, "name": hold.name, "until": rfc3339(hold.until), "effect": effect})
        if effect == "skip":
            will.append(f"skipped:paused: {hold.message} (on_pause: skip)")
            return
        will.append(f"held: {hold.message}; it waits, then goes on")
        when = hold.until
    if live is not None:
        state = live.gates.get((rule.name, match["target"]))
        match["live"] = state
        if state is not None and (stop := _live_stop(state, when)) is not None:
            will.append(stop)
            return
    if rule.inhibited_by:
        wait = human_duration(rule.policy.inhibit_wait)
        will.append(
            f"if an inhibited_by alert fires: waits for it to resolve (up to {wait}, then skipped:inhibited)"
        )
    acts = not (match["dry_run"] or dry)
    approval = rule.policy.approval
    if approval is not None and approval.required and acts:
        holds.append(
            {"by": "approval", "approvers": list(approval.approvers), "timeout_seconds": approval.timeout}
        )
        will.append(
            f"awaits approval by {', '.join(approval.approvers)} (up to {human_duration(approval.timeout)}; "
            "then skipped:not_approved)"
        )
    lease = (match.get("live") or {}).get("lease")
    if lease and parse_time(lease["until"]) > when:  # a lease that ends before then holds nothing
        holder = f" (event {lease['holder']})" if lease.get("holder") else ""
        will.append(f"waits for the target's lease, held now by another run{holder} until {lease['until']}")
    if live is not None and (brake := _brake_note(live.brakes.get(rule.name))):
        will.append(brake)
    source = "the rule's dry_run" if match["dry_run"] else "the service's dry run"
    will.append("runs the handler" if acts else f"dry run ({source}): renders the plan, changes nothing")


def _brake_note(brake: dict[str, Any] | None) -> str | None:
    """The rule's brake (max_targets) is full: a target it has not acted on in the window is
    held (its counted targets are not listed, so this one may be among them and pass)."""
    if brake is None or brake["counted"] < brake["count"]:
        return None
    within = human_duration(brake["within_seconds"])
    return (
        f"held:brake unless the target is one of the {brake['counted']} the rule acted on within "
        f"{within} (max_targets: {brake['count']}; live): an operator releases it with "
        f"remediator brakes release {brake['rule']}"
    )


def _live_stop(state: dict[str, Any], when: float) -> str | None:
    """The store's check that would end the job at ``when``: an open circuit, a cooldown."""
    circuit, cooldown = state.get("circuit"), state.get("cooldown")
    if circuit and parse_time(circuit["until"]) > when:
        return f"skipped:circuit_open: the circuit is open until {circuit['until']} (live)"
    if cooldown and parse_time(cooldown["until"]) > when:
        return f"skipped:cooldown: in cooldown until {cooldown['until']} (live)"
    return None


def outlook_lines(entry: dict[str, Any], match: dict[str, Any]) -> list[str]:
    """The text lines of a match's outlook (none when it has none)."""
    if "will" not in match:
        return []
    lines = [f"    at {entry['at']}:"]
    state = match.get("live")
    if state is not None and not state.get("rule_loaded", True):
        lines.append(
            f"      note: the service has no rule {match['rule']} loaded; its live state may not apply"
        )
    lines += [f"      {n}. {step}" for n, step in enumerate(match["will"], 1)]
    return lines
