"""Console sessions: a signed cookie ``name|access|expiry|sig`` and the CSRF token derived from it.

The key is ``REMEDIATOR_UI_SESSION_KEY`` (replicas share sessions) or a random key per
process (a restart signs everyone out). A session names a credential; it is honoured only
while that credential (same name, same access) is still configured.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import time
from dataclasses import dataclass

from remediator.api.auth import Credentials
from remediator.settings import Settings

COOKIE = "remediator_ui"
PRE_COOKIE = "remediator_ui_signin"
LIFETIME = 8 * 3600.0


@dataclass(frozen=True)
class Session:
    name: str
    access: str
    expires: float
    value: str  # the cookie as sent

    @property
    def can_act(self) -> bool:
        return self.access == "admin"


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
        body = f"{encoded}|{access}|{expires}"
        value = f"{body}|{self._mac('session', body)}"
        return Session(name, access, float(expires), value)

    def read(self, value: str, credentials: Credentials, now: float | None = None) -> Session | None:
        """The session the cookie carries, if it is signed by us, unexpired and still valid."""
        parts = value.split("|")
        if len(parts) != 4:
            return None
        encoded, access, expires_text, sig = parts
        body = f"{encoded}|{access}|{expires_text}"
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
        return Session(name, access, expires, value)

    def csrf(self, value: str) -> str:
        """The form token of a session (or of a sign-in nonce)."""
        return self._mac("csrf", value)

    def csrf_ok(self, value: str, presented: str) -> bool:
        return bool(value) and bool(presented) and _same(self.csrf(value), presented)


def _same(expected: str, presented: str) -> bool:
    """Constant-time equality of a MAC and what a client sent: any characters (hmac's
    ``compare_digest`` refuses non-ASCII str), compared as UTF-8 bytes, undecodable ones kept."""
    return hmac.compare_digest(expected.encode(), presented.encode("utf-8", "surrogateescape"))
