import asyncio
from typing import Any

from remediator.errors import PermanentError
from remediator.handling.context import Context
from remediator.handling.execution import execute, execute_precheck
from remediator.handling.phases import Checked, Handler
from remediator.handling.registry import HandlerParams, HandlerSpec
from remediator.models import Outcome, Result
from tests.support.handlers import make_context
from tests.support.payloads import alert_model


def ctx() -> Context:
    return make_context(
        event_id="e1", rule="r", target="t", alert=alert_model(), deadline=5, verify_timeout=1
    )


class Whole(Handler[Any, None, None]):
    """A handler whose act does all of it (``fn``): the executor's guarantees, whatever
    the phases."""

    def __init__(self, fn: Any) -> None:
        self.fn = fn

    async def precheck(self, params: Any, ctx: Context) -> Checked[None]:
        return Checked("(test)", None)

    async def act(self, params: Any, ctx: Context, seen: None) -> Result:
        found: Result = await self.fn(params, ctx)
        return found

    async def verify(self, params: Any, ctx: Context, acted: None) -> Result:
        raise AssertionError("act returned the Result")


def spec(fn: Any) -> HandlerSpec:
    return HandlerSpec(name="t.fn", phases=Whole(fn), params=HandlerParams)


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


class Phased(Handler[Any, str, str]):
    """Each phase says what it got, so a test can see which ran, in which order."""

    def __init__(self, *, nothing_to_do: bool = False, act_ends: bool = False, fails: str = "") -> None:
        self.nothing_to_do, self.act_ends, self.fails = nothing_to_do, act_ends, fails
        self.calls: list[str] = []

    async def precheck(self, params: Any, ctx: Context) -> Checked[str]:
        self.calls.append("precheck")
        if self.fails == "precheck":
            raise PermanentError("the target is gone")
        done = Result.noop("healthy already") if self.nothing_to_do else None
        return Checked("replica read-only on node a", "seen", done=done)

    async def act(self, params: Any, ctx: Context, seen: str) -> str | Result:
        self.calls.append(f"act({seen})")
        return Result.dry_run(["plan"]) if self.act_ends else "acted"

    async def verify(self, params: Any, ctx: Context, acted: str) -> Result:
        self.calls.append(f"verify({acted})")
        return Result.succeeded("recovered")


async def test_the_phases_run_in_order_and_each_may_end_the_run() -> None:
    whole = Phased()
    result = await execute(HandlerSpec("t.p", whole, HandlerParams), HandlerParams(), ctx(), timeout=1)
    assert result.outcome is Outcome.SUCCEEDED and whole.calls == ["precheck", "act(seen)", "verify(acted)"]
    healthy = Phased(nothing_to_do=True)
    result = await execute(HandlerSpec("t.p", healthy, HandlerParams), HandlerParams(), ctx(), timeout=1)
    assert result.outcome is Outcome.NOOP and healthy.calls == ["precheck"]
    planned = Phased(act_ends=True)
    result = await execute(HandlerSpec("t.p", planned, HandlerParams), HandlerParams(), ctx(), timeout=1)
    assert result.outcome is Outcome.DRY_RUN and planned.calls == ["precheck", "act(seen)"]


async def test_the_precheck_runs_on_its_own_with_the_same_guarantees() -> None:
    alone = Phased()
    spec_ = HandlerSpec("t.p", alone, HandlerParams)
    checked = await execute_precheck(spec_, HandlerParams(), ctx(), timeout=1)
    assert isinstance(checked, Checked) and checked.state == "replica read-only on node a"
    assert checked.seen == "seen" and checked.done is None and alone.calls == ["precheck"]
    failing = HandlerSpec("t.p", Phased(fails="precheck"), HandlerParams)
    result = await execute_precheck(failing, HandlerParams(), ctx(), timeout=1)
    assert isinstance(result, Result) and result.outcome is Outcome.FAILED and not result.retryable
    assert result.message == "the target is gone"

    class Slow(Phased):
        async def precheck(self, params: Any, ctx: Context) -> Checked[str]:
            await asyncio.sleep(10)
            raise AssertionError("cancelled by the timeout")

    timed_out = await execute_precheck(
        HandlerSpec("t.p", Slow(), HandlerParams), HandlerParams(), ctx(), timeout=0.1
    )
    assert isinstance(timed_out, Result) and timed_out.retryable and "timed out" in timed_out.message
