"""remediator: Alertmanager alerts in, safe and verified repairs out.

This module is the whole public surface for handler plugins: everything a
handler needs is exported here, and handlers import nothing else from the core.
"""

from remediator.durations import Duration, RuleDuration
from remediator.errors import HandlerError, PermanentError, TemporaryError
from remediator.handling.context import Context, Resources
from remediator.handling.escapes import checked_url, url_escape
from remediator.handling.gathering import GatherParams
from remediator.handling.kit import (
    MAX_CONFLICTS,
    Conflict,
    Observations,
    PollInterval,
    VerifyParams,
    VerifyTimeout,
    planned_within,
    poll,
    rereading_conflicts,
    seconds,
    verify_within,
)
from remediator.handling.names import dns1123_label, dns1123_subdomain
from remediator.handling.owners import Owner, PodGone
from remediator.handling.phases import Checked, Handler
from remediator.handling.registry import HandlerParams, gatherer, handler, owner_resolver
from remediator.models import Alert, Outcome, Result

__all__ = [
    "MAX_CONFLICTS",
    "Alert",
    "Checked",
    "Conflict",
    "Context",
    "Duration",
    "GatherParams",
    "Handler",
    "HandlerError",
    "HandlerParams",
    "Observations",
    "Outcome",
    "Owner",
    "PermanentError",
    "PodGone",
    "PollInterval",
    "Resources",
    "Result",
    "RuleDuration",
    "TemporaryError",
    "VerifyParams",
    "VerifyTimeout",
    "checked_url",
    "dns1123_label",
    "dns1123_subdomain",
    "gatherer",
    "handler",
    "owner_resolver",
    "planned_within",
    "poll",
    "rereading_conflicts",
    "seconds",
    "url_escape",
    "verify_within",
]
