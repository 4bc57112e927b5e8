"""A temporary failure is tried again inside its firing episode, while the budget allows.

``Result.retryable`` (a TemporaryError, a handler timeout, an HTTP 5xx) asks for another
attempt; a permanent failure is final at once. A job is counted once toward the circuit,
at its first failure. Its retries come from the rule's attempt budget (``max_attempts``
within ``attempt_window``) but never take the budget's last attempt: at the first failure
a job may retry ``max_attempts - failures_in_window - 1`` times (the failures counting
this one), so with ``max_attempts: 2`` nothing is retried and with the default 3 a job on
a clean target is retried once. The waits double from DEFER_INTERVAL, up to 5 minutes.
"""

from __future__ import annotations

from remediator import clock
from remediator.durations import format_duration
from remediator.models import Outcome, Result
from remediator.worker.runs import Run
from remediator.worker.stages import Defer

MAX_BACKOFF = 300.0


def retry_after(run: Run, result: Result, failures: int, base: float) -> Defer | None:
    """The Defer that re-queues this job for another attempt, or None: the failure is final.

    ``failures`` is the target's failure count in the window after this job's first
    failure (only read then); ``base`` the first wait.
    """
    job = run.job
    if (
        result.outcome is not Outcome.FAILED
        or not result.retryable
        or not run.automatic
        or result.details.get("lease_lost")
    ):
        return None
    left = run.known_rule.policy.max_attempts - failures - 1 if job.attempts == 0 else job.retries_left
    if left <= 0:
        return None
    attempt = job.attempts + 1
    delay = min(base * 2 ** (attempt - 1), MAX_BACKOFF)
    again = job.model_copy(update={"attempts": attempt, "retries_left": left - 1})
    return Defer(
        "retry",
        f"temporary failure; retry {attempt} in {format_duration(delay)}: {result.message}",
        job.first_deferred_at or clock.now(),
        delay,
        job=again,
    )
