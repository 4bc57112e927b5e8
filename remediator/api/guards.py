"""Guards of the admin routes: who is calling (a named credential), and may they act."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable

import structlog
from aiohttp import web

from remediator.api.auth import has_credential
from remediator.api.clients import client_address
from remediator.api.errors import ApiError
from remediator.api.limits import Caller
from remediator.api.service import SERVICE, Service
from remediator.errors import StoreUnavailable

log = structlog.get_logger("remediator.api.guards")
Route = Callable[[web.Request, Service], Awaitable[web.Response]]
Handler = Callable[[web.Request], Awaitable[web.Response]]
IDENTITY = web.RequestKey("identity", str)


def admin(route: Route) -> Callable[[web.Request], Awaitable[web.Response]]:
    """Guard a route that acts: only a credential with full access may call it."""
    return _guarded(route, read_only_ok=False)


def reader(route: Route) -> Callable[[web.Request], Awaitable[web.Response]]:
    """Guard a route that only reads: read-only credentials may call it too."""
    return _guarded(route, read_only_ok=True)


def _guarded(route: Route, *, read_only_ok: bool) -> Callable[[web.Request], Awaitable[web.Response]]:
    """404 when the admin API is off, 429 after too many failed credentials from the
    client's address, 401 without a known token, 403 for a read-only one, 503 when the
    store is down; the caller's name is ``identity(request)``."""

    @functools.wraps(route)
    async def guarded(request: web.Request) -> web.Response:
        svc = request.app[SERVICE]
        if not svc.credentials:
            raise ApiError(404, "not found", "the admin API is disabled on this service")
        caller = Caller(client_address(request, svc.settings.trusted_proxies))
        await svc.limits.check("admin", caller)
        header = request.headers.get("Authorization", "")
        credential = svc.credentials.identify(header)
        if credential is None:
            if has_credential(header):
                await svc.limits.failed("admin", caller)
            raise ApiError(
                401,
                "missing or wrong admin token",
                "expected Authorization: Bearer <an admin token>",
                headers={"WWW-Authenticate": 'Bearer realm="remediator-admin"'},
            )
        if not (read_only_ok or credential.can_act):
            raise ApiError(403, "this token is read-only", f"{credential.name!r} may only read")
        request[IDENTITY] = credential.name
        try:
            return await route(request, svc)
        except StoreUnavailable as exc:
            log.error("admin.store_unavailable", path=request.path, error=str(exc))
            raise ApiError(
                503, "the state store is unavailable; retry", str(exc), headers={"Retry-After": "5"}
            ) from exc

    return guarded


def identity(request: web.Request) -> str:
    """The authenticated name of the caller (never a name the client sent)."""
    return request[IDENTITY]
