"""Exceptions that cross module boundaries, each saying whether to retry."""

from __future__ import annotations


class RemediatorError(Exception):
    """Base of every error this package raises on purpose."""


class RulesError(RemediatorError):
    """The rules file is invalid; ``problems`` holds one line per error."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__((f"{source}: " if source else "") + "; ".join(problems))


class MatcherError(RemediatorError):
    """A matcher string does not follow Alertmanager's matcher syntax."""


class TemplateError(RemediatorError):
    """A template failed to render (typically: a label the alert lacks)."""


class HandlerError(RemediatorError):
    """Raised by handlers: the repair cannot go on. ``retryable`` says whether
    a later attempt may succeed (a temporary outage) or not (bad input)."""

    retryable: bool = False

    def __init__(self, message: str, *, details: dict[str, object] | None = None) -> None:
        super().__init__(message)
        self.details = details or {}


class PermanentError(HandlerError):
    """Retrying will not help: invalid input, missing object, no permission."""

    retryable = False


class TemporaryError(HandlerError):
    """Retrying later may help: a timeout or an unreachable dependency."""

    retryable = True


class StoreUnavailable(RemediatorError):
    """The state store (Redis) cannot be reached; nothing may be promised."""
