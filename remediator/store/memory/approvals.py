"""The memory store's approval requests: asked once per scope, decided once."""

from __future__ import annotations

from dataclasses import replace

from remediator import clock
from remediator.store.memory.expiring import Expiring
from remediator.store.values import Approval, Decision


class MemoryApprovals:
    """Requests by event id, the scope each was asked for, the first decision of each."""

    def __init__(self) -> None:
        self._scopes: Expiring[str, str] = Expiring()  # scope -> event id of the request
        self._requests: Expiring[str, Approval] = Expiring()  # event id -> request (with decision)

    async def request_approval(self, scope: str, approval: Approval, ttl: float) -> tuple[Approval, bool]:
        current = self._scopes.get(scope)
        if current is not None:
            found = self._requests.get(current)
            if found is not None:
                return found, False
        self._scopes.set(scope, approval.event_id, ttl)
        self._requests.set(approval.event_id, approval, ttl)
        return approval, True

    async def get_approval(self, event_id: str) -> Approval | None:
        return self._requests.get(event_id)

    async def decide_approval(
        self, event_id: str, decision: Decision, by: str, note: str
    ) -> tuple[Approval | None, bool]:
        found = self._requests.get(event_id)
        if found is None or found.decision is not None:
            return found, False
        decided = found.decided(decision, by, note, clock.now())
        self._requests.set(event_id, decided, self._requests.remaining(event_id))
        return decided, True

    async def set_approval_message(self, event_id: str, channel: str, ts: str) -> None:
        found = self._requests.get(event_id)
        if found is not None:
            updated = replace(found, channel=channel, message_ts=ts)
            self._requests.set(event_id, updated, self._requests.remaining(event_id))

    async def list_approvals(self, limit: int) -> list[Approval]:
        self._requests.sweep()
        found = [a for a in (self._requests.get(k) for k in list(self._requests.keys())) if a is not None]
        found.sort(key=lambda a: (a.requested_at, a.event_id), reverse=True)
        return found[:limit]
