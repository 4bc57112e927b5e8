"""The store on Redis: every replica shares one queue, one set of leases, one audit.

Same contract as ``store.memory.MemoryStore`` (``tests/store/test_store_contract.py``
runs both). ``RedisStore`` hands out its parts, one per interface of ``store.base``
(``queue``, ``locks``, ``pauses``, ``firing``, ``gates``, ``audit``, ``jobs``,
``approvals``, ``threads``, ``intake``: coalesced, pipelined; ``credentials``,
``sessions``, ``generation``), and adds what spans them (``admit``, ``conclude``), ping and close. Every
key comes from ``keys.Keys``; keys that one script touches share a hash tag, so it also
runs on Redis Cluster. Any Redis failure
surfaces as ``StoreUnavailable``: the webhook answers 503 and the workers act on nothing.
"""

from __future__ import annotations

from typing import Self

from redis.asyncio.cluster import RedisCluster

from remediator.errors import StoreUnavailable
from remediator.settings import Settings
from remediator.store.admission import Admission, Admitted, Concluded, Conclusion
from remediator.store.redis.admission import RedisAdmission
from remediator.store.redis.approvals import RedisApprovals
from remediator.store.redis.audit import RedisAudit
from remediator.store.redis.brakes import RedisBrakes
from remediator.store.redis.common import FAILURES, Backend, guarded, log
from remediator.store.redis.connection import Connection, connect
from remediator.store.redis.credentials import RedisCredentials
from remediator.store.redis.firing import RedisFiring
from remediator.store.redis.gates import RedisGates
from remediator.store.redis.generation import RedisGeneration
from remediator.store.redis.intake import RedisIntake
from remediator.store.redis.jobs import RedisJobs
from remediator.store.redis.keys import Keys
from remediator.store.redis.locks import RedisLocks
from remediator.store.redis.pauses import RedisPauses
from remediator.store.redis.persistence import report_persistence
from remediator.store.redis.queue import RedisQueue
from remediator.store.redis.sessions import RedisSessions
from remediator.store.redis.threads import RedisThreads
from remediator.store.stepwise import admit_in_steps, conclude_in_steps


class RedisStore:
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
            await report_persistence(conn.client)
        return store

    def __init__(
        self,
        conn: Connection,
        keys: Keys,
        *,
        firing_ttl: float = 6 * 3600.0,
        audit_max_events: int = 10_000,
        audit_retention: float = 7 * 86400.0,
    ) -> None:
        self._conn = conn
        self._r = conn.client
        self.keys = keys
        self.backend = backend = Backend(conn.client, keys)  # what the parts share
        self.queue = RedisQueue(backend, max_block=max(0.1, conn.socket_timeout - 1.0))
        self.locks = RedisLocks(backend)
        self.pauses = RedisPauses(backend)
        self.firing = RedisFiring(backend)
        self.gates = RedisGates(backend)
        self.audit = RedisAudit(backend, audit_max_events, audit_retention)
        self.jobs = RedisJobs(backend)
        self.approvals = RedisApprovals(backend)
        self.threads = RedisThreads(backend)
        self.intake = RedisIntake(backend, firing_ttl)
        self.credentials = RedisCredentials(backend)
        self.sessions = RedisSessions(backend)
        self.generation = RedisGeneration(backend)
        self.brakes = RedisBrakes(backend)
        # one script per run's start and end, unless the keys live on several nodes
        self._admission = (
            None if isinstance(conn.client, RedisCluster) else RedisAdmission(backend, self.queue, self.audit)
        )

    @guarded
    async def ping(self) -> None:
        await self._r.ping()

    async def close(self) -> None:
        await self.intake.close()
        try:
            await self._conn.close()
        except FAILURES as exc:
            log.warning("store.close_failed", error=repr(exc))

    @property
    def one_call_per_run(self) -> bool:
        """A run's start and end are one script call each (one server; not on a cluster)."""
        return self._admission is not None

    async def admit(self, ask: Admission) -> Admitted:
        if self._admission is None:
            return await admit_in_steps(self, ask)
        return await self._admission.admit(ask)

    async def conclude(self, end: Conclusion) -> Concluded:
        if self._admission is None:
            return await conclude_in_steps(self, end)
        return await self._admission.conclude(end)
