"""Time to repair, who we are, and ``GET /api/v1/stats``: per rule over a window, from the audit."""

from __future__ import annotations

import platform
import tomllib
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from remediator.api import stats
from remediator.metrics import Metrics
from remediator.models import Alert, AuditEvent, Outcome, Step
from remediator.store.memory import MemoryStore
from tests.conftest import Harness, MakeHarness
from tests.support import payloads
from tests.support.cli import run_main
from tests.support.handlers import FIX_RULE
from tests.support.procs import ROOT

ADMIN = "admin-token-for-the-stats"
RULES = "defaults: {cooldown: 0s, max_attempts: 2, attempt_window: 1h}\nrules:\n" + FIX_RULE


def alert(service: str, outcome: str, started: datetime) -> dict[str, Any]:
    return payloads.alert("Broken", "firing", started, {}, service=service, outcome=outcome)


async def fire(h: Harness, *alerts: dict[str, Any]) -> list[AuditEvent]:
    response = await h.post({"version": "4", "status": "firing", "alerts": list(alerts)})
    assert response.status == 202, await response.text()
    return [await h.event(e) for e in (await response.json())["event_ids"]]


async def get_stats(h: Harness, **query: str) -> tuple[int, Any]:
    response = await h.client.get("/api/v1/stats", params=query, headers={"Authorization": f"Bearer {ADMIN}"})
    return response.status, await response.json()


async def test_a_verified_success_records_its_time_to_repair(harness: MakeHarness) -> None:
    h = await harness(RULES, admin_token=ADMIN)
    started = datetime.now(UTC) - timedelta(seconds=90)
    [ok] = await fire(h, alert("a", "succeeded", started))
    assert ok.outcome is Outcome.SUCCEEDED
    assert ok.time_to_repair is not None and 90 <= ok.time_to_repair < 100
    [noop] = await fire(h, alert("b", "noop", started))
    assert noop.time_to_repair is None  # nothing was repaired
    registry = h.svc.metrics.registry
    assert registry.get_sample_value("remediator_time_to_repair_seconds_count", {"rule": "fix"}) == 1
    assert (
        registry.get_sample_value("remediator_time_to_repair_seconds_bucket", {"rule": "fix", "le": "60.0"})
        == 0
    )
    assert (
        registry.get_sample_value("remediator_time_to_repair_seconds_bucket", {"rule": "fix", "le": "120.0"})
        == 1
    )
    response = await h.client.get(
        f"/api/v1/events/{ok.event_id}", headers={"Authorization": f"Bearer {ADMIN}"}
    )
    assert (await response.json())["time_to_repair_seconds"] == ok.time_to_repair  # named so (issue 25)


async def test_stats_per_rule_over_the_window(harness: MakeHarness) -> None:
    h = await harness(RULES, admin_token=ADMIN)
    now = datetime.now(UTC)
    for seconds in (30, 60, 120, 600):
        await fire(h, alert(f"ok-{seconds}", "succeeded", now - timedelta(seconds=seconds)))
    await fire(h, alert("down", "failed", now))
    await fire(h, alert("down", "failed", now))  # the second failure opens the circuit
    [skipped] = await fire(h, alert("down", "failed", now - timedelta(seconds=1)))
    assert skipped.outcome_label == "skipped:circuit_open"
    status, body = await get_stats(h, window="1h")
    assert status == 200, body
    assert (body["window"], body["window_seconds"], body["events"]) == ("1h", 3600.0, 7)
    [rule] = body["rules"]
    assert rule["rule"] == "fix" and rule["runs"] == 7
    assert rule["outcomes"] == {"failed": 2, "skipped:circuit_open": 1, "succeeded": 4}
    assert rule["success_rate"] == pytest.approx(4 / 6, abs=1e-4)
    repair = rule["time_to_repair"]
    assert repair["count"] == 4
    assert 90 <= repair["median_seconds"] < 100  # (60 + 120) / 2, plus the run's own time
    assert 600 <= repair["p90_seconds"] < 610
    assert rule["circuits_opened"] == 1
    status, body = await get_stats(h)  # 24h by default
    assert status == 200 and body["window"] == "24h" and body["events"] == 7


@pytest.mark.parametrize("window", ["1.5h", "0m", "59s", "100d", "1h30m", "24", "-1h", "1h;DROP"])
async def test_a_bad_window_is_a_400(harness: MakeHarness, window: str) -> None:
    h = await harness(RULES, admin_token=ADMIN)
    status, body = await get_stats(h, window=window)
    assert status == 400, body
    assert "window" in str(body["detail"])


async def test_stats_need_the_admin_token(harness: MakeHarness) -> None:
    h = await harness(RULES, admin_token=ADMIN)
    response = await h.client.get("/api/v1/stats", headers={"Authorization": "Bearer wrong-token-here"})
    assert response.status == 401


def event(rule: str, finished: float, outcome: Outcome, repair: float | None = None, **kw: Any) -> AuditEvent:
    return AuditEvent(
        event_id=f"{rule}-{finished}",
        rule=rule,
        received_at=finished,
        finished_at=finished,
        outcome=outcome,
        time_to_repair=repair,
        **kw,
    )


async def test_only_events_inside_the_window_count_across_pages() -> None:
    store = MemoryStore(audit_max_events=5000)
    now = 1_000_000.0
    for i in range(1200):  # older than the window: more than two pages of them
        await store.audit.record_event(event("old", now - 7200 - i, Outcome.FAILED))
    for i in range(1100):
        await store.audit.record_event(event("new", now - 3000 + i, Outcome.SUCCEEDED, repair=float(i)))
    result = await stats.compute(store.audit, "1h", 3600, now=now)
    assert [r.rule for r in result.rules] == ["new"] and result.events == 1100
    times = result.rules[0].time_to_repair
    assert (times.count, times.median_seconds, times.p90_seconds) == (1100, 549.5, 989.0)


def test_percentile_and_circuits() -> None:
    assert stats.percentile([], 0.9) is None
    assert stats.percentile([1.0], 0.9) == 1.0
    assert stats.percentile([float(i) for i in range(1, 11)], 0.9) == 9.0
    opened = event("r", 1.0, Outcome.FAILED, timeline=[Step(at=1, name="circuit.opened")])
    assert stats.opened_circuit(opened) and not stats.opened_circuit(event("r", 1.0, Outcome.FAILED))
    only_skips = stats.rule_stats("r", [event("r", 1.0, Outcome.SKIPPED, reason="cooldown")])
    assert only_skips.success_rate is None and only_skips.outcomes == {"skipped:cooldown": 1}


def test_build_info_and_version() -> None:
    from remediator.about import version

    metrics = Metrics()
    labels = {"version": version(), "python": platform.python_version()}
    assert metrics.registry.get_sample_value("remediator_build_info", labels) == 1
    out = run_main("--version").stdout
    assert out.strip() == f"remediator {version()} (Python {platform.python_version()})"
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert version() == project["version"]  # from the installed package's metadata


def test_a_time_to_repair_never_goes_negative() -> None:
    from remediator.models import Job, Result
    from remediator.worker.outcome import time_to_repair

    future = Alert.model_validate(
        {"status": "firing", "labels": {"a": "b"}, "startsAt": "2999-01-01T00:00:00Z"}
    )
    job = Job(event_id="e", rule="r", alert=future, received_at=0)
    assert time_to_repair(job, Result.succeeded("ok"), 1000.0) == 0.0
    manual = job.model_copy(update={"manual": True})
    assert time_to_repair(manual, Result.succeeded("ok"), 1000.0) is None


def test_an_escalated_runbook_is_not_a_success() -> None:
    """A chain that reached its page: step did not repair: it lowers the success rate."""
    runs = [event("r", 1.0, Outcome.SUCCEEDED), event("r", 2.0, Outcome.ESCALATED)]
    found = stats.rule_stats("r", runs)
    assert found.success_rate == 0.5 and found.outcomes == {"escalated": 1, "succeeded": 1}
