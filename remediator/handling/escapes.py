"""How a handler asks for substituted values to be escaped (``@handler(escapes=...)``),
and the check a URL built from labels must pass before it is sent."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, unquote, urlsplit

Finalizer = Callable[[Any], Any]
"""Applied to every value a template substitutes into one param."""

# What may stand in a URL as sent (RFC 3986); anything else must be percent-encoded.
_URL_CHARS = re.compile(r"[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=]|%[0-9A-Fa-f]{2}")


def url_escape(value: Any) -> str:
    """Finalizer for URL fields: every substituted value is percent-encoded."""
    return quote(str(value), safe="")


def checked_url(value: str) -> str:
    """``value`` if it is an absolute http(s) URL to send exactly as written; raises
    ValueError saying why not (a character to encode, no host, a dot segment)."""
    pos = 0
    while pos < len(value):  # sent exactly as written: it must be a valid URL already
        match = _URL_CHARS.match(value, pos)
        if match is None:
            raise ValueError(f"{value[pos]!r} at position {pos} of {value!r} must be percent-encoded")
        pos = match.end()
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"must be an absolute http(s) URL, got {value!r}")
    for segment in parts.path.split("/"):
        if unquote(segment) in (".", ".."):
            raise ValueError(
                f"the path of {value!r} has a {segment!r} segment, which would make the "
                "request go to another path: a label value may not be '.' or '..' there"
            )
    return value
