"""How Slack messages leave: one interface, the bot API and the incoming webhook, and a
recording transport for tests, shipped beside them (as httpx's transports are)."""

from __future__ import annotations

import aiohttp

from remediator.notify.slack.transports.base import Mode, SlackRefused, Transport
from remediator.notify.slack.transports.bot import BotTransport
from remediator.notify.slack.transports.recording import Posted, RecordingTransport
from remediator.notify.slack.transports.webhook import WebhookTransport
from remediator.settings import Settings


def transport_for(
    settings: Settings, session: aiohttp.ClientSession, *, retries: int = 3, max_retry_after: float = 30.0
) -> Transport:
    """The bot API with a bot token (threads), else the incoming webhook (flat)."""
    if settings.slack_bot_token is not None:
        return BotTransport(
            token=settings.slack_bot_token.get_secret_value(),
            channel=settings.slack_channel or "",
            api_url=settings.slack_api_url,
            session=session,
            retries=retries,
            max_retry_after=max_retry_after,
        )
    if settings.slack_webhook_url is not None:
        return WebhookTransport(
            url=settings.slack_webhook_url.get_secret_value(),
            session=session,
            retries=retries,
            max_retry_after=max_retry_after,
        )
    raise ValueError("Slack needs a bot token or a webhook URL")


__all__ = [
    "BotTransport",
    "Mode",
    "Posted",
    "RecordingTransport",
    "SlackRefused",
    "Transport",
    "WebhookTransport",
    "transport_for",
]
