"""The one way to answer an HTTP error: ``{"error", "detail"}`` JSON with the right status.

Routes raise ``ApiError``; the ``errors`` middleware turns it and aiohttp's own HTTP
exceptions (unknown route, wrong method, body too large) into JSON 4xx answers, and
anything unexpected into a JSON 500 logged once.
"""

from __future__ import annotations

from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

import orjson
import structlog
from aiohttp import web
from aiohttp.typedefs import Handler

log = structlog.get_logger("remediator.http")


# On the answers the HTTP protocol gives itself (a request it cannot parse): they come
# before any route, the console's included, so they carry the console's locks too.
LOCKED_DOWN = {
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}


class ApiError(Exception):
    """A request refused with ``status``: becomes ``{"error": error, "detail": detail}``."""

    def __init__(
        self,
        status: int,
        error: str,
        detail: Any = None,
        *,
        headers: Mapping[str, str] | None = None,
        close: bool = False,
    ) -> None:
        super().__init__(error)
        self.status, self.error, self.detail = status, error, detail
        self.headers = dict(headers or {})
        self.close = close  # the rest of the request cannot or will not be read

    def response(self) -> web.Response:
        response = json_error(self.status, self.error, self.detail, self.headers)
        if self.close:
            response.force_close()
        return response


def json_error(
    status: int, error: str, detail: Any = None, headers: Mapping[str, str] | None = None
) -> web.Response:
    body = orjson.dumps({"error": error, "detail": detail}, default=str)
    return web.Response(body=body, status=status, content_type="application/json", headers=headers)


def error_bytes(status: int, error: str, detail: Any = None) -> bytes:
    """A whole HTTP/1.1 answer that closes the connection, for the protocol level."""
    body = orjson.dumps({"error": error, "detail": detail}, default=str)
    head = (
        f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        if exc.close:
            return await _answer_and_close(request, exc.response())
        return exc.response()
    except web.HTTPException as exc:
        if exc.status < 400:
            raise  # a redirect is an answer, not an error
        return from_aiohttp(request, exc)
    except ConnectionError:
        raise  # the client went away: nobody to answer
    except Exception:
        log.exception("http.internal_error", method=request.method, path=request.path)
        return json_error(500, "internal error", "the error is logged on the service")


async def _answer_and_close(request: web.Request, response: web.Response) -> web.Response:
    """Send the answer now, then close at once: no waiting for the rest of a body that
    cannot be decoded or that comes too slowly (aiohttp would linger up to 10 s)."""
    await response.prepare(request)
    await response.write_eof()
    request.protocol.force_close()
    return response


def from_aiohttp(request: web.Request, exc: web.HTTPException) -> web.Response:
    """aiohttp's own refusal (plain text) as our JSON, keeping its headers (``Allow``)."""
    headers = {k: v for k, v in exc.headers.items() if k.lower() != "content-type"}
    error = exc.reason.lower()
    detail: Any = exc.text if exc.text and exc.text != f"{exc.status}: {exc.reason}" else None
    if exc.status == 404:
        detail = f"no route {request.method} {request.path}"
    elif exc.status == 405:
        allowed = exc.headers.get("Allow", "")
        detail = f"{request.path} does not answer {request.method}; allowed: {allowed}"
    return json_error(exc.status, error, detail, headers)
