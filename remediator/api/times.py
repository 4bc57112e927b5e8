"""Times on the wire: RFC 3339 UTC strings out; RFC 3339 strings (any offset) or epoch
seconds in. Durations are numbers of seconds, in fields named ``*_seconds``.

``UtcTime`` holds epoch seconds in a model and is written as ``2026-12-07T20:12:17.250Z``
(milliseconds always, as Alertmanager writes its times); ``TimeInput`` reads either form
into epoch seconds. The store keeps epoch seconds as it always did: only the API renders.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema

RFC3339_PATTERN = r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$"


def rfc3339(epoch: float) -> str:
    """``1796558400.25`` -> ``2026-12-07T20:00:00.250Z`` (UTC, milliseconds)."""
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_time(value: Any) -> float:
    """Epoch seconds from an RFC 3339 date-time with an offset, or from a number."""
    if isinstance(value, bool):
        raise ValueError("expected an RFC 3339 date-time (e.g. 2030-01-01T00:00:00Z) or epoch seconds")
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise ValueError("epoch seconds must be a finite number")
        return float(value)
    if not isinstance(value, str):
        raise ValueError("expected an RFC 3339 date-time (e.g. 2030-01-01T00:00:00Z) or epoch seconds")
    try:
        parsed = datetime.fromisoformat(value.upper().replace(" ", "T"))
    except ValueError:
        parsed = None
    if parsed is None or not re.match(RFC3339_PATTERN, value):
        raise ValueError(f"{value!r} is not an RFC 3339 date-time with an offset (e.g. 2030-01-01T00:00:00Z)")
    return parsed.timestamp()


UtcTime = Annotated[
    float,
    PlainSerializer(rfc3339, return_type=str),
    WithJsonSchema({"type": "string", "format": "date-time", "description": "RFC 3339, UTC"}),
]
"""A time in a response: epoch seconds inside, an RFC 3339 UTC string on the wire."""

TimeInput = Annotated[
    float,
    BeforeValidator(parse_time),
    WithJsonSchema(
        {
            "anyOf": [{"type": "string", "format": "date-time"}, {"type": "number"}],
            "description": "RFC 3339 date-time with an offset, or epoch seconds",
        }
    ),
]
"""A time in a request: an RFC 3339 string with an offset, or epoch seconds."""
