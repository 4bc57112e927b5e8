"""The incoming-webhook transport: flat messages to the webhook's one channel."""

from __future__ import annotations

import aiohttp
from slack_sdk.webhook.async_client import AsyncWebhookClient

from remediator.notify.slack.blocks import Message
from remediator.notify.slack.retry import retry_after, retry_handlers, sdk_logger
from remediator.notify.slack.transports.base import Mode, SlackRefused


class WebhookTransport:
    """Posts only: a webhook's messages have no ``ts`` to reply to or update."""

    mode: Mode = "webhook"
    threads = False
    channel = ""

    def __init__(
        self,
        *,
        url: str,
        session: aiohttp.ClientSession,
        retries: int = 3,
        max_retry_after: float = 30.0,
    ) -> None:
        path = url.split("://", 1)[-1].partition("/")[2]  # the path alone is the secret
        self.secrets = sorted((s for s in (url, path if len(path) >= 8 else "") if s), key=len, reverse=True)
        self._hook = AsyncWebhookClient(
            url=url,
            session=session,
            logger=sdk_logger(),
            retry_handlers=retry_handlers(retries, max_retry_after),
        )

    def id_of(self, channel: str | None) -> str:
        return ""

    async def post(self, message: Message, thread_ts: str | None = None, channel: str | None = None) -> str:
        answer = await self._hook.send(
            text=message.text, blocks=message.blocks, unfurl_links=False, unfurl_media=False
        )
        if answer.status_code != 200:
            wait = None
            if answer.status_code == 429:
                wait = retry_after(answer.headers)
                wait = 1.0 if wait is None else wait
            raise SlackRefused(answer.status_code, (answer.body or "")[:200], wait)
        return ""

    async def update(self, channel: str, ts: str, message: Message) -> None:
        raise SlackRefused(400, "an incoming webhook cannot update a message")
