"""The 2026-01-01 torghut incident, end to end: the ``make demo`` scenario, with assertions.

Real ZooKeeper + two ClickHouse 18.16 servers, Redis, Alertmanager and two
``remediator serve`` replicas with the shipped rules.yaml (overlaid with local
addresses and short timings), the Kubernetes API emulator with simulated Flink
operator and torghut-ws pods, the Slack stand-in, and the demo's Prometheus. One
replica is SIGKILLed right after it starts the first repair. Every bound is generous:
the assertions are about what happened, not how fast (a loaded 2-core machine is fine).
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable

import pytest

from demo.overlay import CLICKHOUSE_RULE, FLINK_RULE, JANGAR_RULE, WS_RULE
from demo.report import Report, SlackThread, handler_started
from demo.scenario import Options, run_sync
from demo.summary import render

# The scenario runs once (in the module fixture) and takes about a minute; on a loaded
# machine several: the first test's timeout covers it.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(480)]

RECOVERY_BOUND = 150.0  # seconds from the break until every alert has resolved


def explained(test: Callable[[Report], None]) -> Callable[[Report], None]:
    """On failure, add the demo's summary (the audit per repair, the checks, Slack): the live
    timeline is printed only with the first test, which ran the scenario."""

    @functools.wraps(test)
    def run_test(report: Report) -> None:
        try:
            test(report)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{render(report)}") from None

    return run_test


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Report:
    """One run of the scenario (its own event loop), shared by the tests of this module.
    Its live timeline and summary are printed: pytest shows them when a test fails."""
    workdir = tmp_path_factory.mktemp("demo")
    result = run_sync(workdir, Options(recovery_within=RECOVERY_BOUND, out=sys.stdout))
    print(render(result))
    return result


@explained
def test_every_alert_resolves_within_the_bound(report: Report) -> None:
    assert report.recovered, "not every alert resolved"
    assert report.time_to_recovery is not None and report.time_to_recovery < RECOVERY_BOUND
    names = sorted({alert.name for alert in report.alerts})
    assert names == [
        "ClickHouseReplicaReadonly",
        "FlinkDeploymentFailed",
        "JangarTaLatestFailing",
        "TorghutWsNotReady",
    ]
    # one ClickHouse alert per server (the metric is per server)
    assert len([a for a in report.alerts if a.name == "ClickHouseReplicaReadonly"]) >= 2
    assert all(a.resolved is not None and a.resolved - a.fired < RECOVERY_BOUND for a in report.alerts), (
        report.alerts
    )
    assert report.replication.startswith("ok"), report.replication


@explained
def test_each_repair_acted_exactly_once(report: Report) -> None:
    assert not [e for e in report.events if e["outcome"] == "failed"], "a job failed"
    for rule in (CLICKHOUSE_RULE, FLINK_RULE, WS_RULE, JANGAR_RULE):
        acted = report.acting(rule)
        assert [e["outcome"] for e in acted] in (["succeeded"], ["noop"]), (rule, acted)
    # ClickHouse: at most one statement per (node, statement), all from the one run that acted
    # (a re-run that finds the replicas writable again runs none and ends noop)
    statements = report.clickhouse_statements
    assert len(statements) == len(set(statements)), statements
    (clickhouse,) = report.acting(CLICKHOUSE_RULE)
    audited = {
        (s["node"], s["sql"])
        for s in clickhouse["details"].get("statements") or []
        if s["sql"].startswith("SYSTEM")
    }
    assert set(statements) == audited
    assert all(sql.startswith("SYSTEM RESTART REPLICA `torghut`.") for _, sql in statements)
    # Flink: one restartNonce bump; torghut-ws: one scale to 0 and one back to 1
    assert len(report.nonce_patches) == 1 and len(report.bumps) == 1
    assert [replicas for _, replicas in report.scale_patches] == [0, 1]


@explained
def test_flink_waited_for_clickhouse(report: Report) -> None:
    assert not report.bumps_while_readonly
    (bumped,) = report.nonce_patches
    # ClickHouse was read-only from shortly after the break until Keeper was back; a replica
    # restarted while recovering may show read-only for a moment more: also before the bump
    assert report.readonly_windows
    assert all(end is not None and start < end < bumped for start, end in report.readonly_windows), (
        report.readonly_windows,
        bumped,
    )
    (flink,) = report.acting(FLINK_RULE)
    deferred = [s for s in flink["timeline"] if s["name"] == "deferred"]
    assert deferred, "the Flink job ran without waiting for the ClickHouse alert to resolve"
    (clickhouse,) = report.acting(CLICKHOUSE_RULE)
    assert handler_started(flink) > handler_started(clickhouse)
    assert report.flink_failures >= 1  # the job did fail on its sink while storage was read-only


@explained
def test_torghut_ws_never_had_two_pods(report: Report) -> None:
    assert report.max_ws_pods == 1


@explained
def test_nothing_lost_when_a_replica_was_killed(report: Report) -> None:
    kill = report.kill
    assert kill is not None and kill.rule == CLICKHOUSE_RULE
    assert report.accepted and not report.missing
    rerun = [e for e in report.events if e["event_id"] == kill.event_id]
    assert len(rerun) == 1, "the killed replica's job must be recorded exactly once"
    assert rerun[0]["outcome"] in ("succeeded", "noop")
    assert report.replica_of(rerun[0]) != kill.replica
    assert handler_started(rerun[0]) > kill.killed_epoch  # it ran again, after the kill


@explained
def test_slack_threads_tell_the_story_in_order(report: Report) -> None:
    threads = {
        name: _thread(report, name)
        for name in (
            "ClickHouseReplicaReadonly",
            "FlinkDeploymentFailed",
            "TorghutWsNotReady",
            "JangarTaLatestFailing",
        )
    }
    # A replica killed between posting a thread's first message and recording the thread
    # leaves that message alone (the re-run opens a new thread): allowed once, for that job.
    assert len(report.threads()) == 4, report.slack_text
    assert len(report.orphans()) <= 1
    clickhouse, flink = threads["ClickHouseReplicaReadonly"], threads["FlinkDeploymentFailed"]
    # storage first; Flink only once it was back. (Not "ClickHouse succeeded before Flink
    # started": the alert resolves when the replicas are writable, while the handler's
    # verification also waits for every replica to be active again, which can take longer.)
    assert clickhouse.ts < flink.ts
    for name, thread in threads.items():
        kinds = thread.kinds()
        assert "failed" not in kinds and "escalated" not in kinds, (name, kinds)
        acted = [k for k in kinds if k in ("started", "succeeded", "noop")]
        # the killed replica's run shows as "another attempt started" before the outcome
        assert acted in (["succeeded"], ["started", "succeeded"], ["noop"], ["started", "noop"]), (
            name,
            kinds,
        )
        assert "resolved" in kinds, (name, kinds)
        # issue 25 (item 14): announced once per target (two ClickHouse pods), after the outcome
        last_outcome = max(i for i, kind in enumerate(kinds) if kind in ("succeeded", "noop"))
        assert kinds.count("resolved") == 1 and kinds.index("resolved") > last_outcome, (name, kinds)
    assert "writable" in report.slack_text and "bounced" in report.slack_text
    assert "job RUNNING, lifecycle STABLE" in report.slack_text


@explained
def test_jangar_reads_torghut_again_the_probe_proves_data_and_the_drift_is_named(report: Report) -> None:
    (jangar,) = report.acting(JANGAR_RULE)
    assert jangar["outcome"] == "succeeded", jangar["message"]
    assert report.jangar_database == "torghut"
    assert report.jangar_answer.startswith("HTTP 200") and '"database": "torghut"' in report.jangar_answer
    probes = [s for s in jangar["timeline"] if s["name"] == "probe"]
    assert probes[0]["data"]["phase"] == "before" and "UNKNOWN_TABLE" in probes[0]["message"]
    assert probes[-1]["data"] == {"phase": "after", "passed": True, "status": 200}
    # Argo CD manages Jangar without self-heal: patched, and the drift and the change to
    # commit are in the result and in Slack
    assert "Application argocd/jangar will show OutOfSync" in jangar["message"]
    assert "change to commit: set `CH_DATABASE=torghut` on container `jangar`" in jangar["message"]
    thread = _thread(report, "JangarTaLatestFailing")
    assert "succeeded" in thread.kinds() and "resolved" in thread.kinds()
    assert "OutOfSync" in report.slack_text and "change to commit" in report.slack_text
    # the summary says which repairs ran, in order, and that the endpoint returns data
    text = render(report)
    assert "The 4 repairs that ran, in order: 1. " in text
    assert f"{JANGAR_RULE} (succeeded)" in text.split("The 4 repairs that ran, in order: ")[1]
    assert "its TA endpoint returns data" in text


def _thread(report: Report, alertname: str) -> SlackThread:
    thread = report.thread(f"Remediating {alertname}")
    assert thread is not None, f"no Slack thread for {alertname}:\n{report.slack_text}"
    return thread
