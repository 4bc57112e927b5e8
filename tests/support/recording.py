"""The one recording notifier of the tests: it keeps every notice it is sent."""

from __future__ import annotations

from remediator.notify.notice import Notice


class RecordingNotifier:
    """A Notifier that keeps what it is sent, in order (no delivery)."""

    def __init__(self) -> None:
        self.notices: list[Notice] = []

    async def start(self) -> None:
        return None

    def send(self, notice: Notice) -> None:
        self.notices.append(notice)

    async def close(self) -> None:
        return None

    def of_kind(self, kind: str) -> list[Notice]:
        return [n for n in self.notices if n.kind == kind]
