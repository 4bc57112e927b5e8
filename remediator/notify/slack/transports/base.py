"""The transport interface: how a Slack message leaves (httpx's ``_transports/base.py``).

A transport posts a message (in a thread where it can), updates one it posted, and
reports a refusal as ``SlackRefused`` (the HTTP status, Slack's error code, the wait
a 429 asked for). Retries inside one call are the transport's own (``retry.py``);
what the notifier does with a message that still fails is not.
"""

from __future__ import annotations

from typing import Literal, Protocol

from remediator.notify.slack.blocks import Message

Mode = Literal["bot", "webhook", "recording"]


class SlackRefused(Exception):
    """Slack (or the webhook) refused a message after the transport's retries."""

    def __init__(self, status: int, error: str = "", retry_after: float | None = None) -> None:
        super().__init__(f"Slack answered HTTP {status}: {error or 'no error code'}")
        self.status = status
        self.error = error
        self.retry_after = retry_after
        """Seconds Slack asked us to wait (a 429's ``Retry-After``; 1 when it gave none)."""


class Transport(Protocol):
    """One way of posting to Slack; the notifier decides what to say."""

    @property
    def mode(self) -> Mode:
        """``bot``, ``webhook`` or ``recording``: for the log."""

    @property
    def threads(self) -> bool:
        """Posts return a ``ts`` that replies and updates can name (the bot API); an
        incoming webhook posts flat messages that cannot be named, threaded or updated."""

    @property
    def secrets(self) -> list[str]:
        """Strings never to show (the token, the webhook URL and its path), longest first."""

    @property
    def channel(self) -> str:
        """The default channel as configured, or its id once Slack has answered with it."""

    def id_of(self, channel: str | None) -> str:
        """``channel`` (None: the default one) by its id once Slack has answered with it, else
        as named (``chat.update`` needs the id)."""

    async def post(self, message: Message, thread_ts: str | None = None, channel: str | None = None) -> str:
        """Post ``message`` to ``channel`` (None: the default one; a webhook has only its own),
        a reply in ``thread_ts`` where threads exist; its ``ts``, or "" where messages have
        none. Raises ``SlackRefused`` or a connection error."""

    async def update(self, channel: str, ts: str, message: Message) -> None:
        """Replace the message ``ts`` of ``channel`` (only where ``threads`` is true)."""
