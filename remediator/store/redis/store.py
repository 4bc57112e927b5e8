"""The store on Redis: every replica shares one queue, one set of leases, one audit.

Same contract as ``store.memory.MemoryStore`` (``tests/store/test_store_contract.py``
runs both). ``RedisStore`` is made of its parts, one per interface of ``store.base``
(``queue``, ``locks``, ``gates``, ``audit``, ``threads``, ``approvals``), and adds the webhook intake
(coalesced, pipelined: ``intake``), ping and close. Every key comes from ``keys.Keys``;
keys that one script touches share a hash tag, so it also runs on Redis Cluster. Any
Redis failure surfaces as ``StoreUnavailable``: the webhook answers 503 and the workers
act on nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Self

from redis.asyncio.cluster import RedisCluster

from remediator.errors import StoreUnavailable
from remediator.models import Alert, Job, NewJob
from remediator.settings import Settings
from remediator.store.admission import Admission, Admitted, Concluded, Conclusion
from remediator.store.base import collapses
from remediator.store.composed import ComposedStore
from remediator.store.redis.admission import RedisAdmission
from remediator.store.redis.approvals import RedisApprovals
from remediator.store.redis.audit import RedisAudit
from remediator.store.redis.batching import AcceptBatcher, Intake
from remediator.store.redis.common import FAILURES, Backend, guarded, log, text
from remediator.store.redis.connection import Connection, connect
from remediator.store.redis.gates import RedisGates
from remediator.store.redis.intake import intake, write_intake
from remediator.store.redis.keys import Keys
from remediator.store.redis.locks import RedisLocks
from remediator.store.redis.queue import RedisQueue
from remediator.store.redis.threads import RedisThreads


class RedisStore(ComposedStore):
    """Production state: durable queue (stream + group), leases, gates, audit."""

    kind = "redis"

    @classmethod
    async def create(cls, settings: Settings) -> Self:
        """Build the client and check it once; Redis being down is logged, not fatal."""
        assert settings.redis_url is not None
        # Per replica: a blocking XREADGROUP per worker, a heartbeat per running
        # handler, intake (coalesced), maintenance and the HTTP routes.
        conn = connect(settings.redis_url.get_secret_value(), pool_size=2 * settings.workers + 32)
        store = cls(
            conn,
            Keys(settings.redis_prefix),
            firing_ttl=settings.firing_ttl,
            audit_max_events=settings.audit_max_events,
            audit_retention=settings.audit_retention,
            max_deliveries=settings.max_deliveries,
        )
        try:
            await store.ping()
        except StoreUnavailable as exc:
            log.warning(
                "store.redis_unavailable",
                mode=conn.mode,
                error=str(exc),
                message="starting anyway; /readyz answers 503 until Redis is back",
            )
        else:
            log.info("store.redis_connected", mode=conn.mode, prefix=settings.redis_prefix)
        return store

    def __init__(
        self,
        conn: Connection,
        keys: Keys,
        *,
        firing_ttl: float = 6 * 3600.0,
        audit_max_events: int = 10_000,
        audit_retention: float = 7 * 86400.0,
        max_deliveries: int = 5,
    ) -> None:
        self._conn = conn
        self._r = conn.client
        self.keys = keys
        self.max_deliveries = max_deliveries
        self._firing_ttl = firing_ttl
        self._backend = Backend(conn.client, keys)
        self._redis_queue = RedisQueue(self._backend, max_block=max(0.1, conn.socket_timeout - 1.0))
        self._batcher = AcceptBatcher(self._write_intake)
        audit = RedisAudit(self._backend, audit_max_events, audit_retention)
        # one script per run's start and end, unless the keys live on several nodes
        self._admission = (
            None
            if isinstance(conn.client, RedisCluster)
            else RedisAdmission(self._backend, self._redis_queue, audit)
        )
        super().__init__(
            queue=self._redis_queue,
            locks=RedisLocks(self._backend),
            gates=RedisGates(self._backend),
            threads=RedisThreads(self._backend),
            audit=audit,
            approvals=RedisApprovals(self._backend),
        )

    @guarded
    async def ping(self) -> None:
        await self._r.ping()

    async def close(self) -> None:
        await self._batcher.close()
        try:
            await self._conn.close()
        except FAILURES as exc:
            log.warning("store.close_failed", error=repr(exc))

    async def accept(
        self, jobs: Sequence[Job | NewJob], firing: Sequence[Alert], resolved: Sequence[Alert]
    ) -> None:
        item = intake(jobs, firing, resolved, self._firing_ttl)
        if item.jobs or item.firing or item.resolved:
            await self._batcher.submit(item)

    async def accept_collapsing(
        self, jobs: Sequence[Job | NewJob], firing: Sequence[Alert], resolved: Sequence[Alert]
    ) -> list[str]:
        item = intake(jobs, firing, resolved, self._firing_ttl, self._intake_key)
        if item.jobs or item.firing or item.resolved:
            await self._batcher.submit(item)
        return item.collapsed

    @guarded
    async def settle_intake(self, job: Job, done: bool) -> int:
        if not collapses(job):
            return 0
        n = await self._backend.run("SETTLE_INTAKE", [self._intake_key(job)], [job.event_id, int(done)])
        return int(n)

    @guarded
    async def intake_copies(self, job: Job) -> int:
        if not collapses(job):
            return 0
        owner, n = await self._r.hmget(self._intake_key(job), ["id", "n"])
        return int(n or 0) if owner is not None and text(owner) == job.event_id else 0

    @property
    def one_call_per_run(self) -> bool:
        """A run's start and end are one script call each (one server; not on a cluster)."""
        return self._admission is not None

    async def admit(self, ask: Admission) -> Admitted:
        if self._admission is None:
            return await super().admit(ask)
        return await self._admission.admit(ask)

    async def conclude(self, end: Conclusion) -> Concluded:
        if self._admission is None:
            return await super().conclude(end)
        return await self._admission.conclude(end)

    def _intake_key(self, job: Job | NewJob) -> str:
        return self.keys.intake(job.alert.status, job.rule, job.alert.episode) if collapses(job) else ""

    @guarded
    async def _write_intake(self, batch: list[Intake]) -> None:
        """One pipelined round trip for every accept() waiting in this moment."""
        await write_intake(self._backend, batch, self._firing_ttl)

    # A consumer of the group silent this long with nothing pending is gone; look hourly.
    @property
    def consumer_gone_after(self) -> float:
        return self._redis_queue.consumer_gone_after

    @consumer_gone_after.setter
    def consumer_gone_after(self, seconds: float) -> None:
        self._redis_queue.consumer_gone_after = seconds

    @property
    def consumer_cleanup_every(self) -> float:
        return self._redis_queue.consumer_cleanup_every

    @consumer_cleanup_every.setter
    def consumer_cleanup_every(self, seconds: float) -> None:
        self._redis_queue.consumer_cleanup_every = seconds
