"""Watches ``REMEDIATOR_ADMIN_TOKENS_FILE`` and reloads it when it changes, as the rules
file is watched (``rules/watcher.py``): a token removed from it stops working without a
restart, and the console sessions of a removed or changed credential end on every
replica. A file that no longer loads keeps the last good tokens, logged and counted.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import structlog

from remediator.api.auth import Credential, Credentials, load_credentials
from remediator.api.service import Service
from remediator.errors import StoreUnavailable
from remediator.rules.watcher import FileState, file_state, stat_key
from remediator.settings import SettingsError

log = structlog.get_logger("remediator.api.tokens")


class TokensWatcher:
    """Polls the tokens file every ``interval`` seconds; one per replica. Made before the
    app loads the file (an edit in between is then seen as a change), run with the service."""

    def __init__(self, path: Path, *, interval: float) -> None:
        self.path = path
        self.interval = interval
        self._seen: FileState = file_state(path)
        self._ending: set[str] = set()  # names whose sessions are still to be closed
        self.svc: Service | None = None

    async def run(self, svc: Service, stop: asyncio.Event) -> None:
        self.svc = svc
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), max(self.interval, 0.05))
            if stop.is_set():
                return
            try:
                await self.check()
            except Exception:  # the watcher must outlive any surprise
                log.exception("admin_tokens.watch_failed")

    async def check(self) -> None:
        """One poll: reload when the file's target, stat and content changed; end the
        sessions of the credentials a reload took away (again at the next poll if the
        store was down)."""
        if stat_key(self.path) != (self._seen.resolved, self._seen.stat):
            state = file_state(self.path)
            previous, self._seen = self._seen, state
            if state.digest != previous.digest or state.error != previous.error:
                await self.reload()
                return
        if self._ending:
            await self._end_sessions()

    async def reload(self) -> None:
        svc = self._service()
        metrics = svc.metrics.admin_tokens_reload
        try:
            loaded = load_credentials(svc.settings)
        except SettingsError as exc:
            metrics.labels("error").inc()
            log.error(
                "admin_tokens.reload_failed",
                path=str(self.path),
                errors=exc.problems,  # they name lines and entries, never a token
                message="the tokens file does not load: the last good tokens stay in effect",
            )
            return
        before, after = _by_name(svc.credentials), _by_name(loaded)
        removed = sorted(n for n in before if n not in after)
        changed = sorted(n for n in before if n in after and before[n] != after[n])
        svc.credentials = loaded  # from the next request on
        metrics.labels("ok").inc()
        self._ending |= {*removed, *changed}
        ended = await self._end_sessions()
        log.info(
            "admin_tokens.reloaded",
            path=str(self.path),
            removed=removed,
            changed=changed,  # another token or access under the same name
            added=sorted(n for n in after if n not in before),
            sessions_ended=ended,
        )

    async def _end_sessions(self) -> int:
        """Close the console sessions of the names in ``_ending``; how many ended."""
        ended = 0
        for name in sorted(self._ending):
            try:
                ended += await self._service().store.sessions.close_sessions_of(name)
            except StoreUnavailable as exc:
                log.warning(
                    "admin_tokens.sessions_not_ended",
                    name=name,
                    error=str(exc),
                    message="its sessions are refused (the credential is gone) and closed at the next poll",
                )
                break
            self._ending.discard(name)
        return ended

    def _service(self) -> Service:
        assert self.svc is not None, "run() sets the service"
        return self.svc


def _by_name(credentials: Credentials) -> dict[str, Credential]:
    return {c.name: c for c in credentials.entries}
