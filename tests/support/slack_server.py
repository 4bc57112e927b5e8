"""A local Slack stand-in: an aiohttp server speaking the Web API and incoming webhooks.

``POST /api/chat.postMessage`` answers like Slack (``{"ok": true, "ts", "channel"}``,
or ``{"ok": false, "error"}`` with HTTP 200), checks the bearer token and the
Block Kit limits (50 blocks, 3,000-character sections, 150-character headers),
and records every message with its ``thread_ts``. ``POST /services/...`` is an
incoming webhook (answers ``ok``). Scripted replies (``fail_next``) or a
standing ``default`` reply make it answer 429 with ``Retry-After``, 5xx, slow,
or ``ok: false``. ``render_threads()`` prints the channel as a person would read it.

Channels: by default every channel is the one channel ``channel_id``. With ``channels``
(a name such as ``#team-a``, and the id, -> the id) only those exist, and the bot is only
in ``joined`` (ids): another channel answers ``channel_not_found``, a channel the bot is not
in ``not_in_channel``, as Slack does; each message records the id it went to.

For approvals: ``chat.update`` replaces a recorded message (kept in ``updates`` too),
``chat.postEphemeral`` is recorded in ``ephemerals``, ``usergroups.users.list`` answers
from ``usergroups`` (counted in ``group_lookups``); ``interaction()`` and ``signed()``
make the signed ``block_actions`` request Slack sends when someone presses a button.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import json
import re
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from remediator.notify.slack.signing import signature
from tests.support.procs import free_port

TOKEN = "xoxb-test-0000-SECRET-token"
CHANNEL_ID = "C0ALERTS42"
WEBHOOK_PATH = "/services/T0TEST/B0TEST/webhook-SECRET-path"


@dataclass(frozen=True)
class Reply:
    """How to answer one request: ``status`` != 200 is an HTTP error, ``error`` is ok: false."""

    status: int = 200
    error: str = ""
    retry_after: str | None = None
    delay: float = 0.0


OK = Reply()


@dataclass
class Message:
    via: str  # "api" or "webhook"
    channel: str
    ts: str
    text: str
    blocks: list[dict[str, Any]]
    thread_ts: str | None = None
    reply_broadcast: bool = False
    options: dict[str, Any] = field(default_factory=dict)
    earlier: list[tuple[str, list[dict[str, Any]]]] = field(
        default_factory=list
    )  # (text, blocks) updated away

    def as_posted(self) -> Message:
        """This message as it was first posted, before any chat.update."""
        if not self.earlier:
            return self
        text, blocks = self.earlier[0]
        return dataclasses.replace(self, text=text, blocks=blocks, earlier=[])


@dataclass(frozen=True)
class Request:
    at: float  # monotonic, when the request arrived
    path: str
    status: int
    error: str = ""


class SlackServer:
    def __init__(self, *, token: str = TOKEN, channel_id: str = CHANNEL_ID) -> None:
        self.token = token
        self._sleeping: set[asyncio.Task[object]] = set()
        self.channel_id = channel_id
        self.port = free_port()
        self.messages: list[Message] = []
        self.requests: list[Request] = []
        self.plans: deque[Reply] = deque()
        self.default = OK
        self._seq = itertools.count(1)
        self._base = int(time.time())
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self.updates: list[dict[str, Any]] = []
        self.ephemerals: list[dict[str, Any]] = []
        self.usergroups: dict[str, list[str]] = {}
        self.group_lookups = 0
        self.channels: dict[str, str] = {}  # name or id -> id; empty: every channel is channel_id
        self.joined: set[str] = set()  # the ids of the channels the bot is in

    def add_channel(self, name: str, ident: str, *, joined: bool = True) -> None:
        """A channel ``#name`` with id ``ident`` (the default channel ``#alerts`` is added too)."""
        if not self.channels:
            self.channels.update({"#alerts": self.channel_id, self.channel_id: self.channel_id})
            self.joined.add(self.channel_id)
        self.channels.update({name: ident, ident: ident})
        if joined:
            self.joined.add(ident)

    # ---- lifecycle ------------------------------------------------------------------
    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/"

    @property
    def webhook_url(self) -> str:
        return f"http://127.0.0.1:{self.port}{WEBHOOK_PATH}"

    async def start(self) -> SlackServer:
        app = web.Application()
        app.router.add_post("/api/chat.postMessage", self._post_message)
        app.router.add_post(WEBHOOK_PATH, self._webhook)
        app.router.add_post("/api/chat.update", self._update)
        app.router.add_post("/api/chat.postEphemeral", self._ephemeral)
        app.router.add_get("/api/usergroups.users.list", self._group_members)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    async def close(self) -> None:
        # Slow (scripted) answers still sleeping: end them, so no task outlives the server.
        for task in list(self._sleeping):
            task.cancel()
        if self._sleeping:
            await asyncio.wait(self._sleeping, timeout=2.0)
        if self._runner is not None:
            await self._runner.cleanup()

    # ---- scripting ------------------------------------------------------------------
    def fail_next(self, reply: Reply, times: int = 1) -> None:
        self.plans.extend([reply] * times)

    async def wait_for_messages(self, count: int, within: float = 30.0) -> list[Message]:
        async def enough() -> None:
            async with self._changed:
                await self._changed.wait_for(lambda: len(self.messages) >= count)

        try:
            await asyncio.wait_for(enough(), within)
        except TimeoutError:
            raise AssertionError(
                f"expected {count} Slack messages within {within}s, got "
                f"{len(self.messages)}:\n{self.render_threads()}"
            ) from None
        return list(self.messages)

    async def wait_for_requests(self, count: int, within: float = 30.0) -> list[Request]:
        async def enough() -> None:
            async with self._changed:
                await self._changed.wait_for(lambda: len(self.requests) >= count)

        await asyncio.wait_for(enough(), within)
        return list(self.requests)

    # ---- handlers -------------------------------------------------------------------
    async def _answer(self, path: str) -> Reply:
        reply = self.plans.popleft() if self.plans else self.default
        if reply.delay:
            task = asyncio.current_task()
            assert task is not None
            self._sleeping.add(task)
            try:
                await asyncio.sleep(reply.delay)
            finally:
                self._sleeping.discard(task)
        return reply

    async def _record(self, request: Request, message: Message | None = None) -> None:
        async with self._changed:
            self.requests.append(request)
            if message is not None:
                self.messages.append(message)
            self._changed.notify_all()

    async def _post_message(self, request: web.Request) -> web.Response:
        arrived = time.monotonic()
        body = await _body(request)
        reply = await self._answer(request.path)
        error = reply.error or self._check_api(request, body)
        if reply.status != 200 or error:
            await self._record(Request(arrived, request.path, reply.status, error))
            return _api_error(reply, error)
        message = self._message("api", body)
        await self._record(Request(arrived, request.path, 200), message)
        return web.json_response(
            {
                "ok": True,
                "channel": message.channel,
                "ts": message.ts,
                "message": {"text": message.text, "ts": message.ts},
            }
        )

    async def _update(self, request: web.Request) -> web.Response:
        body = await _body(request)
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return web.json_response({"ok": False, "error": "invalid_auth"})
        found = [m for m in self.messages if m.ts == body.get("ts")]
        if found and body.get("channel") != found[0].channel:  # chat.update wants the channel's id
            return web.json_response({"ok": False, "error": "channel_not_found"})
        if not found:
            return web.json_response({"ok": False, "error": "message_not_found"})
        if error := _check_blocks(body):
            return web.json_response({"ok": False, "error": error})
        async with self._changed:
            found[0].earlier.append((found[0].text, found[0].blocks))
            found[0].text = str(body.get("text") or "")
            found[0].blocks = body.get("blocks") or []
            self.updates.append(body)
            self._changed.notify_all()
        return web.json_response({"ok": True, "channel": found[0].channel, "ts": body["ts"]})

    async def _ephemeral(self, request: web.Request) -> web.Response:
        body = await _body(request)
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return web.json_response({"ok": False, "error": "invalid_auth"})
        if not body.get("user") or not body.get("channel"):
            return web.json_response({"ok": False, "error": "user_not_in_channel"})
        async with self._changed:
            self.ephemerals.append(body)
            self._changed.notify_all()
        return web.json_response({"ok": True, "message_ts": f"{self._base}.{next(self._seq):06d}"})

    async def _group_members(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return web.json_response({"ok": False, "error": "invalid_auth"})
        group = request.query.get("usergroup", "")
        self.group_lookups += 1
        if group not in self.usergroups:
            return web.json_response({"ok": False, "error": "no_such_subteam"})
        return web.json_response({"ok": True, "users": self.usergroups[group]})

    async def wait_for(self, what: str, count: int, within: float = 10.0) -> list[dict[str, Any]]:
        """Until ``count`` entries are in ``updates`` or ``ephemerals``."""
        kept: list[dict[str, Any]] = getattr(self, what)

        async def enough() -> None:
            async with self._changed:
                await self._changed.wait_for(lambda: len(kept) >= count)

        try:
            await asyncio.wait_for(enough(), within)
        except TimeoutError:
            raise AssertionError(f"expected {count} {what} within {within}s, got {kept}") from None
        return list(kept)

    async def _webhook(self, request: web.Request) -> web.Response:
        arrived = time.monotonic()
        body = await _body(request)
        reply = await self._answer(request.path)
        error = (
            reply.error
            or _check_blocks(body)
            or ("" if body.get("text") or body.get("blocks") else "no_text")
        )
        if reply.status != 200 or error:
            status = reply.status if reply.status != 200 else 400
            await self._record(Request(arrived, request.path, status, error))
            headers = {"Retry-After": reply.retry_after} if reply.retry_after else {}
            return web.Response(status=status, text=error or "server_error", headers=headers)
        message = self._message("webhook", body)
        await self._record(Request(arrived, request.path, 200), message)
        return web.Response(text="ok")

    def _check_api(self, request: web.Request, body: dict[str, Any]) -> str:
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return "invalid_auth"
        if not body.get("channel"):
            return "channel_not_found"
        if self.channels:
            ident = self.channels.get(str(body["channel"]))
            if ident is None:
                return "channel_not_found"
            if ident not in self.joined:
                return "not_in_channel"
        if not body.get("text") and not body.get("blocks"):
            return "no_text"
        return _check_blocks(body)

    def _message(self, via: str, body: dict[str, Any]) -> Message:
        ts = f"{self._base}.{next(self._seq):06d}"
        blocks = body.get("blocks") or []
        if isinstance(blocks, str):
            blocks = json.loads(blocks)
        known = {"channel", "text", "blocks", "thread_ts", "reply_broadcast"}
        return Message(
            via=via,
            channel=(
                self.channels.get(str(body.get("channel")), self.channel_id)
                if via == "api"
                else "webhook-channel"
            ),
            ts=ts,
            text=str(body.get("text") or ""),
            blocks=blocks,
            thread_ts=body.get("thread_ts"),
            reply_broadcast=bool(body.get("reply_broadcast")),
            options={k: v for k, v in body.items() if k not in known},
        )

    # ---- reading it back --------------------------------------------------------------
    def top_level(self) -> list[Message]:
        return [m for m in self.messages if m.thread_ts is None]

    def replies(self, parent: Message) -> list[Message]:
        return [m for m in self.messages if m.thread_ts == parent.ts]

    def render_threads(self) -> str:
        """The channel as it reads in Slack: each top-level message with its thread."""
        out: list[str] = []
        for parent in self.top_level():
            out.append(f"┌── {render_message(parent)[0]}")
            out.extend(f"│   {line}" for line in render_message(parent)[1:])
            for reply in self.replies(parent):
                lines = render_message(reply)
                shown = " (also sent to the channel)" if reply.reply_broadcast else ""
                out.append(f"│  ↳ {lines[0]}{shown}")
                out.extend(f"│      {line}" for line in lines[1:])
            out.append("└──")
        return "\n".join(out)


async def _body(request: web.Request) -> dict[str, Any]:
    if request.content_type == "application/json":
        data = await request.json()
        return data if isinstance(data, dict) else {}
    form = await request.post()
    return {k: str(v) for k, v in form.items()}


def _api_error(reply: Reply, error: str) -> web.Response:
    headers = {"Retry-After": reply.retry_after} if reply.retry_after else {}
    if reply.status == 200:
        return web.json_response({"ok": False, "error": error})
    if reply.status == 429:
        return web.json_response({"ok": False, "error": "ratelimited"}, status=429, headers=headers)
    return web.Response(status=reply.status, text="upstream trouble", headers=headers)


def _check_blocks(body: dict[str, Any]) -> str:
    """Slack rejects messages outside its Block Kit limits with ``invalid_blocks``."""
    blocks = body.get("blocks") or []
    if not isinstance(blocks, list) or len(blocks) > 50:
        return "invalid_blocks"
    for block in blocks:
        text = (block.get("text") or {}).get("text", "")
        if block.get("type") == "header" and len(text) > 150:
            return "invalid_blocks"
        if block.get("type") == "section" and (len(text) > 3000 or len(block.get("fields", [])) > 10):
            return "invalid_blocks"
        if block.get("type") == "context" and not 1 <= len(block.get("elements", [])) <= 10:
            return "invalid_blocks"
    return ""


# ---- Block Kit to plain text, the way a reader sees it -----------------------------------
_LINK = re.compile(r"<([^<>|]+)\|([^<>]*)>|<([^<>]+)>")


def _special(inner: str) -> str:
    if inner.startswith("!date^"):
        return inner.rsplit("|", 1)[-1] if "|" in inner else inner
    if inner.startswith("!subteam^"):  # Slack shows the group's handle (the label if given)
        ident, _, label = inner.split("^", 1)[1].partition("|")
        return "@" + (label or ident)
    if inner.startswith("!"):
        return "@" + inner[1:]
    if inner.startswith("@"):
        return "@" + inner[1:]
    return inner


def mrkdwn(text: str) -> str:
    """Links as ``label [url]``, mentions as ``@name``, entities decoded."""

    def one(match: re.Match[str]) -> str:
        if match.group(1) is not None:
            target, label = match.group(1), match.group(2)
            if target.startswith("!"):
                return _special(f"{target}|{label}")
            return f"{label} [{target}]"
        return _special(match.group(3))

    text = _LINK.sub(one, text)
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def render_message(message: Message) -> list[str]:
    lines: list[str] = []
    for block in message.blocks:
        kind = block.get("type")
        if kind == "header":
            lines.append(f"*{block['text']['text']}*")
        elif kind == "section":
            if "text" in block:
                lines.extend(mrkdwn(block["text"]["text"]).split("\n"))
            if "fields" in block:
                pairs = [mrkdwn(f["text"]).replace("\n", " ") for f in block["fields"]]
                lines.append(" | ".join(pairs))
        elif kind == "context":
            lines.append(" · ".join(mrkdwn(e.get("text", "")) for e in block["elements"]))
        elif kind == "divider":
            lines.append("─" * 20)
    return lines or [mrkdwn(message.text)]


# ---- a person pressing a button ----------------------------------------------------------
SIGNING_SECRET = "slack-signing-secret-for-tests"


def interaction(
    message: Message, action_id: str, value: str, user: str, username: str = "someone"
) -> dict[str, Any]:
    """A ``block_actions`` payload as Slack sends it for a click on ``message``."""
    return {
        "type": "block_actions",
        "user": {"id": user, "username": username, "name": username, "team_id": "T0TEST"},
        "api_app_id": "A0TEST",
        "team": {"id": "T0TEST", "domain": "test"},
        "container": {
            "type": "message",
            "message_ts": message.ts,
            "channel_id": message.channel,
            "is_ephemeral": False,
            **({"thread_ts": message.thread_ts} if message.thread_ts else {}),
        },
        "channel": {"id": message.channel, "name": "alerts"},
        "message": {"ts": message.ts, "text": message.text, "blocks": message.blocks},
        "response_url": "https://hooks.slack.com/actions/T0TEST/1/secret",
        "trigger_id": "1.2.3",
        "actions": [
            {
                "type": "button",
                "action_id": action_id,
                "block_id": "remediator_approval",
                "value": value,
                "action_ts": f"{time.time():.6f}",
            }
        ],
    }


def signed(
    payload: dict[str, Any], *, secret: str = SIGNING_SECRET, at: float | None = None
) -> tuple[bytes, dict[str, str]]:
    """The form body and headers of an interaction request, signed as Slack signs it."""
    body = urlencode({"payload": json.dumps(payload)}).encode()
    timestamp = str(int(time.time() if at is None else at))
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": timestamp,
        "X-Slack-Signature": signature(secret, timestamp, body),
    }
    return body, headers


def buttons(message: Message) -> dict[str, str]:
    """The message's buttons: action id -> value (empty once decided)."""
    return {
        element["action_id"]: element["value"]
        for block in message.blocks
        if block.get("type") == "actions"
        for element in block.get("elements", [])
    }
