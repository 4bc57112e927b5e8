"""Bytes Redis holds per queued job and per recorded event, measured with MEMORY USAGE.

Starts its own redis-server (no persistence, a free port) and drives ``RedisStore`` as
the webhook and the workers do: ``--jobs`` alerts accepted (each: a job in the stream, its
job state, its intake marker, the alert in the firing index), then ``--events`` outcomes
recorded of three kinds: a typical run (a one-line plan), and a ``kubernetes.job`` dry run
of the example overlay's rule (its plan carries the Job's manifest) under the default
4 KB cap and without it. Prints one JSON object (bytes, rounded).

    python bench/redis_sizing.py --jobs 2000 --events 500
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from remediator.handling.registry import default_registry, load_plugins  # noqa: E402
from remediator.models import Alert, AuditEvent, Job, Outcome, Step, new_event_id  # noqa: E402
from remediator.rules.ruleset import load_rules, render  # noqa: E402
from remediator.settings import Settings  # noqa: E402
from remediator.store.redis.store import RedisStore  # noqa: E402
from remediator.worker.capping import capped  # noqa: E402
from tests.support.redis_server import RedisServer  # noqa: E402

EXAMPLE_RULES = ROOT / "deploy" / "overlays" / "example" / "rules.yaml"


def alert(i: int, name: str = "KubePodCrashLooping") -> Alert:
    labels = {
        "alertname": name,
        "namespace": "web",
        "pod": f"api-7d9f8b6c5-{i:05d}",
        "container": "api",
        "severity": "warning",
        "remediate": "true",
        "prometheus": "monitoring/kube-prometheus-stack-prometheus",
    }
    return Alert.model_validate(
        {
            "status": "firing",
            "labels": labels,
            "annotations": {
                "summary": "Pod is crash looping.",
                "description": f"Pod web/{labels['pod']} (api) is waiting (reason: CrashLoopBackOff).",
                "runbook_url": "https://runbooks.prometheus-operator.dev/runbooks/kubernetes/kubepodcrashlooping",
            },
            "startsAt": datetime(2026, 12, 1, tzinfo=UTC).isoformat(),
            "generatorURL": "http://prometheus:9090/graph?g0.expr=max_over_time%28kube_pod_container_status_waiting",
        }
    )


def timeline(at: float) -> list[Step]:
    """The steps a run records (received, admitted, handler, outcome)."""
    names = ("received", "lease.acquired", "handler.started", "precheck", "act", "verify", "outcome")
    return [
        Step(at=at + i * 0.01, name=n, message=f"{n}: what happened at this step")
        for i, n in enumerate(names)
    ]


def event(kind: str, i: int, plan: list[str], max_bytes: int | None) -> AuditEvent:
    now = time.time()
    a = alert(i)
    whole = AuditEvent(
        event_id=new_event_id(),
        rule="pod-crash-looping",
        target=f"pod/web/{a.labels['pod']}",
        handler="kubernetes.job",
        alertname=a.name,
        fingerprint=a.fingerprint,
        received_at=now,
        finished_at=now + 0.2,
        outcome=Outcome.DRY_RUN if kind == "job" else Outcome.SUCCEEDED,
        message="dry run: would create Job web/remediator-pod-crash-looping-1a2b3c; nothing done",
        plan=plan,
        details={"job": "remediator-pod-crash-looping-1a2b3c", "duration_seconds": 0.004}
        | (
            {
                "namespace": "web",
                "adopted": False,
                "pod": "remediator-pod-crash-looping-1a2b3c-xk2p9",
                "log": LOG,
            }
            if kind == "log"
            else {}
        ),
        timeline=timeline(now),
        alert=a,
        replica="remediator-6f7d8c9b5-abcde-1-9f3e",
        external_url="http://alertmanager:9093",
    )
    return whole if max_bytes is None else capped(whole, max_bytes)


def job_plan(path: Path = EXAMPLE_RULES, name: str = "pod-crash-looping") -> list[str]:
    """The plan a ``kubernetes.job`` rule renders for one alert (the example overlay's)."""
    load_plugins(["handlers"])
    rules = load_rules(path, default_registry)
    rule = next(r for r in rules.rules if r.name == name)
    return list(rule.handler.plan(render(rule, alert(0)).params))


# A runbook Job with its script inline (``sh -c``), as teams often write them: its
# manifest, and so its plan, is about 8 KB, the size the outside review saw per event.
SCRIPT = "".join(
    f'echo "step {i}: checking {{{{ labels.namespace }}}}/{{{{ labels.pod }}}} and its owner"; '
    f"kubectl -n {{{{ labels.namespace }}}} get pod {{{{ labels.pod }}}} -o wide || exit {i % 7 + 1}; "
    for i in range(40)
)
INLINE_RULE = f"""
rules:
  - name: inline-runbook
    matchers: ['alertname="KubePodCrashLooping"']
    handler: kubernetes.job
    target: 'pod/{{{{ labels.namespace }}}}/{{{{ labels.pod }}}}'
    dry_run: true
    params:
      namespace: '{{{{ labels.namespace }}}}'
      image: registry.k8s.io/kubectl:v1.32.4
      command: [/bin/sh, -c]
      args: ['{SCRIPT}']
      service_account: remediator-runbook
"""
LOG = "".join(
    f"2026-12-01T00:00:{i:02d}Z pod/api-7d9f8b6c5-00001 status Running restarts {i} node-{i % 5}\n"
    for i in range(50)
)


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {"redis": "", "jobs": args.jobs, "events": args.events}
    with tempfile.TemporaryDirectory() as tmp, RedisServer.running(Path(tmp)) as server:
        with server.client() as client:
            out["redis"] = client.info("server")["redis_version"]
        store = await RedisStore.create(Settings(redis_url=server.url, redis_prefix="sizing"))
        try:
            out["per_job"] = await per_job(store, server, args.jobs)
            plan = job_plan()
            inline = Path(tmp) / "inline.yaml"
            inline.write_text(INLINE_RULE, encoding="utf-8")
            big = job_plan(inline, "inline-runbook")
            out["plan_bytes"] = {
                "example_job": _bytes(plan),
                "inline_script_job": _bytes(big),
                "run_log": _bytes(LOG),
            }
            n = args.events
            out["per_event"] = {
                "typical_run": await per_event(store, server, n, "typical", ["record the run"], 4096),
                "example_job_dry_run": await per_event(store, server, n, "job", plan, 4096),
                "inline_job_dry_run_capped_4k": await per_event(store, server, n, "job", big, 4096),
                "inline_job_dry_run_uncapped": await per_event(store, server, n, "job", big, None),
                "job_run_with_log_capped_4k": await per_event(store, server, n, "log", [], 4096),
                "job_run_with_log_uncapped": await per_event(store, server, n, "log", [], None),
            }
        finally:
            await store.close()
    return out


def used(server: RedisServer) -> int:
    with server.client() as client:
        return int(client.info("memory")["used_memory"])


def usage(server: RedisServer, pattern: str) -> int:
    with server.client() as client:
        return sum(int(client.memory_usage(k, samples=0) or 0) for k in client.scan_iter(pattern, count=1000))


async def per_job(store: RedisStore, server: RedisServer, n: int) -> dict[str, int]:
    server.flush()
    before = used(server)
    for i in range(n):
        a = alert(i)
        job = Job(event_id=new_event_id(), rule="pod-crash-looping", alert=a, received_at=time.time())
        await store.intake.accept_collapsing([job], [a], [])
    keys = store.keys
    parts = {
        "stream": usage(server, keys.stream),
        "job_state": usage(server, keys.job_states),
        "intake_marker": usage(server, f"{keys.prefix}:{{q}}:intake:*"),
        "firing_index": usage(server, keys.firing_index) + usage(server, keys.firing_alerts),
    }
    result = {name: round(value / n) for name, value in parts.items()}
    result["total_memory_usage"] = round(sum(parts.values()) / n)
    result["used_memory_delta"] = round((used(server) - before) / n)
    return result


async def per_event(
    store: RedisStore, server: RedisServer, n: int, kind: str, plan: list[str], cap: int | None
) -> dict[str, int]:
    server.flush()
    before = used(server)
    sizes = []
    for i in range(n):
        recorded = event(kind, i, plan, cap)
        sizes.append(len(recorded.model_dump_json(by_alias=True)))
        await store.audit.record_event(recorded)
    keys = store.keys
    hashes = usage(server, keys.event("*"))
    stream = usage(server, keys.audit)
    return {
        "event_json": round(sum(sizes) / n),
        "event_hash": round(hashes / n),
        "audit_stream_entry": round(stream / n),
        "total_memory_usage": round((hashes + stream) / n),
        "used_memory_delta": round((used(server) - before) / n),
    }


def _bytes(value: Any) -> int:
    return len(json.dumps(value, separators=(",", ":")).encode())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--events", type=int, default=500)
    print(json.dumps(asyncio.run(measure(parser.parse_args())), indent=2))


if __name__ == "__main__":
    main()
