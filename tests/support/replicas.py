"""Replicas of ``remediator serve`` on one real redis-server, with rules that use the
``test.record`` handler (tests/support/test_handlers.py): it appends a line per start
and per end of a run to a file, which is how the fault tests count remediations."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from remediator.models import AuditEvent
from remediator.store.base import Store
from tests.support.redis_server import RedisServer
from tests.support.serve_procs import ServeProcess
from tests.support.waiting import eventually

PREFIX = "faults"
ADMIN_TOKEN = "faults-admin-token-0123456789"


async def wait_events(store: Store, event_ids: list[str], within: float) -> dict[str, AuditEvent]:
    """Every event's recorded outcome, once all are recorded."""
    wanted = set(event_ids)

    async def recorded() -> dict[str, AuditEvent] | None:
        events, _ = await store.audit.list_events(len(wanted) + 100)
        found = {e.event_id: e for e in events if e.event_id in wanted}
        return found if len(found) == len(wanted) else None

    try:
        found = await eventually(recorded, within=within, every=0.2, what="recorded outcomes")
    except AssertionError as exc:  # say which jobs have no outcome, and where they wait
        events, _ = await store.audit.list_events(len(wanted) + 100)
        missing = sorted(wanted - {e.event_id for e in events})
        states = [await store.jobs.job_state(event_id) for event_id in missing[:20]]
        raise AssertionError(f"{exc}: {len(missing)} of {len(wanted)} without an outcome: {states}") from exc
    assert found is not None
    return found


class Cluster:
    """Replicas of ``remediator serve`` on one Redis (an admin API on each)."""

    def __init__(self, tmp_path: Path, redis: RedisServer) -> None:
        self.tmp_path = tmp_path
        self.redis = redis
        self.runs = tmp_path / "runs.jsonl"
        self.rules = tmp_path / "rules.yaml"
        self.replicas: list[ServeProcess] = []

    def rule(self, name: str = "record", alertname: str = "TestDown", **knobs: Any) -> dict[str, Any]:
        """A rule on test.record; ``sleep``, ``fail``, ``crash`` go to its params."""
        params = {"path": str(self.runs), "sleep": 0.0, "fail": False, "crash": False}
        params |= {k: knobs.pop(k) for k in ("sleep", "fail", "crash") if k in knobs}
        return {
            "name": name,
            "matchers": [f'alertname="{alertname}"'],
            "handler": "test.record",
            "target": "svc/{{ labels.service }}",
            "params": params,
            **knobs,
        }

    def write_rule(self, **knobs: Any) -> None:
        self.write_rules(self.rule(**knobs))

    def write_rules(self, *rules: dict[str, Any]) -> None:
        self.rules.write_text(yaml.safe_dump({"rules": list(rules)}), encoding="utf-8")

    def start(self, workers: int = 4, **env: str) -> ServeProcess:
        replica = ServeProcess(
            self.tmp_path / f"replica{len(self.replicas)}.log",
            REMEDIATOR_REDIS_URL=self.redis.url,
            REMEDIATOR_REDIS_PREFIX=PREFIX,
            REMEDIATOR_RULES=str(self.rules),
            REMEDIATOR_WORKERS=str(workers),
            REMEDIATOR_RECLAIM_IDLE="2s",
            REMEDIATOR_HEARTBEAT="500ms",
            REMEDIATOR_DEFER_INTERVAL="500ms",
            REMEDIATOR_SHUTDOWN_GRACE="5s",
            REMEDIATOR_ADMIN_TOKEN=ADMIN_TOKEN,
            **env,
        )
        self.replicas.append(replica)
        replica.start()
        return replica

    def runs_of(self, phase: str) -> list[dict[str, Any]]:
        return [r for r in read_runs(self.runs) if r["phase"] == phase]

    def stop(self) -> None:
        for replica in self.replicas:
            replica.stop()


# Not imported from tests/support/test_handlers.py: importing that module registers test.record
# in the default registry of the test process (the generated docs and the schema would list it).
def read_runs(path: Path) -> list[dict[str, Any]]:
    """The records ``test.record`` wrote to ``path`` (none if it never ran)."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
