"""Slack messages for notices: Block Kit plus a plain-text fallback, inside Slack's limits.

Pure functions, no I/O. Labels and annotations are untrusted: every piece of
alert data is escaped (``&``, ``<``, ``>``) so it can neither mention anyone
nor forge a link, and long values are cut with a note saying so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from remediator.durations import format_duration
from remediator.notify.notice import Notice

MAX_BLOCKS = 50  # per message
MAX_SECTION = 3000  # characters of a section's text
MAX_HEADER = 150  # characters of a header block
MAX_FALLBACK = 3000  # our own bound for the plain-text ``text`` (Slack cuts at 40,000)
MAX_LINK = 1000  # a longer URL is not linked (it would crowd out the rest)
MAX_ERROR = 2400  # of the last error shown, leaving room for the note in one section
_HIDDEN_STEPS = {"received", "lease.acquired", "handler.started", "outcome", "deferred",
                 "circuit.opened"}
_TITLES = {
    "succeeded": ("✅", "Remediation succeeded"),
    "noop": ("💤", "Nothing to do: the precheck found it healthy"),
    "dry_run": ("🧪", "Dry run: plan rendered, nothing changed"),
    "failed": ("❌", "Remediation failed"),
}


@dataclass(frozen=True)
class Message:
    text: str  # plain-text fallback (notifications, screen readers, old clients)
    blocks: list[dict[str, Any]] = field(default_factory=list)
    broadcast: bool = False  # a thread reply that is also shown in the channel


# ---- escaping and limits -------------------------------------------------------
def escape(text: str) -> str:
    """Slack's three control characters in text; everything else is shown as is."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def clip(raw: str, limit: int) -> tuple[str, bool]:
    """``raw`` escaped and cut to ``limit`` characters (never inside an entity)."""
    text = escape(raw)
    if len(text) <= limit:
        return text, False
    cut = text[:limit]
    amp = cut.rfind("&")
    if amp != -1 and ";" not in cut[amp:]:
        cut = cut[:amp]
    return cut, True


def short(raw: str, limit: int) -> str:
    text, cut = clip(raw, limit)
    return text + "…" if cut else text


def link(url: str, label: str) -> str:
    """``<url|label>`` for an http(s) URL, else the label alone (never a forged link)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return label
    if parts.scheme not in ("http", "https") or not parts.netloc or len(url) > MAX_LINK:
        return label
    return f"<{escape(url).replace('|', '%7C')}|{label}>"


def mention(escalate: str) -> str:
    """The rule's ``escalate`` (operator config, trusted); ``@here`` becomes ``<!here>``."""
    value = escalate.strip()
    if value in ("@here", "@channel", "@everyone"):
        return f"<!{value[1:]}>"
    return value


def code(value: str) -> str:
    """Inline code; rule names and targets are validated, escaped anyway."""
    return "`" + escape(value).replace("`", "'") + "`"


def _section(text: str) -> dict[str, Any]:
    if len(text) > MAX_SECTION:  # a last guard; callers budget their pieces
        text = text[: text.rfind("\n", 0, MAX_SECTION - 1)] + "\n…"
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def _context(*texts: str) -> list[dict[str, Any]]:
    """A context block as a list of zero or one (Slack rejects an empty one)."""
    elements = [{"type": "mrkdwn", "text": t} for t in texts if t][:10]
    return [{"type": "context", "elements": elements}] if elements else []


def _header(text: str) -> dict[str, Any]:
    plain = text if len(text) <= MAX_HEADER else text[: MAX_HEADER - 1] + "…"
    return {"type": "header", "text": {"type": "plain_text", "text": plain, "emoji": True}}


def _fallback(*parts: str) -> str:
    text = " · ".join(p for p in parts if p)
    return text if len(text) <= MAX_FALLBACK else text[: MAX_FALLBACK - 1] + "…"


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
    found = [
        link(alert.generator_url, "Source (Prometheus)") if alert and alert.generator_url else "",
        link(runbook, "Runbook") if runbook else "",
        link(notice.external_url, "Alertmanager") if notice.external_url else "",
    ]
    return " · ".join(f for f in found if f.startswith("<"))


def _labels(notice: Notice) -> str:
    if notice.alert is None:
        return ""
    shown = [f"{k}={v}" for k, v in sorted(notice.alert.labels.items()) if k != "alertname"]
    return "Labels: " + short(", ".join(shown), 1200) if shown else ""


def incident_blocks(notice: Notice) -> list[dict[str, Any]]:
    """What fired and what we are doing about it: the thread's parent (and flat messages)."""
    blocks: list[dict[str, Any]] = [_header(headline(notice)), _incident_fields(notice)]
    summary = _summary(notice)
    if summary:
        blocks.append(_section(f"*Summary*: {summary}"))
    links = _links(notice)
    if links:
        blocks.append(_section(links))
    if notice.dry_run:
        blocks.append(_section("🧪 *DRY RUN*: the handler only renders its plan; "
                               "nothing is changed on the target."))
    notes = [_labels(notice), f"Event {code(notice.event_id)}" if notice.event_id else "",
             "Manual replay" if notice.manual else ""]
    return blocks + _context(*notes)


# ---- one block list per kind -------------------------------------------------------
def _steps(notice: Notice) -> list[str]:
    return [f"• {escape(s.name)}: {short(s.message, 300)}" for s in notice.timeline
            if s.name not in _HIDDEN_STEPS][-12:]


def _error_section(notice: Notice, title: str) -> dict[str, Any]:
    text, cut = clip(notice.message.replace("```", "'''") or "(no message)", MAX_ERROR)
    note = ""
    if cut:
        note = (f"\n_Truncated: {len(notice.message):,} characters in all; the full text is in "
                f"audit event {code(notice.event_id)}._")
    return _section(f"*{title}*\n```{text}```{note}")


def _attempts(notice: Notice) -> str:
    failures = int(notice.details.get("failures_in_window", 0) or 0)
    if not failures or not notice.max_attempts:
        return ""
    window = format_duration(notice.attempt_window)
    return f"Failure {failures} of {notice.max_attempts} allowed within {window}"


def outcome_blocks(notice: Notice) -> list[dict[str, Any]]:
    emoji, title = _TITLES.get(notice.outcome, ("📝", notice.outcome))
    took = f" in {format_duration(notice.duration)}" if notice.duration is not None else ""
    blocks = [_section(f"{emoji} *{title}*{took}")]
    if notice.outcome != "failed" and notice.message:
        blocks.append(_section(short(notice.message, 2000)))
    steps = _steps(notice)
    if steps:
        blocks.append(_section("*Steps and verification*\n" + "\n".join(steps)))
    if notice.plan:
        plan = "\n".join(f"• {short(p, 400)}" for p in notice.plan[:10])
        blocks.append(_section("*Plan* (nothing was done)\n" + plan))
    if notice.outcome == "failed":
        blocks.append(_error_section(notice, "Error"))
    return blocks + _context(_attempts(notice),
                             f"Event {code(notice.event_id)}" if notice.event_id else "")


def escalation_blocks(notice: Notice) -> list[dict[str, Any]]:
    who = mention(notice.escalate)
    window = format_duration(notice.attempt_window) if notice.attempt_window else "the window"
    tried = "\n".join(_steps(notice)) or "• (the handler recorded no steps)"
    event = escape(notice.event_id)
    return [
        _section(f"🚨 {who + ' ' if who else ''}*Escalation*: {code(notice.rule)} failed "
                 f"{notice.failures} times within {window} on {code(notice.target)}. The circuit "
                 f"is open: no automatic attempt on this target for {window}."),
        _section(f"*What was tried* (last attempt, handler {code(notice.handler)})\n{tried}"),
        _error_section(notice, "Last error"),
        _section(
            "*What now*: fix it by hand, or once the cause is gone run it again (the open "
            "circuit blocks a plain replay, so the command overrides it):\n"
            f"• replay: `{replay_command(notice.event_id)}` or "
            f"`POST /api/v1/replay/{event}` with `{{\"ignore_circuit\": true}}`\n"
            "• pause all remediation: `remediator pause --reason R --for 30m` or "
            '`POST /api/v1/pause` with `{"reason": "R", "for": "30m"}`'),
    ]


def replay_command(event_id: str) -> str:
    """The shell command that re-runs an escalated event: the open circuit would skip a
    plain replay, and ``--wait`` makes the exit code tell whether it worked."""
    return f"remediator replay {escape(event_id)} --ignore-circuit --wait 300"


def started_reply_blocks(notice: Notice) -> list[dict[str, Any]]:
    dry = " (🧪 *DRY RUN*: nothing will be changed)" if notice.dry_run else ""
    manual = " (manual replay)" if notice.manual else ""
    return [_section(f"🔁 *Another attempt started*{dry}{manual}: handler "
                     f"{code(notice.handler)}, event {code(notice.event_id)}")]


def resolved_blocks(notice: Notice) -> list[dict[str, Any]]:
    alert = notice.alert
    ended = ""
    if alert is not None and alert.ends_at is not None and alert.ends_at.year > 1:
        at = alert.ends_at
        ended = f" at <!date^{int(at.timestamp())}^{{time_secs}}|{at.isoformat()}>"
    return [_section(f"🟢 *Resolved*: Alertmanager reports {short(alert_name(notice), 300)} "
                     f"resolved{ended}.")]


def reload_blocks(notice: Notice) -> list[dict[str, Any]]:
    errors = notice.details.get("errors") or []
    lines = "\n".join(f"• {short(str(e), 400)}" for e in list(errors)[:10])
    blocks = [_header(headline(notice))]
    if lines:
        blocks.append(_section("*Problems*\n" + lines))
    return blocks


def _body(notice: Notice) -> list[dict[str, Any]]:
    if notice.kind == "outcome":
        return outcome_blocks(notice)
    if notice.kind == "escalated":
        return escalation_blocks(notice)
    if notice.kind == "resolved":
        return resolved_blocks(notice)
    return []


def _text(notice: Notice) -> str:
    extra = ""
    if notice.kind == "outcome" and notice.message:
        extra = short(notice.message, 500)
    elif notice.kind == "escalated":
        extra = f"{mention(notice.escalate)} failed {notice.failures} times; last error: " + short(
            notice.message, 500)
    return _fallback(escape(headline(notice)), f"rule {notice.rule}", extra)


def _bounded(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return blocks[:MAX_BLOCKS]


# ---- the three shapes --------------------------------------------------------------
def parent(notice: Notice) -> Message:
    """A thread's first message: the incident, then (for a late parent) what happened."""
    if notice.kind == "rules_reload":
        return Message(_text(notice), _bounded(reload_blocks(notice)))
    body = _body(notice)
    return Message(_text(notice), _bounded(incident_blocks(notice) + body))


def reply(notice: Notice) -> Message:
    """A reply in the incident's thread; escalations are also shown in the channel."""
    if notice.kind == "started":
        return Message(_text(notice), started_reply_blocks(notice))
    return Message(_text(notice), _bounded(_body(notice)),
                   broadcast=notice.kind == "escalated")


def flat(notice: Notice) -> Message:
    """Webhook mode has no threads: every message carries the incident with it."""
    return parent(notice)
