"""End to end with the real Alertmanager: an HA pair of Debian's prometheus-alertmanager,
configured by the shipped deploy/alertmanager/alertmanager.yml (URL, token file and timings
rewritten for the test), notifies a real ``remediator serve`` whose ``http.request`` rule
calls a small local HTTP server that counts the calls.

The store: the memory store for now (one replica serves both Alertmanagers). To run on
Redis, make ``store_env`` start a redis-server on a free port and return
``{"REMEDIATOR_REDIS_URL": url}``: the ``remediators`` fixture then starts one replica per
Alertmanager, and every assertion below already sums over the replicas.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from tests.support.alertmanager import (
    Alertmanager,
    derive_config,
    firing_alert,
    resolved_alert,
    run_alertmanagers,
)
from tests.support.procs import free_port
from tests.support.redis_server import RedisServer
from tests.support.service import RemediatorProcess, run_remediator
from tests.support.waiting import eventually

pytestmark = pytest.mark.slow

RULE = "e2e-restart-api"
LABELS = {
    "alertname": "TorghutApiStuck",
    "severity": "critical",
    "namespace": "torghut",
    "deployment": "torghut-api",
    "remediate": "true",
}
# Both peers of the pair must notify, as they do in production whenever the first
# notification's log entry has not reached the other peer when its own --cluster.peer-timeout
# ends (slow network, partition). Gossip is slowed so that this happens on every run; the
# peers still form one cluster (checked at start).
HA_FLAGS = [
    "--cluster.gossip-interval=1m",
    "--cluster.pushpull-interval=1m",
    "--cluster.probe-interval=1m",
    "--cluster.settle-timeout=1s",
    "--cluster.peer-timeout=200ms",
]


@dataclass
class Target:
    """The system being repaired: counts the remediation calls it gets."""

    url: str
    calls: list[dict[str, Any]] = field(default_factory=list)


@pytest.fixture
async def target() -> AsyncIterator[Target]:
    port = free_port()
    found = Target(url=f"http://127.0.0.1:{port}")

    async def restart(request: web.Request) -> web.Response:
        found.calls.append(
            {
                "path": request.path,
                "alert": request.headers.get("X-Alert"),
                "fingerprint": request.headers.get("X-Fingerprint"),
            }
        )
        return web.json_response({"restarted": True})

    app = web.Application()
    app.router.add_post("/restart/{namespace}/{deployment}", restart)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield found
    await runner.cleanup()


@pytest.fixture
def rules_file(tmp_path: Path, target: Target) -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text(
        f"""
defaults: {{cooldown: 10m, lease: 1m, verify_timeout: 30s, timeout: 30s}}
rules:
  - name: {RULE}
    matchers: ['alertname="TorghutApiStuck"', 'severity=~"critical|page"']
    handler: http.request
    target: 'http/{{{{ labels.namespace }}}}/{{{{ labels.deployment }}}}'
    params:
      url: '{target.url}/restart/{{{{ labels.namespace }}}}/{{{{ labels.deployment }}}}'
      headers:
        X-Alert: '{{{{ labels.alertname }}}}'
        X-Fingerprint: '{{{{ alert.fingerprint }}}}'
""",
        encoding="utf-8",
    )
    return path


@pytest.fixture
def token() -> str:
    return secrets.token_urlsafe(24)


@pytest.fixture
def store_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    """The production store: a real Redis shared by two replicas (one per Alertmanager)."""
    with RedisServer.running(tmp_path / "redis") as redis:
        yield {"REMEDIATOR_REDIS_URL": redis.url}


@pytest.fixture
def remediators(
    tmp_path: Path, rules_file: Path, token: str, store_env: dict[str, str]
) -> Iterator[list[RemediatorProcess]]:
    replicas = 2 if "REMEDIATOR_REDIS_URL" in store_env else 1
    env = {"REMEDIATOR_WEBHOOK_TOKEN": token, "REMEDIATOR_WORKERS": "2", **store_env}
    with run_remediator(tmp_path / "r0", rules_file, env=env) as first:
        if replicas == 1:
            yield [first]
            return
        with run_remediator(tmp_path / "r1", rules_file, env=env) as second:
            yield [first, second]


def credentials(tmp_path: Path, value: str) -> Path:
    path = tmp_path / f"token-{secrets.token_hex(4)}"
    path.write_text(value + "\n", encoding="utf-8")
    path.chmod(0o600)
    return path


def total(services: list[RemediatorProcess], name: str, **labels: str) -> float:
    return sum(service.metric(name, **labels) for service in services)


async def settled(check: Callable[[], bool], what: str, within: float = 60.0) -> None:
    """``eventually``, with ``check`` (it reads the processes' metrics over HTTP) in a thread."""
    await eventually(lambda: asyncio.to_thread(check), within=within, every=0.25, what=what)


async def post_to_all(alertmanagers: list[Alertmanager], alert: dict[str, Any]) -> None:
    """Like Prometheus: the same alert to every Alertmanager of the pair."""
    for am in alertmanagers:
        await asyncio.to_thread(am.post_alerts, [alert])


def jobs(services: list[RemediatorProcess], **labels: str) -> float:
    return total(services, "remediator_jobs_total", rule=RULE, **labels)


def collapsed(services: list[RemediatorProcess]) -> float:
    return total(services, "remediator_alerts_deduplicated_total", rule=RULE)


@pytest.fixture
def ha_pair(tmp_path: Path, token: str, remediators: list[RemediatorProcess]) -> Iterator[list[Alertmanager]]:
    token_file = credentials(tmp_path, token)
    configs = [
        derive_config(webhook_url=remediators[i % len(remediators)].webhook_url, credentials_file=token_file)
        for i in range(2)
    ]
    with run_alertmanagers(tmp_path, configs, cluster_flags=HA_FLAGS) as pair:
        yield pair


async def test_ha_pair_notifies_twice_and_the_handler_runs_once(
    ha_pair: list[Alertmanager], remediators: list[RemediatorProcess], target: Target
) -> None:
    starts_at = datetime.now(UTC)
    await post_to_all(ha_pair, firing_alert(LABELS, starts_at=starts_at))

    def both_notified_and_done() -> bool:
        sent = [am.metric("alertmanager_notifications_total", integration="webhook") for am in ha_pair]
        return all(n >= 1 for n in sent) and jobs(remediators) + collapsed(remediators) >= 2

    await settled(both_notified_and_done, "both Alertmanagers' webhooks and two jobs")
    await asyncio.sleep(1.0)  # room for a wrongful second run to show up
    # Each Alertmanager delivered once, with the bearer token from its credentials file.
    assert [
        am.metric("alertmanager_notifications_failed_total", integration="webhook") for am in ha_pair
    ] == [0, 0]
    assert total(remediators, "remediator_webhook_requests_total", code="202") == 2
    assert total(remediators, "remediator_alerts_received_total", status="firing") == 2
    # ...and the target was repaired exactly once.
    assert len(target.calls) == 1
    assert target.calls[0]["path"] == "/restart/torghut/torghut-api"
    assert target.calls[0]["alert"] == "TorghutApiStuck" and target.calls[0]["fingerprint"]
    assert jobs(remediators, outcome="succeeded") == 1
    # The twin is collapsed at intake (issue 17), or, if it raced past, skipped by a gate.
    duplicates = collapsed(remediators) + sum(
        jobs(remediators, outcome="skipped", reason=reason) for reason in ("duplicate", "cooldown", "locked")
    )
    assert duplicates == 1
    assert jobs(remediators) + collapsed(remediators) == 2
    # The outcome is in the structured log, with the rendered target.
    succeeded = [e for s in remediators for e in s.events("remediation.succeeded")]
    assert len(succeeded) == 1
    assert succeeded[0]["rule"] == RULE and succeeded[0]["target"] == "http/torghut/torghut-api"
    received = [
        e for s in remediators for e in s.events("remediation.succeeded") + s.events("remediation.skipped")
    ]
    assert (
        len(received) + collapsed(remediators) == 2
        and {e["event_id"] for e in received}
        and all(e["fingerprint"] == succeeded[0]["fingerprint"] for e in received)
    )

    # Resolution: Alertmanager sends `resolved`; it is recorded, and nothing runs again.
    await post_to_all(ha_pair, resolved_alert(LABELS, starts_at=starts_at))
    await settled(
        lambda: jobs(remediators, outcome="skipped", reason="resolved") >= 1,
        "the resolved notification to be handled",
    )
    assert total(remediators, "remediator_alerts_received_total", status="resolved") >= 1
    assert [e["rule"] for s in remediators for e in s.events("notify.resolved")][:1] == [RULE]
    assert len(target.calls) == 1


async def test_a_wrong_token_is_refused(
    tmp_path: Path, remediators: list[RemediatorProcess], target: Target
) -> None:
    wrong = credentials(tmp_path, "not-the-token")
    config = derive_config(webhook_url=remediators[0].webhook_url, credentials_file=wrong)
    with run_alertmanagers(tmp_path, [config]) as (am,):
        await asyncio.to_thread(am.post_alerts, [firing_alert(LABELS, starts_at=datetime.now(UTC))])
        await settled(
            lambda: am.metric("alertmanager_notifications_failed_total", integration="webhook") >= 1,
            "Alertmanager to report the failed notification",
        )
        assert total(remediators, "remediator_webhook_requests_total", code="401") >= 1
        assert "401" in am.log()
    assert total(remediators, "remediator_webhook_requests_total", code="202") == 0
    assert total(remediators, "remediator_alerts_received_total", status="firing") == 0
    assert target.calls == []
