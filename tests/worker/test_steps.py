"""A rule's ``steps:`` (issue 28): fallbacks, sequences, the probe ending a chain, a page
step, a dry run, against a real local HTTP service (the probe) and the memory store."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.conftest import MakeHarness
from tests.support.handlers import ACTS
from tests.support.payloads import alert, payload

pytestmark = pytest.mark.looptime


@dataclass
class Service:
    """A local service whose probe passes once the handler ran for ``repaired_by``."""

    server: TestServer
    repaired_by: str = "two"
    requests: int = 0
    seen: list[bool] = field(default_factory=list)

    @property
    def url(self) -> str:
        return str(self.server.make_url("/health"))


@pytest.fixture
async def service() -> AsyncIterator[Service]:
    app = web.Application()
    server = TestServer(app)
    state = Service(server=server)

    async def health(request: web.Request) -> web.Response:
        state.requests += 1
        healthy = bool(ACTS[state.repaired_by])
        state.seen.append(healthy)
        return web.Response(text="ok") if healthy else web.Response(status=503, text="down")

    app.router.add_get("/health", health)
    await server.start_server()
    yield state
    await server.close()


def rule(steps: str, *, probe: str = "", extra: str = "") -> str:
    return f"""
rules:
  - name: runbook
    matchers: ['alertname="Down"']
    target: 'svc/{{{{ labels.service }}}}'
    verify_timeout: 300ms
{probe}{extra}    steps:
{steps}"""


def probe(url: str) -> str:
    return f"    probe: {{url: '{url}', interval: 50ms, timeout: 2s}}\n"


async def run(h: Any, service: str = "a", starts: str = "2026-11-28T10:00:00.000Z") -> Any:
    body = payload(alert("Down", "firing", starts, service=service))
    return await h.event(await h.post_one(body), timeout=15)


def finished(event: Any) -> list[tuple[int, str, str]]:
    return [
        (s.data["step"], s.data["handler"], s.data["outcome"])
        for s in event.timeline
        if s.name == "step.finished"
    ]


async def test_a_fallback_stops_at_the_first_step_that_the_probe_confirms(
    harness: MakeHarness, service: Service
) -> None:
    """Reconnect fails, restart works (the probe passes), the third step never runs."""
    steps = """\
      - {handler: test.probe, params: {bucket: one, outcome: failed}, on_failure: next}
      - {handler: test.probe, params: {bucket: two}, on_failure: next}
      - {handler: test.probe, params: {bucket: three}}
"""
    h = await harness(rule(steps, probe=probe(service.url)))
    event = await run(h)
    assert event.outcome_label == "succeeded", event.message
    assert (len(ACTS["one"]), len(ACTS["two"]), ACTS["three"]) == (1, 1, [])
    assert finished(event) == [(1, "test.probe", "failed"), (2, "test.probe", "succeeded")]
    assert event.message.startswith("step 2/3 test.probe: fixed and verified; probe passes: HTTP 200")
    assert [s["outcome"] for s in event.details["steps"]] == ["failed", "succeeded"]
    shown = [s.message for s in event.timeline if s.name == "step.finished"]
    assert shown[0] == "step 1/3 test.probe: failed: it did not recover; next: step 2/3"
    assert shown[1].endswith("; the chain ends")
    assert service.seen[0] is False and service.seen[-1] is True  # before, then after step 2


async def test_a_sequence_runs_every_step_in_order(harness: MakeHarness) -> None:
    steps = """\
      - {handler: test.probe, params: {bucket: one}}
      - {handler: test.probe, params: {bucket: two}}
      - {handler: test.probe, params: {bucket: three}}
"""
    h = await harness(rule(steps))
    event = await run(h)
    assert event.outcome_label == "succeeded", event.message
    assert [len(ACTS[b]) for b in ("one", "two", "three")] == [1, 1, 1]
    assert finished(event) == [
        (1, "test.probe", "succeeded"),
        (2, "test.probe", "succeeded"),
        (3, "test.probe", "succeeded"),
    ]
    acts = [s.message for s in event.timeline if s.name == "act"]
    assert acts == ["probe one", "probe two", "probe three"]
    # one lease, one cooldown for the whole chain
    again = await run(h, starts="2026-11-28T10:05:00.000Z")  # a new episode on the target
    assert again.outcome_label == "skipped:cooldown"


async def test_a_failing_step_stops_the_chain_by_default(harness: MakeHarness) -> None:
    steps = """\
      - {handler: test.probe, params: {bucket: one, outcome: failed}}
      - {handler: test.probe, params: {bucket: two}}
"""
    h = await harness(rule(steps))
    event = await run(h)
    assert event.outcome_label == "failed"
    assert event.message == "step 1/2 test.probe: it did not recover"
    assert ACTS["two"] == [] and event.details["failures_in_window"] == 1  # one attempt counted


async def test_the_probe_passing_stops_the_chain(harness: MakeHarness, service: Service) -> None:
    service.repaired_by = "one"
    steps = """\
      - {handler: test.probe, params: {bucket: one}}
      - {handler: test.probe, params: {bucket: two}}
      - {handler: test.probe, params: {bucket: three}}
"""
    h = await harness(rule(steps, probe=probe(service.url)))
    event = await run(h)
    assert event.outcome_label == "succeeded", event.message
    assert (len(ACTS["one"]), ACTS["two"], ACTS["three"]) == (1, [], [])
    assert finished(event) == [(1, "test.probe", "succeeded")]


async def test_on_success_done_ends_the_chain_without_the_probe(
    harness: MakeHarness, service: Service
) -> None:
    service.repaired_by = "nobody"
    steps = """\
      - {handler: test.probe, params: {bucket: one}, on_success: done}
      - {handler: test.probe, params: {bucket: two}}
"""
    h = await harness(rule(steps, probe=probe(service.url)))
    event = await run(h)
    assert event.outcome_label == "succeeded" and ACTS["two"] == []
    assert service.seen == [False]  # only the probe before acting


async def test_a_noop_step_counts_as_a_success(harness: MakeHarness) -> None:
    steps = """\
      - {handler: test.probe, params: {bucket: one, healthy: true}}
      - {handler: test.probe, params: {bucket: two}}
"""
    h = await harness(rule(steps))
    event = await run(h)
    assert event.outcome_label == "succeeded", event.message
    assert finished(event) == [(1, "test.probe", "noop"), (2, "test.probe", "succeeded")]
    assert ACTS["one"] == [] and len(ACTS["two"]) == 1


async def test_the_last_step_leaving_the_probe_failing_fails(harness: MakeHarness, service: Service) -> None:
    service.repaired_by = "nobody"
    steps = """\
      - {handler: test.probe, params: {bucket: one}}
      - {handler: test.probe, params: {bucket: two}}
"""
    h = await harness(rule(steps, probe=probe(service.url)))
    event = await run(h)
    assert event.outcome_label == "failed"
    assert event.message.startswith("step 2/2 test.probe: acted, but the probe still fails: HTTP 503")
    assert [len(ACTS["one"]), len(ACTS["two"])] == [1, 1]


async def test_a_dry_run_renders_the_whole_chain(harness: MakeHarness) -> None:
    steps = """\
      - {handler: test.probe, params: {bucket: one}, on_failure: next}
      - {handler: test.probe, params: {bucket: two}}
      - page: {slack: '@here'}
"""
    h = await harness(rule(steps, extra="    dry_run: true\n"))
    event = await run(h)
    assert event.outcome_label == "dry_run", event.message
    assert event.plan == [
        "step 1/3 test.probe (on success: next, on failure: next): probe one",
        "step 2/3 test.probe (on success: next, on failure: stop): probe two",
        "step 3/3 page: page @here with the chain's results so far",
    ]
    assert ACTS == {}


async def test_a_handler_rule_is_the_one_step_chain(harness: MakeHarness) -> None:
    """No step.finished, the handler's own message and plan: as before steps: existed."""
    h = await harness(
        """
rules:
  - name: single
    matchers: ['alertname="Down"']
    handler: test.probe
    target: 'svc/{{ labels.service }}'
    params: {bucket: one}
"""
    )
    event = await run(h)
    assert (event.outcome_label, event.message) == ("succeeded", "fixed and verified")
    assert "steps" not in event.details and finished(event) == []
