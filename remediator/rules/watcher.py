"""Watches the rules file and reloads it on change or SIGHUP; a broken edit changes nothing.

Polling, not inotify: a Kubernetes ConfigMap volume updates by swapping its
``..data`` symlink to a new timestamped directory, which only a poll of the
resolved path (plus stat and content hash) reliably sees.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import signal
from dataclasses import dataclass
from pathlib import Path

import structlog

from remediator.notify.notice import Notice, Notifier
from remediator.rules.holder import ReloadResult, RulesHolder

log = structlog.get_logger("remediator.rules.watcher")


@dataclass(frozen=True)
class FileState:
    """What the rules path points at now; ``digest`` is the RuleSet hash of its bytes."""

    resolved: str
    stat: tuple[int, int, int, int]  # device, inode, size, mtime_ns
    digest: str
    error: str = ""


def file_state(path: Path) -> FileState:
    resolved = os.path.realpath(path)
    try:
        st = os.stat(resolved)
        data = Path(resolved).read_bytes()
    except OSError as exc:
        return FileState(resolved, (0, 0, 0, 0), "", exc.strerror or str(exc))
    digest = hashlib.sha256(data).hexdigest()[:16]
    return FileState(resolved, (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns), digest)


def stat_key(path: Path) -> tuple[str, tuple[int, int, int, int]]:
    """Cheap per-poll check: the resolved path and its stat (no read)."""
    resolved = os.path.realpath(path)
    try:
        st = os.stat(resolved)
    except OSError:
        return resolved, (0, 0, 0, 0)
    return resolved, (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


class RulesWatcher:
    """Reloads ``holder`` when its file changes (poll) or on request (SIGHUP)."""

    def __init__(self, holder: RulesHolder, notifier: Notifier, *, interval: float) -> None:
        self.holder = holder
        self.notifier = notifier
        self.interval = interval
        # Compare the first poll with what the holder loaded, not with the file now:
        # an edit made between the initial load and this watcher is then not missed.
        self._seen = FileState("", (0, 0, 0, 0), holder.current().hash if holder.loaded else "")
        self._wake = asyncio.Event()
        self._forced = False
        self._signal: int | None = None

    def request_reload(self) -> None:
        """Reload now, changed or not (the SIGHUP handler)."""
        self._forced = True
        self._wake.set()

    def install_sighup(self, loop: asyncio.AbstractEventLoop) -> bool:
        """SIGHUP -> reload. Only possible in the main thread; returns whether it is on."""
        try:
            loop.add_signal_handler(signal.SIGHUP, self.request_reload)
        except (ValueError, RuntimeError, NotImplementedError, AttributeError) as exc:
            log.info("rules.sighup_unavailable", reason=str(exc) or type(exc).__name__)
            return False
        self._signal = signal.SIGHUP
        return True

    def remove_sighup(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._signal is not None:
            with contextlib.suppress(ValueError, RuntimeError):
                loop.remove_signal_handler(self._signal)
            self._signal = None

    async def run(self, stop: asyncio.Event) -> None:
        """Poll every ``interval`` seconds (0: only on SIGHUP) until ``stop`` is set."""
        while not stop.is_set():
            await self._sleep(stop)
            if stop.is_set():
                return
            self._wake.clear()
            forced, self._forced = self._forced, False
            try:
                self.check(forced=forced)
            except Exception:  # the watcher must outlive any surprise
                log.exception("rules.watch_failed")

    async def _sleep(self, stop: asyncio.Event) -> None:
        """Until the next poll, a reload request, or ``stop``."""
        waiters = [asyncio.create_task(stop.wait()), asyncio.create_task(self._wake.wait())]
        try:
            await asyncio.wait(
                waiters,
                timeout=self.interval if self.interval > 0 else None,
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            for waiter in waiters:
                waiter.cancel()
            await asyncio.gather(*waiters, return_exceptions=True)

    def check(self, *, forced: bool = False) -> ReloadResult | None:
        """One poll: reload if the file's target, stat or content changed (or if forced)."""
        if not forced and stat_key(self.holder.path) == (self._seen.resolved, self._seen.stat):
            return None
        state = file_state(self.holder.path)
        previous, self._seen = self._seen, state
        if not forced and state.digest == previous.digest and state.error == previous.error:
            return None  # touched or re-linked, same content
        trigger = "sighup" if forced else "change"
        return self.reload(trigger, previous)

    def reload(self, trigger: str, previous: FileState) -> ReloadResult:
        old_hash = self.holder.current().hash if self.holder.loaded else ""
        was_ok = self.holder.last is None or self.holder.last.ok
        result = self.holder.load()
        log.info(
            "rules.reload",
            trigger=trigger,
            ok=result.ok,
            message=result.message,
            path=str(self.holder.path),
            resolved=self._seen.resolved,
            previous_resolved=previous.resolved,
            hash=result.hash,
        )
        if result.ok and result.hash == old_hash and was_ok:
            return result  # same rules as before: nothing worth telling people
        self.notifier.send(self._notice(result, trigger, old_hash))
        return result

    def _notice(self, result: ReloadResult, trigger: str, old_hash: str) -> Notice:
        if result.ok and result.hash == old_hash:  # only after a failed reload (see reload)
            message = (
                f"rules file valid again ({trigger}): the failed reload is over; "
                f"the rules in effect did not change (hash {result.hash})"
            )
        elif result.ok:
            message = f"rules reloaded ({trigger}): {result.message}, hash {result.hash}"
        else:
            message = (
                f"rules reload FAILED ({trigger}); still running on the last good rules "
                f"(hash {result.hash or 'none'}): " + "; ".join(result.errors[:5])
            )
        return Notice(
            kind="rules_reload",
            outcome="ok" if result.ok else "error",
            message=message,
            details={
                "path": str(self.holder.path),
                "resolved_path": self._seen.resolved,
                "hash": result.hash,
                "previous_hash": old_hash,
                "trigger": trigger,
                "errors": list(result.errors),
                "rules": self._count(),
            },
        )

    def _count(self) -> int:
        return len(self.holder.current()) if self.holder.loaded else 0
