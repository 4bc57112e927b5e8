"""The OpenAPI 3.1 document of the service, built from the pydantic models it speaks."""

from __future__ import annotations

import functools
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from remediator.api.control_models import (
    PAUSE_ID_PATTERN,
    JobInfo,
    JobList,
    PauseCreate,
    PauseInfo,
    PauseList,
)
from remediator.api.schemas import (
    APPROVAL_STATES,
    CURSOR_PATTERN,
    EVENT_ID_PATTERN,
    OUTCOMES,
    WINDOW_PATTERN,
    Accepted,
    ApprovalInfo,
    ApprovalPage,
    DecisionRequest,
    ErrorBody,
    EventDetail,
    EventPage,
    Health,
    ManualAlert,
    PauseState,
    Readiness,
    ReplayRequest,
    RulesInfo,
    Stats,
)
from remediator.models import WebhookPayload
from remediator.settings import Settings
from remediator.store.values import JOB_STATES

_INPUTS: tuple[type[BaseModel], ...] = (
    WebhookPayload,
    ManualAlert,
    ReplayRequest,
    PauseCreate,
    DecisionRequest,
)
_OUTPUTS: tuple[type[BaseModel], ...] = (
    PauseInfo,
    PauseList,
    JobInfo,
    JobList,
    ErrorBody,
    Accepted,
    EventPage,
    EventDetail,
    PauseState,
    RulesInfo,
    Stats,
    Health,
    Readiness,
    ApprovalPage,
    ApprovalInfo,
)
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


def document(settings: Settings) -> dict[str, Any]:
    """The document for this configuration: admin paths only when the admin API is on."""
    return _build(
        settings.admin_token is not None or settings.admin_tokens_file is not None,
        settings.webhook_token is not None,
        settings.webhook_password is not None,
    )


@functools.lru_cache(maxsize=8)
def _build(admin: bool, bearer: bool, basic: bool) -> dict[str, Any]:
    refs, schemas = _components()
    paths = _service_paths(refs, _webhook_security(bearer, basic)) | _slack_paths(refs)
    if admin:
        paths |= _admin_paths(refs) | _control_paths(refs) | _approval_paths(refs)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "remediator",
            "version": "1",
            "description": "Alertmanager alerts in, safe and verified repairs out.",
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "adminToken": {"type": "http", "scheme": "bearer", "description": "REMEDIATOR_ADMIN_TOKEN"},
                "webhookBearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "REMEDIATOR_WEBHOOK_TOKEN",
                },
                "webhookBasic": {
                    "type": "http",
                    "scheme": "basic",
                    "description": "REMEDIATOR_WEBHOOK_USERNAME/PASSWORD",
                },
            },
        },
    }


def _components() -> tuple[Refs, dict[str, Any]]:
    inputs: list[tuple[type[BaseModel], JsonSchemaMode]] = [(m, "validation") for m in _INPUTS]
    outputs: list[tuple[type[BaseModel], JsonSchemaMode]] = [(m, "serialization") for m in _OUTPUTS]
    keyed, top = models_json_schema(inputs + outputs, ref_template="#/components/schemas/{model}")
    refs: Refs = {(model.__name__, mode): dict(ref) for (model, mode), ref in keyed.items()}
    schemas: dict[str, Any] = top.get("$defs", {})
    # The model accepts any string and then insists on "4": say so in the schema.
    payload = refs[("WebhookPayload", "validation")]["$ref"].rsplit("/", 1)[1]
    schemas[payload]["properties"]["version"] = {"type": "string", "enum": ["4"]}
    return refs, schemas


def _webhook_security(bearer: bool, basic: bool) -> list[dict[str, list[str]]]:
    security: list[dict[str, list[str]]] = []
    if bearer:
        security.append({"webhookBearer": []})
    if basic:
        security.append({"webhookBasic": []})
    return security


def _json(ref: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": ref}}


def _responses(refs: Refs, ok: dict[int, tuple[str, str]], errors: tuple[int, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {
        str(code): {"description": text, "content": _json(refs[(model, "serialization")])}
        for code, (model, text) in ok.items()
    }
    # Every route that checks a credential refuses a caller with too many failed ones.
    for code in (*errors, 429) if 401 in errors else errors:
        out[str(code)] = {
            "description": _ERRORS[code],
            "content": _json(refs[("ErrorBody", "serialization")]),
        }
    if 401 in errors:
        out["429"]["headers"] = {"Retry-After": {"schema": {"type": "integer", "minimum": 1}}}
    return out


def _service_paths(refs: Refs, webhook_security: list[dict[str, list[str]]]) -> dict[str, Any]:
    webhook_errors = (400, 401, 413, 415, 503) if webhook_security else (400, 413, 415, 503)
    return {
        "/webhooks/alertmanager": {
            "post": {
                "operationId": "webhook",
                "tags": ["webhook"],
                "summary": "Receive an Alertmanager v4 webhook; one job per (alert, rule)",
                "security": webhook_security,
                "requestBody": {"required": True, "content": _json(refs[("WebhookPayload", "validation")])},
                "responses": _responses(refs, {202: ("Accepted", "jobs stored")}, webhook_errors),
            }
        },
        "/healthz": {
            "get": {
                "operationId": "healthz",
                "tags": ["health"],
                "security": [],
                "summary": "200 while the process lives",
                "responses": _responses(refs, {200: ("Health", "alive")}, ()),
            }
        },
        "/readyz": {
            "get": {
                "operationId": "readyz",
                "tags": ["health"],
                "security": [],
                "summary": "200 when rules are loaded and the store answers, else 503 with why",
                "responses": _responses(
                    refs, {200: ("Readiness", "ready"), 503: ("Readiness", "not ready")}, ()
                ),
            }
        },
        "/metrics": {
            "get": {
                "operationId": "metrics",
                "tags": ["health"],
                "security": [],
                "summary": "Prometheus metrics",
                "responses": {
                    "200": {
                        "description": "Prometheus text format",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    }
                },
            }
        },
        "/api/v1/openapi.json": {
            "get": {
                "operationId": "openapi",
                "tags": ["admin"],
                "security": [],
                "summary": "This document",
                "responses": {
                    "200": {
                        "description": "OpenAPI 3.1",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    }
                },
            }
        },
    }


def _admin_paths(refs: Refs) -> dict[str, Any]:
    sec: list[dict[str, list[str]]] = [{"adminToken": []}]
    event_id = {
        "name": "event_id",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "pattern": EVENT_ID_PATTERN},
    }
    manual_body = {"anyOf": [refs[("WebhookPayload", "validation")], refs[("ManualAlert", "validation")]]}
    return {
        "/api/v1/events": {
            "get": {
                "operationId": "listEvents",
                "tags": ["admin"],
                "security": sec,
                "summary": "Audit events, newest first; follow next_cursor for older ones",
                "parameters": _events_params(),
                "responses": _responses(refs, {200: ("EventPage", "a page of events")}, (400, 401, 503)),
            }
        },
        "/api/v1/events/{event_id}": {
            "get": {
                "operationId": "getEvent",
                "tags": ["admin"],
                "security": sec,
                "summary": "One event with its timeline",
                "parameters": [event_id],
                "responses": _responses(refs, {200: ("EventDetail", "the event")}, (400, 401, 404, 503)),
            }
        },
        "/api/v1/stats": {
            "get": {
                "operationId": "getStats",
                "tags": ["admin"],
                "security": sec,
                "summary": "Per rule over a window: runs by outcome, success rate, time to repair, "
                "circuits opened (from the audit)",
                "parameters": [
                    {
                        "name": "window",
                        "in": "query",
                        "required": False,
                        "description": "minutes, hours or days from 1m to 99d, e.g. 30m, 24h, 7d",
                        "schema": {"type": "string", "pattern": WINDOW_PATTERN, "default": "24h"},
                    }
                ],
                "responses": _responses(refs, {200: ("Stats", "the statistics")}, (400, 401, 503)),
            }
        },
        "/api/v1/replay/{event_id}": {
            "post": {
                "operationId": "replayEvent",
                "tags": ["admin"],
                "security": sec,
                "summary": "Re-run a stored event's alert through the current rules (manual)",
                "description": "Never bypasses the pause or the lease; the circuit only with "
                "ignore_circuit, the cooldown only with ignore_cooldown.",
                "parameters": [event_id],
                "requestBody": {"required": False, "content": _json(refs[("ReplayRequest", "validation")])},
                "responses": _responses(
                    refs, {202: ("Accepted", "replay jobs stored")}, (400, 401, 403, 404, 409, 413, 415, 503)
                ),
            }
        },
        "/api/v1/replay": {
            "post": {
                "operationId": "replayPayload",
                "tags": ["admin"],
                "security": sec,
                "summary": "Run an Alertmanager payload or one alert, marked manual",
                "parameters": _replay_params(),
                "requestBody": {"required": True, "content": {"application/json": {"schema": manual_body}}},
                "responses": _responses(
                    refs, {202: ("Accepted", "jobs stored")}, (400, 401, 403, 413, 415, 503)
                ),
            }
        },
        "/api/v1/rules": {
            "get": {
                "operationId": "getRules",
                "tags": ["admin"],
                "security": sec,
                "summary": "Loaded rules, their hash and the last reload result",
                "responses": _responses(refs, {200: ("RulesInfo", "the rules")}, (401,)),
            }
        },
        "/api/v1/pause": _pause_path(refs, sec),
    }


def _pause_path(refs: Refs, sec: list[dict[str, list[str]]]) -> dict[str, Any]:
    """The deprecated alias of the pause with the id ``global`` (``api/pauses.py``)."""
    state = {200: ("PauseState", "the pause state")}
    note = (
        "Deprecated: use /api/v1/pauses (the global pause is a pause without matchers, id "
        "'global'). Answers carry Deprecation, Sunset and a Link to the successor."
    )
    common = {"tags": ["admin"], "security": sec, "deprecated": True, "description": note}
    return {
        "get": {
            **common,
            "operationId": "getPause",
            "summary": "Whether the global pause is on, why and until when",
            "responses": _responses(refs, state, (401, 503)),
        },
        "post": {
            **common,
            "operationId": "pause",
            "summary": "Pause all remediation for a while (the pause 'global')",
            "requestBody": {"required": True, "content": _json(refs[("PauseCreate", "validation")])},
            "responses": _responses(refs, state, (400, 401, 403, 413, 415, 503)),
        },
        "delete": {
            **common,
            "operationId": "resume",
            "summary": "Lift the global pause",
            "responses": _responses(refs, state, (401, 403, 503)),
        },
    }


def _approval_paths(refs: Refs) -> dict[str, Any]:
    sec: list[dict[str, list[str]]] = [{"adminToken": []}]
    event_id = {
        "name": "event_id",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "pattern": EVENT_ID_PATTERN},
    }
    return {
        "/api/v1/approvals": {
            "get": {
                "operationId": "listApprovals",
                "tags": ["admin"],
                "security": sec,
                "summary": "Approval requests, newest first (pending, decided, expired)",
                "parameters": [
                    {
                        "name": "state",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "string", "enum": APPROVAL_STATES},
                    },
                    {
                        "name": "limit",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "integer", "minimum": 1, "maximum": 500, "default": 50},
                    },
                ],
                "responses": _responses(refs, {200: ("ApprovalPage", "the requests")}, (400, 401, 503)),
            }
        },
        "/api/v1/approvals/{event_id}": {
            "post": {
                "operationId": "decideApproval",
                "tags": ["admin"],
                "security": sec,
                "summary": "Approve or reject a job that awaits approval (the token's name is recorded)",
                "description": "The first decision wins: a request already decided, or past its "
                "timeout, answers 409 with the request as it stands.",
                "parameters": [event_id],
                "requestBody": {"required": True, "content": _json(refs[("DecisionRequest", "validation")])},
                "responses": _responses(
                    refs,
                    {200: ("ApprovalInfo", "decided")},
                    (400, 401, 403, 404, 409, 413, 415, 503),
                ),
            }
        },
    }


def _slack_paths(refs: Refs) -> dict[str, Any]:
    form = {
        "type": "object",
        "properties": {"payload": {"type": "string", "description": "block_actions JSON"}},
        "required": ["payload"],
    }
    return {
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
                    **{
                        str(code): {
                            "description": text,
                            "content": _json(refs[("ErrorBody", "serialization")]),
                        }
                        for code, text in (
                            (400, "not a block_actions payload"),
                            (401, "missing, wrong or stale signature"),
                            (404, "Slack interactivity is off (no signing secret)"),
                            (413, "body too large"),
                            (503, "the state store is unavailable; retry"),
                        )
                    },
                },
            }
        }
    }


def _events_params() -> list[dict[str, Any]]:
    return [
        {
            "name": "limit",
            "in": "query",
            "required": False,
            "schema": {"type": "integer", "minimum": 1, "maximum": 500, "default": 50},
        },
        {
            "name": "rule",
            "in": "query",
            "required": False,
            "schema": {"type": "string", "minLength": 1, "maxLength": 63},
        },
        {"name": "outcome", "in": "query", "required": False, "schema": {"type": "string", "enum": OUTCOMES}},
        {
            "name": "cursor",
            "in": "query",
            "required": False,
            "schema": {"type": "string", "pattern": CURSOR_PATTERN},
        },
    ]


def _replay_params() -> list[dict[str, Any]]:
    flag = {"type": "boolean", "default": False}
    return [
        {"name": "dry_run", "in": "query", "required": False, "schema": flag},
        {"name": "ignore_cooldown", "in": "query", "required": False, "schema": flag},
        {"name": "ignore_circuit", "in": "query", "required": False, "schema": flag},
        {"name": "note", "in": "query", "required": False, "schema": {"type": "string", "maxLength": 500}},
    ]


def _control_paths(refs: Refs) -> dict[str, Any]:
    """Pauses, maintenance windows (``api/pauses.py``) and the jobs view (``api/jobs.py``)."""
    sec: list[dict[str, list[str]]] = [{"adminToken": []}]

    def path_id(name: str) -> dict[str, Any]:
        schema = {"type": "string", "pattern": PAUSE_ID_PATTERN}
        return {"name": name, "in": "path", "required": True, "schema": schema}

    return {
        "/api/v1/pauses": {
            "get": {
                "operationId": "listPauses",
                "tags": ["admin"],
                "security": sec,
                "summary": "Running pauses (one without matchers holds every job) and maintenance windows",
                "responses": _responses(refs, {200: ("PauseList", "pauses and windows")}, (401, 503)),
            },
            "post": {
                "operationId": "addPause",
                "tags": ["admin"],
                "security": sec,
                "summary": "Hold the jobs the matchers match (none: all) until the pause ends",
                "description": "Exactly one of 'for' and 'until'; at most REMEDIATOR_MAX_PAUSE.",
                "requestBody": {"required": True, "content": _json(refs[("PauseCreate", "validation")])},
                "responses": _responses(
                    refs, {201: ("PauseInfo", "the pause")}, (400, 401, 403, 413, 415, 503)
                ),
            },
        },
        "/api/v1/pauses/{pause_id}": {
            "delete": {
                "operationId": "removePause",
                "tags": ["admin"],
                "security": sec,
                "summary": "Lift a pause now; the jobs it held are re-gated at once",
                "parameters": [path_id("pause_id")],
                "responses": _responses(
                    refs, {200: ("PauseInfo", "the pause lifted")}, (400, 401, 403, 404, 503)
                ),
            }
        },
        "/api/v1/jobs": {
            "get": {
                "operationId": "listJobs",
                "tags": ["admin"],
                "security": sec,
                "summary": "Jobs without an outcome: what each waits for and since when",
                "parameters": [
                    {
                        "name": "state",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "string", "enum": list(JOB_STATES)},
                    },
                    {
                        "name": "limit",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100},
                    },
                ],
                "responses": _responses(refs, {200: ("JobList", "the jobs, oldest first")}, (400, 401, 503)),
            }
        },
        "/api/v1/jobs/{event_id}": {
            "get": {
                "operationId": "getJob",
                "tags": ["admin"],
                "security": sec,
                "summary": "One job from the moment the webhook accepted it (state done: see the event)",
                "parameters": [path_id("event_id")],
                "responses": _responses(refs, {200: ("JobInfo", "the job")}, (400, 401, 404, 410, 503)),
            }
        },
    }
