"""The handler kit: polling, observations, the verify deadline, the 409 re-read loop."""

import time

import pytest

from remediator import (
    MAX_CONFLICTS,
    Conflict,
    Context,
    HandlerParams,
    Observations,
    TemporaryError,
    VerifyTimeout,
    planned_within,
    poll,
    rereading_conflicts,
    verify_within,
)
from tests.support.handlers import make_context
from tests.support.payloads import alert_model


def ctx(left: float = 5.0) -> Context:
    return make_context(
        event_id="e1", rule="r", target="t", alert=alert_model(), deadline=left, verify_timeout=7
    )


class Params(HandlerParams):
    verify_timeout: VerifyTimeout = None


def test_verify_within_prefers_the_params_then_the_rule() -> None:
    assert verify_within(Params(verify_timeout="3s"), ctx()) == 3.0
    assert verify_within(Params(), ctx()) == 7
    assert planned_within(Params(verify_timeout="90s")) == "90s"
    assert planned_within(Params()) == "the rule's verify_timeout"


def test_observations_record_only_changes() -> None:
    context = ctx()
    seen = Observations(context, "watch")
    for message in ["a", "a", "b", "a"]:
        seen.see(message, n=1)
    assert [(s.name, s.message) for s in context.timeline] == [("watch", "a"), ("watch", "b"), ("watch", "a")]


async def test_poll_stops_when_done_and_runs_between_otherwise() -> None:
    answers, between = iter([(False, 1), (False, 2), (True, 3)]), []

    async def probe() -> tuple[bool, int]:
        return next(answers)

    async def note(seen: int) -> None:
        between.append(seen)

    assert await poll(ctx(), probe, every=0.01, within=5, between=note) == (True, 3)
    assert between == [1, 2]


async def test_poll_gives_up_at_within_and_keeps_spare_before_the_deadline() -> None:
    async def never() -> tuple[bool, str]:
        return False, "still"

    started = time.monotonic()
    assert await poll(ctx(), never, every=0.01, within=0.1) == (False, "still")
    assert 0.1 <= time.monotonic() - started < 1
    started = time.monotonic()
    assert await poll(ctx(left=1.2), never, every=0.01, within=5, spare=1.0) == (False, "still")
    assert time.monotonic() - started < 0.6


async def test_conflicts_are_reread_then_a_temporary_error() -> None:
    context, reads = ctx(), list[int]()

    async def attempt(version: int) -> str:
        if version < 2:
            raise Conflict(f"v{version} is stale")
        return f"wrote over v{version}"

    async def reread() -> int:
        reads.append(len(reads) + 1)
        return reads[-1]

    assert await rereading_conflicts(context, 0, attempt, reread, where="X", undone="-") == "wrote over v2"
    assert [s.message for s in context.timeline] == ["v0 is stale; re-reading", "v1 is stale; re-reading"]

    async def always(version: int) -> str:
        raise Conflict("stale")

    with pytest.raises(
        TemporaryError,
        match=f"X changed under us {MAX_CONFLICTS} times in a "
        r"row \(409 Conflict on every guarded patch\); not done",
    ):
        await rereading_conflicts(context, 0, always, reread, where="X", undone="not done")
