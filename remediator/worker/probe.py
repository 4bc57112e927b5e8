"""The probe stage: ask the rule's probe before the handler acts and after it succeeds.

Every answer is a step of the event's timeline (``probe``, with ``phase`` before or after).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

import aiohttp
from yarl import URL

from remediator import clock
from remediator.durations import format_duration
from remediator.models import Outcome, Result
from remediator.rules.probes import Probe
from remediator.worker.runs import Run

_BODY_READ = 1 << 20  # bytes of the body read for expect_body
_BODY_SHOWN = 300  # characters of the body quoted in a failure


@dataclass(frozen=True)
class Answer:
    """One try of the probe: whether it passed and what it answered, in words."""

    passed: bool
    status: int | None  # None: no HTTP answer (connection error, timeout)
    summary: str  # "HTTP 200", "HTTP 500: <body>", "no answer: ..."


async def ask(probe: Probe, http: aiohttp.ClientSession) -> Answer:
    """One request; never raises for what the service answers (or does not)."""
    timeout = aiohttp.ClientTimeout(total=probe.timeout)
    try:
        # encoded=True: the URL goes out as rendered (labels already percent-encoded);
        # redirects are not followed: a 3xx is the answer.
        async with http.request(
            probe.method, URL(probe.url, encoded=True), timeout=timeout, allow_redirects=False
        ) as response:
            raw = await response.content.read(_BODY_READ)
            status = response.status
            body = _text(raw, response.charset)
    except TimeoutError:
        return Answer(False, None, f"no answer within {format_duration(probe.timeout)}")
    except aiohttp.ClientError as exc:
        return Answer(False, None, f"no answer: {exc or type(exc).__name__}")
    shown = " ".join(body[:_BODY_SHOWN].split())
    if not probe.status_passes(status):
        return Answer(False, status, f"HTTP {status}: {shown}" if shown else f"HTTP {status}")
    if (why := probe.body_passes(body)) is not None:
        return Answer(False, status, f"HTTP {status}, {why}: {shown}")
    return Answer(True, status, f"HTTP {status}")


def _text(raw: bytes, charset: str | None) -> str:
    try:
        return raw.decode(charset or "utf-8", errors="replace")
    except LookupError:  # a charset Python does not know
        return raw.decode("utf-8", errors="replace")


def _record(run: Run, phase: str, answer: Answer) -> None:
    run.step("probe", answer.summary, phase=phase, passed=answer.passed, status=answer.status)


async def before(run: Run, probe: Probe, http: aiohttp.ClientSession) -> Result | None:
    """``noop`` if the probe passes already (nothing to repair), else None: act."""
    answer = await ask(probe, http)
    _record(run, "before", answer)
    if answer.passed:
        return Result.noop(f"probe passes: {answer.summary}", probe=answer.summary, probe_url=probe.url)
    return None


async def after(
    run: Run,
    probe: Probe,
    http: aiohttp.ClientSession,
    result: Result,
    *,
    within: float,
    lost: asyncio.Event,
) -> Result:
    """The handler succeeded: ``result`` if the probe passes within ``within`` seconds
    (tried every ``probe.interval``; at least once), else ``failed`` with its last answer."""
    if result.outcome is not Outcome.SUCCEEDED:
        return result
    deadline = clock.monotonic() + within
    tries = 0
    while True:
        answer = await ask(probe, http)
        tries += 1
        _record(run, "after", answer)
        details = {**result.details, "probe": answer.summary, "probe_url": probe.url, "probe_tries": tries}
        if answer.passed:
            return result.model_copy(
                update={"message": f"{result.message}; probe passes: {answer.summary}", "details": details}
            )
        remaining = deadline - clock.monotonic()
        if remaining <= 0 or lost.is_set():
            break
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(lost.wait(), min(probe.interval, remaining))
        if lost.is_set():
            break
    if lost.is_set():
        message = f"acted, then lost the lease while probing; the probe still fails: {answer.summary}"
    else:
        message = f"acted, but the probe still fails: {answer.summary}"
    return Result.failed(message, handler_message=result.message, **details)
