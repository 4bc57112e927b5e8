"""A rule's probe, against a real local HTTP service whose health the handler repairs.

The service stands in for Jangar: it answers ``UNKNOWN_TABLE`` until the handler has run
for its bucket (``RUNS``), then data; each request it gets is recorded.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.conftest import MakeHarness
from tests.support.handlers import RUNS
from tests.support.payloads import alert, payload

# The memory store and the gates on looptime's clock: their waits pass without real sleeps.
pytestmark = pytest.mark.looptime

ERROR = "Code: 60. DB::Exception: Table default.ta_signals does not exist. (UNKNOWN_TABLE) " + "x" * 400
DATA = '{"symbol": "NVDA", "rows": [{"ts": "2026-11-28T10:00:00Z", "rsi": 61.2}]}'


@dataclass
class Jangar:
    """How the stand-in answers: ``broken`` until the handler ran ``after`` times (``None``:
    never repaired); ``empty``: a broken answer is a 200 without rows instead of a 500."""

    server: TestServer
    requests: list[web.Request] = field(default_factory=list)
    repaired_by: str = "jangar"
    healthy_from_start: bool = False
    never_repaired: bool = False
    empty: bool = False
    slow_after_act: int = 0  # broken answers still given after the handler ran

    @property
    def base(self) -> str:
        return str(self.server.make_url("")).rstrip("/")

    def healthy(self) -> bool:
        if self.healthy_from_start:
            return True
        if self.never_repaired or not RUNS[self.repaired_by]:
            return False
        if self.slow_after_act > 0:
            self.slow_after_act -= 1
            return False
        return True


@pytest.fixture
async def jangar() -> AsyncIterator[Jangar]:
    app = web.Application()
    server = TestServer(app)
    state = Jangar(server=server)

    async def latest(request: web.Request) -> web.Response:
        state.requests.append(request)
        if state.healthy():
            return web.Response(text=DATA, content_type="application/json")
        if state.empty:
            return web.Response(text='{"symbol": "NVDA", "rows": []}', content_type="application/json")
        return web.Response(status=500, text=ERROR)

    app.router.add_get("/api/torghut/ta/latest", latest)
    app.router.add_get("/api/{name}/ta/latest", latest)
    await server.start_server()
    yield state
    await server.close()


def rules(base: str, *, extra: str = "", url: str = "") -> str:
    url = url or f"{base}/api/torghut/ta/latest?symbol={{{{ labels.symbol }}}}"
    return f"""
rules:
  - name: jangar
    matchers: ['alertname="JangarNoData"']
    handler: test.probe
    target: 'deployment/jangar'
    params: {{bucket: jangar}}
    verify_timeout: 2s
    probe:
      url: '{url}'
      interval: 50ms
      timeout: 2s
{extra}
"""


def steps(event: Any, name: str = "probe") -> list[tuple[str, bool, str]]:
    return [(s.data["phase"], s.data["passed"], s.message) for s in event.timeline if s.name == name]


async def run_alert(h: Any, **labels: str) -> Any:  # the harness and the recorded event
    labels.setdefault("symbol", "NVDA")
    body = payload(alert("JangarNoData", "firing", "2026-11-28T10:00:00.000Z", None, **labels))
    return await h.event(await h.post_one(body), timeout=15)


async def test_a_passing_probe_is_a_noop_and_the_handler_does_not_run(
    harness: MakeHarness, jangar: Jangar
) -> None:
    jangar.healthy_from_start = True
    h = await harness(rules(jangar.base))
    event = await run_alert(h)
    assert (event.outcome_label, event.message) == ("noop", "probe passes: HTTP 200")
    assert RUNS["jangar"] == []
    assert steps(event) == [("before", True, "HTTP 200")]
    assert "handler.started" not in [s.name for s in event.timeline]
    assert event.details["probe_url"] == f"{jangar.base}/api/torghut/ta/latest?symbol=NVDA"


async def test_failing_before_and_passing_after_the_act_succeeds(
    harness: MakeHarness, jangar: Jangar
) -> None:
    jangar.slow_after_act = 2  # the rollout takes a while: two more broken answers
    h = await harness(rules(jangar.base))
    event = await run_alert(h)
    assert event.outcome_label == "succeeded", event.message
    assert event.message == "fixed and verified; probe passes: HTTP 200"
    assert len(RUNS["jangar"]) == 1
    answers = steps(event)
    assert answers[0][:2] == ("before", False) and "(UNKNOWN_TABLE)" in answers[0][2]
    assert [a[:2] for a in answers[1:]] == [("after", False), ("after", False), ("after", True)]
    names = [s.name for s in event.timeline]
    assert names.index("probe") < names.index("handler.started") < names.index("handler.finished")
    assert event.details["probe_tries"] == 3 and event.details["probe"] == "HTTP 200"
    assert len(jangar.requests) == 4


async def test_a_probe_still_failing_after_the_act_fails_with_its_answer(
    harness: MakeHarness, jangar: Jangar
) -> None:
    jangar.never_repaired = True
    h = await harness(rules(jangar.base).replace("verify_timeout: 2s", "verify_timeout: 200ms"))
    event = await run_alert(h)
    assert event.outcome_label == "failed"
    shown = " ".join(ERROR[:300].split())
    assert event.message == f"acted, but the probe still fails: HTTP 500: {shown}"
    assert len(RUNS["jangar"]) == 1  # it acted once
    assert event.details["handler_message"] == "fixed and verified"
    after = [a for a in steps(event) if a[0] == "after"]
    assert len(after) >= 2 and not any(passed for _, passed, _ in after)  # polled until the deadline


async def test_the_body_must_match_expect_body(harness: MakeHarness, jangar: Jangar) -> None:
    jangar.empty = True  # 200 without rows: the status alone would pass
    extra = "      expect_body: '\"rows\": \\[\\{'"
    h = await harness(rules(jangar.base) + extra)
    event = await run_alert(h)
    assert event.outcome_label == "succeeded", event.message
    before, after = steps(event)
    assert before[:2] == ("before", False)
    assert before[2] == ('HTTP 200, the body does not match /"rows": \\[\\{/: {"symbol": "NVDA", "rows": []}')
    assert after == ("after", True, "HTTP 200")


async def test_a_hostile_label_is_percent_encoded_in_the_probe_url(
    harness: MakeHarness, jangar: Jangar
) -> None:
    jangar.healthy_from_start = True
    url = f"{jangar.base}/api/{{{{ labels.app }}}}/ta/latest?symbol={{{{ labels.symbol }}}}"
    h = await harness(rules(jangar.base, url=url))
    event = await run_alert(h, app="torghut", symbol="NVDA&admin=1#x")
    assert event.outcome_label == "noop"
    (request,) = jangar.requests
    assert request.raw_path == "/api/torghut/ta/latest?symbol=NVDA%26admin%3D1%23x"  # as sent
    assert dict(request.query) == {"symbol": "NVDA&admin=1#x"}
    # A label that would climb out of the path is refused before anything is sent.
    event = await run_alert(h, app="..", symbol="NVDA")
    assert event.outcome_label == "failed"
    assert "probe.url: the path of" in event.message and "has a '..' segment" in event.message
    assert len(jangar.requests) == 1 and RUNS["jangar"] == []


async def test_a_dry_run_probes_first_and_shows_the_probe_in_the_plan(
    harness: MakeHarness, jangar: Jangar
) -> None:
    h = await harness(rules(jangar.base) + "    dry_run: true\n")
    event = await run_alert(h)
    assert event.outcome_label == "dry_run", event.message
    url = f"{jangar.base}/api/torghut/ta/latest?symbol=NVDA"
    assert event.plan == [
        "probe jangar",
        f"probe GET {url}; expect 2xx first: if it passes, nothing to do (noop)",
        "after acting, probe every 50ms until it passes, within 2s",
    ]
    assert [a[:2] for a in steps(event)] == [("before", False)]  # never after: nothing acted
    assert RUNS["jangar"][0]["dry_run"] is True


async def test_no_answer_is_a_failing_probe(harness: MakeHarness, jangar: Jangar) -> None:
    h = await harness(rules("http://127.0.0.1:9", url="http://127.0.0.1:9/health"))
    event = await run_alert(h)
    assert event.outcome_label == "failed"
    assert event.message.startswith("acted, but the probe still fails: no answer: ")
    assert len(RUNS["jangar"]) == 1
