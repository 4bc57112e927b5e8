"""``/api/v1/approvals``: the requests waiting for a human's yes, and deciding one.

The decision is made by the authenticated credential (``identity``), never a name the
client sends; it lands in the audit timeline of every job that waited on the request
and updates the Slack message (``chat.update``: who decided and when, no buttons).
"""

from __future__ import annotations

import structlog
from aiohttp import web

from remediator.api.approval_models import ApprovalInfo, ApprovalPage, ApprovalsQuery, DecisionRequest
from remediator.api.bodies import event_id_of, parse_body, parse_query, reply
from remediator.api.errors import ApiError
from remediator.api.guards import admin, identity, reader
from remediator.api.service import Service
from remediator.store.values import Approval, Decision
from remediator.worker.approval import decide, describe
from remediator.worker.telling import decided_notice

log = structlog.get_logger("remediator.api.approvals")
DECISIONS: dict[str, Decision] = {"approve": "approved", "reject": "rejected"}


@reader
async def list_approvals(request: web.Request, svc: Service) -> web.Response:
    query = parse_query(request, ApprovalsQuery)
    found = await svc.store.approvals.list_approvals(500 if query.state else query.limit)
    shown = [a for a in found if query.state is None or a.state == query.state][: query.limit]
    return reply(ApprovalPage(approvals=[ApprovalInfo.of(a) for a in shown]))


@admin
async def decide_approval(request: web.Request, svc: Service) -> web.Response:
    event_id = event_id_of(request)
    body = await parse_body(request, svc, DecisionRequest)
    found = await decide_as(svc, event_id, body.decision, identity(request), body.note)
    return reply(ApprovalInfo.of(found))


async def decide_as(svc: Service, event_id: str, decision: str, by: str, note: str) -> Approval:
    """Decide a waiting request as ``by`` (the API and the console); 404/409 when it cannot be."""
    result = await decide(svc.store.approvals, event_id, DECISIONS[decision], by, note)
    found = result.approval
    if found is None:
        raise ApiError(404, "no such approval request", event_id)
    if result.changed:  # decided now, or found past its timeout: the buttons go away
        svc.notifier.send(decided_notice(found))
    if not result.recorded:
        raise ApiError(
            409, f"already decided: {describe(found)}", ApprovalInfo.of(found).model_dump(mode="json")
        )
    log.warning("admin.approval", event_id=event_id, decision=found.decision, by=by, note=note)
    return found


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/v1/approvals", list_approvals, allow_head=False)
    app.router.add_post("/api/v1/approvals/{event_id}", decide_approval)
