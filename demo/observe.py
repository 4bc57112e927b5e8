"""Watches the remediator replicas (their JSON logs) and the Kubernetes API (the emulator's
call log) and puts what they do on the timeline as it happens."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from demo.timeline import Timeline
from tests.support.kube import Call, Cluster
from tests.support.service import RemediatorProcess

OUTCOMES = ("succeeded", "noop", "failed", "skipped", "dry_run")
_SHOWN_MESSAGE = 220


@dataclass(frozen=True)
class Record:
    replica: str
    at: float  # monotonic, when the demo read it
    data: dict[str, Any]

    @property
    def logged_at(self) -> float:
        """When the replica logged it, on the monotonic clock (``at`` if unknown)."""
        try:
            stamp = datetime.fromisoformat(str(self.data["timestamp"])).timestamp()
        except (KeyError, ValueError):
            return self.at
        return min(self.at, stamp - (time.time() - time.monotonic()))

    @property
    def event(self) -> str:
        return str(self.data.get("event", ""))

    @property
    def event_id(self) -> str:
        return str(self.data.get("event_id", ""))


@dataclass
class ReplicaLog:
    """Reads a replica's log file as it grows."""

    name: str
    process: RemediatorProcess
    offset: int = 0
    _partial: bytes = b""

    @property
    def pid(self) -> int:
        return self.process.proc.pid

    @property
    def alive(self) -> bool:
        return self.process.proc.poll() is None

    def read(self) -> list[dict[str, Any]]:
        with self.process.log_path.open("rb") as log:
            log.seek(self.offset)
            chunk = log.read()
        self.offset += len(chunk)
        lines = (self._partial + chunk).split(b"\n")
        self._partial = lines.pop()
        records = []
        for line in lines:
            with contextlib.suppress(ValueError):
                record = json.loads(line)
                if isinstance(record, dict):
                    records.append(record)
        return records


@dataclass
class Observer:
    replicas: list[ReplicaLog]
    kube: Cluster
    timeline: Timeline
    interval: float = 0.2
    records: list[Record] = field(default_factory=list)
    _calls: int = 0
    _holds: set[str] = field(default_factory=set)
    notes: dict[str, str] = field(default_factory=dict)  # event id -> shown when it starts

    async def run(self) -> None:
        while True:
            self.poll()
            await asyncio.sleep(self.interval)

    def poll(self) -> None:
        for replica in self.replicas:
            for data in replica.read():
                record = Record(replica.name, time.monotonic(), data)
                self.records.append(record)
                self._show(record)
        calls, self._calls = self.kube.calls[self._calls :], len(self.kube.calls)
        for call in calls:
            if call.verb == "patch":
                self.timeline.note("kubernetes", describe_call(call))

    def find(self, event: str, **fields: Any) -> list[Record]:
        return [
            r for r in self.records if r.event == event and all(r.data.get(k) == v for k, v in fields.items())
        ]

    async def wait_for(self, what: Callable[[], list[Record]], within: float) -> list[Record]:
        """Until ``what()`` finds something (re-read every ``interval``); [] after ``within``."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            self.poll()
            if found := what():
                return found
            await asyncio.sleep(self.interval)
        return []

    def _show(self, record: Record) -> None:
        data, who = record.data, record.replica
        event = record.event
        rule, target = data.get("rule", ""), data.get("target", "")
        if event == "remediation.started":
            note = self.notes.get(record.event_id, "")
            self.timeline.note(
                who, f"started {rule} on {target} ({data.get('handler')}; event {record.event_id}){note}"
            )
        elif event == "remediation.deferred":
            self.timeline.note(who, f"{rule}: deferred ({data.get('reason')}): {data.get('message')}")
        elif event.startswith("remediation.") and event.split(".", 1)[1] in OUTCOMES:
            self._show_outcome(who, event.split(".", 1)[1], data)
        elif event in ("remediation.already_recorded", "remediation.dead_lettered"):
            self.timeline.note(who, f"{rule}: {event} (event {record.event_id})")
        elif event == "handler.hold" and record.event_id not in self._holds:
            self._holds.add(record.event_id)
            self.timeline.note(
                who,
                f"{rule}: {data.get('message')} (and the same for every "
                "read-only table while Keeper is unreachable)",
            )
        elif event == "handler.sql" and str(data.get("sql", "")).startswith("SYSTEM"):
            self.timeline.note(who, f"{rule}: {data.get('message')}")
        elif event in ("handler.verify", "handler.resume"):
            self.timeline.note(who, f"{rule}: {event.split('.', 1)[1]}: {data.get('message')}")

    def _show_outcome(self, who: str, outcome: str, data: dict[str, Any]) -> None:
        reason = data.get("reason") or ""
        label = f"{outcome}:{reason}" if reason else outcome
        message = str(data.get("message") or "")
        if len(message) > _SHOWN_MESSAGE:
            message = message[:_SHOWN_MESSAGE] + "..."
        alert = data.get("alertname", "")
        loud = outcome != "skipped"
        text = f"{data.get('rule')} ({alert}) -> {label.upper() if loud else label}: {message}"
        self.timeline.note(who, text)


def describe_call(call: Call) -> str:
    body = json.dumps(call.body, separators=(",", ":")) if call.body is not None else ""
    return f"PATCH {call.plural} {call.namespace}/{call.name} {body} -> {call.status}"


def patches(kube: Cluster, plural: str, test: Callable[[Any], bool]) -> list[Call]:
    """Successful patches of ``plural`` whose body passes ``test``."""
    return [
        c
        for c in kube.calls
        if c.verb == "patch"
        and c.plural == plural
        and 200 <= c.status < 300
        and isinstance(c.body, dict)
        and test(c.body)
    ]
