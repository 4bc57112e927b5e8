"""What every pause route does: bound its length, announce it, release what it held."""

from __future__ import annotations

from remediator.api.errors import ApiError
from remediator.api.service import Service
from remediator.durations import format_duration
from remediator.notify.notice import Notice, NoticeKind
from remediator.store.values import Pause


def check_length(svc: Service, seconds: float) -> None:
    """400 unless the pause ends in the future and within REMEDIATOR_MAX_PAUSE."""
    if seconds <= 0:
        raise ApiError(400, "invalid request body", "the pause must end in the future")
    longest = svc.settings.max_pause
    if seconds > longest + 1:
        raise ApiError(
            400,
            "pause too long",
            f"{format_duration(seconds)} is more than REMEDIATOR_MAX_PAUSE ({format_duration(longest)})",
        )


async def lifted(svc: Service, pause: Pause, by: str) -> int:
    """A pause was lifted early: release the held jobs (re-gated at once), tell Slack."""
    released = await svc.store.queue.release_held()
    announce(svc, pause, started=False, message=f"lifted by {by}; {released} held job(s) released")
    return released


def announce(svc: Service, pause: Pause, *, started: bool, message: str = "") -> None:
    kind: NoticeKind = "pause_started" if started else "pause_ended"
    svc.notifier.send(Notice(kind=kind, message=message, pause=pause.as_dict()))
