"""Slack messages for approvals: the request with its two buttons, and the same message
once decided (who, when, with their note). Pure functions, no I/O."""

from __future__ import annotations

import time
from typing import Any

from remediator.notify.notice import Notice
from remediator.notify.slack.blocks import Message, code, context, escape, fallback, section, short
from remediator.notify.slack.gathered import context_blocks, entries_of
from remediator.notify.slack.messages import bounded, headline, incident_blocks

APPROVE, REJECT = "remediator_approve", "remediator_reject"  # the buttons' action ids
_DECIDED = {
    "approved": "✅ *Approved*",
    "rejected": "⛔ *Rejected*",
    "expired": "⌛ *Not approved in time*",
    "withdrawn": "↩️ *Withdrawn*",
}


def _who(ident: str) -> str:
    """A Slack id from ``approvers`` as a mention (they are validated ids)."""
    return f"<!subteam^{ident}>" if ident.startswith("S") else f"<@{ident}>"


def _at(epoch: float, fmt: str = "{date_short_pretty} {time}") -> str:
    iso = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))
    return f"<!date^{int(epoch)}^{fmt}|{iso}>"


def approval_blocks(notice: Notice) -> list[dict[str, Any]]:
    """What would run, who may decide until when, and (while pending) the two buttons."""
    approval = notice.approval
    if approval is None:
        return []
    plan = "\n".join(f"• {short(step, 400)}" for step in approval.plan[:15]) or "• (the handler gave no plan)"
    blocks = [
        section(
            f"✋ *Approval needed* before {code(approval.handler or notice.handler)} runs on "
            f"{code(approval.target)}\n*What would run*\n{plan}"
        )
    ]
    if approval.context:
        blocks += context_blocks(entries_of(approval.context), "🔎 *Context*, gathered before asking")
    if approval.precheck:
        blocks.append(section(f"*The target now* (its precheck)\n{short(approval.precheck, 1500)}"))
    if approval.decision is None:
        who = " ".join(_who(a) for a in approval.approvers[:20])
        event = escape(approval.event_id)
        blocks += context(
            f"Approvers: {who} · until {_at(approval.expires_at)}",
            f"Or: `remediator approve {event}` / `remediator reject {event}`",
        )
        blocks.append(
            {
                "type": "actions",
                "block_id": "remediator_approval",
                "elements": [
                    _button("Approve", APPROVE, approval.event_id, "primary"),
                    _button("Reject", REJECT, approval.event_id, "danger"),
                ],
            }
        )
        return blocks
    by = escape(approval.decided_by)
    when = f" at {_at(approval.decided_at, '{date_short_pretty} {time_secs}')}" if approval.decided_at else ""
    verdict = _DECIDED.get(approval.decision, approval.decision)
    text = f"{verdict} by {by}{when}" if approval.decision in ("approved", "rejected") else f"{verdict}{when}"
    if approval.note:
        text += f": {short(approval.note, 500)}"
    blocks.append(section(text))
    return blocks


def _button(label: str, action: str, value: str, style: str) -> dict[str, Any]:
    return {
        "type": "button",
        "action_id": action,
        "text": {"type": "plain_text", "text": label},
        "style": style,
        "value": value,
    }


def approval_message(notice: Notice, *, parent: bool) -> Message:
    """The approval request (or, decided, its update): with the incident when it starts
    the thread, alone as a reply in an existing one."""
    blocks = approval_blocks(notice)
    if parent:
        blocks = incident_blocks(notice) + blocks
    return Message(fallback(escape(headline(notice)), f"rule {notice.rule}"), bounded(blocks))
