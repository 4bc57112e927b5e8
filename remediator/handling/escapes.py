"""How a handler asks for substituted values to be escaped (``@handler(escapes=...)``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import quote

Finalizer = Callable[[Any], Any]
"""Applied to every value a template substitutes into one param."""


def url_escape(value: Any) -> str:
    """Finalizer for URL fields: every substituted value is percent-encoded."""
    return quote(str(value), safe="")
