"""A temporary failure is retried inside its episode while the budget allows; a permanent
one is final at once. Through the running app on a MemoryStore."""

from __future__ import annotations

from collections import defaultdict

import pytest

from remediator import Checked, Context, Handler, HandlerParams, PermanentError, Result, TemporaryError
from remediator.handling.registry import Registry, handler
from tests.conftest import MakeHarness
from tests.support.payloads import alert, payload

# The memory store and the gates on looptime's clock: their waits pass without real sleeps.
pytestmark = pytest.mark.looptime

CALLS: dict[str, int] = defaultdict(int)


class FlakyParams(HandlerParams):
    name: str
    temporary: int = 0  # the first N runs raise TemporaryError
    permanent: bool = False


def registry() -> Registry:
    reg = Registry()

    @handler("test.flaky", params=FlakyParams, registry=reg, describe=lambda p: [p.name])
    class Flaky(Handler[FlakyParams, None, None]):
        """Fails as often as its params say, then succeeds."""

        async def precheck(self, params: FlakyParams, ctx: Context) -> Checked[None]:
            return Checked(f"{params.name} (flaky)", None)

        async def act(self, params: FlakyParams, ctx: Context, seen: None) -> Result | None:
            CALLS[params.name] += 1
            ctx.step("act", f"try {CALLS[params.name]}")
            if params.permanent:
                raise PermanentError(f"{params.name} is gone")
            if CALLS[params.name] <= params.temporary:
                raise TemporaryError(f"{params.name}: connection refused")
            return None

        async def verify(self, params: FlakyParams, ctx: Context, acted: None) -> Result:
            return Result.succeeded("fixed")

    return reg


RULES = """
defaults: {max_attempts: 3, attempt_window: 1h, cooldown: 0s}
rules:
  - name: flaky
    matchers: ['alertname="Flaky"']
    handler: test.flaky
    target: 'flaky/{{ labels.name }}'
    params: {name: '{{ labels.name }}', temporary: '{{ labels.temporary | default(0) }}',
             permanent: '{{ labels.permanent | default(false) }}'}
  - name: tight
    matchers: ['alertname="Tight"']
    handler: test.flaky
    target: 'tight/{{ labels.name }}'
    params: {name: '{{ labels.name }}', temporary: 9}
    max_attempts: 2
"""


async def test_a_temporary_failure_is_retried_and_then_succeeds(harness: MakeHarness) -> None:
    CALLS.clear()
    h = await harness(RULES, registry=registry())
    event = await h.event(await h.post_one(payload(alert("Flaky", name="t1", temporary="1"))))
    assert event.outcome_label == "succeeded" and CALLS["t1"] == 2
    assert event.details["attempts"] == 2
    names = [s.name for s in event.timeline]
    assert names.count("handler.started") == 2 and names.count("received") == 2
    [retry] = [s for s in event.timeline if s.name == "retry"]
    assert retry.message.startswith("temporary failure; retry 1 in ")
    assert retry.message.endswith(": t1: connection refused")
    assert await h.svc.store.gates.circuit_remaining("flaky", "flaky/t1") == 0
    assert (
        h.svc.metrics.registry.get_sample_value(
            "remediator_jobs_deferred_total", {"rule": "flaky", "reason": "retry"}
        )
        == 1
    )


async def test_a_permanent_failure_is_not_retried(harness: MakeHarness) -> None:
    CALLS.clear()
    h = await harness(RULES, registry=registry())
    event = await h.event(await h.post_one(payload(alert("Flaky", name="p1", permanent="true"))))
    assert event.outcome_label == "failed" and event.message == "p1 is gone"
    assert CALLS["p1"] == 1 and "retry" not in [s.name for s in event.timeline]


async def test_retries_stop_at_the_budget_and_count_once_toward_the_circuit(harness: MakeHarness) -> None:
    CALLS.clear()
    h = await harness(RULES, registry=registry())
    # max_attempts 3, a clean target: one failure counted, one retry (the last attempt is kept).
    first = await h.event(await h.post_one(payload(alert("Flaky", name="b", temporary="9"))))
    assert first.outcome_label == "failed" and CALLS["b"] == 2
    assert first.details["attempts"] == 2 and first.message == "b: connection refused"
    assert await h.svc.store.gates.circuit_remaining("flaky", "flaky/b") == 0  # counted once
    # The next job finds 2 failures counted with its own: no retry left in the budget.
    second = await h.event(await h.post_one(payload(alert("Flaky", name="b", temporary="9", try_="2"))))
    assert second.outcome_label == "failed" and second.details["failures_in_window"] == 2
    assert CALLS["b"] == 3 and "retry" not in [s.name for s in second.timeline]


async def test_with_max_attempts_2_a_temporary_failure_is_not_retried(harness: MakeHarness) -> None:
    CALLS.clear()
    h = await harness(RULES, registry=registry())
    event = await h.event(await h.post_one(payload(alert("Tight", name="x"))))
    assert event.outcome_label == "failed" and event.details["failures_in_window"] == 1
    assert CALLS["x"] == 1
