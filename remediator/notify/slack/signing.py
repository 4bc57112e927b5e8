"""Slack's request signing (v0): is this request from Slack, and recent? Pure.

``X-Slack-Signature`` is ``v0=`` + hex HMAC-SHA256 of ``v0:<X-Slack-Request-Timestamp>:<raw body>``
under the app's signing secret. A timestamp more than ``MAX_SKEW`` seconds away from
now (a replayed request) is refused too.
"""

from __future__ import annotations

import hashlib
import hmac

MAX_SKEW = 300.0  # seconds
_MAX_DIGITS = 12  # seconds since 1970 for the next 30,000 years; longer is no timestamp


def signature(secret: str, timestamp: str, body: bytes) -> str:
    base = b"v0:" + timestamp.encode() + b":" + body
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


def problem(secret: str, timestamp: str | None, given: str | None, body: bytes, now: float) -> str | None:
    """Why the request is not Slack's (None: it is)."""
    if not timestamp or not given:
        return "missing X-Slack-Request-Timestamp or X-Slack-Signature"
    if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= _MAX_DIGITS):
        return "X-Slack-Request-Timestamp is not a number of seconds since 1970"
    if abs(now - int(timestamp)) > MAX_SKEW:
        return "X-Slack-Request-Timestamp is more than 5 minutes away (a replayed request?)"
    # a header's undecodable bytes arrive as surrogates: compared as the bytes they were
    presented = given.encode("utf-8", "surrogateescape")
    if not hmac.compare_digest(signature(secret, timestamp, body).encode(), presented):
        return "X-Slack-Signature does not match"
    return None
