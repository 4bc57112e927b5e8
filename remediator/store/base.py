"""What the store promises: one interface per part, and ``Store``, which hands out the parts.

Two stores implement ``Store``: ``memory.MemoryStore`` (the embedded default: one
process, nothing survives a restart) and ``redis.store.RedisStore`` (production: every
replica shares it). Callers type against the part they use (``Locks``, ``Audit``...);
``tests/store/test_store_contract.py`` runs the same contract on both stores. Every
method raises ``StoreUnavailable`` when it cannot answer.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Any, Protocol

from remediator.models import Alert, AuditEvent, Job, NewJob
from remediator.store.admission import Admission, Admitted, Concluded, Conclusion
from remediator.store.values import (
    GLOBAL_PAUSE,
    Approval,
    BrakeAnswer,
    BrakeState,
    Decision,
    Delivery,
    FailureCount,
    HeldJob,
    JobState,
    Pause,
    StoreMarker,
    Tally,
)


class Queue(Protocol):
    """Jobs waiting for a worker: taken, acknowledged, deferred or dead-lettered."""

    async def dequeue(self, consumer: str, count: int, block: float) -> list[Delivery]:
        """Up to ``count`` new jobs for ``consumer``, waiting at most ``block`` seconds.
        Each rule's jobs come in order; the rules with jobs waiting take turns, one job
        each (round robin), so one rule's backlog never holds another rule's job."""

    async def retire(self, rules: Iterable[str]) -> None:
        """The queues of rules not in ``rules`` (renamed or removed) go once drained;
        their jobs still queued are taken as usual until then."""

    async def ack(self, delivery_id: str) -> None:
        """The job is done with: it is never delivered again."""

    async def touch(self, consumer: str, delivery_id: str) -> None:
        """The job's worker is alive: it does not look idle to ``reclaim``."""

    async def reclaim(self, consumer: str, min_idle: float, count: int) -> list[Delivery]:
        """Jobs whose worker went silent for ``min_idle`` seconds, handed to ``consumer``."""

    async def defer(self, delivery_id: str, job: Job, delay: float, hold: bool = False) -> None:
        """Put ``job`` back to wait ``delay`` seconds; ``hold``: held by a pause or window
        (``release_held`` makes it due at once)."""

    async def promote_due(self) -> int:
        """Move the deferred jobs that are due back into the queue; how many moved."""

    async def release_held(self) -> int:
        """Make every held job due now (a pause was lifted); how many."""

    async def dead_letter(self, delivery: Delivery, reason: str) -> None:
        """Give up on a job delivered too often: acked and kept aside with ``reason``."""

    async def dead_letters(self, limit: int) -> list[dict[str, Any]]:
        """The dead-lettered jobs, newest first."""

    async def queue_depth(self) -> int:
        """Jobs queued, in flight or deferred."""


class Locks(Protocol):
    """One repair per target at a time (leases), and concurrency budgets (slots)."""

    async def acquire_lease(self, target: str, ttl: float, holder: str = "") -> str | None:
        """The lease on ``target`` for ``ttl`` seconds (its token), or None if it is held.
        ``holder`` (an event id) is kept with it, so a loser can say whom it lost to."""

    async def extend_lease(self, target: str, token: str, ttl: float) -> bool:
        """Extend the lease ``token`` holds; False: it is no longer ours."""

    async def release_lease(self, target: str, token: str) -> bool:
        """Give back the lease ``token`` holds; False: it was no longer ours."""

    async def lease_remaining(self, target: str) -> float:
        """Seconds left on the lease of ``target`` (0: free)."""

    async def lease_holder(self, target: str) -> str | None:
        """The event id kept with the lease (None: free; "": none was named)."""

    async def acquire_slot(self, group: str, limit: int, token: str, ttl: float) -> bool:
        """One of ``limit`` slots of ``group`` for ``token`` (the same token refreshes it)."""

    async def release_slot(self, group: str, token: str) -> None:
        """Give back the slot ``token`` holds."""


class Pauses(Protocol):
    """Every pause, one model: matchers say which jobs it holds (none: every job)."""

    async def add_pause(self, pause: Pause) -> None:
        """Store ``pause``; one with the same id is replaced."""

    async def remove_pause(self, pause_id: str) -> Pause | None:
        """Lift a pause early: the pause, or None when there is none running (when two
        callers remove it at once, one of them gets it, e.g. to announce the end)."""

    async def list_pauses(self) -> list[Pause]:
        """The running pauses: ``GLOBAL_PAUSE`` first, then by creation; the expired go."""

    async def pauses_version(self) -> int:
        """Bumped by every change to the pauses (not by one running out): ``admit`` checks it."""

    async def versioned_pauses(self) -> tuple[int, list[Pause]]:
        """The version, read before the list: a job checked against them is admitted
        only while the version is the same."""


class Firing(Protocol):
    """The alerts firing now (inhibition, and the "resolved already?" check)."""

    async def firing_labels(self) -> list[dict[str, str]]:
        """The labels of every alert firing now."""

    async def is_firing(self, fingerprint: str, starts_at: str) -> bool:
        """The alert's episode that started at ``starts_at`` still fires."""


class Gates(Protocol):
    """What a repair leaves on its rule and target: episodes, cooldowns, failures, circuits."""

    async def episode_done(self, rule: str, episode: str) -> bool:
        """``rule`` repaired this firing episode already."""

    async def mark_episode(self, rule: str, episode: str, ttl: float) -> None:
        """``rule`` repaired this firing episode (remembered ``ttl`` seconds)."""

    async def claim_resolution(self, rule: str, episode: str, ttl: float) -> bool:
        """True for the first caller only: the resolution claimed under ``episode`` (an
        alert's episode, or a target) is announced once."""

    async def forget_resolution(self, rule: str, episode: str) -> None:
        """The next ``claim_resolution`` of ``episode`` wins again (a run acted since)."""

    async def set_cooldown(self, rule: str, target: str, ttl: float) -> None:
        """No automatic repair of ``target`` by ``rule`` for ``ttl`` seconds."""

    async def cooldown_remaining(self, rule: str, target: str) -> float:
        """Seconds of the cooldown left (0: none)."""

    async def record_failure(self, rule: str, target: str, window: float, max_attempts: int) -> FailureCount:
        """Count a failure in the ``window``; the circuit opens at ``max_attempts``."""

    async def reset_failures(self, rule: str, target: str) -> None:
        """Forget the failures (a success)."""

    async def circuit_remaining(self, rule: str, target: str) -> float:
        """Seconds the circuit stays open (0: closed)."""


class Audit(Protocol):
    """What happened to each alert, and the timeline of a run cut short."""

    async def record_event(self, event: AuditEvent) -> None:
        """Record a job's outcome (its job state goes: the job is done)."""

    async def get_event(self, event_id: str) -> AuditEvent | None:
        """One recorded event."""

    async def list_events(
        self,
        limit: int,
        cursor: str | None = None,
        rule: str | None = None,
        outcome: str | None = None,
    ) -> tuple[list[AuditEvent], str | None]:
        """Events newest first, filtered; the cursor of the next page (None: the last)."""

    async def stash_timeline(self, event_id: str, steps: str, ttl: float) -> None:
        """Keep a run's steps for the run that delivers the job again."""

    async def take_timeline(self, event_id: str) -> str | None:
        """The steps stashed for this job (taken: a second call answers None)."""


class Jobs(Protocol):
    """The job-state index: jobs without an outcome, and what each is doing."""

    async def set_job_state(self, event_id: str, state: str, why: str, target: str = "") -> None:
        """Move a job to ``state``; a job no longer in the index (done) is left alone."""

    async def job_state(self, event_id: str) -> JobState | None:
        """One job's state (None: unknown or done)."""

    async def job_states(self, state: str | None, limit: int) -> list[JobState]:
        """Jobs in ``state`` (None: every state), oldest received first."""


class Approvals(Protocol):
    """Requests for a human's yes: asked once per scope, decided once (first decision wins)."""

    async def request_approval(self, scope: str, approval: Approval, ttl: float) -> tuple[Approval, bool]:
        """Ask once per ``scope`` (rule, target, episode): the first caller stores
        ``approval`` and gets (it, True); any later caller the stored one and False."""

    async def get_approval(self, event_id: str) -> Approval | None:
        """One request, by the event id of the job that asked."""

    async def decide_approval(
        self, event_id: str, decision: Decision, by: str, note: str
    ) -> tuple[Approval | None, bool]:
        """The first decision wins: (the request with it, True); already decided: (as
        stored, False); no such request: (None, False)."""

    async def set_approval_message(self, event_id: str, channel: str, ts: str) -> None:
        """The Slack message that carries the request's buttons."""

    async def list_approvals(self, limit: int) -> list[Approval]:
        """Requests, newest first."""


class Threads(Protocol):
    """Slack threads per (rule, target): the first replica to set one wins."""

    async def claim_thread(self, rule: str, target: str, ts: str, ttl: float) -> str:
        """The thread of (rule, target): ``ts`` if this call set it, else the one set first."""

    async def get_thread(self, rule: str, target: str) -> str | None:
        """The thread of (rule, target), if any."""


class Intake(Protocol):
    """The webhook's write: alerts indexed and jobs stored, before it answers 202."""

    async def accept(
        self, jobs: Sequence[Job | NewJob], firing: Sequence[Alert], resolved: Sequence[Alert]
    ) -> None:
        """Index the alerts, then store the jobs (queued, with their job states)."""

    async def accept_collapsing(
        self, jobs: Sequence[Job | NewJob], firing: Sequence[Alert], resolved: Sequence[Alert]
    ) -> list[str]:
        """``accept``, but an automatic job whose (rule, alert status, firing episode) is
        already queued, running or done is not queued: it is counted on the first job's
        intake marker. The event ids of the jobs not queued."""

    async def settle_intake(self, job: Job, done: bool) -> int:
        """At a job's outcome: how many copies were collapsed into it. ``done`` (its
        episode is repaired) keeps the marker, so later copies are still collapsed;
        otherwise it goes. Only the job that owns the marker settles it."""

    async def intake_copies(self, job: Job) -> int:
        """The copies collapsed into this job so far (0 for a job that owns no marker)."""


class CredentialFailures(Protocol):
    """Failed credentials, counted across replicas: each key (a client address, a presented
    name) in a sliding window; and the addresses a name recently signed in from."""

    async def count_failure(self, keys: Sequence[str], window: float, limit: int) -> list[Tally]:
        """Count one failure under each key; per key, the failures in the last ``window``
        seconds and how long it stays refused (``limit`` failures in the window refuse
        it until the oldest of them is ``window`` old). ``first`` is set once per burst:
        for the failure that made the key refused (to log it once)."""

    async def remember_good(self, name: str, address: str, ttl: float) -> None:
        """``name`` authenticated from ``address``: remembered ``ttl`` seconds."""

    async def known_good(self, name: str, address: str) -> bool:
        """``name`` authenticated from ``address`` recently (a refused name still lets it try)."""


class Sessions(Protocol):
    """Console sign-ins held on the server: a cookie is honoured only while its session is
    open here, so signing out (or removing the credential) ends it on every replica."""

    async def open_session(self, session_id: str, name: str, ttl: float) -> None:
        """A session of the credential ``name``, open for ``ttl`` seconds."""

    async def session_name(self, session_id: str) -> str | None:
        """The credential's name of an open session (None: closed, expired or unknown)."""

    async def close_session(self, session_id: str) -> None:
        """End one session (signing out)."""

    async def close_sessions_of(self, name: str) -> int:
        """End every session of the credential ``name`` (removed or changed); how many."""


class Generation(Protocol):
    """The store's generation marker: how a wiped store is told from a new one."""

    async def marker(self) -> StoreMarker | None:
        """The marker, or None: the store is new, or was wiped."""

    async def create_marker(self, marker: StoreMarker) -> StoreMarker:
        """Store ``marker`` unless one exists; the marker stored (ours, or the first one)."""

    async def claim_report(self, marker_id: str, ttl: float) -> bool:
        """True for the first caller only: it tells people that ``marker_id`` was wiped."""


class Brakes(Protocol):
    """The blast-radius brake per rule (``max_targets``): the distinct targets it acted on
    in a sliding window, the jobs held over it, and the ones an operator released."""

    async def enter(
        self, rule: str, event_id: str, target: str, *, count: int, within: float, dry_run: bool
    ) -> BrakeAnswer:
        """One admitted job of ``rule`` on ``target``: counted (``pass``: its target is
        already in the window, or fewer than ``count`` are), else held (the first held of
        an empty brake: ``opened``). A held job stays held until ``release`` names it,
        whatever the window does; then its next call answers ``released`` (and counts it)."""

    async def state(self, rule: str, within: float) -> BrakeState:
        """The targets counted in the last ``within`` seconds, and the jobs held."""

    async def release(self, rule: str, event_ids: Sequence[str] | None) -> list[HeldJob]:
        """Let the held jobs named (None: all of them) go on; the ones released."""

    async def forget(self, rule: str, event_ids: Sequence[str]) -> None:
        """These held jobs are done without a release (their alert resolved, their rule went)."""


class Store(Protocol):
    """All shared state, as its parts; ``admit`` and ``conclude`` span them."""

    kind: str

    @property
    def queue(self) -> Queue: ...
    @property
    def locks(self) -> Locks: ...
    @property
    def pauses(self) -> Pauses: ...
    @property
    def firing(self) -> Firing: ...
    @property
    def gates(self) -> Gates: ...
    @property
    def audit(self) -> Audit: ...
    @property
    def jobs(self) -> Jobs: ...
    @property
    def approvals(self) -> Approvals: ...
    @property
    def threads(self) -> Threads: ...
    @property
    def intake(self) -> Intake: ...
    @property
    def credentials(self) -> CredentialFailures: ...
    @property
    def sessions(self) -> Sessions: ...
    @property
    def generation(self) -> Generation: ...
    @property
    def brakes(self) -> Brakes: ...

    async def ping(self) -> None:
        """Raise ``StoreUnavailable`` unless the store answers."""

    async def close(self) -> None:
        """Let go of connections (never raises)."""

    async def admit(self, ask: Admission) -> Admitted:
        """A job's start, in one call (``store.admission``)."""

    async def conclude(self, end: Conclusion) -> Concluded:
        """A job's end, in one call (``store.admission``)."""


async def global_pause(pauses: Pauses) -> Pause | None:
    """The running pause with the id ``GLOBAL_PAUSE`` (the deprecated ``/api/v1/pause``'s)."""
    return next((p for p in await pauses.list_pauses() if p.id == GLOBAL_PAUSE), None)


_LOOK_AT = 500  # held jobs checked per call for having ended otherwise


async def brake_state(store: Store, rule: str, within: float) -> BrakeState:
    """A rule's brake without the held jobs that ended otherwise (their alert resolved
    while held: ``skipped:resolved``; their rule went): those are forgotten here, so the
    brake closes (and opens, and is told, again) once no job waits on it."""
    state = await store.brakes.state(rule, within)
    if not state.held:
        return state
    looked = state.held[:_LOOK_AT]
    known = [await store.jobs.job_state(job.event_id) is not None for job in looked]
    gone = [job.event_id for job, alive in zip(looked, known, strict=True) if not alive]
    if not gone:
        return state
    await store.brakes.forget(rule, gone)
    return replace(state, held=tuple(job for job in state.held if job.event_id not in gone))
