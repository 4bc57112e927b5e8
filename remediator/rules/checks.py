"""Cross-checks of a rule's policy values: impossible ones are errors, questionable ones warnings.

Pure: works on the values as written (seconds for durations), knows nothing of files.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from remediator.durations import format_duration

# One Slack mention that notifies someone when a bot posts it.
_MENTION = re.compile(
    r"<!(?:here|channel|everyone)>|<!subteam\^[A-Z0-9]+(?:\|[^<>]*)?>"
    r"|<@[UW][A-Z0-9]+(?:\|[^<>]*)?>"
)
_BROADCAST = ("@here", "@channel", "@everyone")


@dataclass(frozen=True)
class Finding:
    """One problem with the value of ``key`` (dotted: the key to point the reader at)."""

    key: str
    message: str
    warning: bool = False
    keys: tuple[str, ...] = ()  # every key involved (``key`` too); default: just ``key``

    def involves(self, explicit: Collection[str]) -> bool:
        return any(k in explicit for k in (self.keys or (self.key,)))


def _d(seconds: float) -> str:
    return format_duration(seconds) if seconds else "0s"


def check_policy(values: Mapping[str, Any]) -> list[Finding]:
    """Findings about one rule's (or the defaults') policy values."""
    out = [
        Finding(key, f"{key}: {_d(values[key])} {why}")
        for key, why in (
            ("lease", "locks nothing: another replica could repair the same target at once; use e.g. 10m"),
            ("timeout", "stops every handler run as soon as it starts"),
            (
                "attempt_window",
                "forgets each failure at once: the circuit never opens and escalate never fires",
            ),
        )
        if key in values and values[key] <= 0
    ]
    timeout, verify = values.get("timeout"), values.get("verify_timeout")
    if timeout and verify is not None and verify >= timeout:
        out.append(
            Finding(
                "verify_timeout",
                (
                    f"verify_timeout: {_d(verify)} is not shorter than timeout {_d(timeout)}: the "
                    f"handler is stopped at {_d(timeout)}, before verification can use its {_d(verify)}; "
                    "make timeout longer than verify_timeout plus the time the action takes"
                ),
                warning=True,
                keys=("verify_timeout", "timeout"),
            )
        )
    elif verify == 0:
        out.append(
            Finding(
                "verify_timeout",
                "verify_timeout: 0s: handlers check recovery "
                "once, right after acting, and fail if it is not there yet",
                warning=True,
            )
        )
    if "escalate" in values and (problem := escalate_problem(values["escalate"])):
        out.append(Finding("escalate", problem))
    return out


def check_params_timeout(verify: float, timeout: float) -> Finding | None:
    """A handler's own ``verify_timeout`` param against the rule's ``timeout``."""
    if verify < timeout:
        return None
    return Finding(
        "params.verify_timeout",
        (
            f"params.verify_timeout: {_d(verify)} is not shorter than timeout {_d(timeout)}: the "
            f"handler is stopped at {_d(timeout)}, before verification can use its {_d(verify)}; "
            "make timeout longer than verify_timeout plus the time the action takes"
        ),
        warning=True,
    )


def escalate_problem(escalate: str) -> str | None:
    """Why ``escalate`` would notify nobody, or None if every word is a Slack mention."""
    words = escalate.split()
    if not words or (len(words) == 1 and words[0] in _BROADCAST):
        return None
    bad = [w for w in words if not _MENTION.fullmatch(w)]
    if not bad:
        return None
    if bad[0] in _BROADCAST:
        return f"escalate: {bad[0]!r} works only alone: next to other mentions write <!{bad[0][1:]}>"
    return (
        f"escalate: {bad[0]!r} is not a Slack mention and notifies nobody: use @here, "
        "@channel or @everyone (alone), or one or more of <!here>, <!subteam^ID> "
        "(a user group), <@U...> (a user)"
    )


def check_inhibition(values: Mapping[str, Any], explicit: Collection[str]) -> list[Finding]:
    """``inhibit_equal`` and ``inhibit_wait`` mean nothing without ``inhibited_by``."""
    if values.get("inhibited_by"):
        return []
    return [
        Finding(key, f"{key} has no effect without inhibited_by", warning=True)
        for key in ("inhibit_equal", "inhibit_wait")
        if key in explicit
    ]
