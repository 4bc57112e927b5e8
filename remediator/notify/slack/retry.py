"""Slack transport retries: slack_sdk's retry handlers, bounded, with our additions.

429 + ``Retry-After`` (an advertised wait above ``max_wait`` is not slept inside
the call), any 5xx, connection errors and timeouts, and the ``ok: false``
errors Slack documents as transient; all share one attempt counter.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import aiohttp
from slack_sdk.http_retry.async_handler import AsyncRetryHandler
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.http_retry.builtin_interval_calculators import BackoffRetryIntervalCalculator
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState

# Errors Slack answers with HTTP 200 and ``ok: false`` that its docs call transient.
_TRANSIENT_ERRORS = {"internal_error", "fatal_error", "service_unavailable", "request_timeout"}


def sdk_logger() -> logging.Logger:
    """slack_sdk logs request URLs (the webhook's is a secret) whenever its logger's own
    level is DEBUG or unset; a logger pinned at WARNING keeps those lines from ever forming."""
    logger = logging.getLogger("remediator.notify.slack.client.sdk")
    logger.setLevel(logging.WARNING)
    return logger


def _header(headers: Mapping[str, Any], name: str) -> str | None:
    """A header's value; slack_sdk's retry responses store every value as a list."""
    for key, value in headers.items():
        if key.lower() == name:
            return str(value[0] if isinstance(value, list) and value else value)
    return None


def retry_after(headers: Mapping[str, Any]) -> float | None:
    """Seconds from a ``Retry-After`` header, or None when absent or not a number."""
    raw = _header(headers, "retry-after")
    try:
        return None if raw is None else max(0.0, float(raw))
    except ValueError:
        return None


class _Decides:
    """A retry handler that decides from the response alone (``retryable``)."""

    def retryable(self, response: HttpResponse) -> bool:
        raise NotImplementedError

    async def _can_retry_async(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        return response is not None and self.retryable(response)


class _RateLimitRetry(_Decides, AsyncRateLimitErrorRetryHandler):
    """The SDK's 429 handler sleeps ``Retry-After`` (+ <1 s jitter) and retries; kept as is.

    One bound added: an advertised wait above ``max_wait`` is not slept inside
    the call (one message would hold the queue for minutes); the call then fails
    with 429 and the sender waits the rest out before its next message.
    The SDK's sleep uses ``int(value)``, so a non-integer value is not retried.
    """

    def __init__(self, max_retry_count: int, max_wait: float) -> None:
        super().__init__(max_retry_count=max_retry_count)
        self.max_wait = max_wait

    def retryable(self, response: HttpResponse) -> bool:
        if response.status_code != 429:
            return False
        raw = _header(response.headers, "retry-after") or "1"  # the SDK waits 1 s when absent
        return raw.strip().isdigit() and int(raw) <= self.max_wait


class _ServerErrorRetry(_Decides, AsyncServerErrorRetryHandler):
    """The SDK's handler retries only 500 and 503; proxies in front of Slack answer 502/504."""

    def retryable(self, response: HttpResponse) -> bool:
        return 500 <= response.status_code < 600


class _TransientErrorRetry(_Decides, AsyncServerErrorRetryHandler):
    """``ok: false`` errors Slack documents as transient (HTTP 200), retried like a 5xx."""

    def retryable(self, response: HttpResponse) -> bool:
        return isinstance(response.body, dict) and response.body.get("error") in _TRANSIENT_ERRORS


def retry_handlers(retries: int, max_wait: float) -> list[AsyncRetryHandler]:
    """Bounded: the SDK shares one attempt counter across handlers, so at most ``retries``."""
    backoff = BackoffRetryIntervalCalculator(backoff_factor=0.5)  # 0.5, 1, 2 s (+ <1 s jitter)
    connection_errors: list[type[Exception]] = [
        aiohttp.ServerConnectionError,
        aiohttp.ServerDisconnectedError,
        aiohttp.ClientOSError,
        TimeoutError,  # the SDK's default list misses a timed-out request
    ]
    return [
        AsyncConnectionErrorRetryHandler(
            max_retry_count=retries, interval_calculator=backoff, error_types=connection_errors
        ),
        _RateLimitRetry(retries, max_wait),
        _ServerErrorRetry(max_retry_count=retries, interval_calculator=backoff),
        _TransientErrorRetry(max_retry_count=retries, interval_calculator=backoff),
    ]
