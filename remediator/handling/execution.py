"""Runs one handler under a deadline; turns every exception into a Result. Never raises."""

from __future__ import annotations

import asyncio
import contextlib

from remediator.errors import HandlerError
from remediator.handling.context import Context
from remediator.handling.registry import HandlerParams, HandlerSpec
from remediator.models import Outcome, Result


async def execute(
    spec: HandlerSpec,
    params: HandlerParams,
    ctx: Context,
    *,
    timeout: float,
    lease_lost: asyncio.Event | None = None,
) -> Result:
    """Run ``spec`` and return its Result, a failed one on timeout, error or lost lease."""
    task = asyncio.create_task(_call(spec, params, ctx), name=f"handler:{spec.name}")
    waiters: set[asyncio.Future[object]] = {task}  # type: ignore[arg-type]
    lost_wait = None
    if lease_lost is not None:
        lost_wait = asyncio.create_task(lease_lost.wait(), name="lease-lost-wait")
        waiters.add(lost_wait)  # type: ignore[arg-type]
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


async def _call(spec: HandlerSpec, params: HandlerParams, ctx: Context) -> Result:
    try:
        result = await spec.fn(params, ctx)
    except asyncio.CancelledError:
        raise
    except HandlerError as exc:
        # In a dry run a failed precheck (e.g. the target is out of reach) is expected:
        # the pipeline turns it into the plan from the params alone. Not an error.
        report = ctx.log.warning if ctx.dry_run else ctx.log.error
        report("remediation.handler_error", error=str(exc), retryable=exc.retryable, dry_run=ctx.dry_run)
        return Result.failed(str(exc), retryable=exc.retryable, **exc.details)
    except Exception as exc:
        ctx.log.exception("remediation.handler_crashed")
        return Result.failed(f"handler raised {type(exc).__name__}: {exc}")
    if not isinstance(result, Result):
        return Result.failed(f"handler returned {type(result).__name__}, not a Result")
    if result.outcome is Outcome.SKIPPED:
        return Result.failed("handlers may not return 'skipped'; that is for the pipeline")
    return result


async def _cancel(task: asyncio.Task[object] | asyncio.Task[Result] | asyncio.Task[bool]) -> None:
    if not task.done():
        task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task
