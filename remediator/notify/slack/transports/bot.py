"""The bot API transport: ``chat.postMessage`` and ``chat.update`` with a bot token."""

from __future__ import annotations

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from remediator.notify.slack.blocks import Message
from remediator.notify.slack.retry import retry_after, retry_handlers, sdk_logger
from remediator.notify.slack.transports.base import Mode, SlackRefused


class BotTransport:
    """Threads, replies and updates in one channel, through slack_sdk's web client."""

    mode: Mode = "bot"
    threads = True

    def __init__(
        self,
        *,
        token: str,
        channel: str,
        api_url: str,
        session: aiohttp.ClientSession,
        retries: int = 3,
        max_retry_after: float = 30.0,
    ) -> None:
        self._channel = channel
        self._ids: dict[str, str] = {}  # each channel's id, as chat.postMessage answers it
        self.secrets = [token] if token else []
        self._web = AsyncWebClient(
            token=token,
            base_url=api_url,
            session=session,
            logger=sdk_logger(),
            retry_handlers=retry_handlers(retries, max_retry_after),
        )

    @property
    def channel(self) -> str:
        return self.id_of(None)

    def id_of(self, channel: str | None) -> str:
        channel = channel or self._channel
        return self._ids.get(channel) or channel

    async def post(self, message: Message, thread_ts: str | None = None, channel: str | None = None) -> str:
        channel = channel or self._channel
        try:
            response = await self._web.chat_postMessage(
                channel=channel,
                text=message.text,
                blocks=message.blocks,
                thread_ts=thread_ts,
                reply_broadcast=message.broadcast or None,
                unfurl_links=False,
                unfurl_media=False,
            )
        except SlackApiError as exc:
            raise refused(exc) from None
        self._ids[channel] = str(response.get("channel") or self._ids.get(channel, "")) or channel
        return str(response["ts"])

    async def update(self, channel: str, ts: str, message: Message) -> None:
        try:
            await self._web.chat_update(channel=channel, ts=ts, text=message.text, blocks=message.blocks)
        except SlackApiError as exc:
            raise refused(exc) from None


def refused(exc: SlackApiError) -> SlackRefused:
    """The SDK's error as ours: status, Slack's error code, and a 429's wait."""
    response = exc.response
    data = response.data if isinstance(response.data, dict) else {}
    wait = None
    if response.status_code == 429:
        wait = retry_after(response.headers)
        wait = 1.0 if wait is None else wait
    return SlackRefused(response.status_code, str(data.get("error") or ""), wait)
