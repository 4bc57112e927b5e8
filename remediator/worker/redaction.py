"""Secrets in gathered context replaced by ``[redacted]`` before anyone sees it. Pure.

A pod's log or an Event may carry a credential (``token=...``, ``password: ...``, an
``Authorization: Bearer ...`` header, a URL with a password, a private key); the gathered
text goes to Slack, the audit event and the console, so it is redacted first, in the worker,
whatever gathered it. The patterns err on the side of hiding: a value after a key that
names a secret is hidden whole, up to a space, quote or separator.
"""

from __future__ import annotations

import re
from collections.abc import Callable

REDACTED = "[redacted]"

# key=value, key: value, "key": "value", key='value': the key names a secret
_KEYED = re.compile(
    r"""(?ix)
    (?P<key>(?<![\w.-])[\w.-]*(?:token|passw(?:or)?d|secret|api[_-]?key|apikey|access[_-]?key|private[_-]?key
        |credentials?|auth[_-]?key|session[_-]?id|cookie))
    (?P<sep>["']?\s*[=:]\s*["']?)
    (?P<value>(?!\[redacted\])(?:(?<=")[^"\n]+(?=")|(?<=')[^'\n]+(?=')|[^\s"',;&}\]]+))
    """
)
# Authorization: Bearer abc / Basic abc / Token abc (header or keyed), and a bare "Bearer abc"
_SCHEME = re.compile(
    r"(?i)\b(?P<scheme>bearer|basic)(?P<sep>\s+)(?P<value>(?!\[redacted\])[A-Za-z0-9._~+/=-]{6,})"
)
_AUTHORIZATION = re.compile(
    r"(?i)(?P<key>authorization[\"']?\s*[:=]\s*[\"']?)(?P<value>(?!bearer\b|basic\b)(?!\[redacted\])[^\s\"',;]+)"
)
# scheme://user:password@host
_URL_PASSWORD = re.compile(
    r"(?P<head>(?<![a-z0-9+.-])[a-z][a-z0-9+.-]*://[^/\s:@]+:)(?P<value>[^@\s/]+)(?P<at>@)", re.I
)
_PRIVATE_KEY = re.compile(
    r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(?:-----END [A-Z ]*PRIVATE KEY-----|\Z)", re.S
)
# well-known token shapes, wherever they stand
_SHAPES = re.compile(
    r"\b(?:xox[abposr]-[A-Za-z0-9-]{10,}|gh[pousr]_[A-Za-z0-9]{30,}|glpat-[A-Za-z0-9_-]{20,}"
    r"|AKIA[0-9A-Z]{16}|eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,})\b"
)


def redact(text: str) -> tuple[str, int]:
    """``text`` with every secret found replaced by ``[redacted]``, and how many were."""
    count = 0

    def keep(*groups: str) -> Callable[[re.Match[str]], str]:
        """Replaces a match by its ``groups`` with ``value`` redacted (none: all of it)."""

        def replace(match: re.Match[str]) -> str:
            nonlocal count
            count += 1
            parts = match.groupdict()
            return "".join(REDACTED if name == "value" else parts[name] for name in groups) or REDACTED

        return replace

    text = _PRIVATE_KEY.sub(keep(), text) if "PRIVATE KEY" in text else text
    text = _URL_PASSWORD.sub(keep("head", "value", "at"), text)
    text = _SCHEME.sub(keep("scheme", "sep", "value"), text)
    text = _AUTHORIZATION.sub(keep("key", "value"), text)
    text = _KEYED.sub(keep("key", "sep", "value"), text)
    text = _SHAPES.sub(keep(), text)
    return text, count
