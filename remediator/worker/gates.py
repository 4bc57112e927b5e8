"""The gates a job passes before its handler may act: one small class per gate.

Each gate answers ``Skip`` (record ``skipped:<reason>``), ``Defer`` (wait and come
back) or None (go on); the pipeline runs them as ordered lists (see ``pipeline.py``).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable

from remediator.durations import format_duration
from remediator.errors import MatcherError, TemplateError
from remediator.models import SkipReason
from remediator.rules.matchers import Matcher, matches_all, parse_matcher
from remediator.rules.ruleset import render
from remediator.rules.windows import Window, open_window, utc_iso
from remediator.store.base import Store
from remediator.store.values import GLOBAL_PAUSE, Pause
from remediator.worker.run import Defer, Gate, Run, Skip, Stop

__all__ = [
    "Defer",
    "EpisodeDone",
    "Gate",
    "Inhibited",
    "PauseBook",
    "Paused",
    "ResolvedIgnored",
    "Skip",
    "StaleLease",
    "StillFiring",
]


class StaleLease:
    """A re-delivered job first waits out the target's lease: its first worker may be
    alive and finishing (e.g. after a Redis outage), so no gate may record an outcome yet."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def check(self, run: Run) -> Stop | None:
        if run.delivery.deliveries <= 1:
            return None
        with contextlib.suppress(TemplateError):  # the normal path reports the template error
            left = await self.store.locks.lease_remaining(render(run.known_rule, run.job.alert).target)
            if left > 0:
                return Defer(
                    "locked", "waiting for the lease of an earlier delivery", time.time(), left + 0.5
                )
        return None


class ResolvedIgnored:
    """A resolved alert runs nothing unless the rule says ``on_resolved: run``."""

    async def check(self, run: Run) -> Stop | None:
        if run.job.alert.status == "resolved" and run.known_rule.policy.on_resolved == "ignore":
            return Skip(SkipReason.RESOLVED, "alert resolved; on_resolved: ignore")
        return None


class Paused:
    """A pause (``remediator pause``) or an open maintenance window whose matchers match
    the alert's labels plus ``rule`` and ``target``: the job is held (``on_pause: hold``,
    the default) and looks again every DEFER_INTERVAL and when the pause ends; with
    ``on_pause: skip``, and for manual replays, it is ``skipped:paused``."""

    def __init__(
        self, book: PauseBook, windows: Callable[[], tuple[Window, ...]] = tuple, interval: float = 5.0
    ) -> None:
        self.book = book
        self.windows = windows
        self.interval = interval

    async def check(self, run: Run) -> Stop | None:
        rule, now = run.known_rule, time.time()
        labels = {**run.job.alert.labels, "rule": rule.name, "target": best_target(run)}
        found = self._holding(await self.book.current(), labels, now)
        if found is not None:  # never hold a job on a pause that may be gone: read them again
            found = self._holding(await self.book.refresh(), labels, now)
        run.pauses_seen = self.book.version
        if found is None:
            return None
        message, until = found
        if run.job.manual or rule.policy.on_pause == "skip":
            return Skip(SkipReason.PAUSED, message)
        first = run.job.first_deferred_at or now
        wait = max(0.05, min(self.interval, until - now))
        return Defer("paused", f"held: {message}", first, delay=wait, hold=True)

    def _holding(self, pauses: list[Pause], labels: dict[str, str], now: float) -> tuple[str, float] | None:
        """Why the job is held, and until when; None: nothing holds it."""
        for pause in pauses:
            matchers = _matchers(pause.matchers)
            if pause.until > now and matchers is not None and matches_all(matchers, labels):
                return _pause_message(pause), pause.until
        if (open_ := open_window(self.windows(), labels, now)) is not None:
            window, until = open_
            return f"maintenance window {window.name} open until {utc_iso(until)}", until
        return None


class PauseBook:
    """The pauses as last read, with their version: read again when a job would be held
    by one of them, and when ``admit`` says the version changed (``admit.Admit``). Shared
    by a replica's workers."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.version = -1  # never read
        self.pauses: list[Pause] = []

    async def current(self) -> list[Pause]:
        return self.pauses if self.version >= 0 else await self.refresh()

    async def refresh(self) -> list[Pause]:
        self.version, self.pauses = await self.store.pauses.versioned_pauses()
        return self.pauses


def _pause_message(pause: Pause) -> str:
    until = utc_iso(pause.until)
    if pause.id == GLOBAL_PAUSE:
        return f"remediation paused until {until}: {pause.reason}"
    return f"paused by pause {pause.id} ({pause.by or 'unknown'}) until {until}: {pause.reason}"


def _matchers(texts: tuple[str, ...]) -> tuple[Matcher, ...] | None:
    """The pause's matchers (checked by the API); None: one does not parse, match nothing."""
    try:
        return tuple(parse_matcher(text) for text in texts)
    except MatcherError:
        return None


def best_target(run: Run) -> str:
    """The rendered target, or "" when it does not render (the normal path reports that).
    The plan rendered here is kept for the run (``run.plan``): rendered once per run."""
    if run.plan is None:
        with contextlib.suppress(TemplateError):
            run.plan = render(run.known_rule, run.job.alert)
    return run.target


class StillFiring:
    """A firing alert that resolved while its job waited in the queue needs no repair."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def check(self, run: Run) -> Stop | None:
        alert = run.job.alert
        if run.automatic and not await self.store.firing.is_firing(
            alert.fingerprint, alert.starts_at.isoformat()
        ):
            return Skip(SkipReason.RESOLVED, RESOLVED_BEFORE_RUN)
        return None


class Inhibited:
    """A firing alert that ``inhibited_by`` names (with ``inhibit_equal`` labels equal)
    holds the job back for up to ``inhibit_wait``; then it is skipped."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def check(self, run: Run) -> Stop | None:
        rule = run.known_rule
        if not rule.inhibited_by:
            return None
        blocker = await self._blocker(run)
        if blocker is None:
            return None
        first = run.job.first_deferred_at or time.time()
        if time.time() - first >= rule.policy.inhibit_wait:  # waited long enough
            return Skip(SkipReason.INHIBITED, f"inhibited by firing alert {blocker}")
        return Defer("inhibited", f"waiting: inhibited by {blocker}", first)

    async def _blocker(self, run: Run) -> str | None:
        for labels in await self.store.firing.firing_labels():
            if run.known_rule.inhibits(labels, run.job.alert.labels):
                return labels.get("alertname", "?") + _brief(labels)
        return None


class EpisodeDone:
    """One repair per firing episode: an HA twin or a repeat of it is a duplicate."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def check(self, run: Run) -> Stop | None:
        if run.automatic and await self.store.gates.episode_done(run.known_rule.name, run.job.alert.episode):
            return Skip(SkipReason.DUPLICATE, EPISODE_DONE)
        return None


# The messages of the gates on the store's state, shared with ``admit.Admit``.
RESOLVED_BEFORE_RUN = "the alert resolved before the job ran"
EPISODE_DONE = "already remediated for this firing episode"


def in_cooldown(left: float) -> str:
    return f"in cooldown for {format_duration(left)} more (replay with --ignore-cooldown to override)"


def circuit_open(max_attempts: int, left: float) -> str:
    return (
        f"circuit open after {max_attempts} failures; closes in "
        f"{format_duration(left)} (replay with --ignore-circuit to override)"
    )


def at_limit(group: str, limit: int) -> str:
    return f"concurrency group {group!r} is at its limit ({limit})"


def _brief(labels: dict[str, str]) -> str:
    shown = {k: v for k, v in labels.items() if k != "alertname"}
    if not shown:
        return ""
    inner = ", ".join(f"{k}={v}" for k, v in sorted(shown.items())[:4])
    return "{" + inner + "}"
