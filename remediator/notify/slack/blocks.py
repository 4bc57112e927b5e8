"""Slack Block Kit pieces and Slack's limits: escaping, clipping, links, blocks.

Pure functions, no I/O. Every piece of untrusted text is escaped (``&``, ``<``,
``>``) so it can neither mention anyone nor forge a link.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

MAX_BLOCKS = 50  # per message
MAX_SECTION = 3000  # characters of a section's text
MAX_HEADER = 150  # characters of a header block
MAX_FALLBACK = 3000  # our own bound for the plain-text ``text`` (Slack cuts at 40,000)
MAX_LINK = 1000  # a longer URL is not linked (it would crowd out the rest)


@dataclass(frozen=True)
class Message:
    """One Slack message: Block Kit blocks and their plain-text fallback."""

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


def section(text: str) -> dict[str, Any]:
    """A mrkdwn section, cut at a line when longer than Slack allows."""
    if len(text) > MAX_SECTION:  # a last guard; callers budget their pieces
        text = text[: text.rfind("\n", 0, MAX_SECTION - 1)] + "\n…"
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def context(*texts: str) -> list[dict[str, Any]]:
    """A context block as a list of zero or one (Slack rejects an empty one)."""
    elements = [{"type": "mrkdwn", "text": t} for t in texts if t][:10]
    return [{"type": "context", "elements": elements}] if elements else []


def header(text: str) -> dict[str, Any]:
    """A plain-text header block, cut to Slack's limit."""
    plain = text if len(text) <= MAX_HEADER else text[: MAX_HEADER - 1] + "…"
    return {"type": "header", "text": {"type": "plain_text", "text": plain, "emoji": True}}


def fallback(*parts: str) -> str:
    """The plain-text ``text`` of a message: the parts joined, within our bound."""
    text = " · ".join(p for p in parts if p)
    return text if len(text) <= MAX_FALLBACK else text[: MAX_FALLBACK - 1] + "…"
