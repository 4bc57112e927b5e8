"""Console sessions: a signed cookie ``name|access|expiry|id|sig``, held open on the server,
and the CSRF token derived from it.

The key is ``REMEDIATOR_UI_SESSION_KEY`` (replicas share sessions) or a random key per
process (a restart signs everyone out). A session is honoured only while its record is
open in the store (``Store.sessions``: signing out closes it on every replica, as does
removing its credential from the tokens file) and while that credential (same name, same
access) is still configured. The store keeps the SHA-256 of the session's id, never the id.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets
import time
from dataclasses import dataclass

from remediator.api.auth import Credentials
from remediator.settings import Settings
from remediator.store.base import Sessions

COOKIE = "remediator_ui"
PRE_COOKIE = "remediator_ui_signin"
LIFETIME = 8 * 3600.0


@dataclass(frozen=True)
class Session:
    name: str
    access: str
    expires: float
    value: str  # the cookie as sent
    sid: str = ""  # the session's id: its record in the store is under its SHA-256

    @property
    def can_act(self) -> bool:
        return self.access == "admin"

    @property
    def record(self) -> str:
        """The store's key for this session (the id itself never reaches the store)."""
        return hashlib.sha256(self.sid.encode("utf-8", "surrogateescape")).hexdigest()


class Signer:
    def __init__(self, key: bytes) -> None:
        self.key = key

    @classmethod
    def for_settings(cls, settings: Settings) -> Signer:
        configured = settings.ui_session_key
        if configured is not None and configured.get_secret_value():
            return cls(hashlib.sha256(configured.get_secret_value().encode()).digest())
        return cls(os.urandom(32))

    def _mac(self, *parts: str) -> str:
        message = "\x1f".join(parts).encode("utf-8", "surrogateescape")
        return hmac.new(self.key, message, hashlib.sha256).hexdigest()

    def issue(self, name: str, access: str, now: float | None = None) -> Session:
        expires = int((time.time() if now is None else now) + LIFETIME)
        encoded = base64.urlsafe_b64encode(name.encode()).decode().rstrip("=")
        sid = secrets.token_urlsafe(24)
        body = f"{encoded}|{access}|{expires}|{sid}"
        value = f"{body}|{self._mac('session', body)}"
        return Session(name, access, float(expires), value, sid)

    def read(self, value: str, credentials: Credentials, now: float | None = None) -> Session | None:
        """The session the cookie carries, if it is signed by us, unexpired and its credential
        is still configured (whether it is still open is the store's: ``current``)."""
        parts = value.split("|")
        if len(parts) != 5:
            return None
        encoded, access, expires_text, sid, sig = parts
        body = f"{encoded}|{access}|{expires_text}|{sid}"
        if not _same(sig, self._mac("session", body)):
            return None
        try:
            expires = float(int(expires_text))
            name = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
        except (ValueError, binascii.Error, UnicodeDecodeError):
            return None
        if expires <= (time.time() if now is None else now):
            return None
        if not any(c.name == name and c.access == access for c in credentials.entries):
            return None  # the credential was removed or changed since sign-in
        return Session(name, access, expires, value, sid)

    def csrf(self, value: str) -> str:
        """The form token of a session (or of a sign-in nonce)."""
        return self._mac("csrf", value)

    def csrf_ok(self, value: str, presented: str) -> bool:
        return bool(value) and bool(presented) and _same(self.csrf(value), presented)


def _same(expected: str, presented: str) -> bool:
    """Constant-time equality of a MAC and what a client sent: any characters (hmac's
    ``compare_digest`` refuses non-ASCII str), compared as UTF-8 bytes, undecodable ones kept."""
    return hmac.compare_digest(expected.encode(), presented.encode("utf-8", "surrogateescape"))


async def open_session(signer: Signer, sessions: Sessions, name: str, access: str) -> Session:
    """A new session of credential ``name``, recorded open in the store."""
    session = signer.issue(name, access)
    await sessions.open_session(session.record, name, LIFETIME)
    return session


async def current_session(
    signer: Signer, sessions: Sessions, value: str, credentials: Credentials
) -> Session | None:
    """The cookie's session while it is signed, unexpired, its credential configured, and
    its record still open in the store (one store read per request)."""
    session = signer.read(value, credentials)
    if session is None or await sessions.session_name(session.record) != session.name:
        return None
    return session
