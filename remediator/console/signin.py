"""Signing in and out of the console with an admin or read-only token."""

from __future__ import annotations

import secrets

from aiohttp import web

from remediator.api.errors import ApiError
from remediator.api.service import SERVICE, Service
from remediator.console.rendering import SIGNER, log, page, render
from remediator.console.session import COOKIE, LIFETIME, PRE_COOKIE, Session


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
    form = await request.post()
    nonce = request.cookies.get(PRE_COOKIE, "")
    if not request.app[SIGNER].csrf_ok(nonce, str(form.get("csrf", ""))):
        raise ApiError(403, "missing or wrong CSRF token", "reload the sign-in page and try again")
    token = str(form.get("token", "")).strip()
    credential = request.config_dict[SERVICE].credentials.identify(f"Bearer {token}") if token else None
    if credential is None:
        log.warning("console.signin_refused", peer=request.remote)
        return await signin_form(request, "Unknown token.", 401)
    session = request.app[SIGNER].issue(credential.name, credential.access)
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
async def signout(request: web.Request, _: Service, session: Session) -> web.StreamResponse:
    log.info("console.signed_out", by=session.name)
    response = web.HTTPSeeOther(location="/ui/signin")
    response.del_cookie(COOKIE, path="/ui/")
    raise response
