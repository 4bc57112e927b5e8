"""remediator: Alertmanager alerts in, safe and verified repairs out.

This module is the whole public surface for handler plugins: everything a
handler needs is exported here, and handlers import nothing else from the core.
"""

from remediator.context import Context, Resources
from remediator.durations import Duration, RuleDuration
from remediator.errors import HandlerError, PermanentError, TemporaryError
from remediator.models import Alert, Outcome, Result
from remediator.registry import HandlerParams, handler
from remediator.templates import url_escape

__all__ = [
    "Alert",
    "Context",
    "Duration",
    "HandlerError",
    "HandlerParams",
    "Outcome",
    "PermanentError",
    "Resources",
    "Result",
    "RuleDuration",
    "TemporaryError",
    "handler",
    "url_escape",
]
