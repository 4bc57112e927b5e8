"""``POST /slack/interactions``: the Approve and Reject buttons, as Slack sends the clicks.

Every request is verified with the app's signing secret before anything in it is read
(``notify/slack/signing.py``): a missing, wrong or stale signature is a 401 and changes
nothing. A click by someone who is not an approver (listed, or in a listed user group)
is refused with a reply only they see, as is a click on a request already decided.
A decision updates the message: who decided and when, and the buttons go away.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

import structlog
from aiohttp import web

from remediator.api.errors import ApiError
from remediator.api.schemas import valid_event_id
from remediator.api.service import SERVICE, Service
from remediator.errors import StoreUnavailable
from remediator.notify.slack import signing
from remediator.notify.slack.approvals import APPROVE, REJECT
from remediator.store.values import Decision
from remediator.worker.approval import decide, describe
from remediator.worker.telling import decided_notice

if TYPE_CHECKING:  # slack_sdk (a few MB) is imported at the first click, not at start
    from remediator.notify.slack.interactive import SlackInteractive

log = structlog.get_logger("remediator.api.slack_interactions")
ACTIONS: dict[str, Decision] = {APPROVE: "approved", REJECT: "rejected"}


class _Interactive:
    """The app's one SlackInteractive (its group cache), made at the first click."""

    def __init__(self) -> None:
        self.made: SlackInteractive | None = None

    def of(self, svc: Service) -> SlackInteractive:
        if self.made is None:
            from remediator.notify.slack.interactive import SlackInteractive

            self.made = SlackInteractive(svc.settings, svc.resources.http)
        return self.made


INTERACTIVE: web.AppKey[_Interactive] = web.AppKey("slack_interactive", _Interactive)


async def interactions(request: web.Request) -> web.Response:
    svc = request.app[SERVICE]
    secret = svc.settings.slack_signing_secret
    if secret is None:
        raise ApiError(404, "not found", "Slack interactivity is off: set REMEDIATOR_SLACK_SIGNING_SECRET")
    body = await request.read()
    headers = request.headers
    problem = signing.problem(
        secret.get_secret_value(),
        headers.get("X-Slack-Request-Timestamp"),
        headers.get("X-Slack-Signature"),
        body,
        time.time(),
    )
    if problem is not None:
        log.warning("slack.interaction_refused", problem=problem, remote=request.remote)
        raise ApiError(401, "invalid Slack request signature", problem)
    payload = _payload(body)
    if payload.get("type") != "block_actions":
        return web.Response(status=200)  # nothing else of ours is interactive
    try:
        await _clicked(svc, request.app[INTERACTIVE].of(svc), payload)
    except StoreUnavailable as exc:
        log.error("slack.interaction_store_unavailable", error=str(exc))
        raise ApiError(503, "the state store is unavailable; retry", str(exc)) from exc
    return web.Response(status=200)


def _payload(body: bytes) -> dict[str, Any]:
    try:
        raw = parse_qs(body.decode("utf-8"), strict_parsing=True).get("payload", [""])[0]
        payload = json.loads(raw)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ApiError(400, "expected a form field payload=<JSON>", str(exc)) from exc
    if not isinstance(payload, dict):
        raise ApiError(400, "expected a form field payload=<JSON object>")
    return payload


def _object(payload: dict[str, Any], key: str) -> dict[str, Any]:
    """``payload[key]`` as Slack sends it, an object (absent: empty); else a 400."""
    value = payload.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ApiError(400, f"payload field {key!r} must be an object", type(value).__name__)
    return value


def _actions(payload: dict[str, Any]) -> list[dict[str, Any]]:
    actions = payload.get("actions")
    if actions is None:
        return []
    if not isinstance(actions, list) or not all(isinstance(a, dict) for a in actions):
        raise ApiError(400, "payload field 'actions' must be a list of objects")
    return actions


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


async def _clicked(svc: Service, slack: SlackInteractive, payload: dict[str, Any]) -> None:
    user, channel_info = _object(payload, "user"), _object(payload, "channel")
    container, message, actions = (
        _object(payload, "container"),
        _object(payload, "message"),
        _actions(payload),
    )
    user_id, name = _text(user.get("id")), _text(user.get("username") or user.get("name"))
    channel = _text(channel_info.get("id"))
    thread = _text(container.get("thread_ts") or message.get("thread_ts")) or None
    for action in actions:
        decision = ACTIONS.get(str(action.get("action_id")))
        event_id = str(action.get("value") or "")
        if decision is None or not valid_event_id(event_id):
            continue
        answer = await _decide(svc, slack, event_id, decision, user_id, name)
        if answer:
            await slack.ephemeral(channel, user_id, answer, thread)


async def _decide(
    svc: Service, slack: SlackInteractive, event_id: str, decision: Decision, user: str, name: str
) -> str:
    """The decision of one click; returns what to tell the clicker privately ("" nothing)."""
    approval = await svc.store.approvals.get_approval(event_id)
    if approval is None:
        return f"There is no approval request {event_id} any more (it expired)."
    if approval.decision is None and not await slack.may_decide(user, approval.approvers):
        log.warning("slack.approval_refused", event_id=event_id, user=user, name=name)
        return "You are not an approver of this request: ask " + ", ".join(
            f"<!subteam^{a}>" if a.startswith("S") else f"<@{a}>" for a in approval.approvers
        )
    by = f"slack:{user} ({name})" if name else f"slack:{user}"
    result = await decide(svc.store.approvals, event_id, decision, by)
    if result.changed and result.approval is not None:
        svc.notifier.send(decided_notice(result.approval))
    if not result.recorded:
        return f"Nothing changed: already {describe(result.approval)}." if result.approval else ""
    log.warning("slack.approval", event_id=event_id, decision=decision, by=by)
    return ""


def add_routes(app: web.Application) -> None:
    app[INTERACTIVE] = _Interactive()
    app.router.add_post("/slack/interactions", interactions)
