"""The one credential check: ``Authorization`` against configured secrets, in constant time.

Used by the webhook (bearer or basic) and the admin API (bearer). Works on bytes, so a
header with any characters (aiohttp keeps undecodable bytes as surrogates) is a plain
"no", never an exception. An empty or blank secret never matches, nor does an empty
presented credential: an empty token can never open a route.
"""

from __future__ import annotations

import base64
import binascii
import hmac

from pydantic import SecretStr


def authorized(
    header: str,
    *,
    token: SecretStr | None = None,
    username: str | None = None,
    password: SecretStr | None = None,
) -> bool:
    """Whether ``header`` carries ``Bearer <token>`` or ``Basic <username:password>``."""
    scheme, _, value = header.strip().partition(" ")
    presented = value.strip().encode("utf-8", "surrogateescape")
    if not presented:
        return False
    if scheme.lower() == "bearer":
        return _same(presented, token)
    if scheme.lower() == "basic" and username is not None:
        try:
            decoded = base64.b64decode(presented, validate=True)
        except (binascii.Error, ValueError):
            return False
        user, colon, secret = decoded.partition(b":")
        ok_user = hmac.compare_digest(user, username.encode("utf-8", "surrogateescape"))
        ok_secret = _same(secret, password)
        return bool(colon) and ok_user and ok_secret
    return False


def _same(presented: bytes, configured: SecretStr | None) -> bool:
    """Constant-time equality; an unset, empty or blank secret and an empty input never match."""
    if configured is None:
        return False
    expected = configured.get_secret_value().encode("utf-8", "surrogateescape")
    equal = hmac.compare_digest(presented, expected)
    return equal and bool(presented) and bool(expected.strip())
