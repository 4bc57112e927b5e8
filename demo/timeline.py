"""The live timeline: every participant notes what it saw, stamped relative to the break."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import TextIO

WHO_WIDTH = 12


@dataclass(frozen=True)
class Entry:
    at: float  # time.monotonic()
    who: str
    text: str


@dataclass
class Timeline:
    """Prints each entry as it comes (``out=None``: records only)."""

    out: TextIO | None = field(default_factory=lambda: sys.stdout)
    t0: float | None = None  # the moment things were broken
    entries: list[Entry] = field(default_factory=list)

    def start(self) -> None:
        self.t0 = time.monotonic()

    def rel(self, at: float) -> float:
        return at - (self.t0 if self.t0 is not None else at)

    def note(self, who: str, text: str, *, at: float | None = None) -> Entry:
        entry = Entry(at=time.monotonic() if at is None else at, who=who, text=text)
        self.entries.append(entry)
        if self.out is not None:
            stamp = f"{self.rel(entry.at):+7.1f}s" if self.t0 is not None else " " * 8
            pad = " " * (len(stamp) + 2 + WHO_WIDTH + 1)
            body = text.replace("\n", "\n" + pad)
            self.out.write(f"{stamp}  {who:<{WHO_WIDTH}} {body}\n")
            self.out.flush()
        return entry

    def say(self, text: str = "") -> None:
        """Free text (headings, summaries), not part of the recorded timeline."""
        if self.out is not None:
            self.out.write(text + "\n")
            self.out.flush()

    def find(self, who: str, contains: str) -> list[Entry]:
        return [e for e in self.entries if e.who == who and contains in e.text]
