"""Alertmanager v4 webhook payloads, shaped exactly as Alertmanager 0.25+ sends them."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from remediator.models import Alert, label_fingerprint

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "alertmanager"
STARTS = "2026-11-28T10:00:00.000Z"


def alert(
    alertname: str = "TestAlert",
    status: str = "firing",
    starts_at: str | datetime = STARTS,
    annotations: dict[str, str] | None = None,
    *,
    ends_at: str | datetime | None = None,
    generator_url: str = "http://prometheus.test:9090/graph?g0.expr=up",
    **labels: str,
) -> dict[str, Any]:
    """The one builder of an alert as Alertmanager sends it (every test that needs one
    calls this, with its own names and labels). A resolved alert ends 5 minutes after it
    started unless ``ends_at`` says otherwise; ``annotations`` None: a summary."""
    all_labels = {"alertname": alertname, **labels}
    starts = _time(starts_at)
    if ends_at is None:
        ends_at = "0001-01-01T00:00:00Z" if status == "firing" else starts + timedelta(minutes=5)
    return {
        "status": status,
        "labels": all_labels,
        "annotations": {"summary": f"{alertname} is {status}"} if annotations is None else annotations,
        "startsAt": starts.isoformat().replace("+00:00", "Z"),
        "endsAt": ends_at if isinstance(ends_at, str) else ends_at.isoformat().replace("+00:00", "Z"),
        "generatorURL": generator_url,
        "fingerprint": label_fingerprint(all_labels),
    }


def with_service(labels: dict[str, str], service: str = "api") -> dict[str, Any]:
    """``labels`` with a ``service`` label (the admin tests' rules target ``svc/<service>``)."""
    return {"service": service, **labels}


def alert_model(*args: Any, **kwargs: Any) -> Alert:
    """``alert(...)`` as the service's model."""
    return Alert.model_validate(alert(*args, **kwargs))


def _time(value: str | datetime) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(value.replace("Z", "+00:00"))


def payload(*alerts: dict[str, Any], status: str | None = None) -> dict[str, Any]:
    status = status or ("firing" if any(a["status"] == "firing" for a in alerts) else "resolved")
    return {
        "receiver": "remediator",
        "status": status,
        "alerts": list(alerts),
        "groupLabels": {},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.test:9093",
        "version": "4",
        "groupKey": '{}:{alertname="TestAlert"}',
        "truncatedAlerts": 0,
        "notification_reason": "new alerts",  # unknown fields must be ignored
    }


def example(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((EXAMPLES / f"{name}.json").read_text())
    return data
