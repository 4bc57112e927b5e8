"""Answering people who click our buttons: may they decide, and telling them privately.

Group membership comes from ``usergroups.users.list`` (scope ``usergroups:read``), kept
for ``cache_ttl`` seconds; ephemeral replies go through ``chat.postEphemeral`` (seen only
by the person who clicked).
"""

from __future__ import annotations

import time
from collections.abc import Iterable

import aiohttp
import structlog
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from remediator.notify.slack.retry import retry_handlers, sdk_logger
from remediator.settings import Settings

log = structlog.get_logger("remediator.notify.slack.interactive")


class SlackInteractive:
    def __init__(self, settings: Settings, session: aiohttp.ClientSession, cache_ttl: float = 60.0) -> None:
        self._cache_ttl = cache_ttl
        self._groups: dict[str, tuple[float, frozenset[str]]] = {}  # group -> (until, members)
        self._web: AsyncWebClient | None = None
        if settings.slack_bot_token is not None:
            self._web = AsyncWebClient(
                token=settings.slack_bot_token.get_secret_value(),
                base_url=settings.slack_api_url,
                session=session,
                logger=sdk_logger(),
                retry_handlers=retry_handlers(1, 2.0),
                timeout=5,
            )

    async def may_decide(self, user: str, approvers: Iterable[str]) -> bool:
        """``user`` is listed, or a member of a listed user group."""
        listed = list(approvers)
        if user in listed:
            return True
        for group in (a for a in listed if a.startswith("S")):
            if user in await self.members(group):
                return True
        return False

    async def members(self, group: str) -> frozenset[str]:
        cached = self._groups.get(group)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        if self._web is None:
            log.warning("slack.group_unresolved", group=group, error="no REMEDIATOR_SLACK_BOT_TOKEN")
            return frozenset()
        try:
            response = await self._web.usergroups_users_list(usergroup=group)
        except (SlackApiError, aiohttp.ClientError, TimeoutError) as exc:
            log.warning("slack.group_unresolved", group=group, error=_describe(exc))
            return cached[1] if cached is not None else frozenset()  # a stale list beats none
        members = frozenset(str(u) for u in response.get("users") or [])
        self._groups[group] = (time.monotonic() + self._cache_ttl, members)
        return members

    async def ephemeral(self, channel: str, user: str, text: str, thread_ts: str | None = None) -> None:
        """A reply only ``user`` sees; a failure is logged (the click changed nothing anyway)."""
        if self._web is None or not channel:
            log.info("slack.ephemeral_not_sent", user=user, text=text)
            return
        try:
            await self._web.chat_postEphemeral(channel=channel, user=user, text=text, thread_ts=thread_ts)
        except (SlackApiError, aiohttp.ClientError, TimeoutError) as exc:
            log.warning("slack.ephemeral_failed", user=user, error=_describe(exc))


def _describe(exc: BaseException) -> str:
    if isinstance(exc, SlackApiError):
        data = exc.response.data if isinstance(exc.response.data, dict) else {}
        return f"Slack answered HTTP {exc.response.status_code}: {data.get('error') or 'no error code'}"
    return f"{type(exc).__name__}: {exc}"
