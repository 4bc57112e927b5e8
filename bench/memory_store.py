"""How much the in-memory store holds after an alert storm of distinct alerts.

Drives ``MemoryStore`` the way the webhook and the workers do for each alert
(index it as firing, queue its job, hand it out and ack it, mark its episode
done, announce its resolution once) and prints the Python heap the store keeps
(tracemalloc) and the process RSS. No server, no Redis: a few seconds per 100k.

    python bench/memory_store.py --alerts 150000
    python bench/memory_store.py --alerts 150000 --max-firing 0 --max-episodes 0  # no caps
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import resource
import sys
import time
import tracemalloc
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from remediator.models import Alert, Job
from remediator.store.memory import MemoryStore


def alert(i: int) -> Alert:
    labels = {"alertname": "BenchStorm", "service": f"svc-{i}", "namespace": "prod",
              "pod": f"svc-{i}-7d9f8b6c5-x{i % 97:02d}", "severity": "critical"}
    return Alert.model_validate({
        "status": "firing", "labels": labels,
        "annotations": {"summary": f"svc-{i} is down", "runbook_url": "https://runbooks/x"},
        "startsAt": datetime(2026, 1, 1, tzinfo=UTC).isoformat(),
        "generatorURL": "http://prometheus:9090/graph?g0.expr=up%3D%3D0"})


async def storm(store: MemoryStore, count: int) -> None:
    for i in range(count):
        a = alert(i)
        job = Job(event_id=f"ev{i:012d}", rule="bench", alert=a, received_at=time.time())
        await store.intake.accept([job], [a], [])
        [delivery] = await store.queue.dequeue("w", 1, 0.1)
        await store.gates.mark_episode("bench", a.episode, 7 * 86400.0)
        await store.queue.ack(delivery.id)
        await store.gates.claim_resolution("bench", a.episode, 6 * 3600.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=150_000)
    parser.add_argument("--max-firing", type=int, default=None, help="0: no cap")
    parser.add_argument("--max-episodes", type=int, default=None, help="0: no cap")
    args = parser.parse_args()
    caps = {k: v for k, v in (("max_firing", args.max_firing),
                               ("max_episodes", args.max_episodes)) if v is not None}
    caps = {k: (v or 10**12) for k, v in caps.items()}
    tracemalloc.start()
    store = MemoryStore(**caps)  # type: ignore[arg-type]
    before = tracemalloc.get_traced_memory()[0]
    started = time.monotonic()
    asyncio.run(storm(store, args.alerts))
    gc.collect()
    held = tracemalloc.get_traced_memory()[0] - before
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{args.alerts} alerts in {time.monotonic() - started:.1f}s: store holds "
          f"{held / 2**20:.1f} MiB (tracemalloc); peak RSS {rss:.0f} MiB; "
          f"evictions {dict(store.evictions)}")


if __name__ == "__main__":
    main()
