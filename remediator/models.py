"""Data that flows through the service: Alertmanager payloads, jobs, results."""

from __future__ import annotations

import hashlib
import itertools
import os
import re
import time
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})")


def _rfc3339(value: object) -> object:
    """Only an RFC 3339 string (or a datetime from our own code): pydantic's lax mode would
    read ``0`` or ``"1714564800"`` as epoch seconds, which no Alertmanager sends."""
    if isinstance(value, datetime) or (isinstance(value, str) and _RFC3339.fullmatch(value)):
        return value
    raise ValueError("expected an RFC 3339 date-time string with an offset, e.g. 2024-05-01T12:00:00Z")


Timestamp = Annotated[datetime, BeforeValidator(_rfc3339)]
"""A date-time field of the webhook payload: RFC 3339 strings only."""


def _none_as_empty(value: object) -> object:
    """Grafana may send ``null`` where an empty string or object is meant."""
    return "" if value is None else value


Text = Annotated[str, BeforeValidator(_none_as_empty)]


def _null_values(value: object) -> object:
    return {} if value is None else value


Sources = Literal["alertmanager", "grafana"]
# Per source: what made the alert (its generatorURL) and what sent it (the payload's externalURL),
# as the links in Slack, the console and PagerDuty name them.
SOURCE_NAMES: dict[str, tuple[str, str]] = {
    "alertmanager": ("Prometheus", "Alertmanager"),
    "grafana": ("Grafana alert rule", "Grafana"),
}


class _Tolerant(BaseModel):
    """Input from Alertmanager: unknown fields are ignored, not errors."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class Alert(_Tolerant):
    """One alert of an Alertmanager v4 webhook payload, or of Grafana Alerting's (version
    "1"), which adds the links to silence it, its dashboard and panel, and its values."""

    status: Literal["firing", "resolved"]
    labels: dict[str, str]
    annotations: dict[str, str] = Field(default_factory=dict)
    starts_at: Timestamp = Field(alias="startsAt")
    ends_at: Timestamp | None = Field(default=None, alias="endsAt")
    generator_url: Text = Field(default="", alias="generatorURL")
    fingerprint: Text = ""
    # Grafana Alerting only ("" / {} from Alertmanager)
    silence_url: Text = Field(default="", alias="silenceURL")
    dashboard_url: Text = Field(default="", alias="dashboardURL")
    panel_url: Text = Field(default="", alias="panelURL")
    grafana_values: Annotated[dict[str, Any], BeforeValidator(_null_values)] = Field(
        default_factory=dict, alias="values"
    )
    value_string: Text = Field(default="", alias="valueString")

    def model_post_init(self, _context: Any) -> None:
        if not self.fingerprint:
            self.fingerprint = label_fingerprint(self.labels)

    @property
    def name(self) -> str:
        return self.labels.get("alertname", "")

    def grafana_links(self) -> list[tuple[str, str]]:
        """(title, URL) of the links only Grafana sends: silence, dashboard, panel."""
        found = (("Silence", self.silence_url), ("Dashboard", self.dashboard_url), ("Panel", self.panel_url))
        return [(title, url) for title, url in found if url]

    @property
    def episode(self) -> str:
        """Identifies one firing episode: the same alert with the same start."""
        return f"{self.fingerprint}@{self.starts_at.isoformat()}"


class WebhookPayload(_Tolerant):
    """Alertmanager's webhook body, version 4 (``notification_reason`` etc. ignored), or
    Grafana Alerting's webhook contact point, version "1": the same shape with ``orgId``,
    ``state``, ``title`` and ``message`` (and per alert the fields of ``Alert``)."""

    version: str
    group_key: str = Field(default="", alias="groupKey")
    truncated_alerts: int = Field(default=0, alias="truncatedAlerts")
    status: Literal["firing", "resolved"]
    receiver: str = ""
    group_labels: dict[str, str] = Field(default_factory=dict, alias="groupLabels")
    common_labels: dict[str, str] = Field(default_factory=dict, alias="commonLabels")
    common_annotations: dict[str, str] = Field(default_factory=dict, alias="commonAnnotations")
    external_url: Text = Field(default="", alias="externalURL")
    alerts: list[Alert]
    # Grafana Alerting only
    org_id: int | None = Field(default=None, alias="orgId")
    state: Text = ""
    title: Text = ""
    message: Text = ""

    @field_validator("version")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in ("4", "1"):
            raise ValueError(
                f"unsupported webhook version {value!r}: expected '4' (Alertmanager) or '1' "
                "(Grafana Alerting's webhook contact point)"
            )
        return value

    @property
    def source(self) -> Sources:
        """Who sent it: ``grafana`` (version "1") or ``alertmanager`` (version "4")."""
        return "grafana" if self.version == "1" else "alertmanager"


def label_fingerprint(labels: dict[str, str]) -> str:
    """A stable id for a label set when Alertmanager did not send one."""
    digest = hashlib.sha256()
    for key in sorted(labels):
        digest.update(key.encode() + b"\xff" + labels[key].encode() + b"\xff")
    return digest.hexdigest()[:16]


_ID_PREFIX = os.urandom(3).hex()  # tells replicas (and restarts) apart
_ID_COUNTER = itertools.count()


def new_event_id() -> str:
    """Time-ordered, unique id: 12 hex digits of milliseconds, 6 per process, 4 of a counter."""
    return f"{int(time.time() * 1000):012x}{_ID_PREFIX}{next(_ID_COUNTER) & 0xFFFF:04x}"


class Outcome(StrEnum):
    SUCCEEDED = "succeeded"
    NOOP = "noop"
    DRY_RUN = "dry_run"
    FAILED = "failed"
    SKIPPED = "skipped"
    ESCALATED = "escalated"  # a chain reached its ``page:`` step: handed to a person


class SkipReason(StrEnum):
    PAUSED = "paused"
    RESOLVED = "resolved"
    INHIBITED = "inhibited"
    DUPLICATE = "duplicate"
    COOLDOWN = "cooldown"
    CIRCUIT_OPEN = "circuit_open"
    LOCKED = "locked"
    CONCURRENCY = "concurrency"
    REJECTED = "rejected"  # an approver said no
    NOT_APPROVED = "not_approved"  # nobody decided before the approval's timeout
    GONE = "gone"  # a ``resolve:`` rule's pod no longer exists: nothing to repair


class Job(BaseModel):
    """One (alert, rule) pair to process; serialised into the queue."""

    model_config = ConfigDict(extra="ignore")

    event_id: str
    rule: str
    alert: Alert
    received_at: float
    external_url: str = ""
    source: Sources = "alertmanager"  # who sent the alert (its external_url is that sender's)
    receiver: str = ""
    manual: bool = False
    note: str = ""
    requested_by: str = ""  # who asked for a manual job (an admin credential's name)
    dry_run: bool | None = None
    ignore_cooldown: bool = False
    ignore_circuit: bool = False
    deliveries: int = 0
    deferrals: int = 0
    first_deferred_at: float | None = None
    wait_noted: bool = False  # its Slack thread was told what it waits for (once per job)
    attempts: int = 0  # handler runs of this job that ended in a temporary failure
    retries_left: int = 0  # set at its first temporary failure (see worker/retry.py)
    approval: str = ""  # the approval request it waits on (its event id; see worker/approval.py)

    def dumps(self) -> bytes:
        return self.model_dump_json(by_alias=True).encode()

    @classmethod
    def loads(cls, data: bytes | str) -> Job:
        return cls.model_validate_json(data)


@dataclass(frozen=True, slots=True, kw_only=True)
class NewJob:
    """A job as the webhook makes it: from already validated parts, serialised straight
    to JSON (no second validation on the hot path). Workers read it back as a ``Job``."""

    event_id: str
    rule: str
    alert: Alert
    raw_alert: dict[str, Any] | None  # the alert exactly as received (None: dump the model)
    received_at: float
    external_url: str = ""
    source: Sources = "alertmanager"
    receiver: str = ""
    manual: bool = False
    note: str = ""
    requested_by: str = ""
    dry_run: bool | None = None
    ignore_cooldown: bool = False
    ignore_circuit: bool = False

    def dumps(self) -> bytes:
        alert = self.raw_alert
        if alert is None:
            alert = self.alert.model_dump(mode="json", by_alias=True)
        return orjson.dumps(
            {
                "event_id": self.event_id,
                "rule": self.rule,
                "alert": alert,
                "received_at": self.received_at,
                "external_url": self.external_url,
                "source": self.source,
                "receiver": self.receiver,
                "manual": self.manual,
                "note": self.note,
                "requested_by": self.requested_by,
                "dry_run": self.dry_run,
                "ignore_cooldown": self.ignore_cooldown,
                "ignore_circuit": self.ignore_circuit,
            }
        )

    def to_job(self) -> Job:
        return Job.model_construct(
            event_id=self.event_id,
            rule=self.rule,
            alert=self.alert,
            received_at=self.received_at,
            external_url=self.external_url,
            source=self.source,
            receiver=self.receiver,
            manual=self.manual,
            note=self.note,
            requested_by=self.requested_by,
            dry_run=self.dry_run,
            ignore_cooldown=self.ignore_cooldown,
            ignore_circuit=self.ignore_circuit,
        )


class Step(BaseModel):
    """One entry of an event's timeline."""

    at: float
    name: str
    message: str = ""
    data: dict[str, Any] = Field(default_factory=dict)


class Gathered(BaseModel):
    """One ``context:`` entry as gathered for a job (``worker/gathering.py``): its kind, a
    title, the text shown (bounded, secrets redacted), or why it could not be gathered."""

    kind: str
    title: str
    text: str = ""
    error: str = ""  # a failed gathering: noted, never fatal
    seconds: float = 0.0
    cut: int = 0  # characters left out to stay within the size bound
    tail: bool = False  # the end of the text matters (a log): a cut keeps the end
    redacted: int = 0  # secrets replaced by [redacted]

    @property
    def ok(self) -> bool:
        return not self.error


class Result(BaseModel):
    """What a handler returns (and what the executor makes of an exception).

    ``retryable`` marks a temporary failure (a TemporaryError, a timeout, a 5xx): the
    worker tries the job again inside its firing episode while the attempt budget allows
    (``remediator/worker/retry.py``). A permanent failure is final at once.
    """

    outcome: Outcome
    message: str = ""
    plan: list[str] = Field(default_factory=list)
    details: dict[str, Any] = Field(default_factory=dict)
    retryable: bool = False

    @classmethod
    def succeeded(cls, message: str, **details: Any) -> Result:
        return cls(outcome=Outcome.SUCCEEDED, message=message, details=details)

    @classmethod
    def noop(cls, message: str, **details: Any) -> Result:
        return cls(outcome=Outcome.NOOP, message=message, details=details)

    @classmethod
    def dry_run(cls, plan: list[str], message: str = "", **details: Any) -> Result:
        text = message or f"dry run: {len(plan)} planned action(s), nothing done"
        return cls(outcome=Outcome.DRY_RUN, message=text, plan=plan, details=details)

    @classmethod
    def failed(cls, message: str, *, retryable: bool = False, **details: Any) -> Result:
        return cls(outcome=Outcome.FAILED, message=message, details=details, retryable=retryable)


class AuditEvent(BaseModel):
    """The record of one job: the alert, every gate and step, the outcome."""

    event_id: str
    rule: str
    target: str = ""
    handler: str = ""
    alertname: str = ""
    fingerprint: str = ""
    alert_status: str = "firing"
    manual: bool = False
    note: str = ""
    requested_by: str = ""
    dry_run: bool = False
    received_at: float
    finished_at: float
    outcome: Outcome
    reason: str = ""
    message: str = ""
    plan: list[str] = Field(default_factory=list)
    details: dict[str, Any] = Field(default_factory=dict)
    timeline: list[Step] = Field(default_factory=list)
    alert: Alert | None = None
    replica: str = ""
    # the Alertmanager (or Grafana: ``source``) that sent the alert (its externalURL; "" for
    # events recorded before it was kept)
    external_url: str = ""
    source: Sources = "alertmanager"
    # seconds from the alert's startsAt to this verified success (automatic runs only)
    time_to_repair: float | None = None

    @property
    def outcome_label(self) -> str:
        """``succeeded`` or ``skipped:cooldown``: the form used in the audit and API."""
        return f"{self.outcome.value}:{self.reason}" if self.reason else self.outcome.value
