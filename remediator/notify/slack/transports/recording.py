"""A transport that keeps what it is given (httpx's ``MockTransport``): the messages'
shapes, threads and updates are tested without a Slack, a server or a socket."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from remediator.notify.slack.blocks import Message
from remediator.notify.slack.transports.base import Mode, SlackRefused


@dataclass(frozen=True)
class Posted:
    """A message as the transport received it; ``ts`` is the one it answered."""

    message: Message
    thread_ts: str | None
    ts: str
    channel: str = ""


@dataclass
class RecordingTransport:
    """Threads like the bot API (``threads=False``: flat, like a webhook). ``refuse``
    holds refusals to raise, one per call, before anything is recorded."""

    threads: bool = True
    channel: str = "C0RECORDED"
    posted: list[Posted] = field(default_factory=list)
    updated: list[tuple[str, Message]] = field(default_factory=list)  # (ts, the new message)
    refuse: list[SlackRefused] = field(default_factory=list)
    secrets: list[str] = field(default_factory=list)
    _ts: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    @property
    def mode(self) -> Mode:
        return "recording"

    def id_of(self, channel: str | None) -> str:
        return channel or self.channel

    async def post(self, message: Message, thread_ts: str | None = None, channel: str | None = None) -> str:
        if self.refuse:
            raise self.refuse.pop(0)
        ts = f"1700000000.{next(self._ts):06d}" if self.threads else ""
        self.posted.append(Posted(message, thread_ts if self.threads else None, ts, channel or self.channel))
        return ts

    async def update(self, channel: str, ts: str, message: Message) -> None:
        if self.refuse:
            raise self.refuse.pop(0)
        if not self.threads:
            raise SlackRefused(400, "a flat transport cannot update a message")
        self.updated.append((ts, message))

    def top_level(self) -> list[Posted]:
        return [p for p in self.posted if p.thread_ts is None]

    def replies(self, parent: Posted) -> list[Posted]:
        return [p for p in self.posted if p.thread_ts == parent.ts and parent.ts]

    def latest(self, parent: Posted) -> Message:
        """``parent`` as it reads now: its last update, or as posted."""
        updates = [m for ts, m in self.updated if ts == parent.ts]
        return updates[-1] if updates else parent.message
