"""The OpenAPI 3.1 document of the service, built from the pydantic models it speaks:
bodies, answers and query parameters alike (``openapi_paths.py`` has the operations)."""

from __future__ import annotations

import functools
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from remediator.api.approval_models import ApprovalInfo, ApprovalPage, DecisionRequest
from remediator.api.audit_models import EventDetail, EventPage, Stats
from remediator.api.brake_models import BrakeList, BrakeRelease, BrakeReleased
from remediator.api.control_models import JobInfo, JobList, PauseCreate, PauseInfo, PauseList
from remediator.api.openapi_paths import Refs, admin_paths, service_paths
from remediator.api.schemas import (
    Accepted,
    ErrorBody,
    Health,
    ManualAlert,
    PauseState,
    Readiness,
    ReplayRequest,
    RulesInfo,
)
from remediator.models import WebhookPayload
from remediator.settings import Settings

_INPUTS: tuple[type[BaseModel], ...] = (
    WebhookPayload,
    ManualAlert,
    ReplayRequest,
    PauseCreate,
    DecisionRequest,
    BrakeRelease,
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
    BrakeList,
    BrakeReleased,
)


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
    security: list[dict[str, list[str]]] = []
    if bearer:
        security.append({"webhookBearer": []})
    if basic:
        security.append({"webhookBasic": []})
    paths = service_paths(refs, security)
    if admin:
        paths |= admin_paths(refs)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "remediator",
            "version": "1",
            "description": "Alertmanager alerts in, safe and verified repairs out. Every time is an "
            "RFC 3339 UTC string; every duration a number of seconds named *_seconds.",
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
