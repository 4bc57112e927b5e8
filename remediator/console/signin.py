"""Signing in and out of the console with an admin or read-only token."""

from __future__ import annotations

import secrets

from aiohttp import web

from remediator.api.clients import client_address
from remediator.api.errors import ApiError
from remediator.api.limits import Caller, Refused
from remediator.api.service import SERVICE, Service
from remediator.console.rendering import SIGNER, log, page, render
from remediator.console.session import COOKIE, LIFETIME, PRE_COOKIE, Session, open_session


async def signin_form(request: web.Request, error: str = "", status: int = 200) -> web.Response:
    nonce = request.cookies.get(PRE_COOKIE) or secrets.token_urlsafe(16)
    svc = request.config_dict[SERVICE]
    response = render(
        request,
        "signin.html",
        status,
        signin_csrf=request.app[SIGNER].csrf(nonce),
        error=error,
        enabled=bool(svc.credentials),
    )
    response.set_cookie(
        PRE_COOKIE, nonce, path="/ui/", httponly=True, samesite="Strict", secure=request.secure, max_age=3600
    )
    return response


async def signin_page(request: web.Request) -> web.StreamResponse:
    return await signin_form(request)


async def signin(request: web.Request) -> web.StreamResponse:
    """Failed sign-ins count against the client's address (``api/limits.py``): too many
    and the form answers 429 with Retry-After, before the token is even looked at."""
    svc = request.config_dict[SERVICE]
    caller = Caller(client_address(request, svc.settings.trusted_proxies))
    try:
        await svc.limits.check("console", caller)
        form = await request.post()
        nonce = request.cookies.get(PRE_COOKIE, "")
        if not request.app[SIGNER].csrf_ok(nonce, str(form.get("csrf", ""))):
            raise ApiError(403, "missing or wrong CSRF token", "reload the sign-in page and try again")
        token = str(form.get("token", "")).strip()
        credential = svc.credentials.identify(f"Bearer {token}") if token else None
        if credential is None:
            if token:
                await svc.limits.failed("console", caller)
            return await signin_form(request, "Unknown token.", 401)
    except Refused as exc:
        wait = f"Too many failed sign-ins from your address: try again in {exc.seconds} s."
        refused = await signin_form(request, wait, 429)
        refused.headers.update(exc.headers)
        return refused
    session = await open_session(request.app[SIGNER], svc.store.sessions, credential.name, credential.access)
    log.info("console.signed_in", by=credential.name, access=credential.access)
    response = web.HTTPSeeOther(location="/ui/")
    response.set_cookie(
        COOKIE,
        session.value,
        path="/ui/",
        httponly=True,
        samesite="Strict",
        secure=request.secure,
        max_age=int(LIFETIME),
    )
    response.del_cookie(PRE_COOKIE, path="/ui/")
    raise response


@page()
async def signout(request: web.Request, svc: Service, session: Session) -> web.StreamResponse:
    await svc.store.sessions.close_session(session.record)  # a copy of the cookie ends too
    log.info("console.signed_out", by=session.name)
    response = web.HTTPSeeOther(location="/ui/signin")
    response.del_cookie(COOKIE, path="/ui/")
    raise response
