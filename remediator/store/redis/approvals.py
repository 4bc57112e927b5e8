"""Approval requests on Redis: asked once per scope (a script: first wins), decided once
(``SET NX``: the first decision wins). The request, its decision and its Slack message are
three keys with one lifetime, read together with one ``MGET``."""

from __future__ import annotations

import json
import time
from typing import Any

from remediator.store.redis.common import Part, guarded, ms, text
from remediator.store.values import Approval, Decision


class RedisApprovals(Part):
    @guarded
    async def request_approval(self, scope: str, approval: Approval, ttl: float) -> tuple[Approval, bool]:
        k = self.keys
        keys = [k.approval_scope(scope), k.approval(approval.event_id), k.approvals]
        data = json.dumps(approval.to_json())
        now = int(time.time() * 1000)
        args = [approval.event_id, data, ms(ttl), int(approval.requested_at * 1000), now - ms(ttl)]
        created, event_id = await self._b.run("REQUEST_APPROVAL", keys, args)
        if int(created):
            return approval, True
        found = await self._read([text(event_id)])
        # The scope's request expired in between (same lifetime): ask again.
        return (found[0], False) if found else await self.request_approval(scope, approval, ttl)

    @guarded
    async def get_approval(self, event_id: str) -> Approval | None:
        found = await self._read([event_id])
        return found[0] if found else None

    @guarded
    async def decide_approval(
        self, event_id: str, decision: Decision, by: str, note: str
    ) -> tuple[Approval | None, bool]:
        data = json.dumps({"decision": decision, "by": by, "note": note, "at": time.time()})
        keys = [self.keys.approval(event_id), self.keys.approval_decision(event_id)]
        stored = int(await self._b.run("DECIDE_APPROVAL", keys, [data]))
        if stored == 0:
            return None, False
        found = await self._read([event_id])
        return (found[0] if found else None), stored == 1

    @guarded
    async def set_approval_message(self, event_id: str, channel: str, ts: str) -> None:
        keys = [self.keys.approval(event_id), self.keys.approval_message(event_id)]
        await self._b.run("SET_APPROVAL_MESSAGE", keys, [json.dumps({"channel": channel, "ts": ts})])

    @guarded
    async def list_approvals(self, limit: int) -> list[Approval]:
        ids = [text(i) for i in await self._r.zrevrange(self.keys.approvals, 0, max(0, limit - 1))]
        return await self._read(ids) if ids else []

    async def _read(self, event_ids: list[str]) -> list[Approval]:
        """The requests that still exist, each with its decision and message."""
        k = self.keys
        keys = [
            key for i in event_ids for key in (k.approval(i), k.approval_decision(i), k.approval_message(i))
        ]
        values = await self._r.mget(keys)
        found = []
        for at in range(0, len(values), 3):
            request, decision, message = values[at : at + 3]
            if request is not None:
                found.append(_combine(json.loads(request), decision, message))
        return found


def _combine(request: dict[str, Any], decision: Any, message: Any) -> Approval:
    if message is not None:
        where = json.loads(message)
        request = {**request, "channel": where["channel"], "message_ts": where["ts"]}
    approval = Approval.from_json(request)
    if decision is not None:
        d = json.loads(decision)
        approval = approval.decided(d["decision"], d["by"], d["note"], float(d["at"]))
    return approval
