"""Slack messages for notices: Block Kit plus a plain-text fallback, inside Slack's limits.

Pure functions, no I/O. Labels and annotations are untrusted: every piece of
alert data is escaped (``blocks.py``) so it can neither mention anyone nor forge
a link, and long values are cut with a note saying so.
"""

from __future__ import annotations

from typing import Any

from remediator.durations import human_duration
from remediator.models import SOURCE_NAMES
from remediator.notify.notice import Notice
from remediator.notify.notice import replay_command as notice_replay_command
from remediator.notify.slack.blocks import (
    MAX_BLOCKS,
    Message,
    clip,
    code,
    context,
    escape,
    fallback,
    header,
    link,
    mention,
    section,
    short,
)
from remediator.notify.slack.gathered import context_blocks

MAX_ERROR = 2400  # of the last error shown, leaving room for the note in one section
_HIDDEN_STEPS = {"received", "lease.acquired", "handler.started", "outcome", "deferred", "circuit.opened"}
_TITLES = {
    "succeeded": ("✅", "Remediation succeeded"),
    "noop": ("💤", "Nothing to do: the precheck found it healthy"),
    "dry_run": ("🧪", "Dry run: plan rendered, nothing changed"),
    "failed": ("❌", "Remediation failed"),
    "escalated": ("🙋", "Handed to a person: the runbook's page step"),
}


# ---- what the notice is about ----------------------------------------------------
def alert_name(notice: Notice) -> str:
    return notice.alert.name if notice.alert is not None and notice.alert.name else "alert"


def headline(notice: Notice) -> str:
    """One line, plain text (escape before putting it in mrkdwn)."""
    what = f"{alert_name(notice)} on {notice.target or notice.rule}"
    if notice.kind == "started":
        if notice.dry_run:
            return f"🧪 DRY RUN: would remediate {what}"
        return f"🔧 Remediating {what}"
    if notice.kind == "outcome":
        emoji, title = _TITLES.get(notice.outcome, ("📝", f"Outcome {notice.outcome}"))
        return f"{emoji} {title}: {what}"
    if notice.kind == "escalated":
        return f"🚨 Escalation: automatic remediation gave up on {what}"
    if notice.kind == "resolved":
        return f"🟢 Resolved: {what}"
    if notice.kind == "waiting":  # may start the thread: it names the incident too
        return f"⏳ Remediating {what}: waiting"
    if notice.kind == "pause_started":
        return f"⏸️ Remediation paused: {_scope(notice)}"
    if notice.kind == "pause_ended":
        return f"▶️ Pause lifted: {_scope(notice)}"
    if notice.kind == "store_reset":
        return "🧹 State store wiped: jobs accepted before it may be lost"
    if notice.kind == "context":  # may start the thread: the run is under way
        return f"🧪 DRY RUN: would remediate {what}" if notice.dry_run else f"🔧 Remediating {what}"
    if notice.kind == "brake_opened":
        dry = " (dry run)" if notice.dry_run else ""
        return f"🛑 Brake open{dry}: rule {notice.rule} holds further targets"
    if notice.kind == "brake_released":
        return f"▶️ Brake released: rule {notice.rule}"
    if notice.kind in ("approval", "approval_decided"):
        return f"✋ Approval needed: {notice.handler or 'remediation'} on {notice.target or notice.rule}"
    return f"⚙️ Rules reload: {notice.message or 'see details'}"


def _when(notice: Notice) -> str:
    if notice.alert is None:
        return ""
    at = notice.alert.starts_at
    return f"<!date^{int(at.timestamp())}^{{date_short_pretty}} {{time_secs}}|{at.isoformat()}>"


def _incident_fields(notice: Notice) -> dict[str, Any]:
    alert = notice.alert
    labels = alert.labels if alert is not None else {}
    fields = [
        f"*Alert*\n{short(alert_name(notice), 300)}",
        f"*Severity*\n{short(labels.get('severity', 'unknown'), 100)}",
        f"*Rule*\n{code(notice.rule)}",
        f"*Target*\n{code(notice.target or '(not rendered)')}",
        f"*Handler*\n{code(notice.handler or '?')}",
        f"*Since*\n{_when(notice) or 'unknown'}",
    ]
    return {"type": "section", "fields": [{"type": "mrkdwn", "text": f} for f in fields]}


def _summary(notice: Notice) -> str:
    annotations = notice.alert.annotations if notice.alert is not None else {}
    summary = annotations.get("summary") or annotations.get("description") or ""
    return short(summary, 1500)


def _links(notice: Notice) -> str:
    alert = notice.alert
    runbook = alert.annotations.get("runbook_url", "") if alert is not None else ""
    made_by, sent_by = SOURCE_NAMES.get(notice.source, SOURCE_NAMES["alertmanager"])
    found = [
        link(alert.generator_url, f"Source ({made_by})") if alert and alert.generator_url else "",
        link(runbook, "Runbook") if runbook else "",
        link(notice.external_url, sent_by) if notice.external_url else "",
        *(link(url, title) for title, url in (alert.grafana_links() if alert is not None else [])),
    ]
    return " · ".join(f for f in found if f.startswith("<"))


def _labels(notice: Notice) -> str:
    if notice.alert is None:
        return ""
    shown = [f"{k}={v}" for k, v in sorted(notice.alert.labels.items()) if k != "alertname"]
    return "Labels: " + short(", ".join(shown), 1200) if shown else ""


def incident_blocks(notice: Notice, *, event: bool = True) -> list[dict[str, Any]]:
    """What fired and what we are doing about it: the thread's parent (and flat messages);
    ``event``: with the event id of the notice (a header about the incident has none)."""
    blocks: list[dict[str, Any]] = [header(headline(notice)), _incident_fields(notice)]
    summary = _summary(notice)
    if summary:
        blocks.append(section(f"*Summary*: {summary}"))
    links = _links(notice)
    if links:
        blocks.append(section(links))
    if notice.dry_run:
        blocks.append(
            section("🧪 *DRY RUN*: the handler only renders its plan; nothing is changed on the target.")
        )
    notes = [
        _labels(notice),
        f"Event {code(notice.event_id)}" if notice.event_id and event else "",
        _manual(notice) if event else "",
    ]
    return blocks + context(*notes)


# ---- one block list per kind -------------------------------------------------------
def _steps(notice: Notice) -> list[str]:
    return [
        f"• {escape(s.name)}: {short(s.message, 300)}"
        for s in notice.timeline
        # a chain's step says its result in its step.finished line
        if s.name not in _HIDDEN_STEPS and not (s.name == "handler.finished" and "step" in s.data)
    ][-12:]


def _error_section(notice: Notice, title: str) -> dict[str, Any]:
    text, cut = clip(notice.message.replace("```", "'''") or "(no message)", MAX_ERROR)
    note = ""
    if cut:
        note = (
            f"\n_Truncated: {len(notice.message):,} characters in all; the full text is in "
            f"audit event {code(notice.event_id)}._"
        )
    return section(f"*{title}*\n```{text}```{note}")


def _attempts(notice: Notice) -> str:
    failures = int(notice.details.get("failures_in_window", 0) or 0)
    if not failures or not notice.max_attempts:
        return ""
    window = human_duration(notice.attempt_window)
    if failures > notice.max_attempts:  # a replay that ignored the open circuit
        return f"Failure {failures} within {window}; the circuit opened at {notice.max_attempts}"
    return f"Failure {failures} of {notice.max_attempts} allowed within {window}"


def outcome_blocks(notice: Notice) -> list[dict[str, Any]]:
    emoji, title = _TITLES.get(notice.outcome, ("📝", notice.outcome))
    took = f" in {human_duration(notice.duration)}" if notice.duration is not None else ""
    blocks = [section(f"{emoji} *{title}*{took}")]
    if notice.outcome != "failed" and notice.message:
        blocks.append(section(short(notice.message, 2000)))
    steps = _steps(notice)
    if steps:
        blocks.append(section("*Steps and verification*\n" + "\n".join(steps)))
    if notice.plan:
        plan = "\n".join(f"• {short(p, 400)}" for p in notice.plan[:10])
        blocks.append(section("*Plan* (nothing was done)\n" + plan))
    if notice.outcome == "failed":
        blocks.append(_error_section(notice, "Error"))
    if notice.outcome == "escalated":
        blocks.insert(0, section(_page_line(notice)))
    return blocks + context(_attempts(notice), f"Event {code(notice.event_id)}" if notice.event_id else "")


def _page_line(notice: Notice) -> str:
    """The chain reached its page: step: whom it names, and what was tried (above)."""
    who = mention(notice.escalate)
    page = notice.details.get("page") or {}
    pd = " A PagerDuty incident is opened." if isinstance(page, dict) and page.get("pagerduty") else ""
    return f"🙋 {who + ' ' if who else ''}*Over to you*: the runbook ran out of automatic steps.{pd}"


def escalation_blocks(notice: Notice) -> list[dict[str, Any]]:
    who = mention(notice.escalate)
    window = human_duration(notice.attempt_window) if notice.attempt_window else "the window"
    tried = "\n".join(_steps(notice)) or "• (the handler recorded no steps)"
    event = escape(notice.event_id)
    return [
        section(
            f"🚨 {who + ' ' if who else ''}*Escalation*: {code(notice.rule)} failed "
            f"{notice.failures} times within {window} on {code(notice.target)}. The circuit "
            f"is open: no automatic attempt on this target for {window}."
        ),
        section(f"*What was tried* (last attempt, handler {code(notice.handler)})\n{tried}"),
        _error_section(notice, "Last error"),
        section(
            "*What now*: fix it by hand, or once the cause is gone run it again (the open "
            "circuit blocks a plain replay, so the command overrides it):\n"
            f"• replay: `{replay_command(notice.event_id)}` or "
            f'`POST /api/v1/replay/{event}` with `{{"ignore_circuit": true}}`\n'
            "• pause all remediation: `remediator pause --reason R --for 30m` or "
            '`POST /api/v1/pauses` with `{"reason": "R", "for": "30m"}`'
        ),
    ]


def replay_command(event_id: str) -> str:
    """``notice.replay_command``, escaped for Slack."""
    return notice_replay_command(escape(event_id))


def started_reply_blocks(notice: Notice) -> list[dict[str, Any]]:
    dry = " (🧪 *DRY RUN*: nothing will be changed)" if notice.dry_run else ""
    manual = f" ({_manual(notice).replace('Manual', 'manual', 1)})" if notice.manual else ""
    return [
        section(
            f"🔁 *Another attempt started*{dry}{manual}: handler "
            f"{code(notice.handler)}, event {code(notice.event_id)}"
        )
    ]


def resolved_blocks(notice: Notice) -> list[dict[str, Any]]:
    alert = notice.alert
    ended = ""
    if alert is not None and alert.ends_at is not None and alert.ends_at.year > 1:
        at = alert.ends_at
        ended = f" at <!date^{int(at.timestamp())}^{{time_secs}}|{at.isoformat()}>"
    return [section(f"🟢 *Resolved*: Alertmanager reports {short(alert_name(notice), 300)} resolved{ended}.")]


def reload_blocks(notice: Notice) -> list[dict[str, Any]]:
    errors = notice.details.get("errors") or []
    lines = "\n".join(f"• {short(str(e), 400)}" for e in list(errors)[:10])
    blocks = [header(headline(notice))]
    if lines:
        blocks.append(section("*Problems*\n" + lines))
    return blocks


def waiting_blocks(notice: Notice) -> list[dict[str, Any]]:
    waited = f" ({human_duration(notice.duration)} so far)" if notice.duration else ""
    return [section(f"⏳ *Waiting*{waited}: {short(notice.message, 1500)}")]


def _scope(notice: Notice) -> str:
    matchers = notice.pause.get("matchers") or []
    return "everything" if not matchers else ", ".join(str(m) for m in matchers)


def pause_blocks(notice: Notice) -> list[dict[str, Any]]:
    """A pause started or ended: who, why, what it holds, until when."""
    pause = notice.pause
    until = float(pause.get("until") or 0)
    fields = [
        f"*Pause*\n{code(str(pause.get('id', '')))}",
        f"*By*\n{short(str(pause.get('by') or 'unknown'), 200)}",
        f"*Matches*\n{short(_scope(notice), 600)}",
        f"*Until*\n<!date^{int(until)}^{{date_short_pretty}} {{time}}|{int(until)}>",
    ]
    blocks = [
        header(short(headline(notice), 140)),
        {"type": "section", "fields": [{"type": "mrkdwn", "text": f} for f in fields]},
        section(f"*Reason*: {short(str(pause.get('reason', '')), 1500)}"),
    ]
    if notice.kind == "pause_ended" and notice.message:
        blocks += context(short(notice.message, 500))
    return blocks


def _body(notice: Notice) -> list[dict[str, Any]]:
    if notice.kind == "waiting":
        return waiting_blocks(notice)
    if notice.kind == "outcome":
        return outcome_blocks(notice)
    if notice.kind == "escalated":
        return escalation_blocks(notice)
    if notice.kind == "resolved":
        return resolved_blocks(notice)
    if notice.kind == "context":
        return context_blocks(notice.context)
    return []


def _text(notice: Notice) -> str:
    extra = ""
    if notice.kind == "outcome" and notice.outcome == "escalated":
        extra = f"{mention(notice.escalate)} " + short(notice.message, 500)
    elif notice.kind == "outcome" and notice.message:
        extra = short(notice.message, 500)
    elif notice.kind == "escalated":
        extra = f"{mention(notice.escalate)} failed {notice.failures} times; last error: " + short(
            notice.message, 500
        )
    return fallback(escape(headline(notice)), f"rule {notice.rule}", extra)


def bounded(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return blocks[:MAX_BLOCKS]


# ---- the three shapes --------------------------------------------------------------
def parent(notice: Notice) -> Message:
    """A thread's first message: the incident, then (for a late parent) what happened."""
    if notice.kind == "rules_reload":
        return Message(_text(notice), bounded(reload_blocks(notice)))
    if notice.kind in ("pause_started", "pause_ended"):
        return Message(fallback(escape(headline(notice)), "", ""), bounded(pause_blocks(notice)))
    if notice.kind in ("store_reset", "brake_opened", "brake_released"):
        blocks = [header(headline(notice)), section(escape(notice.message))]
        return Message(fallback(escape(headline(notice)), "", escape(notice.message)), blocks)
    body = [] if notice.kind == "context" else _body(notice)  # the context: its first reply
    return Message(_text(notice), bounded(incident_blocks(notice) + body))


def latest_header(notice: Notice) -> Message:
    """A thread's first message updated to the incident's latest state (an outcome, an
    escalation, the resolution): what fired, headed by what happened last."""
    notes = context("The latest state of this incident; the thread below has each step.")
    run = notice.kind != "resolved"  # the event of the run that led here (an outcome)
    return Message(_text(notice), bounded(incident_blocks(notice, event=run) + notes))


def reply(notice: Notice) -> Message:
    """A reply in the incident's thread; escalations are also shown in the channel."""
    if notice.kind == "started":
        return Message(_text(notice), started_reply_blocks(notice))
    broadcast = notice.kind == "escalated" or notice.outcome == "escalated"
    return Message(_text(notice), bounded(_body(notice)), broadcast=broadcast)


def flat(notice: Notice) -> Message:
    """Webhook mode has no threads: every message carries the incident with it."""
    if notice.kind == "context":
        return Message(_text(notice), bounded(incident_blocks(notice) + _body(notice)))
    return parent(notice)


def _manual(notice: Notice) -> str:
    """``Manual replay by alice``: the authenticated name of who asked, when known."""
    if not notice.manual:
        return ""
    return f"Manual replay by {escape(notice.requested_by)}" if notice.requested_by else "Manual replay"


def with_fallback_note(message: Message, channel: str, error: str) -> Message:
    """``message`` as posted to the default channel instead of a rule's ``channel`` that Slack
    refused (``error``), saying so where people read it."""
    note = (
        f"⚠️ Posted here because Slack refused {channel} ({error}): invite the bot to {channel} or fix "
        "the rule's slack_channel."
    )
    blocks = [*message.blocks[: MAX_BLOCKS - 1], *context(short(note, 300))] if message.blocks else []
    return Message(text=fallback(message.text, note), blocks=blocks, broadcast=message.broadcast)
