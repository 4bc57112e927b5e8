"""The operations of the OpenAPI document, one table entry each: answers, errors, the
body's model, and query parameters taken from the query models (never written twice)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from remediator.api.approval_models import ApprovalsQuery
from remediator.api.control_models import PAUSE_ID_PATTERN, JobsQuery
from remediator.api.schemas import EVENT_ID_PATTERN, EventsQuery, ReplayQuery, StatsQuery
from remediator.rules.schema import RULE_NAME_PATTERN

Refs = dict[tuple[str, str], dict[str, Any]]
_ERRORS = {
    400: "invalid request (reason in the body)",
    401: "missing or wrong credentials",
    403: "the token may only read",
    404: "not found",
    409: "the request conflicts with the stored state",
    410: "accepted before the state store's data began: the store was wiped since, and the job with it",
    413: "body too large",
    415: "body is not JSON",
    429: "too many failed credentials from this client address or for this name; retry "
    "after Retry-After seconds",
    503: "the state store is unavailable or no rules are loaded; retry",
}
_ADMIN: list[dict[str, list[str]]] = [{"adminToken": []}]
_EVENT_ID = {"name": "event_id", "in": "path", "required": True, "schema": {"pattern": EVENT_ID_PATTERN}}
_PAUSE_ID = {"name": "pause_id", "in": "path", "required": True, "schema": {"pattern": PAUSE_ID_PATTERN}}
_RULE = {"name": "rule", "in": "path", "required": True, "schema": {"pattern": RULE_NAME_PATTERN}}
for _param in (_EVENT_ID, _PAUSE_ID, _RULE):
    _param["schema"] = {"type": "string", **_param["schema"]}  # type: ignore[dict-item]
_DEPRECATED = (
    "Deprecated: use /api/v1/pauses (the global pause is a pause without matchers, id "
    "'global'). Answers carry Deprecation, Sunset and a Link to the successor."
)


def query_parameters(model: type[BaseModel]) -> list[dict[str, Any]]:
    """A query model's fields as OpenAPI parameters: every one optional, its schema the
    model's own (an optional field's ``null`` dropped: a query string has none)."""
    params = []
    for name, prop in model.model_json_schema(mode="validation")["properties"].items():
        schema = {k: v for k, v in prop.items() if k not in ("title", "anyOf", "description")}
        for branch in prop.get("anyOf", []):
            if branch.get("type") != "null":
                schema = {**branch, **schema}
        if schema.get("default", 0) is None:
            del schema["default"]
        param = {"name": name, "in": "query", "required": False, "schema": schema}
        if "description" in prop:
            param["description"] = prop["description"]
        params.append(param)
    return params


def _json(ref: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": ref}}


def _op(
    refs: Refs,
    op_id: str,
    summary: str,
    ok: dict[int, tuple[str, str]],
    errors: tuple[int, ...],
    *,
    params: list[dict[str, Any]] | None = None,
    body: str | None = None,
    body_required: bool = True,
    tag: str = "admin",
    security: list[dict[str, list[str]]] = _ADMIN,
    **more: Any,
) -> dict[str, Any]:
    """One operation: its answers (``ok``: status -> (model, text)), the errors it may give."""
    responses: dict[str, Any] = {
        str(code): {"description": text, "content": _json(refs[(model, "serialization")])}
        for code, (model, text) in ok.items()
    }
    # Every route that checks a credential refuses a caller with too many failed ones.
    for code in (*errors, 429) if 401 in errors else errors:
        error = refs[("ErrorBody", "serialization")]
        responses[str(code)] = {"description": _ERRORS[code], "content": _json(error)}
    if 401 in errors:
        responses["429"]["headers"] = {"Retry-After": {"schema": {"type": "integer", "minimum": 1}}}
    op: dict[str, Any] = {"operationId": op_id, "tags": [tag], "security": security, "summary": summary}
    if params:
        op["parameters"] = params
    if body is not None:
        op["requestBody"] = {"required": body_required, "content": _json(refs[(body, "validation")])}
    return op | more | {"responses": responses}


def _plain(op_id: str, summary: str, media: str, schema: dict[str, Any], what: str) -> dict[str, Any]:
    content = {media: {"schema": schema}}
    tag = "health" if op_id == "metrics" else "admin"
    return {
        "operationId": op_id,
        "tags": [tag],
        "security": [],
        "summary": summary,
        "responses": {"200": {"description": what, "content": content}},
    }


def service_paths(refs: Refs, webhook: list[dict[str, list[str]]]) -> dict[str, Any]:
    errors = (400, 401, 413, 415, 503) if webhook else (400, 413, 415, 503)
    form = {
        "type": "object",
        "properties": {"payload": {"type": "string", "description": "block_actions JSON"}},
        "required": ["payload"],
    }
    slack_errors = {
        400: "not a block_actions payload",
        401: "missing, wrong or stale signature",
        404: "Slack interactivity is off (no signing secret)",
        413: "body too large",
        503: "the state store is unavailable; retry",
    }
    error_body = _json(refs[("ErrorBody", "serialization")])
    health: dict[str, Any] = {"tag": "health", "security": []}
    return {
        "/webhooks/alertmanager": {
            "post": _op(
                refs,
                "webhook",
                "Receive an Alertmanager v4 webhook; one job per (alert, rule)",
                {202: ("Accepted", "jobs stored")},
                errors,
                body="WebhookPayload",
                tag="webhook",
                security=webhook,
            )
        },
        "/healthz": {
            "get": _op(
                refs, "healthz", "200 while the process lives", {200: ("Health", "alive")}, (), **health
            )
        },
        "/readyz": {
            "get": _op(
                refs,
                "readyz",
                "200 when rules are loaded and the store answers, else 503 with why",
                {200: ("Readiness", "ready"), 503: ("Readiness", "not ready")},
                (),
                **health,
            )
        },
        "/metrics": {
            "get": _plain(
                "metrics", "Prometheus metrics", "text/plain", {"type": "string"}, "Prometheus text format"
            )
        },
        "/api/v1/openapi.json": {
            "get": _plain("openapi", "This document", "application/json", {"type": "object"}, "OpenAPI 3.1")
        },
        "/slack/interactions": {
            "post": {
                "operationId": "slackInteractions",
                "tags": ["slack"],
                "security": [],
                "summary": "Slack's interactivity requests (Approve and Reject buttons)",
                "description": "Every request must carry a valid X-Slack-Signature (v0, "
                "REMEDIATOR_SLACK_SIGNING_SECRET) and an X-Slack-Request-Timestamp within 5 minutes; "
                "404 while no signing secret is set.",
                "requestBody": {
                    "required": True,
                    "content": {"application/x-www-form-urlencoded": {"schema": form}},
                },
                "responses": {
                    "200": {"description": "handled (replies go to the response_url)"},
                    **{str(c): {"description": t, "content": error_body} for c, t in slack_errors.items()},
                },
            }
        },
    }


def admin_paths(refs: Refs) -> dict[str, Any]:
    manual = {"anyOf": [refs[("WebhookPayload", "validation")], refs[("ManualAlert", "validation")]]}
    replay = _op(
        refs,
        "replayPayload",
        "Run an Alertmanager payload or one alert, marked manual",
        {202: ("Accepted", "jobs stored")},
        (400, 401, 403, 413, 415, 503),
        params=query_parameters(ReplayQuery),
    )
    replay["requestBody"] = {"required": True, "content": {"application/json": {"schema": manual}}}
    state = {200: ("PauseState", "the pause state")}
    old: dict[str, Any] = {"deprecated": True, "description": _DEPRECATED}
    acted = (400, 401, 403, 413, 415, 503)
    return {
        "/api/v1/events": {
            "get": _op(
                refs,
                "listEvents",
                "Audit events, newest first; follow next_cursor for older ones",
                {200: ("EventPage", "a page of events")},
                (400, 401, 503),
                params=query_parameters(EventsQuery),
            )
        },
        "/api/v1/events/{event_id}": {
            "get": _op(
                refs,
                "getEvent",
                "One event with its timeline",
                {200: ("EventDetail", "the event")},
                (400, 401, 404, 503),
                params=[_EVENT_ID],
            )
        },
        "/api/v1/stats": {
            "get": _op(
                refs,
                "getStats",
                "Per rule over a window: runs by outcome, success rate, time to repair, "
                "circuits opened (from the audit)",
                {200: ("Stats", "the statistics")},
                (400, 401, 503),
                params=query_parameters(StatsQuery),
            )
        },
        "/api/v1/replay/{event_id}": {
            "post": _op(
                refs,
                "replayEvent",
                "Re-run a stored event's alert through the current rules (manual)",
                {202: ("Accepted", "replay jobs stored")},
                (400, 401, 403, 404, 409, 413, 415, 503),
                params=[_EVENT_ID],
                body="ReplayRequest",
                body_required=False,
                description="Never bypasses the pause or the lease; the circuit only with "
                "ignore_circuit, the cooldown only with ignore_cooldown.",
            )
        },
        "/api/v1/replay": {"post": replay},
        "/api/v1/rules": {
            "get": _op(
                refs,
                "getRules",
                "Loaded rules, their hash and the last reload result",
                {200: ("RulesInfo", "the rules")},
                (401,),
            )
        },
        "/api/v1/pause": {
            "get": _op(
                refs,
                "getPause",
                "Whether the global pause is on, why and until when",
                state,
                (401, 503),
                **old,
            ),
            "post": _op(
                refs,
                "pause",
                "Pause all remediation for a while (the pause 'global')",
                state,
                acted,
                body="PauseCreate",
                **old,
            ),
            "delete": _op(refs, "resume", "Lift the global pause", state, (401, 403, 503), **old),
        },
        "/api/v1/pauses": {
            "get": _op(
                refs,
                "listPauses",
                "Running pauses (one without matchers holds every job) and maintenance windows",
                {200: ("PauseList", "pauses and windows")},
                (401, 503),
            ),
            "post": _op(
                refs,
                "addPause",
                "Hold the jobs the matchers match (none: all) until the pause ends",
                {201: ("PauseInfo", "the pause")},
                acted,
                body="PauseCreate",
                description="Exactly one of 'for' and 'until'; at most REMEDIATOR_MAX_PAUSE.",
            ),
        },
        "/api/v1/pauses/{pause_id}": {
            "delete": _op(
                refs,
                "removePause",
                "Lift a pause now; the jobs it held are re-gated at once",
                {200: ("PauseInfo", "the pause lifted")},
                (400, 401, 403, 404, 503),
                params=[_PAUSE_ID],
            )
        },
        "/api/v1/jobs": {
            "get": _op(
                refs,
                "listJobs",
                "Jobs without an outcome: what each waits for and since when",
                {200: ("JobList", "the jobs, oldest first")},
                (400, 401, 503),
                params=query_parameters(JobsQuery),
            )
        },
        "/api/v1/jobs/{event_id}": {
            "get": _op(
                refs,
                "getJob",
                "One job from the moment the webhook accepted it (state done: see the event)",
                {200: ("JobInfo", "the job")},
                (400, 401, 404, 410, 503),
                params=[_EVENT_ID],
            )
        },
        "/api/v1/brakes": {
            "get": _op(
                refs,
                "listBrakes",
                "Each loaded rule's blast-radius brake (max_targets): targets counted, jobs held",
                {200: ("BrakeList", "the brakes, in the file's order")},
                (401, 503),
            )
        },
        "/api/v1/brakes/{rule}/release": {
            "post": _op(
                refs,
                "releaseBrake",
                "Let the jobs a rule's brake holds go on, all of them or the event ids named",
                {200: ("BrakeReleased", "the jobs released; each passes every gate again at once")},
                (400, 401, 403, 404, 413, 415, 503),
                params=[_RULE],
                body="BrakeRelease",
                body_required=False,
                description="An empty body or no event_ids releases every held job of the rule. "
                "A released job runs once past the brake; a job whose alert resolved meanwhile "
                "still ends skipped:resolved.",
            )
        },
        "/api/v1/approvals": {
            "get": _op(
                refs,
                "listApprovals",
                "Approval requests, newest first (pending, decided, expired)",
                {200: ("ApprovalPage", "the requests")},
                (400, 401, 503),
                params=query_parameters(ApprovalsQuery),
            )
        },
        "/api/v1/approvals/{event_id}": {
            "post": _op(
                refs,
                "decideApproval",
                "Approve or reject a job that awaits approval (the token's name is recorded)",
                {200: ("ApprovalInfo", "decided")},
                (400, 401, 403, 404, 409, 413, 415, 503),
                params=[_EVENT_ID],
                body="DecisionRequest",
                description="The first decision wins: a request already decided, or past its "
                "timeout, answers 409 with the request as it stands.",
            )
        },
    }
