"""The store on Redis: every replica shares one queue, one set of leases, one audit.

Same contract as ``store.MemoryStore`` (``tests/test_store_contract.py`` runs
both). The queue and intake live in ``redis_queue.RedisQueue``; this adds leases,
budgets, cooldowns, circuits, episodes, the firing index, pause, audit and Slack
threads. Every key comes from ``keys.Keys``; keys that one script touches share a
hash tag, so it also runs on Redis Cluster. Any Redis failure surfaces as
``StoreUnavailable``: the webhook answers 503 and the workers act on nothing.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from typing import Any, Self

from remediator.errors import StoreUnavailable
from remediator.models import AuditEvent
from remediator.settings import Settings
from remediator.store.base import FailureCount, Pause, holder_of, lease_token
from remediator.store.redis.connection import connect
from remediator.store.redis.keys import Keys
from remediator.store.redis.queue import RedisQueue, guarded, log, ms, text

_STREAM_ID = re.compile(r"^[0-9]+-[0-9]+$")


class RedisStore(RedisQueue):
    """Production state: durable queue (stream + group), leases, gates, audit."""

    kind = "redis"

    @classmethod
    async def create(cls, settings: Settings) -> Self:
        """Build the client and check it once; Redis being down is logged, not fatal."""
        assert settings.redis_url is not None
        # Per replica: a blocking XREADGROUP per worker, a heartbeat per running
        # handler, intake (coalesced), maintenance and the HTTP routes.
        conn = connect(settings.redis_url.get_secret_value(), pool_size=2 * settings.workers + 32)
        store = cls(conn, Keys(settings.redis_prefix), firing_ttl=settings.firing_ttl,
                    audit_max_events=settings.audit_max_events,
                    audit_retention=settings.audit_retention,
                    max_deliveries=settings.max_deliveries)
        try:
            await store.ping()
        except StoreUnavailable as exc:
            log.warning("store.redis_unavailable", mode=conn.mode, error=str(exc),
                        message="starting anyway; /readyz answers 503 until Redis is back")
        else:
            log.info("store.redis_connected", mode=conn.mode, prefix=settings.redis_prefix)
        return store

    # ---- leases and concurrency budgets --------------------------------------
    @guarded
    async def acquire_lease(self, target: str, ttl: float, holder: str = "") -> str | None:
        token = lease_token(holder)
        ok = await self._r.set(self.keys.lease(target), token, nx=True, px=ms(ttl))
        return token if ok else None

    @guarded
    async def extend_lease(self, target: str, token: str, ttl: float) -> bool:
        return bool(await self._run("EXTEND", [self.keys.lease(target)], [token, ms(ttl)]))

    @guarded
    async def release_lease(self, target: str, token: str) -> bool:
        return bool(await self._run("RELEASE", [self.keys.lease(target)], [token]))

    @guarded
    async def lease_remaining(self, target: str) -> float:
        return await self._pttl(self.keys.lease(target))

    @guarded
    async def lease_holder(self, target: str) -> str | None:
        return holder_of(await self._r.get(self.keys.lease(target)))

    @guarded
    async def stash_timeline(self, event_id: str, steps: str, ttl: float) -> None:
        await self._r.set(self.keys.interrupted(event_id), steps, px=ms(ttl))

    @guarded
    async def take_timeline(self, event_id: str) -> str | None:
        value = await self._r.getdel(self.keys.interrupted(event_id))
        return None if value is None else text(value)

    async def _pttl(self, key: str) -> float:
        left = int(await self._r.pttl(key))
        return left / 1000 if left > 0 else 0.0

    @guarded
    async def acquire_slot(self, group: str, limit: int, token: str, ttl: float) -> bool:
        args = [token, limit, ms(ttl)]
        return bool(await self._run("ACQUIRE_SLOT", [self.keys.slots(group)], args))

    @guarded
    async def release_slot(self, group: str, token: str) -> None:
        await self._r.zrem(self.keys.slots(group), token)

    # ---- cooldowns, attempts, circuits, episodes -------------------------------
    @guarded
    async def set_cooldown(self, rule: str, target: str, ttl: float) -> None:
        if ttl > 0:
            await self._r.set(self.keys.cooldown(rule, target), "1", px=ms(ttl))

    @guarded
    async def cooldown_remaining(self, rule: str, target: str) -> float:
        return await self._pttl(self.keys.cooldown(rule, target))

    @guarded
    async def record_failure(
        self, rule: str, target: str, window: float, max_attempts: int
    ) -> FailureCount:
        keys = [self.keys.attempts(rule, target), self.keys.circuit(rule, target)]
        args = [ms(window), max_attempts, secrets.token_hex(8)]
        failures, opened = await self._run("RECORD_FAILURE", keys, args)
        return FailureCount(int(failures), bool(opened))

    @guarded
    async def reset_failures(self, rule: str, target: str) -> None:
        await self._r.delete(self.keys.attempts(rule, target))

    @guarded
    async def circuit_remaining(self, rule: str, target: str) -> float:
        return await self._pttl(self.keys.circuit(rule, target))

    @guarded
    async def episode_done(self, rule: str, episode: str) -> bool:
        return bool(await self._r.exists(self.keys.episode(rule, episode)))

    @guarded
    async def mark_episode(self, rule: str, episode: str, ttl: float) -> None:
        await self._r.set(self.keys.episode(rule, episode), "1", px=ms(ttl))

    @guarded
    async def claim_resolution(self, rule: str, episode: str, ttl: float) -> bool:
        key = self.keys.resolution(rule, episode)
        return bool(await self._r.set(key, "1", nx=True, px=ms(ttl)))

    # ---- firing-alert index ----------------------------------------------------
    @guarded
    async def firing_labels(self) -> list[dict[str, str]]:
        keys = [self.keys.firing_index, self.keys.firing_alerts]
        values = await self._run("FIRING", keys, [int(time.time() * 1000)])
        return [json.loads(value)["labels"] for value in values]

    @guarded
    async def is_firing(self, fingerprint: str, starts_at: str) -> bool:
        keys = [self.keys.firing_index, self.keys.firing_alerts]
        data = await self._run("IS_FIRING", keys, [fingerprint, int(time.time() * 1000)])
        return data is not None and bool(json.loads(data)["startsAt"] == starts_at)

    # ---- pause -------------------------------------------------------------------
    @guarded
    async def set_pause(self, pause: Pause) -> None:
        data = json.dumps({"reason": pause.reason, "until": pause.until, "by": pause.by})
        await self._r.set(self.keys.pause, data, pxat=max(1, int(pause.until * 1000)))

    @guarded
    async def clear_pause(self) -> bool:
        return bool(await self._r.delete(self.keys.pause))

    @guarded
    async def get_pause(self) -> Pause | None:
        data = await self._r.get(self.keys.pause)
        if data is None:
            return None
        item = json.loads(data)
        pause = Pause(reason=item["reason"], until=float(item["until"]), by=item.get("by", ""))
        return pause if pause.until > time.time() else None

    # ---- audit -------------------------------------------------------------------
    @guarded
    async def record_event(self, event: AuditEvent) -> None:
        keys = [self.keys.audit, self.keys.event(event.event_id)]
        args = [event.model_dump_json(by_alias=True), event.rule, event.outcome.value,
                event.outcome_label, self._audit_max, ms(self._audit_retention),
                event.event_id, self.keys.event("")]
        await self._run("RECORD_EVENT", keys, args)

    @guarded
    async def get_event(self, event_id: str) -> AuditEvent | None:
        data = await self._r.hget(self.keys.event(event_id), "e")
        return None if data is None else AuditEvent.model_validate_json(data)

    @guarded
    async def list_events(
        self, limit: int, cursor: str | None = None, rule: str | None = None,
        outcome: str | None = None,
    ) -> tuple[list[AuditEvent], str | None]:
        """Newest first; the cursor is the stream id of the last event returned."""
        start = f"({cursor}" if cursor and _STREAM_ID.match(cursor) else "+"
        out: list[AuditEvent] = []
        last, batch = "", max(limit + 1, 100)
        while True:
            entries: Any = await self._r.xrevrange(self.keys.audit, max=start, min="-",
                                                   count=batch)
            for entry_id, fields in entries:
                if not _wanted(fields, rule, outcome):
                    continue
                if len(out) >= limit:
                    return out, last
                out.append(AuditEvent.model_validate_json(fields[b"e"]))
                last = text(entry_id)
            if len(entries) < batch:
                return out, None
            start = "(" + text(entries[-1][0])

    # ---- Slack threads ---------------------------------------------------------------
    @guarded
    async def claim_thread(self, rule: str, target: str, ts: str, ttl: float) -> str:
        return text(await self._run("CLAIM_THREAD", [self.keys.thread(rule, target)],
                                    [ts, ms(ttl)]))

    @guarded
    async def get_thread(self, rule: str, target: str) -> str | None:
        value = await self._r.get(self.keys.thread(rule, target))
        return None if value is None else text(value)


def _wanted(fields: dict[bytes, bytes], rule: str | None, outcome: str | None) -> bool:
    if rule and text(fields[b"r"]) != rule:
        return False
    return not outcome or outcome in (text(fields[b"o"]), text(fields[b"l"]))
