import asyncio
import time
from typing import Any

import structlog

from remediator.handling.context import Context, Resources
from remediator.handling.execution import execute
from remediator.handling.registry import HandlerParams, HandlerSpec
from remediator.models import Alert, Outcome, Result
from remediator.settings import Settings
from tests.support.payloads import alert


def ctx() -> Context:
    return Context(
        event_id="e1",
        rule="r",
        target="t",
        alert=Alert.model_validate(alert()),
        dry_run=False,
        deadline=time.monotonic() + 5,
        verify_timeout=1,
        log=structlog.get_logger(),
        resources=Resources(Settings()),
    )


def spec(fn: Any) -> HandlerSpec:
    return HandlerSpec(name="t.fn", fn=fn, params=HandlerParams)


async def test_returns_the_handlers_result() -> None:
    async def ok(params: Any, c: Context) -> Result:
        c.step("act", "did it")
        return Result.succeeded("done")

    context = ctx()
    result = await execute(spec(ok), HandlerParams(), context, timeout=1)
    assert result.outcome is Outcome.SUCCEEDED and context.timeline[0].name == "act"


async def test_exception_becomes_failed() -> None:
    async def bad(params: Any, c: Context) -> Result:
        raise KeyError("x")

    result = await execute(spec(bad), HandlerParams(), ctx(), timeout=1)
    assert result.outcome is Outcome.FAILED and result.message == "handler raised KeyError: 'x'"


async def test_timeout_cancels_the_handler() -> None:
    cancelled = asyncio.Event()

    async def slow(params: Any, c: Context) -> Result:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return Result.succeeded("late")

    result = await execute(spec(slow), HandlerParams(), ctx(), timeout=0.1)
    assert result.outcome is Outcome.FAILED and result.retryable and cancelled.is_set()


async def test_lease_lost_cancels_the_handler() -> None:
    lost = asyncio.Event()

    async def slow(params: Any, c: Context) -> Result:
        lost.set()
        await asyncio.sleep(10)
        return Result.succeeded("late")

    result = await execute(spec(slow), HandlerParams(), ctx(), timeout=5, lease_lost=lost)
    assert result.details["lease_lost"] is True


async def test_wrong_return_types_are_failures() -> None:
    async def none(params: Any, c: Context) -> Any:
        return None

    async def skipped(params: Any, c: Context) -> Result:
        return Result(outcome=Outcome.SKIPPED)

    assert (await execute(spec(none), HandlerParams(), ctx(), timeout=1)).outcome is Outcome.FAILED
    result = await execute(spec(skipped), HandlerParams(), ctx(), timeout=1)
    assert "may not return 'skipped'" in result.message
