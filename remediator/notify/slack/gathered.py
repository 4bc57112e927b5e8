"""Slack blocks for the context gathered before acting (a rule's ``context:``): each entry
its title and its text in a code block, or why it could not be gathered. Pure, no I/O.

The text was redacted and bounded by the worker; here it is escaped (it is untrusted: a
log line can hold ``<!channel>``) and split into sections within Slack's limit.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from remediator.models import Gathered
from remediator.notify.slack.blocks import MAX_SECTION, escape, section, short

CHUNK = MAX_SECTION - 200  # characters of text per section, leaving room for the title
MAX_SECTIONS = 24  # of one message's context (Slack allows 50 blocks in all)


def entries_of(raw: Iterable[dict[str, Any]]) -> list[Gathered]:
    """Entries as an approval keeps them (plain dicts), back as ``Gathered``."""
    return [Gathered.model_validate(entry) for entry in raw]


HEADING = "🔎 *Context*, gathered before acting"
MORE = "_More context than one message holds: the audit event has all of it._"


def context_blocks(entries: Sequence[Gathered], heading: str = HEADING) -> list[dict[str, Any]]:
    """A heading, then each entry: its title and text, or why it could not be gathered."""
    blocks = [section(heading)]
    for entry in entries:
        blocks += _entry(entry)
    if len(blocks) > MAX_SECTIONS:
        blocks = [*blocks[: MAX_SECTIONS - 1], section(MORE)]
    return blocks


def _entry(entry: Gathered) -> list[dict[str, Any]]:
    title = f"*{short(entry.title, 300)}*"
    if not entry.ok:
        return [section(f"⚠️ {title}: could not be gathered: {short(entry.error, 1000)}")]
    notes = []
    if entry.cut:
        notes.append(f"{entry.cut:,} characters cut, {'the end' if entry.tail else 'the start'} kept")
    if entry.redacted:
        notes.append(f"{entry.redacted} secret{'s' if entry.redacted > 1 else ''} redacted")
    title += f" _({'; '.join(notes)})_" if notes else ""
    text = escape(entry.text.strip() or "(empty)").replace("```", "'''")
    chunks = [text[i : i + CHUNK] for i in range(0, len(text), CHUNK)]
    out = [section(f"{title}\n```{chunks[0]}```")]
    out += [section(f"```{chunk}```") for chunk in chunks[1:]]
    return out
