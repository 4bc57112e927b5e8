"""Runs a handler under a deadline; turns every exception into a Result. Never raises.

``execute`` runs the whole handler (precheck, act, verify); ``execute_precheck`` only its
precheck, with the same guarantees: a timeout, a lost lease, an error or a crash becomes
a failed ``Result``, and a cancellation (shutdown) cancels the handler too.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from remediator.errors import HandlerError
from remediator.handling.context import Context
from remediator.handling.phases import Checked, run_phases
from remediator.handling.registry import HandlerParams, HandlerSpec
from remediator.models import Outcome, Result

T = TypeVar("T", Result, Checked[Any])


async def execute(
    spec: HandlerSpec,
    params: HandlerParams,
    ctx: Context,
    *,
    timeout: float,
    lease_lost: asyncio.Event | None = None,
) -> Result:
    """Run ``spec`` and return its Result, a failed one on timeout, error or lost lease."""
    found = await _guarded(spec, lambda: run_phases(spec.phases, params, ctx), ctx, timeout, lease_lost)
    if isinstance(found, Result) and found.outcome is Outcome.SKIPPED:
        return Result.failed("handlers may not return 'skipped'; that is for the pipeline")
    return found


async def execute_precheck(
    spec: HandlerSpec,
    params: HandlerParams,
    ctx: Context,
    *,
    timeout: float,
    lease_lost: asyncio.Event | None = None,
) -> Checked[Any] | Result:
    """Run only ``spec``'s precheck: what it saw (``Checked``), or a failed Result."""

    async def precheck() -> Checked[Any] | Result:
        checked = await spec.phases.precheck(params, ctx)
        if not isinstance(checked, Checked):
            return Result.failed(f"the precheck returned {type(checked).__name__}, not Checked")
        return checked

    return await _guarded(spec, precheck, ctx, timeout, lease_lost)


async def _guarded(
    spec: HandlerSpec,
    call: Callable[[], Awaitable[T | Result]],
    ctx: Context,
    timeout: float,
    lease_lost: asyncio.Event | None,
) -> T | Result:
    task = asyncio.create_task(_caught(call, ctx), name=f"handler:{spec.name}")
    waiters: set[asyncio.Future[Any]] = {task}
    lost_wait = None
    if lease_lost is not None:
        lost_wait = asyncio.create_task(lease_lost.wait(), name="lease-lost-wait")
        waiters.add(lost_wait)
    try:
        done, _ = await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        await _cancel(task)
        raise
    finally:
        if lost_wait is not None:
            await _cancel(lost_wait)
    if task in done:
        return task.result()
    await _cancel(task)
    if lost_wait is not None and lost_wait in done:
        ctx.log.error("remediation.lease_lost")
        return Result.failed(
            "lease lost while the handler ran: another worker may own the target; stopped",
            lease_lost=True,
        )
    ctx.log.error("remediation.timeout", timeout=timeout)
    return Result.failed(f"handler timed out after {timeout:g}s", retryable=True, timeout=timeout)


async def _caught(call: Callable[[], Awaitable[T | Result]], ctx: Context) -> T | Result:
    try:
        found = await call()
    except asyncio.CancelledError:
        raise
    except HandlerError as exc:
        # In a dry run a failed precheck (e.g. the target is out of reach) is expected:
        # the pipeline turns it into the plan from the params alone, and its outcome says
        # why. Logged once, there; here only for a real run.
        if not ctx.dry_run:
            ctx.log.error("remediation.handler_error", error=str(exc), retryable=exc.retryable)
        return Result.failed(str(exc), retryable=exc.retryable, **exc.details)
    except Exception as exc:
        ctx.log.exception("remediation.handler_crashed")
        return Result.failed(f"handler raised {type(exc).__name__}: {exc}")
    if not isinstance(found, Result | Checked):
        return Result.failed(f"handler returned {type(found).__name__}, not a Result")
    return found


async def _cancel(task: asyncio.Task[Any]) -> None:
    if not task.done():
        task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task
