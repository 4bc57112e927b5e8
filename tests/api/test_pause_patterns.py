"""A pathological pause matcher cannot freeze the service: RE2 matches in linear time.

The review's case, against the real ``serve`` process (uvloop, the memory store): a pause
``pod=~"(a+)+b"`` and one alert whose ``pod`` is 26 ``a``. With Python's backtracking ``re``
each look at the pause took about 2 s, during which ``/healthz`` did not answer either.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.support.serve_procs import ServeProcess, firing_alert, post_alerts, wait_ready

ADMIN = "admin-token-for-pause-patterns"
RULES = """
rules:
  - name: record
    matchers: ['alertname="TestDown"']
    handler: test.record
    target: 'pod/{{{{ labels.pod }}}}'
    params: {{path: '{path}'}}
"""


pytestmark = pytest.mark.server  # a `remediator serve` process


@pytest.fixture
async def replica(tmp_path: Path) -> AsyncIterator[ServeProcess]:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES.format(path=tmp_path / "runs.jsonl"))
    serve = ServeProcess(
        tmp_path / "serve.log",
        REMEDIATOR_RULES=str(rules),
        REMEDIATOR_ADMIN_TOKEN=ADMIN,
        REMEDIATOR_DEFER_INTERVAL="100ms",
    )
    serve.start()
    try:
        yield serve
    finally:
        serve.stop()


async def admin(
    session: aiohttp.ClientSession, replica: ServeProcess, method: str, path: str, body: Any = None
) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {ADMIN}"}
    async with session.request(method, f"{replica.url}{path}", json=body, headers=headers) as response:
        return response.status, await response.json()


async def healthz_latencies(
    session: aiohttp.ClientSession, replica: ServeProcess, until: float
) -> list[float]:
    """How long each /healthz took, asked one after another until ``until``."""
    seen = []
    while time.monotonic() < until:
        started = time.monotonic()
        async with session.get(f"{replica.url}/healthz") as response:
            assert response.status == 200
        seen.append(time.monotonic() - started)
        await asyncio.sleep(0.01)
    return seen


async def test_a_pathological_pause_answers_in_linear_time(replica: ServeProcess) -> None:
    async with aiohttp.ClientSession() as session:
        await wait_ready(session, replica)
        body = {"matchers": ['pod=~"(a+)+b"'], "for": "10m", "reason": "pathological"}
        status, pause = await admin(session, replica, "POST", "/api/v1/pauses", body)
        assert status == 201, pause
        sampling = asyncio.create_task(healthz_latencies(session, replica, time.monotonic() + 1.5))
        started = time.monotonic()
        status, accepted = await post_alerts(session, replica, firing_alert(pod="a" * 26))
        answered = time.monotonic() - started
        assert status == 202, accepted
        (event_id,) = accepted["event_ids"]
        while True:  # the pause does not match (no "b"): the job runs once the worker has looked
            assert time.monotonic() - started < 10, f"no outcome\n{replica.log_tail()}"
            status, event = await admin(session, replica, "GET", f"/api/v1/events/{event_id}")
            if status == 200:
                break
            await asyncio.sleep(0.01)
        ran_after = time.monotonic() - started
        assert event["outcome"] == "succeeded", event
        latencies = await sampling
    # The point is linear time: 50 ms is the target, the bounds leave room for a loaded CI machine
    # (Python's re needed about 2 s for the first two, and /healthz waited as long).
    assert answered < 0.5, answered
    assert ran_after < 1.0, ran_after
    assert len(latencies) > 10 and max(latencies) < 0.3, max(latencies)


async def test_the_pause_api_refuses_what_re2_lacks_naming_the_field(replica: ServeProcess) -> None:
    async with aiohttp.ClientSession() as session:
        await wait_ready(session, replica)
        body = {"matchers": ['pod=~"(?!canary).*"'], "for": "10m", "reason": "x"}
        status, answer = await admin(session, replica, "POST", "/api/v1/pauses", body)
        assert status == 400, answer
        shown = str(answer["detail"])
        assert "matchers" in shown and "negative lookahead" in shown and "RE2" in shown, answer
