"""A job delivered again while its first worker is still finishing it (found by the AOF
outage test of issue 24, item 13: a Redis outage makes the first worker's job look idle,
another replica reclaims it). The first worker's outcome stands: the second delivery
neither records a second outcome over it nor counts one."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from remediator.models import AuditEvent
from remediator.store.memory import MemoryStore
from remediator.store.memory.audit import MemoryAudit
from tests.conftest import MakeHarness
from tests.support.handlers import RUNS
from tests.support.payloads import alert, payload

RULES = """
rules:
  - name: probe
    matchers: ['alertname="Probe"']
    handler: test.probe
    target: 'svc/{{ labels.service }}'
    params: {bucket: web}
"""


class FinishingAudit(MemoryAudit):
    """The first look of the second delivery (``_prepared``) finds no outcome yet, and the
    first worker concludes right after it: the interleaving seen with a real Redis."""

    first_worker: Callable[[], Awaitable[object]] | None = None

    async def get_event(self, event_id: str) -> AuditEvent | None:
        found = await super().get_event(event_id)
        if self.first_worker is not None:
            finish, self.first_worker = self.first_worker, None
            await finish()
        return found


class FinishingStore(MemoryStore):
    def __init__(self) -> None:
        super().__init__()
        self.audit = self.finishing = FinishingAudit(10_000, self.jobs)


async def test_a_second_delivery_leaves_the_first_workers_outcome_alone(harness: MakeHarness) -> None:
    store = FinishingStore()
    h = await harness(RULES, store=store, workers=0)
    response = await h.post(payload(alert("Probe", service="a")))
    [event_id] = (await response.json())["event_ids"]
    [first] = await store.queue.dequeue("c1", 1, 1.0)
    [second] = await store.queue.reclaim("c2", 0.0, 1)  # its worker looked idle: delivered again
    assert second.deliveries == 2
    pipeline = h.pipeline()
    store.finishing.first_worker = lambda: pipeline.process(first, "c1")
    await pipeline.process(second, "c2")
    event = await store.audit.get_event(event_id)
    assert event is not None and event.outcome_label == "succeeded", event
    assert len(RUNS["web"]) == 1
    counted = {
        (s.labels["outcome"], s.labels["reason"]): s.value
        for family in h.svc.metrics.registry.collect()
        if family.name == "remediator_jobs"
        for s in family.samples
        if s.name == "remediator_jobs_total"
    }
    assert counted == {("succeeded", ""): 1.0}, counted
    # It came back at once (a deferral of 0 s), and its next delivery is only acked.
    [third] = await store.queue.dequeue("c2", 1, 3.0)
    assert third.job.event_id == event_id
    await pipeline.process(third, "c2")
    assert await store.queue.queue_depth() == 0
    assert (await store.audit.get_event(event_id)) == event and len(RUNS["web"]) == 1
