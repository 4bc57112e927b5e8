"""Which Slack thread a notice belongs to: remembered per event, shared through the store.

A reply finds its parent in memory (same event, same process) or in the store
(any replica). A new parent is claimed in the store under (rule, target) for the
rule's cooldown (at least ``min_ttl``); if another replica claimed first, its
thread wins. A store that is down never stops a post: it goes out without the
thread.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import structlog

from remediator.errors import StoreUnavailable
from remediator.notify.notice import Notice
from remediator.store import base

log = structlog.get_logger("remediator.notify.slack.threads")

REMEMBERED = 1024  # event ids whose thread is kept in memory


class Threads:
    """The parent ``ts`` of each incident's thread."""

    def __init__(self, store: base.Threads, min_ttl: float) -> None:
        self._store = store
        self._min_ttl = min_ttl
        self._known: OrderedDict[str, str] = OrderedDict()  # event id -> parent ts
        self._last: OrderedDict[str, str] = OrderedDict()  # parent ts -> its last outcome
        self._approval_parents: OrderedDict[str, None] = OrderedDict()  # parents with buttons

    async def find(self, notice: Notice) -> str | None:
        """The thread of ``notice``'s incident, or None when there is none (yet)."""
        if notice.event_id in self._known:
            return self._known[notice.event_id]
        if not notice.target:
            return None
        try:
            return await self._store.get_thread(notice.rule, notice.target)
        except StoreUnavailable as exc:  # post without the thread rather than not at all
            log.warning("slack.thread_lookup_failed", rule=notice.rule, target=notice.target, error=str(exc))
            return None

    async def claim(self, notice: Notice, ts: str) -> str:
        """Make ``ts`` the incident's thread, unless another replica was first."""
        if not notice.target:
            return ts
        ttl = max(notice.cooldown, self._min_ttl)
        try:
            return await self._store.claim_thread(notice.rule, notice.target, ts, ttl)
        except StoreUnavailable as exc:
            log.warning("slack.thread_claim_failed", rule=notice.rule, target=notice.target, error=str(exc))
            return ts

    def remember(self, event_id: str, thread: str) -> None:
        if event_id:
            self._known[event_id] = thread
            self._known.move_to_end(event_id)
            while len(self._known) > REMEMBERED:
                self._known.popitem(last=False)

    def outcome(self, thread: str, outcome: str) -> None:
        """The last outcome posted in ``thread`` (by this replica)."""
        _keep(self._last, thread, outcome)

    def failed_last(self, thread: str) -> bool:
        """The last outcome this replica posted in ``thread`` was a failure."""
        return self._last.get(thread) == "failed"

    def approval_parent(self, thread: str) -> None:
        """``thread`` starts with an approval request: its message keeps the buttons and
        the decision, so it is never rewritten with the incident's latest state."""
        _keep(self._approval_parents, thread, None)

    def is_approval_parent(self, thread: str) -> bool:
        return thread in self._approval_parents


def _keep(found: OrderedDict[str, Any], key: str, value: Any) -> None:
    found[key] = value
    found.move_to_end(key)
    while len(found) > REMEMBERED:
        found.popitem(last=False)
