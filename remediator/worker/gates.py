"""The gates a job passes before its handler may act, decided without taking anything:
one small stage per gate (``stages.Stage``).

``StaleLease`` waits out an earlier delivery's lease, ``ResolvedIgnored`` ends a
resolution the rule ignores, ``Paused`` holds what a pause or an open maintenance window
matches, ``Inhibited`` holds what a firing ``inhibited_by`` alert blocks. The checks on
the store's state (still firing, episode, cooldown, circuit) are not here: they are
asked of ``store.admit`` (``admit.py``), in one place.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from remediator import clock
from remediator.errors import MatcherError
from remediator.models import SkipReason
from remediator.rules.matchers import Matcher, matches_all, parse_matcher
from remediator.rules.windows import Window, open_window, utc_iso
from remediator.store.base import Audit, Firing, Locks, Pauses
from remediator.store.values import GLOBAL_PAUSE, Pause
from remediator.worker.runs import Run
from remediator.worker.stages import Defer, Skip, Stop


class StaleLease:
    """A re-delivered job first waits out the target's lease: its first worker may be
    alive and finishing (e.g. after a Redis outage), so no stage may record an outcome yet.
    Once the lease is free, the first worker may just have recorded its outcome (after
    ``Pipeline.process`` looked): then the job comes back at once, and is only acked."""

    def __init__(self, locks: Locks, audit: Audit) -> None:
        self.locks = locks
        self.audit = audit

    async def __call__(self, run: Run) -> Stop | None:
        if run.delivery.deliveries <= 1 or not run.target:  # unrendered: the outcome says why
            return None
        left = await self.locks.lease_remaining(run.target)
        if left > 0:
            return Defer("locked", "waiting for the lease of an earlier delivery", clock.now(), left + 0.5)
        if await self.audit.get_event(run.job.event_id) is not None:
            return Defer("locked", "an earlier delivery recorded the outcome meanwhile", clock.now(), 0.0)
        return None


class ResolvedIgnored:
    """A resolved alert runs nothing unless the rule says ``on_resolved: run``."""

    async def __call__(self, run: Run) -> Stop | None:
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

    async def __call__(self, run: Run) -> Stop | None:
        rule, now = run.known_rule, clock.now()
        labels = {**run.job.alert.labels, "rule": rule.name, "target": run.target}
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
        found = holding(pauses, self.windows(), labels, now)
        return (found.message, found.until) if found is not None else None


@dataclass(frozen=True)
class Hold:
    """What holds a job: a pause (``name`` its id) or a maintenance window, until when."""

    kind: Literal["pause", "window"]
    name: str
    message: str
    until: float


def holding(
    pauses: Iterable[Pause], windows: tuple[Window, ...], labels: Mapping[str, str], now: float
) -> Hold | None:
    """The first pause, then the first open maintenance window, whose matchers match
    ``labels`` (the alert's, plus ``rule`` and ``target``) at ``now``; None: nothing holds
    the job. Pure: the workers and ``remediator simulate`` ask it."""
    for pause in pauses:
        matchers = _matchers(pause.matchers)
        if pause.until > now and matchers is not None and matches_all(matchers, labels):
            return Hold("pause", pause.id, _pause_message(pause), pause.until)
    if (open_ := open_window(windows, labels, now)) is not None:
        window, until = open_
        return Hold(
            "window", window.name, f"maintenance window {window.name} open until {utc_iso(until)}", until
        )
    return None


class PauseBook:
    """The pauses as last read, with their version: read again when a job would be held
    by one of them, and when ``admit`` says the version changed (``admit.Admit``). Shared
    by a replica's workers."""

    def __init__(self, pauses: Pauses) -> None:
        self.pauses_part = pauses
        self.version = -1  # never read
        self.pauses: list[Pause] = []

    async def current(self) -> list[Pause]:
        return self.pauses if self.version >= 0 else await self.refresh()

    async def refresh(self) -> list[Pause]:
        self.version, self.pauses = await self.pauses_part.versioned_pauses()
        return self.pauses


def _pause_message(pause: Pause) -> str:
    until = utc_iso(pause.until)
    if pause.id == GLOBAL_PAUSE:
        return f"remediation paused until {until}: {pause.reason}"
    every = "" if pause.matchers else "remediation "  # a pause without matchers holds every job
    return f"{every}paused by pause {pause.id} ({pause.by or 'unknown'}) until {until}: {pause.reason}"


def _matchers(texts: tuple[str, ...]) -> tuple[Matcher, ...] | None:
    """The pause's matchers (checked by the API); None: one does not parse, match nothing."""
    try:
        return tuple(parse_matcher(text) for text in texts)
    except MatcherError:
        return None


class Inhibited:
    """A firing alert that ``inhibited_by`` names (with ``inhibit_equal`` labels equal)
    holds the job back for up to ``inhibit_wait``; then it is skipped. (Whether the job's
    own alert still fires was asked just before, by the check-only admission.)"""

    def __init__(self, firing: Firing) -> None:
        self.firing = firing

    async def __call__(self, run: Run) -> Stop | None:
        rule = run.known_rule
        if not rule.inhibited_by:
            return None
        blocker = await self._blocker(run)
        if blocker is None:
            return None
        first = run.job.first_deferred_at or clock.now()
        if clock.now() - first >= rule.policy.inhibit_wait:  # waited long enough
            return Skip(SkipReason.INHIBITED, f"inhibited by firing alert {blocker}")
        return Defer("inhibited", f"waiting: inhibited by {blocker}", first)

    async def _blocker(self, run: Run) -> str | None:
        for labels in await self.firing.firing_labels():
            if run.known_rule.inhibits(labels, run.job.alert.labels):
                return labels.get("alertname", "?") + _brief(labels)
        return None


def _brief(labels: dict[str, str]) -> str:
    shown = {k: v for k, v in labels.items() if k != "alertname"}
    if not shown:
        return ""
    inner = ", ".join(f"{k}={v}" for k, v in sorted(shown.items())[:4])
    return "{" + inner + "}"
