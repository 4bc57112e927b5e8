"""Requests in, answers out: a body read as JSON within a size and a time, parsed into its
model, a query and an event id checked, every refusal a clear 4xx; a model answered as JSON."""

from __future__ import annotations

import asyncio
import json
from typing import Any, TypeVar

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from pydantic import BaseModel, ValidationError

from remediator.api.errors import ApiError
from remediator.api.schemas import valid_event_id
from remediator.api.service import Service

M = TypeVar("M", bound=BaseModel)


async def read_body(request: web.Request, limit: int, timeout: float) -> bytes:
    """The raw JSON body within ``timeout`` seconds, or raise ``ApiError`` (408, 413, 415, 400)."""
    ctype = request.content_type
    if ctype != "application/json" and not ctype.endswith("+json"):
        raise ApiError(415, f"expected Content-Type application/json, got {ctype or 'none'!r}")
    if request.content_length is not None and request.content_length > limit:
        raise ApiError(413, f"body of {request.content_length} bytes exceeds the limit of {limit}")
    content = request.content
    try:
        if content.is_eof():  # all of it is here (decoded): no timer, no waiting
            body = content.read_nowait()
        else:
            body = await _read_in_time(request, limit, timeout)
    except web.RequestPayloadError as exc:  # e.g. Content-Encoding: gzip on a body that is not
        cause = exc.__cause__
        reason = cause.message if isinstance(cause, HttpProcessingError) else str(exc)
        raise ApiError(400, "body cannot be read", reason.strip(), close=True) from None
    if len(body) > limit:
        raise _too_large(request, limit)
    return body


async def _read_in_time(request: web.Request, limit: int, timeout: float) -> bytes:
    body = bytearray()
    try:
        async with asyncio.timeout(timeout):
            async for chunk in request.content.iter_chunked(65536):
                body += chunk
                if len(body) > limit:
                    raise _too_large(request, limit)
    except TimeoutError:
        raise ApiError(
            408,
            "request body not received in time",
            f"the whole body must arrive within {timeout:g}s",
            close=True,
        ) from None
    return bytes(body)


def _too_large(request: web.Request, limit: int) -> ApiError:
    return ApiError(
        413,
        f"body exceeds the limit of {limit} bytes" + (" once decompressed" if _encoded(request) else ""),
    )


def _encoded(request: web.Request) -> bool:
    return request.headers.get("Content-Encoding", "identity").lower() != "identity"


async def read_json_body(request: web.Request, limit: int, timeout: float) -> Any:
    """The body as parsed JSON, or raise ``ApiError`` (408, 413, 415, 400)."""
    body = await read_body(request, limit, timeout)
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, "body is not valid JSON", str(exc)) from exc


def validation_detail(exc: ValidationError) -> list[dict[str, str]]:
    return [
        {"loc": ".".join(str(p) for p in err["loc"]), "msg": err["msg"]}
        for err in exc.errors(include_url=False)[:20]
    ]


def reply(model: BaseModel, status: int = 200) -> web.Response:
    return web.json_response(model.model_dump(mode="json", by_alias=True), status=status)


def parse_query(request: web.Request, model: type[M]) -> M:
    try:
        return model.model_validate(dict(request.query))
    except ValidationError as exc:
        raise ApiError(400, "invalid query parameters", validation_detail(exc)) from exc


async def parse_body(request: web.Request, svc: Service, model: type[M], *, optional: bool = False) -> M:
    if optional and (not request.body_exists or request.content_length == 0):
        return model()
    data = await read_json_body(request, svc.settings.max_body_bytes, svc.settings.body_timeout)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ApiError(400, "invalid request body", validation_detail(exc)) from exc


def event_id_of(request: web.Request) -> str:
    event_id = request.match_info["event_id"]
    if not valid_event_id(event_id):
        raise ApiError(400, "invalid event id", "letters, digits, '_' and '-' only (max 64)")
    return event_id
